module github.com/relayd/relayd

go 1.26.0

require (
	github.com/zeebo/bencode v1.0.0
	golang.org/x/net v0.52.0
	golang.org/x/sys v0.49.0
)
