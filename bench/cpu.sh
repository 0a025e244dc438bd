#!/usr/bin/env bash
# Server CPU per cache hit, cdn-edge against h2o serving the same files (what a hit costs, repeatably enough
# to compare builds on a noisy machine; the p99 of bench/run.sh follows it).
#
#   bench/cpu.sh [--requests N] [--reps N] [--rows WORDS] [--edge BINARY]... [--markdown]
#
# Defaults: 300,000 requests per measurement, 3 repetitions, the 1k, gzip and br rows of bench/run.sh,
# build/edge/cdn-edge; about 2 minutes. Needs: a built cdn-edge and the Debian packages nghttp2-client
# (h2load), h2o, curl, openssl, python3, and 2 CPUs. See bench/cpu.py and README.md "Benchmarks".
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in h2load h2o curl openssl taskset python3; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (run .ci/install-deps)" >&2; exit 1; }
done
exec python3 bench/cpu.py "$@"
