#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Refreshes the vendored libbpf headers in bpf/ from Debian's libbpf-dev
# package (the version the committed objects were built with is in VERSION).
# The objects are built with -nostdinc, so these files and relay_kern.h are
# the only headers the BPF C sees: regeneration does not depend on the
# host's kernel headers.
set -eu
cd "$(dirname "$0")"
src=/usr/include/bpf
for h in bpf_helpers.h bpf_helper_defs.h bpf_endian.h; do
	cp "$src/$h" "bpf/$h"
done
dpkg-query -W -f='libbpf-dev ${Version}\n' libbpf-dev > bpf/VERSION
