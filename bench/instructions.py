#!/usr/bin/env python3
"""Instructions per cache hit, counted by callgrind: repeatable where requests/s are not (shared machines).

Run it through bench/instructions.sh (which checks the tools); see README.md, "Benchmarks".

For each cdn-edge binary given: starts it under `valgrind --tool=callgrind --instr-atstart=no` (`workers: 1`,
`origin.directory` on the corpus of bench/bench.py, `access_log: off`), fills the cache and waits until the 1 KiB
object and the 64 KiB JavaScript file are hits and the JS has its gzip variant (and has been served encoded often
enough for its hot recompression to be done), then for each row turns instrumentation on, sends `--requests` hits
with h2load (16 connections; HTTP/1.1, or h2c with 16 streams each), turns it off, dumps, and divides the
instructions of the whole process (every thread) by the requests. Nothing else counts: start-up, fills and warm-up
run uninstrumented. Prints one table, a column per binary. Valgrind hides SHA-NI from OpenSSL, so SHA-256 costs
more instructions here than on such a CPU. Every process started here is stopped by its PID; the temporary
directory is removed at the end.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from bench import make_corpus, write_edge_conf
from benchlib import log

ROWS = [
    ("http/1.1 1k", ["--h1"], "/1k.bin", None),
    ("http/1.1 js64k gzip", ["--h1"], "/app.js", "gzip"),
    ("h2c 1k", ["-m16"], "/1k.bin", None),
    ("h2c js64k gzip", ["-m16"], "/app.js", "gzip"),
]


def curl_head(url, *extra):
    return subprocess.run(["curl", "-s", "-o", "/dev/null", "-D", "-", "--max-time", "30", *extra, url],
                          capture_output=True, text=True).stdout.lower()


def wait_until(pred, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise SystemExit("timed out waiting for " + what)


def callgrind(pid, *args):
    subprocess.run(["callgrind_control", *args, str(pid)], capture_output=True, check=True)


def measure(binary, work, site, n, requests):
    d = os.path.join(work, f"edge{n}")
    os.makedirs(d)
    conf = write_edge_conf(d, site)
    ready = os.path.join(d, "ready.json")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={d}/cg.out",
                             binary, "-c", conf, "--ready-file", ready], cwd=d, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(d, "valgrind.log"), "w"))
    try:
        wait_until(lambda: proc.poll() is not None or (os.path.exists(ready) and os.path.getsize(ready) > 0), 120,
                   "cdn-edge under valgrind to start")
        if proc.poll() is not None:
            raise SystemExit(f"{binary} exited with status {proc.returncode}: see {d}/valgrind.log")
        port = int(json.load(open(ready))["listen"][0]["address"].rsplit(":", 1)[1])
        base = f"http://127.0.0.1:{port}"
        for path in ("/1k.bin", "/app.js"):
            wait_until(lambda: "cache-status: cdn-edge; hit" in curl_head(base + path), 60, base + path + " to hit")
        wait_until(lambda: "content-encoding: gzip" in curl_head(base + "/app.js", "-H", "Accept-Encoding: gzip"), 60,
                   "the gzip variant")
        # past compress.hot_hits (1000): the hot recompression runs now, not while counting
        subprocess.run(["h2load", "-n", "2000", "-c4", "-H", "Accept-Encoding: gzip", base + "/app.js"],
                       capture_output=True, check=True)
        time.sleep(5)
        results = {}
        for label, args, path, enc in ROWS:
            headers = ["-H", f"Accept-Encoding: {enc}"] if enc else []
            callgrind(proc.pid, "--zero")
            callgrind(proc.pid, "--instr=on")
            out = subprocess.run(["h2load", "-n", str(requests), "-c16", *args, *headers, base + path],
                                 capture_output=True, text=True).stdout
            callgrind(proc.pid, "--instr=off")
            for old in glob.glob(os.path.join(d, "cg.out.*")):
                os.unlink(old)
            callgrind(proc.pid, "--dump")
            ok = re.search(r"(\d+) succeeded", out)
            if ok is None or int(ok.group(1)) != requests:
                raise SystemExit(f"{label}: not every request succeeded:\n{out}")
            dumps = glob.glob(os.path.join(d, "cg.out.*"))
            total = 0
            for dump in dumps:
                with open(dump) as f:
                    total += next(int(line.split()[1]) for line in f if line.startswith("totals:"))
            if not dumps:
                raise SystemExit(f"{label}: callgrind wrote no dump in {d}")
            results[label] = total / requests
            log(f"  {label:22s} {os.path.basename(binary)}: {results[label]:,.0f} instructions per hit")
        return results
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=20000, help="hits counted per row (default 20000)")
    ap.add_argument("--edge", action="append", default=[],
                    help="a cdn-edge binary (repeat to compare builds; default $CDN_EDGE, else build/edge/cdn-edge)")
    args = ap.parse_args()
    if not args.edge:
        args.edge = [os.environ.get("CDN_EDGE", "build/edge/cdn-edge")]
    for b in args.edge:
        if not os.access(b, os.X_OK):
            raise SystemExit(f"build first: {b} not found (or set CDN_EDGE)")
    work = tempfile.mkdtemp(prefix="cdn-edge-instr-")
    try:
        site = os.path.join(work, "site")
        make_corpus(site)
        cols = [measure(os.path.abspath(b), work, site, i, args.requests) for i, b in enumerate(args.edge)]
        print("| hit | " + " | ".join(f"edge{i} instructions" for i in range(len(cols))) + " |")
        print("| --- |" + " --- |" * len(cols))
        for label, *_ in ROWS:
            print(f"| {label} | " + " | ".join(f"{c[label]:,.0f}" for c in cols) + " |")
        print("# " + ", ".join(f"edge{i} = {b}" for i, b in enumerate(args.edge)) + f"; {args.requests} hits per row")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
