#!/usr/bin/env bash
# The cache-hit benchmark: cdn-edge against h2o serving the same files, every protocol, one table.
#
#   bench/run.sh [--seconds N] [--reps N] [--rows WORDS] [--edge BINARY]... [--markdown]
#
# Defaults: 5 s per measurement, 1 repetition, build/edge/cdn-edge. Give --edge twice to compare two
# builds in one run (each as a ratio of h2o). The whole default run takes about 3 minutes.
# Needs: a built cdn-edge and the Debian packages wrk, nghttp2-client (h2load), h2o, curl, openssl,
# python3 (.ci/install-deps installs them), and 2 CPUs. See bench/bench.py and README.md "Benchmarks".
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk h2load h2o curl openssl taskset python3; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (run .ci/install-deps)" >&2; exit 1; }
done
edge_given=0
for a in "$@"; do [ "$a" = --edge ] && edge_given=1; done
if [ $edge_given = 0 ]; then
  EDGE=${CDN_EDGE:-build/edge/cdn-edge}
  [ -x "$EDGE" ] || { echo "build first: $EDGE not found (or set CDN_EDGE)" >&2; exit 1; }
  set -- --edge "$EDGE" "$@"
fi
exec python3 bench/bench.py "$@"
