#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Proves that `go generate ./bpf/...` is byte-for-byte reproducible from a
# checkout at another path (CI clones elsewhere): copies the module to a
# temporary directory with a different, longer path, regenerates there and
# compares every generated file with the one in this checkout.
# Usage: bpf/testdata/reproducible.sh   (from anywhere inside the repository)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/relayd-repro.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
other="$tmp/some/other/checkout/relayd"
mkdir -p "$other"
cp "$root/go.mod" "$root/go.sum" "$other/"
cp -r "$root/bpf" "$other/bpf"
(cd "$other" && rm -f bpf/*_bpfel*.go bpf/*_bpfel*.o && go generate ./bpf/...)
status=0
for f in "$root"/bpf/*_bpfel*.go "$root"/bpf/*_bpfel*.o; do
	name=$(basename "$f")
	if cmp -s "$f" "$other/bpf/$name"; then
		echo "identical: bpf/$name ($(sha256sum < "$f" | cut -c1-16))"
	else
		echo "DIFFERS:   bpf/$name"
		status=1
	fi
done
exit $status
