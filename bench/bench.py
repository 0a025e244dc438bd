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
- compressed hits ("js64k gzip" / "js64k br" rows: the JS requested with `Accept-Encoding: gzip` or
  `br`): cdn-edge serves the variants its compression threads made after the fill (warm-up waits until
  they exist); h2o serves the same bytes as precompressed siblings app.js.gz / app.js.br
  (`file.send-compressed: ON`, on a path of its own so that the other rows are unchanged); each side is
  checked to answer with that Content-Encoding before and after every such measurement;
- samples RssAnon of the measured server from /proc/PID/status every 50 ms: the peak is shown;
- prints one table: requests/s, p50 and p99 latency (medians over the repetitions), peak RssAnon,
  and cdn-edge as a ratio of h2o (the median of the per-repetition ratios of requests/s and of p99);
  each measurement is also logged to stderr as it completes; then, when compressed rows ran, each
  cdn-edge's compressed hits as a ratio of its identity hits of the same protocol in the same run
  (selecting a compressed row with --rows measures its identity row too).

Load generators: wrk (-t1) for HTTP/1.1 and TLS HTTP/1.1; h2load (-t1) for h2c (prior knowledge) and
TLS HTTP/2 (ALPN), with --warm-up-time 1s and latency percentiles computed from its --log-file. New TLS
connections per second: wrk with `Connection: close` (one 1 KiB request per connection, each a full
TLS handshake: wrk keeps no session for resumption).

Every process started here is stopped by its PID; the temporary directory is removed at the end.
Only ratios measured in the same run mean much: the machines this runs on are shared and noisy.
"""
import argparse
import contextlib
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
from benchlib import RssSampler, free_port, log, print_table, H2LOAD_STATUS, h2load_latencies_us

SERVER_CPU = "0"
CLIENT_CPU = "1"

OBJECTS = {"1k": "1k.bin", "128k": "128k.bin", "1m": "1m.bin", "js": "app.js"}

# (label, tool, scheme, object, connections, streams per connection[, Accept-Encoding])
ROWS = [
    ("http/1.1 1k", "wrk", "http", "1k", 64, 1),
    ("http/1.1 128k", "wrk", "http", "128k", 64, 1),
    ("http/1.1 1m", "wrk", "http", "1m", 64, 1),
    ("http/1.1 js64k", "wrk", "http", "js", 64, 1),
    ("http/1.1 js64k gzip", "wrk", "http", "js", 64, 1, "gzip"),
    ("http/1.1 js64k br", "wrk", "http", "js", 64, 1, "br"),
    ("h2c 1k", "h2load", "http", "1k", 16, 16),
    ("h2c 128k", "h2load", "http", "128k", 16, 16),
    ("h2c 1m", "h2load", "http", "1m", 16, 16),
    ("h2c js64k", "h2load", "http", "js", 16, 16),
    ("h2c js64k gzip", "h2load", "http", "js", 16, 16, "gzip"),
    ("h2c js64k br", "h2load", "http", "js", 16, 16, "br"),
    ("tls h2 1k", "h2load", "https", "1k", 16, 16),
    ("tls h2 128k", "h2load", "https", "128k", 16, 16),
    ("tls h2 1m", "h2load", "https", "1m", 16, 16),
    ("tls h2 js64k", "h2load", "https", "js", 16, 16),
    ("tls h2 js64k gzip", "h2load", "https", "js", 16, 16, "gzip"),
    ("tls h2 js64k br", "h2load", "https", "js", 16, 16, "br"),
    ("tls http/1.1 1k", "wrk", "https", "1k", 64, 1),
    ("tls http/1.1 128k", "wrk", "https", "128k", 64, 1),
    ("tls new conn/s 1k", "wrk-close", "https", "1k", 32, 1),
]
ENCODED = {"gzip": ".gz", "br": ".br"}  # Accept-Encoding -> h2o's precompressed sibling (file.send-compressed)


def row_encoding(row):
    return row[6] if len(row) > 6 else None


def identity_row(row):
    """The row measuring the same object and protocol without Accept-Encoding."""
    return next(r for r in ROWS if r[1:6] == row[1:6] and row_encoding(r) is None)


PIDS = []


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


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    v = float(m.group(1))
    return v * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def run_wrk(url, conns, seconds, close, headers=()):
    argv = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    for h in headers:
        argv += ["-H", h]
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


def run_h2load(url, conns, streams, seconds, logpath, headers=()):
    argv = ["taskset", "-c", CLIENT_CPU, "h2load", "-t1", f"-c{conns}", f"-m{streams}", f"-D{seconds}",
            "--warm-up-time=1", f"--log-file={logpath}"]
    for h in headers:
        argv += ["-H", h]
    argv.append(url)
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    rps = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", out)
    st = H2LOAD_STATUS.search(out)
    if rps is None or st is None:
        raise SystemExit(f"h2load failed on {url}:\n{out}")
    lats = sorted(h2load_latencies_us(logpath))

    def pct(p):
        return lats[min(len(lats) - 1, int(len(lats) * p))] / 1000.0 if lats else float("nan")

    return float(rps.group(1)), pct(0.50), pct(0.99), int(st.group(2)) + int(st.group(3))


def object_url(server, scheme, obj, enc=None):
    port = server["tls_port"] if scheme == "https" else server["port"]
    # h2o serves the precompressed siblings from a path of its own, so that its other rows stay as before
    prefix = server.get("encoded_prefix", "") if enc else ""
    return f"{scheme}://127.0.0.1:{port}{prefix}/{OBJECTS[obj]}"


def check_encoded(server, url, enc, http2):
    """Fails the run unless `url` answers with Content-Encoding: enc (and, for cdn-edge, as a hit)."""
    head = curl(url, "-H", f"Accept-Encoding: {enc}", *(("--http2",) if http2 else ())).stdout.lower()
    ok = re.search(rf"^content-encoding: {enc}\s*$", head, re.M) is not None
    if server["name"] != "h2o":
        ok = ok and "cache-status: cdn-edge; hit" in head
    return ok, head


def measure(server, row, args, work):
    label, tool, scheme, obj, conns, streams = row[:6]
    enc = row_encoding(row)
    url = object_url(server, scheme, obj, enc)
    headers = (f"Accept-Encoding: {enc}",) if enc else ()
    with RssSampler(server["proc"].pid) as rss:
        if tool == "h2load":
            r = run_h2load(url, conns, streams, args.seconds, os.path.join(work, "h2load.log"), headers)
        else:
            r = run_wrk(url, conns, args.seconds, tool == "wrk-close", headers)
    if enc:
        # the variant was served all along (it could have been evicted, or h2o lost its sibling file)
        ok, head = check_encoded(server, url, enc, tool == "h2load")
        if not ok:
            raise SystemExit(f"{server['name']}: {url} is not a {enc} hit after measuring:\n{head}")
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
      /enc: {{file.dir: {site}, file.send-compressed: ON}}
      /: {{file.dir: {site}}}
""")
    proc = start(["h2o", "-c", conf], subprocess.DEVNULL, subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{port}/1k.bin", proc, "h2o")
    return {"name": "h2o", "proc": proc, "port": port, "tls_port": tls_port, "encoded_prefix": "/enc"}


def add_precompressed(site, srv):
    """h2o's precompressed siblings (app.js.gz, app.js.br): the very bytes cdn-edge serves, so both send as much."""
    for enc, ext in ENCODED.items():
        path = os.path.join(site, OBJECTS["js"] + ext)
        if os.path.exists(path):
            continue
        subprocess.run(["curl", "-sf", "-o", path, "-H", f"Accept-Encoding: {enc}",
                        f"http://127.0.0.1:{srv['port']}/{OBJECTS['js']}"], check=True)
        os.chmod(path, 0o644)


def check_h2o_encoded(h2o):
    for enc in ENCODED:
        for scheme, http2 in (("http", False), ("https", True)):
            url = object_url(h2o, scheme, "js", enc)
            ok, head = check_encoded(h2o, url, enc, http2)
            if not ok:
                raise SystemExit(f"h2o does not serve {url} with Content-Encoding: {enc}:\n{head}")


def write_edge_conf(d, site, cert=None, key=None):
    """The benchmarks' cdn-edge config in directory d (one worker, the corpus as its origin, cache under d): a
    cleartext listener, and a TLS one when cert and key are given. @return its path"""
    conf = os.path.join(d, "edge.yaml")
    tls = f"""  - {{address: "127.0.0.1:0", tls: {{certificate: {cert}, key: {key}}}}}\n""" if cert else ""
    with open(conf, "w") as f:
        f.write(f"""listen:
  - {{address: "127.0.0.1:0"}}
{tls}admin: off
workers: 1
cache: {{path: cache, max_size: 256MiB}}
origin: {{directory: {site}, cache_control: "public, max-age=3600"}}
access_log: off
""")
    return conf


def start_edge(binary, work, site, cert, key, n):
    d = os.path.join(work, f"edge{n}")
    os.makedirs(d)
    conf = write_edge_conf(d, site, cert, key)
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
    # the gzip and br variants are made off the loop a moment after the fill committed: wait for them
    js = OBJECTS["js"]
    for enc in ENCODED:
        for url, http2 in ((f"http://127.0.0.1:{srv['port']}/{js}", False),
                           (f"https://127.0.0.1:{srv['tls_port']}/{js}", True)):
            for _ in range(200):
                ok, head = check_encoded(srv, url, enc, http2)
                if ok:
                    break
                time.sleep(0.05)
            else:
                raise SystemExit(f"{binary}: {url} has no {enc} variant (compress: on?):\n{head}")
    return srv


def start_servers(work, edges):
    """The corpus and a certificate in `work` (mode 0755: h2o drops to nobody), h2o and each cdn-edge binary on
    them, the edges warmed (every object a hit, the compressed variants made). @return the servers, h2o first"""
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
        add_precompressed(site, servers[-1])
    check_h2o_encoded(servers[0])
    return servers


def tls_params(port):
    """The TLS version and suite a server negotiates with OpenSSL's default client order (as wrk does), and the
    suite it negotiates with h2load (whose order differs: AES-128-GCM first)."""
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-alpn", "h2,http/1.1"],
                         input="", capture_output=True, text=True, timeout=10).stdout
    m = re.search(r"New, (\S+), Cipher is (\S+)", out)
    h2load = subprocess.run(["h2load", "-n1", f"https://127.0.0.1:{port}/{OBJECTS['1k']}"],
                            capture_output=True, text=True, timeout=10).stdout
    h = re.search(r"^Cipher: (\S+)", h2load, re.M)
    return (f"{m.group(1)} {m.group(2)}" if m else "?") + f" (h2load: {h.group(1) if h else '?'})"


@contextlib.contextmanager
def workdir(prefix):
    """A temporary directory (mode 0755: h2o drops to nobody); on the way out, every process started here is
    stopped and the directory removed."""
    work = tempfile.mkdtemp(prefix=prefix)
    os.chmod(work, 0o755)
    try:
        yield work
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)


def run_main(main):
    """Runs a benchmark's main; ^C stops every process started here first."""
    try:
        main()
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)


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
    # an encoded row is also shown as a ratio of the identity row of its protocol: measure that one too
    rows = [r for r in ROWS if r in rows or any(row_encoding(x) and identity_row(x) == r for x in rows)]
    if os.cpu_count() is None or os.cpu_count() < 2:
        log("warning: fewer than 2 CPUs: server and load generator share one")

    with workdir("cdn-bench.") as work:
        servers = start_servers(work, edges)
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
        print_table(header, table, args.markdown)
        # issue #6: a compressed hit is worth as much as an identity one (same run, same edge, same protocol)
        enc_rows = [r for r in rows if row_encoding(r)]
        if enc_rows:
            header2 = ["compressed hit vs identity hit"]
            for s in servers[1:]:
                suffix = "" if len(servers) == 2 else f" [{s['name']}]"
                header2 += [f"encoded req/s{suffix}", "identity req/s", "req/s %"]
            table2 = []
            for row in enc_rows:
                ident = identity_row(row)[0]
                cells = [f"{row[0]} / {ident}"]
                for s in servers[1:]:
                    pairs = list(zip(results[(row[0], s["name"])], results[(ident, s["name"])]))
                    cells += [f"{med(row[0], s['name'], 0):.0f}", f"{med(ident, s['name'], 0):.0f}",
                              f"{statistics.median(e[0] / i[0] for e, i in pairs) * 100:.0f}%"]
                table2.append(cells)
            print()
            print_table(header2, table2, args.markdown)
        print(f"# {args.reps} rep(s) x {args.seconds} s per measurement, median shown; RSS = peak RssAnon; "
              f"servers on CPU {SERVER_CPU}, load on CPU {CLIENT_CPU}; "
              + ", ".join(f"{s['name']} = {s['binary']}" for s in servers[1:]))
        print("# TLS: " + ", ".join(f"{n} {v}" for n, v in tls.items()))


if __name__ == "__main__":
    run_main(main)
