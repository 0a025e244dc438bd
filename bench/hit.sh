#!/usr/bin/env bash
# Cache-hit throughput of cdn-edge as a ratio of Debian's h2o serving the same file from disk,
# measured side by side in one run (the machines are shared and noisy: only ratios mean much).
#
#   bench/hit.sh [SECONDS] [CONNECTIONS]        (defaults: 10 s, 64 connections)
#
# Needs: wrk, h2o (Debian packages; .ci/install-deps installs them) and a built build/edge/cdn-edge.
# Each server gets one worker pinned to CPU 0, wrk runs pinned to CPU 1. Everything listens on
# 127.0.0.1 with ports the kernel picks; every process started here is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-64}
EDGE=${CDN_EDGE:-build/edge/cdn-edge}
[ -x "$EDGE" ] || { echo "build first: $EDGE not found" >&2; exit 1; }
for tool in wrk h2o taskset python3; do command -v $tool >/dev/null || { echo "missing: $tool" >&2; exit 1; }; done

WORK=$(mktemp -d)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
  for _ in $(seq 1 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "not ready: $1" >&2; return 1
}

mkdir -p "$WORK/site"
head -c 1024 /dev/urandom > "$WORK/site/1k.bin"
head -c 131072 /dev/urandom > "$WORK/site/128k.bin"
chmod -R a+rX "$WORK/site"

# the reference: h2o serving files from disk
H2O_PORT=$(free_port)
cat > "$WORK/h2o.conf" <<EOF
listen: {host: 127.0.0.1, port: $H2O_PORT}
num-threads: 1
user: nobody
error-log: $WORK/h2o-error.log
hosts:
  default:
    paths:
      /: {file.dir: $WORK/site}
EOF
taskset -c 0 h2o -c "$WORK/h2o.conf" >/dev/null 2>&1 &
PIDS+=($!)

# cdn-edge with the same directory as its origin
cat > "$WORK/edge.yaml" <<EOF
listen: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
workers: 1
cache: {path: cache, max_size: 256MiB}
origin: {directory: site, cache_control: "public, max-age=3600"}
access_log: off
EOF
taskset -c 0 "$EDGE" -c "$WORK/edge.yaml" --ready-file "$WORK/ready.json" 2>"$WORK/edge.err" &
PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$WORK/ready.json" ] && break; sleep 0.1; done
EDGE_ADDR=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listen"][0]["address"])' "$WORK/ready.json")

wait_http "http://127.0.0.1:$H2O_PORT/1k.bin"
wait_http "http://$EDGE_ADDR/1k.bin"
curl -sf -o /dev/null "http://$EDGE_ADDR/128k.bin"   # warm: the second request on is a hit
curl -sfI "http://$EDGE_ADDR/1k.bin" | grep -qi 'cache-status: cdn-edge; hit' || { echo "edge did not hit" >&2; exit 1; }

run_wrk() { # url -> "requests/s p50 p99"
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$1" | python3 -c '
import re, sys
out = sys.stdin.read()
rps = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
print(rps, lat.get("50", "?"), lat.get("99", "?"))'
}

printf '%-22s %12s %9s %9s %12s %9s %9s %7s\n' test "h2o req/s" p50 p99 "edge req/s" p50 p99 ratio
for obj in 1k.bin 128k.bin; do
  read -r h_rps h_p50 h_p99 < <(run_wrk "http://127.0.0.1:$H2O_PORT/$obj")
  read -r e_rps e_p50 e_p99 < <(run_wrk "http://$EDGE_ADDR/$obj")
  ratio=$(python3 -c "print(f'{$e_rps / $h_rps * 100:.0f}%')")
  printf '%-22s %12s %9s %9s %12s %9s %9s %7s\n' "http/1.1 $obj c$CONNS" "$h_rps" "$h_p50" "$h_p99" "$e_rps" "$e_p50" "$e_p99" "$ratio"
done
