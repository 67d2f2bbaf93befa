#!/usr/bin/env bash
# check-cost.sh: issue 11's "Check over gRPC costs at most twice the decision
# plus the floor's gRPC cost", counted in instructions by callgrind, which
# a busy or shared machine does not disturb (perf's counters are not on every
# machine, and their readings moved by 4 % between two mornings).
#
# Each benchmark of authz runs under callgrind at N1 and N2 iterations; the
# difference over N2-N1 is its instructions per call, setup excluded, client
# and server both counted (the in-memory wire has both in one process):
#   CheckServe        an allowed send through the server as serve builds it
#   DecideServe       the same request's decision alone, the same decider
#   CheckFloor        a server that allows without reading (grpc.NewServer(),
#                     the generated codec: the shared harness's no-op floor)
#   CheckFloorWorkers the same floor on serve's long-lived workers
#   CheckAllow        the test suite's server (a goroutine per call, no text
#                     caches): for comparison with earlier readings
# Usage: bench/check-cost.sh [N1 N2]   (default 1000 4000; ~5 min)
set -euo pipefail
cd "$(dirname "$0")/.."
n1=${1:-1000} n2=${2:-4000}
command -v valgrind >/dev/null || { echo "check-cost: valgrind is not installed" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/authz.test" ./authz
# Go's asynchronous preemption signals trip callgrind's signal handling.
export GODEBUG=asyncpreemptoff=1
count() { # BENCH N: instructions of the whole run
	valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$tmp/authz.test" -test.run='^$' \
		-test.bench="^Benchmark$1\$" -test.benchtime="$2x" -test.cpu=1 >"$tmp/log" 2>&1 ||
		{ cat "$tmp/log" >&2; exit 1; }
	sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$tmp/log"
}
declare -A per
for b in CheckServe DecideServe CheckFloor CheckFloorWorkers CheckAllow; do
	lo=$(count "$b" "$n1"); hi=$(count "$b" "$n2")
	per[$b]=$(( (hi - lo) / (n2 - n1) ))
	printf '%-18s %8d instructions per call\n' "$b" "${per[$b]}"
done
c=${per[CheckServe]} d=${per[DecideServe]}
for f in CheckFloor CheckFloorWorkers; do
	awk -v c="$c" -v d="$d" -v f="${per[$f]}" -v n="$f" 'BEGIN {
		printf "CheckServe - %-17s = %6d = %.2fx the decision (issue 11: at most 2x)\n", n, c - f, (c - f) / d }'
done
