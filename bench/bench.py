#!/usr/bin/env python3
"""Cache-hit benchmark of cdn-edge against h2o serving the same files from disk, all in one run.

Run it through bench/run.sh (which checks the tools); see README.md, "Benchmarks".

What it does:
- generates a corpus in a temporary directory: 1 KiB, 128 KiB and 1 MiB random objects and a
  64 KiB JavaScript file, plus a self-signed certificate (openssl, ECDSA P-256) both servers use;
- starts h2o 2.2.5 (`file.dir` on the corpus, one thread) and cdn-edge (`origin.directory` on the
  same corpus, `cache_control: "public, max-age=3600"`, `workers: 1`, `access_log: off`), each with a
  cleartext and a TLS listener on 127.0.0.1, ports picked by the kernel; both servers are pinned to
  CPU 0 and the load generator to CPU 1 (`taskset`);
- warms the cache (and checks that every object is a hit), then measures each row for h2o and for
  each cdn-edge binary given, alternating, for `--seconds` each (`--reps` times: the median is shown);
- samples RssAnon of the measured server from /proc/PID/status every 50 ms: the peak is shown;
- prints one table: requests/s, p50 and p99 latency (medians over the repetitions), peak RssAnon,
  and cdn-edge as a ratio of h2o (the median of the per-repetition ratios of requests/s and of p99);
  each measurement is also logged to stderr as it completes.

Load generators: wrk (-t1) for HTTP/1.1 and TLS HTTP/1.1; h2load (-t1) for h2c (prior knowledge) and
TLS HTTP/2 (ALPN), with --warm-up-time 1s and latency percentiles computed from its --log-file. New TLS
connections per second: wrk with `Connection: close` (one 1 KiB request per connection, each a full
TLS handshake: wrk keeps no session for resumption).

Every process started here is stopped by its PID; the temporary directory is removed at the end.
Only ratios measured in the same run mean much: the machines this runs on are shared and noisy.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import json

SERVER_CPU = "0"
CLIENT_CPU = "1"

OBJECTS = {"1k": "1k.bin", "128k": "128k.bin", "1m": "1m.bin", "js": "app.js"}

# (label, tool, scheme, object, connections, streams per connection)
ROWS = [
    ("http/1.1 1k", "wrk", "http", "1k", 64, 1),
    ("http/1.1 128k", "wrk", "http", "128k", 64, 1),
    ("http/1.1 1m", "wrk", "http", "1m", 64, 1),
    ("http/1.1 js64k", "wrk", "http", "js", 64, 1),
    ("h2c 1k", "h2load", "http", "1k", 16, 16),
    ("h2c 128k", "h2load", "http", "128k", 16, 16),
    ("h2c 1m", "h2load", "http", "1m", 16, 16),
    ("h2c js64k", "h2load", "http", "js", 16, 16),
    ("tls h2 1k", "h2load", "https", "1k", 16, 16),
    ("tls h2 128k", "h2load", "https", "128k", 16, 16),
    ("tls h2 1m", "h2load", "https", "1m", 16, 16),
    ("tls h2 js64k", "h2load", "https", "js", 16, 16),
    ("tls http/1.1 1k", "wrk", "https", "1k", 64, 1),
    ("tls http/1.1 128k", "wrk", "https", "128k", 64, 1),
    ("tls new conn/s 1k", "wrk-close", "https", "1k", 32, 1),
]

PIDS = []


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(argv, stdout, stderr):
    p = subprocess.Popen(["taskset", "-c", SERVER_CPU] + argv, stdout=stdout, stderr=stderr)
    PIDS.append(p)
    return p


def stop_all():
    for p in PIDS:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.time() + 5
    for p in PIDS:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def curl(url, *extra):
    return subprocess.run(["curl", "-sk", "-o", "/dev/null", "-D", "-", "--max-time", "10", *extra, url],
                          capture_output=True, text=True)


def wait_ready(url, proc, what):
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode}")
        if curl(url).returncode == 0:
            return
        time.sleep(0.05)
    raise SystemExit(f"{what} not ready at {url}")


class RssSampler:
    """Peak RssAnon (KiB) of one PID, sampled every 50 ms while running."""

    def __init__(self, pid):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        self.peak = max(self.peak, int(line.split()[1]))
        except OSError:
            pass

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.05)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self._sample()


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    v = float(m.group(1))
    return v * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def run_wrk(url, conns, seconds, close):
    argv = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    out = subprocess.run(argv + [url], capture_output=True, text=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    if rps is None:
        raise SystemExit(f"wrk failed on {url}:\n{out}")
    bad = (int(errors.group(1)) if errors else 0)
    if sock and not close:
        bad += sum(int(x) for x in re.findall(r"\d+", sock.group(1)))
    return float(rps.group(1)), to_ms(lat.get("50", "?")), to_ms(lat.get("99", "?")), bad


def run_h2load(url, conns, streams, seconds, logpath):
    argv = ["taskset", "-c", CLIENT_CPU, "h2load", "-t1", f"-c{conns}", f"-m{streams}", f"-D{seconds}",
            "--warm-up-time=1", f"--log-file={logpath}", url]
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    rps = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", out)
    st = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    if rps is None or st is None:
        raise SystemExit(f"h2load failed on {url}:\n{out}")
    lats = []
    with open(logpath) as f:
        for line in f:
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1] == "200":
                lats.append(int(parts[2]))
    os.unlink(logpath)
    lats.sort()

    def pct(p):
        return lats[min(len(lats) - 1, int(len(lats) * p))] / 1000.0 if lats else float("nan")

    return float(rps.group(1)), pct(0.50), pct(0.99), int(st.group(2)) + int(st.group(3))


def measure(server, row, args, work):
    label, tool, scheme, obj, conns, streams = row
    port = server["tls_port"] if scheme == "https" else server["port"]
    url = f"{scheme}://127.0.0.1:{port}/{OBJECTS[obj]}"
    with RssSampler(server["proc"].pid) as rss:
        if tool == "h2load":
            r = run_h2load(url, conns, streams, args.seconds, os.path.join(work, "h2load.log"))
        else:
            r = run_wrk(url, conns, args.seconds, tool == "wrk-close")
    return r + (rss.peak / 1024.0,)


def make_corpus(site):
    os.makedirs(site)
    for name, size in (("1k.bin", 1024), ("128k.bin", 128 * 1024), ("1m.bin", 1024 * 1024)):
        with open(os.path.join(site, name), "wb") as f:
            f.write(os.urandom(size))
    line = "function f%d(a, b) { return a * %d + b; } // some script text\n"
    js, i = [], 0
    while sum(len(x) for x in js) < 64 * 1024:
        js.append(line % (i, i))
        i += 1
    with open(os.path.join(site, "app.js"), "w") as f:
        f.write("".join(js)[: 64 * 1024])
    for root, dirs, files in os.walk(site):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for n in files:
            os.chmod(os.path.join(root, n), 0o644)


def start_h2o(work, site, cert, key):
    port, tls_port = free_port(), free_port()
    conf = os.path.join(work, "h2o.conf")
    with open(conf, "w") as f:
        f.write(f"""num-threads: 1
user: nobody
error-log: {work}/h2o-error.log
listen: {{host: 127.0.0.1, port: {port}}}
listen:
  host: 127.0.0.1
  port: {tls_port}
  ssl: {{certificate-file: {cert}, key-file: {key}}}
hosts:
  default:
    paths:
      /: {{file.dir: {site}}}
""")
    proc = start(["h2o", "-c", conf], subprocess.DEVNULL, subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{port}/1k.bin", proc, "h2o")
    return {"name": "h2o", "proc": proc, "port": port, "tls_port": tls_port}


def start_edge(binary, work, site, cert, key, n):
    d = os.path.join(work, f"edge{n}")
    os.makedirs(d)
    conf = os.path.join(d, "edge.yaml")
    with open(conf, "w") as f:
        f.write(f"""listen:
  - {{address: "127.0.0.1:0"}}
  - {{address: "127.0.0.1:0", tls: {{certificate: {cert}, key: {key}}}}}
admin: off
workers: 1
cache: {{path: cache, max_size: 256MiB}}
origin: {{directory: {site}, cache_control: "public, max-age=3600"}}
access_log: off
""")
    ready = os.path.join(d, "ready.json")
    err = open(os.path.join(d, "edge.err"), "w")
    proc = start([binary, "-c", conf, "--ready-file", ready], subprocess.DEVNULL, err)
    for _ in range(200):
        if os.path.exists(ready) and os.path.getsize(ready) > 0:
            break
        if proc.poll() is not None:
            raise SystemExit(f"cdn-edge exited with status {proc.returncode}: see {d}/edge.err")
        time.sleep(0.05)
    info = json.load(open(ready))
    ports = [int(x["address"].rsplit(":", 1)[1]) for x in info["listen"]]
    srv = {"name": f"edge{n}", "binary": binary, "proc": proc, "port": ports[0], "tls_port": ports[1]}
    wait_ready(f"http://127.0.0.1:{srv['port']}/1k.bin", proc, "cdn-edge")
    # warm: the first request of each object fills the cache; then every protocol must hit
    for obj in OBJECTS.values():
        curl(f"http://127.0.0.1:{srv['port']}/{obj}")
    for obj in OBJECTS.values():
        for url, extra in ((f"http://127.0.0.1:{srv['port']}/{obj}", ()),
                           (f"https://127.0.0.1:{srv['tls_port']}/{obj}", ("--http2",))):
            for _ in range(20):
                head = curl(url, *extra).stdout.lower()
                if "cache-status: cdn-edge; hit" in head:
                    break
                time.sleep(0.05)  # the fill commits asynchronously
            else:
                raise SystemExit(f"{binary}: {url} is not a hit:\n{head}")
    return srv


def tls_params(port):
    """The TLS version and cipher a server negotiates with OpenSSL's defaults (as wrk and h2load do)."""
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-alpn", "h2,http/1.1"],
                         input="", capture_output=True, text=True, timeout=10).stdout
    m = re.search(r"New, (\S+), Cipher is (\S+)", out)
    return f"{m.group(1)} {m.group(2)}" if m else "?"


def fmt_row(cells, widths):
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=5, help="per measurement (default 5)")
    ap.add_argument("--reps", type=int, default=1, help="repetitions of each row; the median is shown (default 1)")
    ap.add_argument("--rows", default="", help="only rows whose label contains one of these comma-separated words")
    ap.add_argument("--edge", action="append", default=[], help="a cdn-edge binary (repeat to compare builds)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = ap.parse_args()
    edges = args.edge or ["build/edge/cdn-edge"]
    rows = [r for r in ROWS if not args.rows or any(w in r[0] for w in args.rows.split(","))]
    if os.cpu_count() is None or os.cpu_count() < 2:
        log("warning: fewer than 2 CPUs: server and load generator share one")

    work = tempfile.mkdtemp(prefix="cdn-bench.")
    os.chmod(work, 0o755)  # h2o drops to nobody
    try:
        site = os.path.join(work, "site")
        make_corpus(site)
        cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1"],
                       check=True, capture_output=True)
        os.chmod(key, 0o644)
        servers = [start_h2o(work, site, cert, key)]
        for i, b in enumerate(edges):
            servers.append(start_edge(b, work, site, cert, key, i))

        tls = {s["name"]: tls_params(s["tls_port"]) for s in servers}
        results = {}  # (row label, server name) -> list of tuples
        t0 = time.time()
        for rep in range(args.reps):
            for row in rows:
                order = servers if rep % 2 == 0 else list(reversed(servers))
                for srv in order:
                    r = measure(srv, row, args, work)
                    results.setdefault((row[0], srv["name"]), []).append(r)
                    log(f"  {row[0]:<20} {srv['name']:<6} {r[0]:10.0f} req/s  p50 {r[1]:7.2f} ms  p99 {r[2]:7.2f} ms"
                        f"  rss {r[4]:6.1f} MiB" + (f"  errors {r[3]}" if r[3] else ""))
                log(f"[{time.time() - t0:5.0f}s] rep {rep + 1}/{args.reps} {row[0]}")

        def med(label, name, i):
            return statistics.median(r[i] for r in results[(label, name)])

        header = ["test", "h2o req/s", "p50 ms", "p99 ms", "RSS MiB"]
        for s in servers[1:]:
            suffix = "" if len(servers) == 2 else f" [{s['name']}]"
            header += [f"edge req/s{suffix}", "p50 ms", "p99 ms", "RSS MiB", "req/s %", "p99 x"]
        table = []
        for row in rows:
            label = row[0]
            cells = [label]
            for s in servers:
                rps, p50, p99 = med(label, s["name"], 0), med(label, s["name"], 1), med(label, s["name"], 2)
                cells += [f"{rps:.0f}", f"{p50:.2f}", f"{p99:.2f}", f"{max(r[4] for r in results[(label, s['name'])]):.1f}"]
                if s is not servers[0]:
                    # ratios per repetition (h2o and this edge measured back to back), then their median
                    pairs = list(zip(results[(label, "h2o")], results[(label, s["name"])]))
                    ratio = statistics.median(e[0] / h[0] for h, e in pairs)
                    p99x = statistics.median(e[2] / h[2] for h, e in pairs)
                    cells += [f"{ratio * 100:.0f}%", f"{p99x:.2f}"]
            bad = sum(r[3] for s in servers for r in results[(label, s["name"])])
            if bad:
                cells[0] += f" ({bad} errors)"
            table.append(cells)
        if args.markdown:
            print("| " + " | ".join(header) + " |")
            print("|" + "|".join(" --- " for _ in header) + "|")
            for cells in table:
                print("| " + " | ".join(cells) + " |")
        else:
            widths = [max(len(str(c[i])) for c in [header] + table) for i in range(len(header))]
            print(fmt_row(header, widths))
            for cells in table:
                print(fmt_row(cells, widths))
        print(f"# {args.reps} rep(s) x {args.seconds} s per measurement, median shown; RSS = peak RssAnon; "
              f"servers on CPU {SERVER_CPU}, load on CPU {CLIENT_CPU}; "
              + ", ".join(f"{s['name']} = {s['binary']}" for s in servers[1:]))
        print("# TLS: " + ", ".join(f"{n} {v}" for n, v in tls.items()))
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
