#!/usr/bin/env bash
# Runs Keywarden's benchmarks and prints each result as a ratio against a
# baseline measured in the same run; absolute times on a shared machine are
# only context. docs/benchmarks.md describes the method.
#
# First the verifier in-process and over HTTP (Go benchmarks in pkg/verify),
# then the manager binary on the local control plane (test/bench): issuance
# throughput and latency, expiry precision, lastUsedAt writes and memory.
#
#   MANAGER_BIN   the manager binary (make bench builds it)
#   BENCH         the control-plane benchmarks to run, comma-separated
#                 (issuance,latency,expiry,lastused,memory; all by default),
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

if [[ "${BENCH:-}" == none ]]; then
	exit 0
fi
: "${MANAGER_BIN:?MANAGER_BIN is not set: run make bench}"
KUBEBUILDER_ASSETS="${KUBEBUILDER_ASSETS:-$(hack/controlplane.sh)}" MANAGER_BIN="$MANAGER_BIN" \
	go test -tags bench ./test/bench -run '^TestBench$' -count 1 -v -timeout 120m 2>&1 |
	grep -E '^(== |   |--- FAIL|FAIL|ok|panic)|_test\.go:[0-9]+:'
