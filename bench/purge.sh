#!/usr/bin/env bash
# Purge latency of cdn-edge, and the time a purge takes to reach another node through the Redis stream.
#
#   bench/purge.sh [OBJECTS] [SAMPLES]        (defaults: 100000 objects stored, 200 samples per row)
#
# Node L (no Redis) stores OBJECTS tiny files from a directory origin (filled with h2load), then answers
# SAMPLES URL purges and SAMPLES tag purges, one at a time: the time of each POST /purge until its 200 (which
# comes after the synced commit). Nodes A and B share a Redis stream (a redis-server of ours): a URL purge
# POSTed on A (200 = in Redis and applied on A), then the time until B stops serving that URL (polled with
# `Cache-Control: only-if-cached`, which answers 504 once the object is gone). Prints p50/p99 per row.
#
# Needs: h2load (nghttp2-client), redis-server, python3 and a built build/edge/cdn-edge (or CDN_EDGE=...).
# Everything listens on 127.0.0.1 with ports the kernel picks; every process started here is stopped by its PID.
# The directory origin sends no tags: tag purges here measure the cost of recording a tag ban, not the sweep.
set -euo pipefail
cd "$(dirname "$0")/.."
OBJECTS=${1:-100000}
SAMPLES=${2:-200}
EDGE=${CDN_EDGE:-build/edge/cdn-edge}
[ -x "$EDGE" ] || { echo "build first: $EDGE not found" >&2; exit 1; }
for tool in h2load redis-server python3; do command -v $tool >/dev/null || { echo "missing: $tool" >&2; exit 1; }; done

exec python3 - "$EDGE" "$OBJECTS" "$SAMPLES" <<'PY'
import http.client, json, os, shutil, signal, socket, subprocess, sys, tempfile, time

edge_bin, objects, samples = os.path.abspath(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
TOKEN = "bench-token"
work = tempfile.mkdtemp(prefix="cdn-edge-purge-bench-")
procs = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise SystemExit("timed out waiting for " + what)


def start_edge(name, redis_port=None):
    d = os.path.join(work, name)
    os.makedirs(d)
    purge = "purge: {redis: \"redis://127.0.0.1:%d\", stream: bench}\n" % redis_port if redis_port else ""
    with open(os.path.join(d, "edge.yaml"), "w") as f:
        f.write("listen: [{address: \"127.0.0.1:0\"}]\nadmin: {address: \"127.0.0.1:0\", token: %s}\nworkers: 2\n"
                "cache: {path: cache, max_size: 2GiB}\norigin: {directory: %s, cache_control: \"public, max-age=3600\"}\n"
                "access_log: off\n%s" % (TOKEN, os.path.join(work, "site"), purge))
    ready = os.path.join(d, "ready.json")
    p = subprocess.Popen([edge_bin, "-c", "edge.yaml", "--ready-file", ready], cwd=d,
                         stdout=open(os.path.join(d, "out.log"), "wb"), stderr=subprocess.STDOUT)
    procs.append(p)
    wait_for(lambda: os.path.exists(ready), 30, name + " to start")
    r = json.load(open(ready))
    return {"port": int(r["listen"][0]["address"].rsplit(":", 1)[1]), "admin": int(r["admin"].rsplit(":", 1)[1])}


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def req(self, method, path, body=None, headers=None):
        self.conn.request(method, path, body=body, headers=headers or {})
        r = self.conn.getresponse()
        data = r.read()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data


def purge(client, body):
    t0 = time.perf_counter()
    st, _, data = client.req("POST", "/purge", json.dumps(body), {"Authorization": "Bearer " + TOKEN})
    dt = (time.perf_counter() - t0) * 1000
    if st != 200:
        raise SystemExit("purge answered %d: %r" % (st, data))
    return dt


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


try:
    # the site: OBJECTS tiny files in 1000-file directories
    site = os.path.join(work, "site")
    for i in range(objects):
        d = os.path.join(site, "d%03d" % (i // 1000))
        if i % 1000 == 0:
            os.makedirs(d)
        with open(os.path.join(d, "%d.txt" % i), "w") as f:
            f.write("object %d\n" % i)
    paths = ["/d%03d/%d.txt" % (i // 1000, i) for i in range(objects)]

    # node L alone: fill it, then purge
    L = start_edge("l")
    # h2load starts every client at the top of its URI list: one h2load (one client) per disjoint slice
    jobs = []
    t0 = time.monotonic()
    for k in range(16):
        part = paths[k::16]
        if not part:
            continue
        fn = os.path.join(work, "uris.%d" % k)
        with open(fn, "w") as f:
            f.write("".join("http://127.0.0.1:%d%s\n" % (L["port"], p) for p in part))
        jobs.append(subprocess.Popen(["h2load", "--h1", "-c", "1", "-n", str(len(part)), "-i", fn],
                                     stdout=subprocess.DEVNULL))
    for j in jobs:
        if j.wait() != 0:
            raise SystemExit("h2load failed")
    fill_s = time.monotonic() - t0
    adm = Client(L["admin"])
    def stored_objects():
        st, _, m = adm.req("GET", "/metrics")
        return next(int(float(l.split()[-1])) for l in m.decode().splitlines() if l.startswith("cdn_edge_store_objects"))
    # the writer commits fills in batches after the responses went out: measure once it is done
    stored, end = -1, time.monotonic() + 60
    while time.monotonic() < end:
        now = stored_objects()
        if now == stored or now >= objects:
            stored = now
            break
        stored = now
        time.sleep(0.5)
    key = "http://127.0.0.1:%d" % L["port"]
    url_ms = [purge(adm, {"urls": [key + paths[(i * 7919) % objects]]}) for i in range(samples)]
    tag_ms = [purge(adm, {"tags": ["bench-tag-%d" % i]}) for i in range(samples)]

    # nodes A and B on one stream
    redis_dir = os.path.join(work, "redis")
    os.makedirs(redis_dir)
    rport = free_port()
    procs.append(subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", redis_dir], stdout=subprocess.DEVNULL))
    def pong():
        try:
            with socket.create_connection(("127.0.0.1", rport), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False
    wait_for(pong, 10, "redis-server")
    A, B = start_edge("a", rport), start_edge("b", rport)
    a_adm, b = Client(A["admin"]), Client(B["port"])
    n_prop = max(10, samples // 4)
    post_ms, prop_ms = [], []
    for i in range(n_prop):
        p = paths[i]
        b.req("GET", p, headers={"Host": "bench.example"})
        st, h, _ = b.req("GET", p, headers={"Host": "bench.example"})
        assert "hit" in h.get("cache-status", ""), h
        t0 = time.perf_counter()
        post_ms.append(purge(a_adm, {"urls": ["http://bench.example" + p]}))
        while True:
            st, h, _ = b.req("GET", p, headers={"Host": "bench.example", "Cache-Control": "only-if-cached"})
            if st == 504:
                break
        prop_ms.append((time.perf_counter() - t0) * 1000)

    print("cdn-edge purge bench: %d objects stored on node L (filled in %.1f s)" % (stored, fill_s))
    print("%-44s %6s %9s %9s" % ("measure", "n", "p50 ms", "p99 ms"))
    for name, xs in (("URL purge, node alone (synced commit)", url_ms),
                     ("tag purge, node alone (synced commit)", tag_ms),
                     ("URL purge via Redis stream (POST on A)", post_ms),
                     ("POST on A until B stops serving it", prop_ms)):
        print("%-44s %6d %9.2f %9.2f" % (name, len(xs), pct(xs, 50), pct(xs, 99)))
finally:
    for p in reversed(procs):
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    shutil.rmtree(work, ignore_errors=True)
PY
