#!/usr/bin/env python3
"""Server CPU per cache hit: cdn-edge against h2o serving the same files, all in one run.

Run it through bench/cpu.sh; see README.md, "Benchmarks".

Why: both servers of bench/run.sh run near saturation with many requests in flight, so a few percent more
CPU per request shows in the p99 long before it shows in requests/s, and requests/s of a noisy shared
machine hide a few percent. The CPU a server spends on a fixed number of hits moves much less.

What it does: the same corpus, certificate, servers and warm-up as bench/bench.py (both servers pinned to
CPU 0, the load generator to CPU 1); for each row, h2load sends a fixed number of requests (`--requests`;
rows of objects bigger than 1 KiB send as many bytes) with the row's connections and streams (HTTP/1.1
rows: h2load --h1, one request per connection at a time), and the server's whole-process CPU time (utime +
stime of /proc/PID/stat, every thread, clock ticks) before and after gives the CPU per request. h2o and
each cdn-edge binary alternate, `--reps` times; the table shows the medians and cdn-edge as a ratio of h2o
(the median of the per-repetition ratios). Before measuring, each server gets one unmeasured pass of every
row and a second of quiet (a compressed row's first hits start the object's hot recompression, which is not
a hit's cost).
"""
import argparse
import os
import statistics
import subprocess
import time

from bench import CLIENT_CPU, ROWS, object_url, row_encoding, run_main, start_servers, workdir
from benchlib import H2LOAD_STATUS, log, print_table

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of a whole process (every thread), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICK  # fields 14 and 15 of proc(5)


SIZES = {"1k": 1024, "128k": 128 * 1024, "1m": 1024 * 1024, "js": 64 * 1024}


def requests_for(row, requests):
    """`requests` for the 1 KiB and compressed rows; as many bytes for the bigger objects (at least 1,000)."""
    size = 1024 if row_encoding(row) else SIZES[row[3]]
    return max(1000, requests * 1024 // size)


def run(server, row, requests):
    """@return (CPU us per request, requests/s) for `requests` requests of the row"""
    label, tool, scheme, obj, conns, streams = row[:6]
    enc = row_encoding(row)
    argv = ["taskset", "-c", CLIENT_CPU, "h2load", "-t1", f"-n{requests}", f"-c{conns}", f"-m{streams}"]
    if tool != "h2load":
        argv.append("--h1")
    if enc:
        argv += ["-H", f"Accept-Encoding: {enc}"]
    argv.append(object_url(server, scheme, obj, enc))
    pid = server["proc"].pid
    before, t0 = cpu_seconds(pid), time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    elapsed, after = time.perf_counter() - t0, cpu_seconds(pid)
    st = H2LOAD_STATUS.search(out)
    if st is None or int(st.group(1)) != requests:
        raise SystemExit(f"{server['name']}: not every request of {label} succeeded:\n{out}")
    return (after - before) * 1e6 / requests, requests / elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=300000,
                    help="requests per measurement of a 1 KiB or compressed row (default 300000); rows of bigger "
                         "objects send as many bytes (at least 1,000 requests)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions; the median is shown (default 3)")
    ap.add_argument("--rows", default="1k,gzip,br",
                    help="rows of bench/bench.py whose label contains one of these comma-separated words "
                         "(default 1k,gzip,br; new TLS connections per second is never measured here)")
    ap.add_argument("--edge", action="append", default=[],
                    help="a cdn-edge binary (repeat to compare builds; default $CDN_EDGE, else build/edge/cdn-edge)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = ap.parse_args()
    edges = args.edge or [os.environ.get("CDN_EDGE", "build/edge/cdn-edge")]
    for b in edges:
        if not os.access(b, os.X_OK):
            raise SystemExit(f"build first: {b} not found (or set CDN_EDGE)")
    rows = [r for r in ROWS if r[1] != "wrk-close" and any(w in r[0] for w in args.rows.split(","))]
    if not rows:
        raise SystemExit(f"no row matches {args.rows}")
    with workdir("cdn-cpu.") as work:
        servers = start_servers(work, [os.path.abspath(b) for b in edges])
        for srv in servers:
            for row in rows:
                run(srv, row, max(1000, requests_for(row, args.requests) // 10))
        time.sleep(1)
        results = {}  # (row label, server name) -> [(us per request, req/s)]
        t0 = time.time()
        for rep in range(args.reps):
            for row in rows:
                for srv in servers if rep % 2 == 0 else list(reversed(servers)):
                    r = run(srv, row, requests_for(row, args.requests))
                    results.setdefault((row[0], srv["name"]), []).append(r)
                    log(f"  {row[0]:<20} {srv['name']:<6} {r[0]:7.2f} us CPU per request  {r[1]:9.0f} req/s")
                log(f"[{time.time() - t0:5.0f}s] rep {rep + 1}/{args.reps} {row[0]}")
        header = ["test", "h2o us/req"]
        for s in servers[1:]:
            suffix = "" if len(servers) == 2 else f" [{s['name']}]"
            header += [f"edge us/req{suffix}", "CPU x"]
        table = []
        for row in rows:
            h = results[(row[0], "h2o")]
            cells = [row[0], f"{statistics.median(x[0] for x in h):.2f}"]
            for s in servers[1:]:
                e = results[(row[0], s["name"])]
                cells += [f"{statistics.median(x[0] for x in e):.2f}",
                          f"{statistics.median(b[0] / a[0] for a, b in zip(h, e)):.2f}"]
            table.append(cells)
        print_table(header, table, args.markdown)
        print(f"# {args.reps} rep(s) x {args.requests} requests (as many bytes for bigger objects), median shown; "
              f"CPU = utime + stime of the server process; servers on CPU 0, h2load on CPU {CLIENT_CPU}; "
              + ", ".join(f"{s['name']} = {s['binary']}" for s in servers[1:]))


if __name__ == "__main__":
    run_main(main)
