#!/usr/bin/env bash
# The eviction benchmark (issue #6): one Zipf(0.9) trace replayed against an exact LRU and against the
# real store (edge/store.c on LMDB), object and byte hit ratios side by side. See bench/evict_trace.c.
#
#   bench/evict.sh [--objects N] [--requests R] [--seed S] [--alpha A] [--cache-pct P] [--dir DIR] [--lru-only]
#
# Defaults: 1,000,000 objects, 5,000,000 requests (the second half counted), a cache of 10% of the total
# size. The store commits (fsync) every batch: without --dir the environment goes to a fresh directory
# under /dev/shm when it exists (tmpfs: about 5 minutes on 2 cores, about 1.6 GB of RAM), else under
# TMPDIR (a disk: much slower). Builds build-bench/bench/evict-trace (RelWithDebInfo) when missing
# (set BUILD_DIR to use another build directory).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-bench}
BIN=$BUILD_DIR/bench/evict-trace
if [ ! -x "$BIN" ]; then
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD_DIR" --target evict-trace -j"$(nproc)" >/dev/null

dir_given=0
for a in "$@"; do [ "$a" = --dir ] && dir_given=1; done
cleanup=
if [ $dir_given = 0 ]; then
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    base=$(mktemp -d /dev/shm/evict-trace.XXXXXX)
  else
    base=$(mktemp -d "${TMPDIR:-/tmp}/evict-trace.XXXXXX")
  fi
  cleanup=$base
  trap 'rm -rf -- "$cleanup"' EXIT
  set -- --dir "$base/store" "$@"
fi
echo "+ $BIN $*" >&2
"$BIN" "$@"
