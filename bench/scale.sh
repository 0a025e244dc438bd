#!/usr/bin/env bash
# Scale benchmarks of cdn-edge (issue #6): restart time with 1M objects, RssAnon with 1,000 idle
# connections on a 10 GiB cache, RssAnon under 50 slow readers of a 1 GiB object, the miss path
# (fills/s, latency, one origin fetch per object) and coalescing of 200 clients on one cold object.
#
#   bench/scale.sh [all|restart|idle|slow|miss|coalesce ...] [--edge BINARY] [--markdown]
#                  [--restart-objects N] [--restart-round N] [--idle-objects N] [--keep]
#
# Default: all five in turn (about 10 minutes; idle needs 25 GiB free under $TMPDIR). The edge
# binary: --edge, else $CDN_EDGE, else build/edge/cdn-edge (a RelWithDebInfo build is what the
# results in bench/README-scale.md used). Needs: wrk, nghttp2-client (h2load), taskset, python3 and
# 2 CPUs (the edge runs on CPU 0, the load generators and the origin on CPU 1). See bench/scale.py.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk h2load taskset python3; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (run .ci/install-deps)" >&2; exit 1; }
done
exec python3 bench/scale.py "$@"
