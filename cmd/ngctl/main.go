// SPDX-License-Identifier: Apache-2.0

// Command ngctl sends one ng command to a relay (relayd or any ng-speaking
// relay) and prints the reply as JSON: a hand tool for operators and tests.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/relayd/relayd/pkg/ngproto"
)

const usage = `usage: ngctl [options] COMMAND [ARG]

commands:
  ping | list | statistics
  offer  [--call-id ID --from-tag TAG] SDPFILE   (SDPFILE "-" reads stdin)
  answer  --call-id ID --from-tag TAG --to-tag TAG SDPFILE
  query  CALLID
  delete CALLID
  raw    'JSON dictionary'                        (sent as is, e.g. '{"command":"ping"}')

options:
`

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ngctl:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("ngctl", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	addr := fs.String("addr", "127.0.0.1:2223", "relay's ng address")
	useJSON := fs.Bool("json", false, "send JSON instead of bencode")
	callID := fs.String("call-id", "", "call-id")
	fromTag := fs.String("from-tag", "", "from-tag")
	toTag := fs.String("to-tag", "", "to-tag")
	via := fs.String("via-branch", "", "via-branch")
	flags := fs.String("flags", "", `Kamailio-style flag string, e.g. "replace-origin ICE=remove direction=external direction=internal"`)
	timeout := fs.Duration("timeout", time.Second, "wait per try")
	tries := fs.Int("tries", 5, "tries (retransmissions + 1)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("no command")
	}
	// Options may also follow the command, as in "ngctl offer --call-id X file".
	cmd := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return err
	}
	rest := fs.Args()
	req := ngproto.FlagString(*flags)
	set := func(k, v string) {
		if v != "" {
			req[k] = v
		}
	}
	req["command"] = cmd
	set("call-id", *callID)
	set("from-tag", *fromTag)
	set("to-tag", *toTag)
	set("via-branch", *via)
	switch cmd {
	case "offer", "answer":
		if len(rest) != 1 {
			return fmt.Errorf("%s needs an SDP file", cmd)
		}
		var sdp []byte
		var err error
		if rest[0] == "-" {
			sdp, err = io.ReadAll(stdin)
		} else {
			sdp, err = os.ReadFile(rest[0])
		}
		if err != nil {
			return err
		}
		req["sdp"] = string(sdp)
		if req["call-id"] == nil {
			req["call-id"] = fmt.Sprintf("ngctl-%d", time.Now().UnixNano())
		}
		if req["from-tag"] == nil {
			req["from-tag"] = "ngctl"
		}
	case "query", "delete":
		if len(rest) == 1 {
			req["call-id"] = rest[0]
		}
	case "raw":
		if len(rest) != 1 {
			return fmt.Errorf("raw needs a JSON dictionary")
		}
		req = map[string]any{}
		if err := json.Unmarshal([]byte(rest[0]), &req); err != nil {
			return fmt.Errorf("raw: %w", err)
		}
	}
	c, err := ngproto.Dial(*addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.Timeout, c.Tries = *timeout, *tries
	if *useJSON {
		c.Format = ngproto.FormatJSON
	}
	reply, err := c.Do(context.Background(), req)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false) // "<untagged 0>" stays readable
	if err := enc.Encode(reply); err != nil {
		return err
	}
	if reply["result"] == "error" {
		return fmt.Errorf("relay answered error: %v", reply["error-reason"])
	}
	return nil
}
