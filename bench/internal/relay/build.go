// SPDX-License-Identifier: Apache-2.0

package relay

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// opusTag is the build tag relayd's Opus needs besides cgo: libopus only,
// without libopusfile (pkg/transcode).
const opusTag = "nolibopusfile"

// BuildInfo is how a relayd binary was built, as far as transcoding cares.
type BuildInfo struct {
	// Known says the binary's build settings could be read (go version
	// -m); the rest is meaningless otherwise.
	Known bool
	CGO   bool
	Tags  []string
	// Opus says the build carries libopus: cgo and the nolibopusfile tag.
	Opus bool
}

// String says which build it is, for the results.
func (b BuildInfo) String() string {
	switch {
	case !b.Known:
		return "build settings unknown"
	case b.Opus:
		return "CGO_ENABLED=1 -tags " + strings.Join(b.Tags, ",") + ": Opus through libopus"
	case b.CGO:
		return "CGO_ENABLED=1 without -tags " + opusTag + ": no Opus"
	}
	return "CGO_ENABLED=0: no Opus"
}

// BuildRelayd builds ./cmd/relayd of the module the bench runs in into
// dir, the way `make build` does: with cgo and Opus (libopus, tag
// nolibopusfile) when a C compiler and pkg-config's opus are there, else
// cgo-free (a relayd that relays and transcodes everything but Opus).
func BuildRelayd(ctx context.Context, dir string) (string, BuildInfo, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", BuildInfo{}, fmt.Errorf("%w: go env GOMOD: %v (give --relayd-bin)", ErrNoBinary, err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", BuildInfo{}, fmt.Errorf("%w: not inside the relayd module (give --relayd-bin)", ErrNoBinary)
	}
	bin := filepath.Join(dir, "relayd")
	args := []string{"build", "-trimpath", "-o", bin}
	cgo := "0"
	if canOpus(ctx) {
		cgo = "1"
		args = append(args, "-tags", opusTag)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/relayd")...)
	cmd.Dir = filepath.Dir(gomod)
	// GOFLAGS may carry -tags already (make bench): the explicit -tags
	// above is the one that counts, so drop any inherited one.
	cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo, "GOFLAGS="+withoutTags(os.Getenv("GOFLAGS")))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", BuildInfo{}, fmt.Errorf("%w: go build ./cmd/relayd: %v\n%s", ErrNoBinary, err, out)
	}
	return bin, Describe(ctx, bin), nil
}

// canOpus says whether relayd can be built with libopus here: a C
// compiler and pkg-config's opus.
func canOpus(ctx context.Context) bool {
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "gcc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		return false
	}
	return exec.CommandContext(ctx, "pkg-config", "--exists", "opus").Run() == nil
}

func withoutTags(goflags string) string {
	var keep []string
	for _, f := range strings.Fields(goflags) {
		if !strings.HasPrefix(f, "-tags") && !strings.HasPrefix(f, "--tags") {
			keep = append(keep, f)
		}
	}
	return strings.Join(keep, " ")
}

// Describe reads a Go binary's build settings (go version -m).
func Describe(ctx context.Context, bin string) BuildInfo {
	out, err := exec.CommandContext(ctx, "go", "version", "-m", bin).Output()
	if err != nil {
		return BuildInfo{}
	}
	return parseBuildInfo(out)
}

func parseBuildInfo(out []byte) BuildInfo {
	var b BuildInfo
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "build" {
			continue
		}
		k, v, _ := strings.Cut(f[1], "=")
		switch k {
		case "CGO_ENABLED":
			b.Known, b.CGO = true, v == "1"
		case "-tags":
			b.Tags = strings.Split(v, ",")
		}
	}
	b.Opus = b.CGO && slices.Contains(b.Tags, opusTag)
	return b
}
