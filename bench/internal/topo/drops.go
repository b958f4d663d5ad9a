// SPDX-License-Identifier: Apache-2.0

package topo

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"time"
)

// Drops are packets the veths themselves dropped (a full NAPI ring: the
// receiving side did not keep up), by direction.
type Drops struct {
	// ToRelay counts packets on their way into the relay's namespace,
	// ToEndpoints on their way out of it.
	ToRelay, ToEndpoints uint64
}

// Sub returns d - o.
func (d Drops) Sub(o Drops) Drops {
	return Drops{ToRelay: d.ToRelay - o.ToRelay, ToEndpoints: d.ToEndpoints - o.ToEndpoints}
}

// linkDrops is the part of `ip -s -j link` the bench reads.
type linkDrops struct {
	Ifname  string `json:"ifname"`
	Stats64 struct {
		Rx struct {
			Dropped uint64 `json:"dropped"`
		} `json:"rx"`
		Tx struct {
			Dropped uint64 `json:"dropped"`
		} `json:"tx"`
	} `json:"stats64"`
}

// ParseLinkDrops reads `ip -s -j link show` output into rx and tx drops per
// interface name.
func ParseLinkDrops(data []byte) (map[string][2]uint64, error) {
	var links []linkDrops
	if err := json.Unmarshal(data, &links); err != nil {
		return nil, fmt.Errorf("%w: ip -s -j link: %v", ErrBadTopology, err)
	}
	out := map[string][2]uint64{}
	for _, l := range links {
		out[l.Ifname] = [2]uint64{l.Stats64.Rx.Dropped, l.Stats64.Tx.Dropped}
	}
	return out, nil
}

// VethDrops reads the drop counters of every veth of the topology.
func (t *Topology) VethDrops(ctx context.Context) (Drops, error) {
	var d Drops
	if t.Kind == Loopback {
		return d, nil
	}
	read := func(ns string) (map[string][2]uint64, error) {
		ip, err := ipBinary()
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, ip, "-n", ns, "-s", "-j", "link", "show").Output()
		if err != nil {
			return nil, fmt.Errorf("ip -n %s -s -j link: %w", ns, err)
		}
		return ParseLinkDrops(out)
	}
	relay, err := read(t.RelayNS)
	if err != nil {
		return d, err
	}
	for name, rt := range relay {
		if len(name) > len(RelayDevPrefix) && name[:len(RelayDevPrefix)] == RelayDevPrefix {
			d.ToRelay += rt[0]
			d.ToEndpoints += rt[1]
		}
	}
	seen := map[string]bool{}
	for _, s := range t.Sides {
		if seen[s.NS] {
			continue
		}
		seen[s.NS] = true
		ep, err := read(s.NS)
		if err != nil {
			return d, err
		}
		rt := ep[endpointDev]
		d.ToEndpoints += rt[0]
		d.ToRelay += rt[1]
	}
	return d, nil
}
