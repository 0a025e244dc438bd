#!/usr/bin/env bash
# Instructions per cache hit under callgrind (repeatable on a noisy machine), one column per build.
#
#   bench/instructions.sh [--requests N] [--edge BINARY]...
#
# Default: build/edge/cdn-edge, 20000 hits per row; about a minute per build. Needs valgrind, h2load
# (nghttp2-client), curl, python3. See bench/instructions.py and README.md "Benchmarks".
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in valgrind callgrind_control h2load curl python3; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install valgrind nghttp2-client curl)" >&2; exit 1; }
done
exec python3 bench/instructions.py "$@"
