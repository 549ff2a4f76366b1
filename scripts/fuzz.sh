#!/usr/bin/env bash
# Run every Go fuzz target in the repository for a set time each.
#
#   scripts/fuzz.sh [SECONDS]      # default 30 s per target
#
# Targets are discovered with `go test -list 'Fuzz.*'` in every package
# whose tests declare one, so new targets (the broker's, say) are picked
# up without editing this script. A crash or a failed check (the input is
# then left in the package's testdata/fuzz/<Target>/ for `go test` to
# replay), a hang (a target still running 120 s after its time is killed
# by `timeout`), or a process that grew past FUZZ_MAX_RSS_MB (default
# 2048) fails the run.
#
# Go 1.26's fuzz coordinator can end a clean run with a bare "context
# deadline exceeded" at the -fuzztime boundary (golang/go#75804, fixed in
# Go 1.27). Such a run wrote no failing input; it counts as passed once a
# replay of the target's corpus passes, and is shown as such.
#
# Environment: FUZZ_PARALLEL workers per target (default 1: the machine
# is shared), FUZZ_MAX_RSS_MB, FUZZ_PACKAGES (package folders to fuzz,
# e.g. "./broker ./harness/echo"; default every one that has a target).
#
# Needs GNU time as /usr/bin/time (Debian package `time`) for the memory
# figure.
set -u
cd "$(dirname "$0")/.."

secs=${1:-30}
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
par=${FUZZ_PARALLEL:-1}
maxrss=${FUZZ_MAX_RSS_MB:-2048}
if [ ! -x /usr/bin/time ]; then
	echo "$0: needs GNU time as /usr/bin/time (Debian: apt-get install time)" >&2
	exit 2
fi
logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT

# Packages whose test files declare a fuzz target.
pkgs=${FUZZ_PACKAGES:-$(grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . | grep -v node_modules | xargs -r -n1 dirname | sort -u)}
if [ -z "$pkgs" ]; then
	echo "no fuzz targets found" >&2
	exit 1
fi

fail=0
total=0
printf '%-34s %-18s %12s %8s %9s %s\n' package target execs seconds maxrss result
for pkg in $pkgs; do
	case $pkg in ./* | ../* | /*) ;; *) pkg=./$pkg ;; esac # a folder, not an import path
	list=$(go test -list 'Fuzz.*' "$pkg" 2>&1) || { echo "$pkg: go test -list failed:" >&2; echo "$list" | tail -20 >&2; fail=1; continue; }
	targets=$(echo "$list" | grep '^Fuzz') || { echo "$pkg: no fuzz target" >&2; fail=1; continue; }
	for t in $targets; do
		log=$logdir/$(echo "$pkg.$t" | tr '/.' '__').log
		corpus=$pkg/testdata/fuzz/$t
		before=$(ls "$corpus" 2>/dev/null | wc -l)
		start=$(date +%s.%N)
		/usr/bin/time -f 'MAXRSS_KB %M' -o "$log.time" \
			timeout -k 10 $((secs + 120)) \
			go test -run '^$' -fuzz "^$t\$" -fuzztime "${secs}s" -parallel "$par" "$pkg" >"$log" 2>&1
		rc=$?
		end=$(date +%s.%N)
		execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | awk '{print $2}')
		rss=$(awk '/MAXRSS_KB/ {print int($2/1024)}' "$log.time")
		result=ok
		if [ -z "$execs" ]; then
			execs=0
			result="ok (time spent on the corpus baseline: give more SECONDS)"
		fi
		after=$(ls "$corpus" 2>/dev/null | wc -l)
		if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
			result="FAIL (hung)"
		elif [ $rc -ne 0 ] && [ "$after" -eq "$before" ] && ! grep -q 'Failing input written' "$log" &&
			[ "$(grep -A1 -- '--- FAIL' "$log" | tail -1 | tr -d ' \t')" = contextdeadlineexceeded ]; then
			if go test -run "^$t\$" -count=1 "$pkg" >>"$log" 2>&1; then
				result="ok (go#75804 shutdown race; corpus replay passed)"
			else
				result="FAIL (corpus replay)"
			fi
		elif [ $rc -ne 0 ]; then
			result=FAIL
		fi
		if [ "${result%% *}" = ok ] && [ -n "$rss" ] && [ "$rss" -gt "$maxrss" ]; then
			result="FAIL (rss > ${maxrss} MB)"
		fi
		printf '%-34s %-18s %12s %8.1f %6s MB %s\n' "${pkg#./}" "$t" "${execs:-?}" "$(awk -v s="$start" -v e="$end" 'BEGIN { print e - s }')" "${rss:-?}" "$result"
		total=$((total + ${execs:-0}))
		if [ "${result%% *}" != ok ]; then
			fail=1
			echo "---- $pkg $t output (tail) ----"
			tail -30 "$log"
			echo "----"
		fi
	done
done
echo "total execs: $total"
if [ $fail -ne 0 ]; then
	echo "FUZZ FAILED" >&2
	exit 1
fi
