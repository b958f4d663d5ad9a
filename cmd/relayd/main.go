// SPDX-License-Identifier: Apache-2.0

// Command relayd is an RTP media relay controlled over the ng protocol.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/relayd/relayd/pkg/cli"
	"github.com/relayd/relayd/pkg/daemon"
)

func main() {
	// "relayd ctl ..." is the operator's client (rtpengine-ctl's protocol).
	if len(os.Args) > 1 && os.Args[1] == "ctl" {
		os.Exit(cli.Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := daemon.Run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "relayd:", err)
		os.Exit(1)
	}
}
