// SPDX-License-Identifier: Apache-2.0

package topo

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/relayd/relayd/bench/internal/netns"
)

// ethtoolValue is struct ethtool_value from linux/ethtool.h.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with ifr_data: the name, then a pointer.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer // a real pointer, so the GC and stack copying see it
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// SetOffloads sets TX checksum offload and GRO (where not nil) on dev
// inside the namespace at nsPath with the legacy SIOCETHTOOL calls (what
// `ethtool -K dev tx off gro on` does), so the bench needs no ethtool
// binary. It reads each setting back.
func SetOffloads(nsPath, dev string, txCsum, gro *bool) error {
	return netns.Do(nsPath, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		defer unix.Close(fd)
		set := func(cmd uint32, on bool) error {
			v := ethtoolValue{cmd: cmd}
			if on {
				v.data = 1
			}
			return ethtoolIoctl(fd, dev, &v)
		}
		get := func(cmd uint32) (bool, error) {
			v := ethtoolValue{cmd: cmd}
			err := ethtoolIoctl(fd, dev, &v)
			return v.data != 0, err
		}
		for _, o := range []struct {
			name     string
			set, get uint32
			want     *bool
		}{
			{"tx checksum offload", unix.ETHTOOL_STXCSUM, unix.ETHTOOL_GTXCSUM, txCsum},
			{"gro", unix.ETHTOOL_SGRO, unix.ETHTOOL_GGRO, gro},
		} {
			if o.want == nil {
				continue
			}
			if err := set(o.set, *o.want); err != nil {
				return fmt.Errorf("set %s: %w", o.name, err)
			}
			if got, err := get(o.get); err != nil || got != *o.want {
				return fmt.Errorf("%s is %v after setting %v (%v)", o.name, got, *o.want, err)
			}
		}
		return nil
	})
}

func ethtoolIoctl(fd int, dev string, v *ethtoolValue) error {
	var ifr ifreqData
	if len(dev) >= len(ifr.name) {
		return fmt.Errorf("interface name %q too long", dev)
	}
	copy(ifr.name[:], dev)
	ifr.data = unsafe.Pointer(v)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return errno
	}
	return nil
}
