#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# make fuzz: run every fuzz target (or those FUZZRUN names) in slices, one
# target at a time, each slice under the shared lock, the corpus growing in
# the package's testdata/fuzz/<Target>/ (hash-named entries are ignored by
# git; the ones worth keeping are renamed and committed). One line per
# target on stdout and in FUZZLOG: package, target, slices, execs, seconds,
# result.
#
#   FUZZTIME    length of one slice (default 20s; at most 10m on a shared machine)
#   FUZZSLICES  most slices per target (default 1)
#   FUZZEXECS   stop a target once it reached this many executions (default 0: no
#               limit); the first slice is then a 60 s probe of the target's rate
#   FUZZRUN     regular expression of the targets to run (default: all)
#   FUZZPKGS    packages (default: ./...)
#   FUZZLOCK    lock file every slice holds (default /tmp/relayd-heavy.lock; empty: none)
#   FUZZLOG     file the per-target lines are appended to (default: none)
#   FUZZMINIMIZE  -fuzzminimizetime (default 5s: slow targets spend minutes minimizing otherwise)
set -u
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-20s}
FUZZSLICES=${FUZZSLICES:-1}
FUZZEXECS=${FUZZEXECS:-0}
FUZZRUN=${FUZZRUN:-.}
FUZZPKGS=${FUZZPKGS:-./...}
FUZZLOCK=${FUZZLOCK-/tmp/relayd-heavy.lock}
FUZZLOG=${FUZZLOG:-}
FUZZMINIMIZE=${FUZZMINIMIZE:-5s}

# duration prints a Go duration of s, m or h units (10m, 90s, 1h) in seconds.
duration() {
	case $1 in
	*h) echo $((${1%h} * 3600)) ;;
	*m) echo $((${1%m} * 60)) ;;
	*s) echo "${1%s}" ;;
	*) echo 0 ;;
	esac
}

lock() {
	if [ -n "$FUZZLOCK" ]; then flock "$FUZZLOCK" "$@"; else "$@"; fi
}

status=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for pkg in $($GO list $FUZZPKGS); do
	dir=$($GO list -f '{{.Dir}}' "$pkg")
	for f in $($GO test -list '^Fuzz' "$pkg" | grep '^Fuzz' | grep -E "$FUZZRUN"); do
		total=0 secs=0 slices=0 result=ok
		while [ "$slices" -lt "$FUZZSLICES" ]; do
			slices=$((slices + 1))
			# Once the rate is known, a slice that would pass FUZZEXECS
			# within FUZZTIME asks for just the executions left.
			ft=$FUZZTIME
			if [ "$FUZZEXECS" -gt 0 ] && [ "$slices" -eq 1 ] && [ "$(duration "$FUZZTIME")" -gt 60 ]; then
				ft=60s # a probe: fast targets then ask for just what is left
			elif [ "$FUZZEXECS" -gt 0 ] && [ "$secs" -gt 0 ]; then
				left=$((FUZZEXECS - total))
				if [ $((total / secs * $(duration "$FUZZTIME"))) -ge "$left" ]; then ft=${left}x; fi
			fi
			echo "== $pkg $f slice $slices/$FUZZSLICES ($ft)" >&2
			start=$(date +%s)
			lock $GO test -run '^$' -fuzz "^$f\$" -fuzztime "$ft" -fuzzminimizetime "$FUZZMINIMIZE" \
				"$pkg" -args -test.fuzzcachedir="$dir/testdata/fuzz" >"$out" 2>&1
			rc=$?
			secs=$((secs + $(date +%s) - start))
			# The last progress line holds the slice's executions.
			n=$(grep -o 'execs: [0-9]*' "$out" | tail -1 | cut -d' ' -f2)
			total=$((total + ${n:-0}))
			# Go's fuzzing coordinator can fail a target with a bare "context
			# deadline exceeded" when -fuzztime ends under CPU contention
			# (golang/go#75804): no input failed and none was written. Only a
			# written failing input or another error is a finding.
			if [ "$rc" -ne 0 ] && grep -q '^    context deadline exceeded$' "$out" &&
				! grep -q 'Failing input written' "$out"; then
				echo "$f: fuzzing coordinator's deadline race at the slice's end (no failing input): not a finding" >&2
				rc=0
			fi
			if [ "$rc" -ne 0 ]; then
				cat "$out" >&2
				result=FAIL status=1
				break
			fi
			tail -1 "$out" >&2
			if [ "$FUZZEXECS" -gt 0 ] && [ "$total" -ge "$FUZZEXECS" ]; then break; fi
		done
		line=$(printf '%s\t%s\t%d\t%d\t%d\t%s' "$pkg" "$f" "$slices" "$total" "$secs" "$result")
		echo "$line"
		[ -n "$FUZZLOG" ] && echo "$line" >>"$FUZZLOG"
	done
done
exit $status
