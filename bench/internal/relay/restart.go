// SPDX-License-Identifier: Apache-2.0

package relay

import (
	"fmt"
	"log/slog"
)

// Respawn starts p's command line again, its output in logPath: the same
// binary with the same arguments in the same namespace, as a service
// manager restarts a relay. p must have exited.
func (p *Process) Respawn(logPath string, log *slog.Logger) (*Process, error) {
	if done, _ := p.Exited(); !done {
		return nil, fmt.Errorf("respawn %s: the previous process still runs", p.Spec.Name)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return spawn(p.Spec, p.Argv, logPath, log)
}
