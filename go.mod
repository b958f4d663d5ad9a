module github.com/relayd/relayd

go 1.26.0

require (
	github.com/zeebo/bencode v1.0.0
	golang.org/x/net v0.52.0
	golang.org/x/sys v0.49.0
)

require (
	github.com/cilium/ebpf v0.22.0 // indirect
	github.com/vishvananda/netlink v1.3.1 // indirect
	github.com/vishvananda/netns v0.0.5 // indirect
)

tool github.com/cilium/ebpf/cmd/bpf2go
