#!/usr/bin/env bash
# Runs the verifier's benchmarks and prints each result as a ratio against a
# floor measured in the same run: in-process verification against SHA-256 of
# the key plus one map lookup, and HTTP verification throughput against a
# trivial handler served and called the same way. Absolute times on a shared
# machine are only context.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(go test -run '^$' -bench . -benchtime "${BENCHTIME:-2s}" -count "${COUNT:-1}" ./pkg/verify/ | tee /dev/stderr)
awk '
	/^Benchmark/ { name = $1; sub(/-[0-9]+$/, "", name); ns[name] += $3; n[name]++ }
	END {
		for (k in ns) ns[k] /= n[k]
		printf "\nverify in-process: %.0f ns/op, %.2fx SHA-256 + map lookup (%.0f ns/op)\n", ns["BenchmarkVerify"], ns["BenchmarkVerify"] / ns["BenchmarkSHA256AndLookup"], ns["BenchmarkSHA256AndLookup"]
		printf "verify over HTTP: %.0f req/s, %.2f of a trivial handler (%.0f req/s)\n", 1e9 / ns["BenchmarkVerifyHTTP"], ns["BenchmarkTrivialHTTP"] / ns["BenchmarkVerifyHTTP"], 1e9 / ns["BenchmarkTrivialHTTP"]
	}' <<<"$out"
