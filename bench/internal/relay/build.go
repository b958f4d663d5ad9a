// SPDX-License-Identifier: Apache-2.0

package relay

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BuildRelayd builds ./cmd/relayd of the module the bench runs in into
// dir, the way `make build` does, and returns the binary's path.
func BuildRelayd(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("%w: go env GOMOD: %v (give --relayd-bin)", ErrNoBinary, err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("%w: not inside the relayd module (give --relayd-bin)", ErrNoBinary)
	}
	bin := filepath.Join(dir, "relayd")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/relayd")
	cmd.Dir = filepath.Dir(gomod)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w: go build ./cmd/relayd: %v\n%s", ErrNoBinary, err, out)
	}
	return bin, nil
}
