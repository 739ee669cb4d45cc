#!/usr/bin/env bash
# Runs Keywarden's benchmarks and prints each result as a ratio against a
# baseline measured in the same run; absolute times on a shared machine are
# only context. docs/benchmarks.md describes the method.
#
# First the verifier in-process and over HTTP (Go benchmarks in pkg/verify),
# then over HTTP and TLS loaded by wrk (hack/verifybench; wrk is installed
# from Debian's packages when missing), then the components (keywarden controller and verifier) on the
# local control plane (test/bench): issuance and rotation
# throughput and latency, expiry precision, lastUsedAt writes and memory.
#
#   KEYWARDEN_BIN   the keywarden binary (make bench builds it)
#   BENCH         the control-plane benchmarks to run, comma-separated
#                 (issuance,rotation,latency,expiry,lastused,memory; all by
#                 default),
#                 or "none"
#   BENCHTIME     -benchtime of the Go benchmarks (2s)
#   BENCH_*       sizes; see test/bench
#   BENCH_PROFILE_DIR  where the memory benchmark saves heap profiles
set -euo pipefail
cd "$(dirname "$0")/.."

out=$(go test -run '^$' -bench . -benchtime "${BENCHTIME:-2s}" -count "${COUNT:-1}" ./pkg/verify/ | tee /dev/stderr)
awk '
	/^Benchmark/ {
		name = $1; sub(/-[0-9]+$/, "", name)
		for (i = 3; i < NF; i++) {
			if ($(i+1) == "ns/op") ns[name] += $i
			if ($(i+1) == "p99-µs") p99[name] += $i
		}
		n[name]++
	}
	END {
		for (k in ns) { ns[k] /= n[k]; p99[k] /= n[k] }
		print "\n== verification"
		printf "   in-process: %.0f ns a call; SHA-256 of the key and one map lookup: %.0f ns\n", ns["BenchmarkVerify"], ns["BenchmarkSHA256AndLookup"]
		printf "   over HTTP: %.0f requests/s, p99 %.0f µs; trivial handler: %.0f requests/s, p99 %.0f µs\n", 1e9 / ns["BenchmarkVerifyHTTP"], p99["BenchmarkVerifyHTTP"], 1e9 / ns["BenchmarkTrivialHTTP"], p99["BenchmarkTrivialHTTP"]
		printf "   RATIO in-process verification vs SHA-256 and lookup: %.2f (goal: <= 2)\n", ns["BenchmarkVerify"] / ns["BenchmarkSHA256AndLookup"]
		printf "   RATIO HTTP throughput vs trivial handler: %.2f (goal: >= 0.70)\n", ns["BenchmarkTrivialHTTP"] / ns["BenchmarkVerifyHTTP"]
	}' <<<"$out"

# The verifier against a trivial handler, each served the same way over
# plain HTTP and TLS (hack/verifybench), loaded by wrk: a load generator
# that spends little CPU, so that the server's own cost shows.
if ! command -v wrk >/dev/null; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		apt-get update -qq && apt-get install -y -qq wrk >/dev/null
	else
		echo "wrk is missing: install it (Debian: apt-get install wrk)" >&2
		exit 1
	fi
fi
vbdir=$(mktemp -d)
go build -o "$vbdir/verifybench" ./hack/verifybench
# With two CPUs or more, the server and wrk each get one of their own, so
# that neither takes the other's time: the ratio is then the server's own
# cost of a request.
server_cpu=() client_cpu=()
if command -v taskset >/dev/null; then
	mapfile -t cpus < <(taskset -pc $$ | sed 's/.*: //' | tr ',' '\n' |
		awk -F- '{ if (NF == 2) { for (i = $1; i <= $2; i++) print i } else print $1 }' | head -2)
	if [[ ${#cpus[@]} == 2 ]]; then
		server_cpu=(taskset -c "${cpus[0]}") client_cpu=(taskset -c "${cpus[1]}")
	fi
fi
"${server_cpu[@]}" "$vbdir/verifybench" -keys "$vbdir/keys" >"$vbdir/log" 2>&1 &
vbpid=$!
trap 'kill $vbpid 2>/dev/null || true; rm -rf "$vbdir"' EXIT
for _ in $(seq 1 120); do grep -q ready "$vbdir/log" && break; sleep 1; done
# The server's CPU time (user and system, in clock ticks, all threads): it
# serves nothing between runs, so the difference across a run is that run's.
cputicks() { awk '{ print $14 + $15 }' "/proc/$vbpid/stat"; }
wrkrun() { # scheme port -> "requests rps p99us invalid cputicks"
	local before out
	before=$(cputicks)
	out=$(KEYS_FILE="$vbdir/keys" "${client_cpu[@]}" wrk -t1 -c32 -d"${WRK_DURATION:-2s}" -s hack/verifybench/verify.lua "$1://127.0.0.1:$2/v1/keys/verify" |
		awk -F'[ =]' '/^requests=/ { print $2, $4, $6, $8 }')
	echo "$out $(($(cputicks) - before))"
}
span() { printf '%s\n' "$@" | sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }'; }
pairs=${WRK_PAIRS:-10}
echo
echo "== verification with wrk (1 thread, 32 connections${server_cpu:+, server and wrk on a CPU each}; after a warm-up, $pairs pairs of ${WRK_DURATION:-2s} runs, verifier and trivial handler in turn, ABBA)"
for scheme in http https; do
	if [[ $scheme == http ]]; then vport=18090 tport=18092; else vport=18091 tport=18093; fi
	WRK_DURATION=3s wrkrun "$scheme" "$vport" >/dev/null
	WRK_DURATION=3s wrkrun "$scheme" "$tport" >/dev/null
	ratios=() vsum=0 tsum=0 vp99=() tp99=() vcpu=0 tcpu=0
	for i in $(seq 1 "$pairs"); do
		if ((i % 2)); then
			read -r vn vrps vp vbad vc < <(wrkrun "$scheme" "$vport")
			read -r tn trps tp _ tc < <(wrkrun "$scheme" "$tport")
		else
			read -r tn trps tp _ tc < <(wrkrun "$scheme" "$tport")
			read -r vn vrps vp vbad vc < <(wrkrun "$scheme" "$vport")
		fi
		if [[ $vbad != 0 ]]; then
			echo "   FAIL: $vbad verifications over $scheme did not answer valid" >&2
			exit 1
		fi
		vsum=$((vsum + vn)) tsum=$((tsum + tn)) vp99+=("$vp") tp99+=("$tp") vcpu=$((vcpu + vc)) tcpu=$((tcpu + tc))
		ratios+=("$(awk -v v="$vrps" -v t="$trps" 'BEGIN { printf "%.3f", v / t }')")
	done
	printf '   over %s: verifier %d requests, trivial handler %d; p99 of a run %s µs and %s µs; pair ratios %s; all answered valid\n' \
		"$scheme" "$vsum" "$tsum" "$(span "${vp99[@]}")" "$(span "${tp99[@]}")" "${ratios[*]}"
	# Throughput moves with whatever else the machine runs; the server's CPU
	# time a request much less, so it is printed beside it.
	awk -v s="$scheme" -v vn="$vsum" -v tn="$tsum" -v vc="$vcpu" -v tc="$tcpu" -v hz="$(getconf CLK_TCK)" 'BEGIN {
		printf "   server CPU a request over %s: verifier %.1f µs, trivial handler %.1f µs; ratio %.2f\n", s, vc / hz * 1e6 / vn, tc / hz * 1e6 / tn, (tc / tn) / (vc / vn) }'
	printf '%s\n' "${ratios[@]}" | sort -n | awk -v s="$scheme" '{ r[NR] = $1 } END {
		m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
		printf "   RATIO %s throughput vs trivial handler, wrk: %.2f, the median of the pairs (goal: >= 0.85)\n", toupper(s), m }'
done
kill $vbpid 2>/dev/null || true

if [[ "${BENCH:-}" == none ]]; then
	exit 0
fi
: "${KEYWARDEN_BIN:?KEYWARDEN_BIN is not set: run make bench}"
KUBEBUILDER_ASSETS="${KUBEBUILDER_ASSETS:-$(hack/controlplane.sh)}" KEYWARDEN_BIN="$KEYWARDEN_BIN" \
	go test -tags bench ./test/bench -run '^TestBench$' -count 1 -v -timeout 120m 2>&1 |
	grep -E '^(== |   |--- FAIL|FAIL|ok|panic)|_test\.go:[0-9]+:'
