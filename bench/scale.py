#!/usr/bin/env python3
"""Scale benchmarks of cdn-edge (issue #6): restart, idle memory, slow readers, the miss path, coalescing.

Run it through bench/scale.sh (which checks the tools); see bench/README-scale.md for results.

    bench/scale.sh [all|restart|idle|slow|miss|coalesce ...] [--edge BINARY] [--markdown] [--keep]
                   [--restart-objects N] [--restart-round N] [--idle-objects N]

Sub-commands (each starts its own origin and edge on a fresh cache; `all`, the default, runs them in turn):
  restart   fills N (default 1,000,000) distinct 256 B objects through the edge (wrk + a Lua script that
            makes every request a new path; 64 connections), in rounds of --restart-round (100,000) each
            committed before the next (the edge's writer lags its clients; the test sets cache.write_queue to
            1 GiB so that nothing is passed unstored), waits until the store holds them all, stops the edge
            with SIGTERM, starts it again and polls (1 ms apart, connect timeout 10 ms) until a request for a
            stored object is a hit. Target: the first hit within 100 ms of the exec (no scan at open).
            Reports fills/s, the stop time, the time to the first hit and RssAnon after the restart.
  idle      fills a 10 GiB cache (10,000 objects of 1 MiB; refuses when the temporary directory's file system
            has less than 25 GiB free), then opens 1,000 keep-alive connections that each GET one 1 MiB hit,
            read it whole and stay open (idle) for a few seconds. Target: peak RssAnon < 64 MiB.
  slow      caches one 1 GiB object, then 50 clients (SO_RCVBUF 16 KiB) read it at 1 MiB/s each for 20 s
            while RssAnon is sampled every 100 ms. Target: flat (see FLAT_* below).
  miss      10,000 distinct 16 KiB objects, 64 concurrent clients (wrk + Lua), the fast origin: fills/s,
            latency p50/p99, and the origin's request count (must be 10,000: one fetch per object).
  coalesce  200 concurrent clients (h2load --h1 -c200 -n200) on one cold 1 MiB object whose origin waits
            500 ms before its head. Target: the slowest client within the origin's own time + 100 ms (the
            origin's time is measured once, the same way: h2load -c1 -n1 straight to the origin). A second
            row subtracts what delivering 200 x 1 MiB costs here, measured by the same h2load run on the hit.

The origin is this script (`scale.py origin`, an asyncio HTTP/1.1 server in its own process): GET
/o/<anything>?len=N&delay_ms=D answers N bytes of a fixed random block with `Cache-Control: public,
max-age=86400` after D ms; it counts requests and repeated targets (GET /__stats, JSON).

Placement: the edge (`workers: 1`) is pinned to CPU 0; the load generators and the origin to CPU 1
(`taskset`). Everything listens on 127.0.0.1. Every process started here is stopped by its PID; the state
(caches, logs) lives in one temporary directory removed at the end (`--keep` keeps it).
"""
import argparse
import asyncio
import json
import os
import random
import re
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from benchlib import RssSampler, free_port, log, print_table, rss_kib, H2LOAD_STATUS, h2load_latencies_us

SERVER_CPU = "0"
CLIENT_CPU = "1"
MiB = 1 << 20
GiB = 1 << 30

# targets of issue #6
RESTART_TARGET_MS = 100
IDLE_TARGET_MIB = 64
COALESCE_SLACK_MS = 100
# "flat" for the slow readers: RssAnon over the last 5 s at most FLAT_TREND_MIB above its level 2..7 s in
# (no growth with time), and the peak at most FLAT_PEAK_MIB above the level before the clients came
FLAT_TREND_MIB = 2
FLAT_PEAK_MIB = 16

PROCS = []


def spawn(argv, cpu, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
    p = subprocess.Popen(["taskset", "-c", cpu] + argv, stdout=stdout, stderr=stderr)
    PROCS.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=30):
    """Stops one process we started, by its PID. @return seconds it took to exit"""
    t0 = time.perf_counter()
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in PROCS:
        PROCS.remove(p)
    return time.perf_counter() - t0


def stop_all():
    for p in list(PROCS):
        stop(p, timeout=10)


def cpu_s(pid):
    """User + system CPU seconds of a process (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def cpu_busy():
    """{cpu index: busy jiffies, total jiffies} from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                idle = v[3] + v[4]  # idle + iowait
                out[int(m.group(1))] = (sum(v[:8]) - idle, sum(v[:8]))
    return out


def busy_pct(before, after, cpu):
    b, a = before[cpu], after[cpu]
    return 100.0 * (a[0] - b[0]) / max(1, a[1] - b[1])


def mib(kib):
    return kib / 1024.0


# ---------------------------------------------------------------- the origin (its own process)


def origin_main(port_file):
    block = random.Random(6).randbytes(MiB)
    view = memoryview(block)
    stats = {"requests": 0, "repeated": 0, "distinct": 0}
    seen = set()
    loop = asyncio.new_event_loop()

    class Conn(asyncio.Protocol):
        def connection_made(self, transport):
            self.t, self.buf, self.busy, self.left, self.paused = transport, bytearray(), False, 0, False
            transport.set_write_buffer_limits(high=4 * MiB)

        def connection_lost(self, exc):
            self.left = 0

        def pause_writing(self):
            self.paused = True

        def resume_writing(self):
            self.paused = False
            self.pump()

        def data_received(self, data):
            self.buf += data
            self.next_request()

        def next_request(self):
            while not self.busy and not self.t.is_closing():
                i = self.buf.find(b"\r\n\r\n")
                if i < 0:
                    return
                head = bytes(self.buf[:i])
                del self.buf[: i + 4]  # GET and HEAD only: no request body
                parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
                if len(parts) != 3:
                    self.t.close()
                    return
                method, target = parts[0], parts[1]
                path, _, query = target.partition("?")
                if path == "/__stats":
                    body = json.dumps(stats).encode()
                    self.t.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                    continue
                stats["requests"] += 1
                if target in seen:
                    stats["repeated"] += 1
                else:
                    seen.add(target)
                    stats["distinct"] += 1
                q = dict(urllib.parse.parse_qsl(query))
                n, delay_ms = int(q.get("len", "256")), int(q.get("delay_ms", "0"))
                head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                        b"Cache-Control: public, max-age=86400\r\nContent-Length: %d\r\n\r\n" % n)
                self.busy = True
                if delay_ms:
                    loop.call_later(delay_ms / 1000.0, self.respond, head, 0 if method == "HEAD" else n)
                else:
                    self.respond(head, 0 if method == "HEAD" else n)

        def respond(self, head, n):
            if self.t.is_closing():
                return
            if n <= len(block):  # one write for head and body: one segment for the small ones
                self.t.write(head + view[:n])
                self.busy = False
                self.next_request()
                return
            self.t.write(head)
            self.left = n
            self.pump()

        def pump(self):
            while self.left and not self.paused and not self.t.is_closing():
                k = min(self.left, len(block))
                self.left -= k
                self.t.write(view[:k])
            if self.left == 0 and self.busy and not self.t.is_closing():
                self.busy = False
                self.next_request()

    async def serve():
        server = await loop.create_server(Conn, "127.0.0.1", 0, backlog=4096, reuse_address=True)
        port = server.sockets[0].getsockname()[1]
        with open(port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.rename(port_file + ".tmp", port_file)
        await asyncio.Event().wait()

    loop.add_signal_handler(signal.SIGTERM, lambda: os._exit(0))
    loop.create_task(serve())
    loop.run_forever()


class Origin:
    def __init__(self, work):
        fd, pf = tempfile.mkstemp(prefix="origin.", suffix=".port", dir=work)
        os.close(fd)
        os.unlink(pf)
        self.proc = spawn([sys.executable, os.path.abspath(__file__), "origin", "--port-file", pf], CLIENT_CPU,
                          stderr=open(os.path.join(work, os.path.basename(pf) + ".err"), "w"))
        for _ in range(200):
            if os.path.exists(pf):
                break
            if self.proc.poll() is not None:
                raise SystemExit(f"the origin exited with status {self.proc.returncode}: see {pf}.err")
            time.sleep(0.02)
        else:
            raise SystemExit("the origin did not start")
        self.port = int(open(pf).read())

    def stats(self):
        st, _, body = http_get(self.port, "/__stats", keep_body=True)
        return json.loads(body)

    def stop(self):
        stop(self.proc)


# ---------------------------------------------------------------- the edge


class Edge:
    def __init__(self, binary, work, name, origin_port, max_size, max_object_size="128MiB", write_queue=None):
        self.binary, self.dir = os.path.abspath(binary), os.path.join(work, name)
        os.makedirs(self.dir)
        self.port, self.admin_port = free_port(), free_port()
        self.conf = os.path.join(self.dir, "edge.yaml")
        with open(self.conf, "w") as f:
            f.write(f"""listen:
  - address: "127.0.0.1:{self.port}"
admin:
  address: "127.0.0.1:{self.admin_port}"
workers: 1
cache:
  path: cache
  max_size: {max_size}
  max_object_size: {max_object_size}
{"  write_queue: " + write_queue if write_queue else ""}
origin:
  url: "http://127.0.0.1:{origin_port}"
access_log: off
""")
        self.proc = None
        self.starts = 0

    def start(self, wait=True):
        """Starts the edge. @return perf_counter() taken just before the exec"""
        self.starts += 1
        ready = os.path.join(self.dir, f"ready{self.starts}.json")
        err = open(os.path.join(self.dir, "edge.err"), "a")
        t0 = time.perf_counter()
        self.proc = spawn([self.binary, "-c", self.conf, "--ready-file", ready], SERVER_CPU, stderr=err)
        if wait:
            for _ in range(400):
                if os.path.exists(ready) and os.path.getsize(ready) > 0:
                    break
                if self.proc.poll() is not None:
                    raise SystemExit(f"cdn-edge exited with status {self.proc.returncode}: see {self.dir}/edge.err")
                time.sleep(0.025)
            else:
                raise SystemExit(f"cdn-edge did not become ready: see {self.dir}/edge.err")
        return t0

    def stop(self):
        return stop(self.proc)

    def metrics(self):
        st, _, body = http_get(self.admin_port, "/metrics", keep_body=True)
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(cdn_edge_\w+) (\S+)$", body.decode(), re.M)}

    def wait_objects(self, n, timeout):
        """Waits until the store holds at least n objects (the writer commits asynchronously)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self.metrics()
            if m.get("cdn_edge_store_objects", 0) >= n:
                return m
            time.sleep(0.2)
        raise SystemExit(f"the store holds {self.metrics().get('cdn_edge_store_objects')} objects, not {n}, after {timeout} s")

    def rss(self):
        return rss_kib(self.proc.pid)


# ---------------------------------------------------------------- clients


def read_head(sock, buf):
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("closed before the head")
        buf += d
    i = buf.index(b"\r\n\r\n")
    lines = buf[:i].decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, buf[i + 4:]


def http_get(port, target, timeout=10.0, keep_body=False, sock=None):
    """One GET on 127.0.0.1:port. @return (status, headers with lower-case names, body or its length)"""
    own = sock is None
    if own:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.settimeout(timeout)
        # the Host wrk and h2load send: the port is part of the cache key
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        status, headers, rest = read_head(sock, b"")
        left = int(headers.get("content-length", "0")) - len(rest)
        chunks = [rest]
        while left > 0:
            d = sock.recv(min(left, 1 << 20))
            if not d:
                raise ConnectionError("closed in the body")
            left -= len(d)
            if keep_body:
                chunks.append(d)
        if keep_body:
            return status, headers, b"".join(chunks)
        return status, headers, int(headers.get("content-length", "0"))
    finally:
        if own:
            sock.close()


def is_hit(headers):
    return headers.get("cache-status", "").startswith("cdn-edge; hit")


WRK_LUA = r"""
-- every request a new path: prefix .. i .. "?len=" .. len, i = FIRST..FIRST+N-1; past N, FIRST again (a hit).
-- Prints SCALE_START / SCALE_DONE with CLOCK_MONOTONIC in us at the first request and the Nth response;
-- scale.py stops wrk with SIGINT when it reads SCALE_DONE (wrk.thread:stop() does not end wrk's run).
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } scale_ts; int clock_gettime(int, scale_ts *); ]]
local ts = ffi.new("scale_ts")
local function now_us()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end
local prefix, n, len, first, sent, ndone, bad, stored = "/o/", 0, "256", 1, 0, 0, 0, 0
function init(args)
  prefix, n, len, first = args[1], tonumber(args[2]), args[3], tonumber(args[4] or "1")
end
function request()
  sent = sent + 1
  local i = sent
  if i == 1 then io.write(string.format("SCALE_START %d\n", now_us())) io.flush() end
  if i > n then i = 1 end
  return wrk.format("GET", prefix .. (first + i - 1) .. "?len=" .. len)
end
function response(status, headers, body)
  ndone = ndone + 1
  if status ~= 200 then bad = bad + 1 end
  local cs = headers["cache-status"] or headers["Cache-Status"] or ""
  if string.find(cs, "stored", 1, true) then stored = stored + 1 end
  if ndone == n then io.write(string.format("SCALE_DONE %d\n", now_us())) io.flush() end
end
function done(summary, latency, requests)
  io.write(string.format("SCALE requests=%d p50_us=%d p99_us=%d max_us=%d stored=%d bad=%d\n",
    summary.requests, latency:percentile(50), latency:percentile(99), latency.max, stored, bad))
end
"""


def wrk_fill(work, port, prefix, n, length, conns, max_seconds, first=1):
    """Requests prefix<first>..prefix<first+n-1> (each a miss on a fresh cache) with wrk, `conns` connections.

    @return dict: seconds (first request to Nth response), fills_per_s, p50_ms, p99_ms, max_ms (of all the
            responses, a few hits past N included), errors, stored (responses saying `stored`), argv"""
    lua = os.path.join(work, "distinct.lua")
    with open(lua, "w") as f:
        f.write(WRK_LUA)
    argv = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{conns}", f"-d{max_seconds}s", "--timeout", "10s",
            "-s", lua, f"http://127.0.0.1:{port}", "--", prefix, str(n), str(length), str(first)]
    log("  $ " + " ".join(argv))
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    PROCS.append(p)
    lines, start_us, done_us = [], None, None
    for line in p.stdout:
        lines.append(line)
        if line.startswith("SCALE_START "):
            start_us = int(line.split()[1])
        elif line.startswith("SCALE_DONE "):
            done_us = int(line.split()[1])
            p.send_signal(signal.SIGINT)  # wrk prints its summary and exits
    p.wait()
    PROCS.remove(p)
    out = "".join(lines)
    m = re.search(r"SCALE requests=(\d+) p50_us=(\d+) p99_us=(\d+) max_us=(\d+) stored=(\d+) bad=(\d+)", out)
    if m is None or start_us is None:
        raise SystemExit(f"wrk failed:\n{out}")
    if done_us is None:
        raise SystemExit(f"wrk did not complete {n} requests in {max_seconds} s:\n{out}")
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    bad = (int(errs.group(1)) if errs else 0) + (sum(int(x) for x in re.findall(r"\d+", sock.group(1))) if sock else 0)
    seconds = (done_us - start_us) / 1e6
    return {"requests": int(m.group(1)), "seconds": seconds, "fills_per_s": n / seconds,
            "p50_ms": int(m.group(2)) / 1000, "p99_ms": int(m.group(3)) / 1000, "max_ms": int(m.group(4)) / 1000,
            "errors": bad, "stored": int(m.group(5)), "argv": argv}


# ---------------------------------------------------------------- the five measurements


def row(test, target, measured, ok, command, note=""):
    return {"test": test, "target": target, "measured": measured, "result": "pass" if ok else "FAIL",
            "command": command, "note": note}


def run_restart(args, work):
    n = args.restart_objects
    rnd = args.restart_round if args.restart_round > 0 else n
    origin = Origin(work)
    # cache.write_queue bounds the memory of fills waiting for the disk (default 64 MiB): past it misses pass
    # unstored. This test wants every object stored, as fast as the disk takes them, so it allows a large backlog
    # and fills in rounds, each committed before the next.
    edge = Edge(args.edge, work, "edge-restart", origin.port, "4GiB", write_queue="1GiB")
    edge.start()
    log(f"restart: filling {n} objects of 256 B in rounds of {rnd}")
    t_fill = time.perf_counter()
    served_s, p99s, peak_rss = 0.0, [], 0
    done = 0
    while done < n:
        k = min(rnd, n - done)
        with RssSampler(edge.proc.pid, 0.2) as rs:
            f = wrk_fill(work, edge.port, "/o/", k, 256, 64, 600, first=done + 1)
            m = edge.wait_objects(done + k, 900)
        done += k
        served_s += f["seconds"]
        p99s.append(f["p99_ms"])
        peak_rss = max(peak_rss, rs.peak)
        log(f"  {done}: served at {f['fills_per_s']:.0f}/s (p99 {f['p99_ms']:.1f} ms), committed after "
            f"{time.perf_counter() - t_fill:.0f} s; peak RssAnon {mib(rs.peak):.0f} MiB")
    fill_s = time.perf_counter() - t_fill
    fill = {"fills_per_s": n / served_s, "committed_per_s": n / fill_s, "p99_ms": max(p99s)}
    ost = origin.stats()
    log(f"  {fill['fills_per_s']:.0f} fills/s served, {fill['committed_per_s']:.0f}/s committed ({fill_s:.0f} s); store: "
        f"{m['cdn_edge_store_objects']:.0f} objects, {m['cdn_edge_store_bytes'] / MiB:.0f} MiB; origin {ost}")
    rss_before = edge.rss()
    stop_s = edge.stop()
    if edge.proc.returncode != 0:
        raise SystemExit(f"cdn-edge exited with {edge.proc.returncode} on SIGTERM: see {edge.dir}/edge.err")
    log(f"  stopped (SIGTERM) in {stop_s * 1000:.0f} ms; RssAnon before the stop {mib(rss_before):.1f} MiB")

    probe = f"/o/{(n * 7) // 10 + 1}?len=256"  # a stored object
    t0 = edge.start(wait=False)
    first_connect = first_hit = None
    tries = 0
    deadline = t0 + 30
    status = None
    while time.perf_counter() < deadline:
        if edge.proc.poll() is not None:
            raise SystemExit(f"cdn-edge exited with status {edge.proc.returncode}: see {edge.dir}/edge.err")
        tries += 1
        try:
            s = socket.create_connection(("127.0.0.1", edge.port), timeout=0.01)
        except OSError:
            time.sleep(0.001)
            continue
        if first_connect is None:
            first_connect = time.perf_counter()
        try:
            status, headers, _ = http_get(edge.port, probe, timeout=1.0, sock=s)
            if status == 200 and is_hit(headers):
                first_hit = time.perf_counter()
                break
            # anything else (a miss would also store the object) makes the measurement void
            raise SystemExit(f"the first response after the restart is not a hit: {status} {headers.get('cache-status')}")
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.001)
    if first_hit is None:
        raise SystemExit(f"no hit within 30 s of the restart (last status {status})")
    ms = (first_hit - t0) * 1000
    time.sleep(0.2)
    rss_after = edge.rss()
    objects_after = edge.metrics().get("cdn_edge_store_objects", 0)
    log(f"  first connect {(first_connect - t0) * 1000:.1f} ms, first hit {ms:.1f} ms after the exec ({tries} tries); "
        f"RssAnon {mib(rss_after):.1f} MiB; store objects {objects_after:.0f}")
    edge.stop()
    origin.stop()
    cmd = "bench/scale.sh restart" + (f" --restart-objects {n}" if n != 1_000_000 else "") + \
        (f" --restart-round {args.restart_round}" if args.restart_round != 100_000 else "")
    return [row("restart: first hit after start", f"<= {RESTART_TARGET_MS} ms", f"{ms:.1f} ms", ms <= RESTART_TARGET_MS, cmd,
                f"{n} objects of 256 B: {fill['fills_per_s']:.0f} fills/s served (wrk -c64, p99 <= "
                f"{fill['p99_ms']:.1f} ms), {fill['committed_per_s']:.0f}/s committed (rounds of {rnd}, peak RssAnon "
                f"{mib(peak_rss):.0f} MiB); first connect accepted {(first_connect - t0) * 1000:.1f} ms after the "
                f"exec; SIGTERM stop took {stop_s * 1000:.0f} ms; RssAnon {mib(rss_before):.1f} MiB before the stop, "
                f"{mib(rss_after):.1f} MiB after the restart and one hit; store "
                f"{m['cdn_edge_store_bytes'] / MiB:.0f} MiB; origin requests {ost['requests']}")]


def run_idle(args, work):
    free = shutil.disk_usage(work).free
    if free < 25 * GiB:
        msg = f"refused: {free / GiB:.1f} GiB free under {work}, 25 GiB needed"
        log("idle: " + msg)
        return [row("idle: 1,000 keep-alive conns, 10 GiB cache", f"< {IDLE_TARGET_MIB} MiB RssAnon", msg, False,
                    "bench/scale.sh idle")]
    n_obj, n_conn = args.idle_objects, 1_000
    origin = Origin(work)
    # 1 MiB costs 16 chunks of 17 pages (65 KiB + page) plus its record: ~10.7 GiB for 10,000 objects;
    # eviction starts at 90% of max_size
    edge = Edge(args.edge, work, "edge-idle", origin.port, "16GiB")
    edge.start()
    log(f"idle: filling {n_obj} objects of 1 MiB ({free / GiB:.0f} GiB free)")
    with RssSampler(edge.proc.pid, 0.1) as fill_rss:
        fill = wrk_fill(work, edge.port, "/o/", n_obj, MiB, 16, 300)
        m = edge.wait_objects(n_obj, 120)
    log(f"  {fill['fills_per_s']:.0f} fills/s ({fill['fills_per_s'] * MiB / 1e6:.0f} MB/s) over {fill['seconds']:.1f} s;"
        f" store {m['cdn_edge_store_objects']:.0f} objects, {m['cdn_edge_store_bytes'] / GiB:.2f} GiB; "
        f"evictions {m.get('cdn_edge_evictions_total', 0):.0f}; peak RssAnon during the fill {mib(fill_rss.peak):.1f} MiB")
    time.sleep(1)
    base = edge.rss()

    rng = random.Random(1)
    sel = selectors.DefaultSelector()
    conns = []
    with RssSampler(edge.proc.pid, 0.05) as rss:
        t0 = time.perf_counter()
        for i in range(n_conn):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", edge.port))
            c = {"sock": s, "buf": b"", "left": None, "hit": False, "status": 0,
                 "req": f"GET /o/{rng.randint(1, n_obj)}?len={MiB} HTTP/1.1\r\nHost: 127.0.0.1:{edge.port}\r\n\r\n".encode()}
            conns.append(c)
            sel.register(s, selectors.EVENT_WRITE, c)
        pending = n_conn
        buf = bytearray(1 << 20)
        deadline = time.time() + 120
        while pending and time.time() < deadline:
            for key, ev in sel.select(timeout=1):
                c = key.data
                s = c["sock"]
                if ev & selectors.EVENT_WRITE:
                    s.send(c["req"])  # a few dozen bytes into an empty send buffer
                    sel.modify(s, selectors.EVENT_READ, c)
                    continue
                k = s.recv_into(buf)
                if k == 0:
                    raise SystemExit("idle: the edge closed a connection")
                if c["left"] is None:
                    c["buf"] += bytes(buf[:k])
                    if b"\r\n\r\n" not in c["buf"]:
                        continue
                    i = c["buf"].index(b"\r\n\r\n")
                    head = c["buf"][:i].decode("latin-1").lower()
                    c["status"] = int(head.split(" ")[1])
                    c["hit"] = "cache-status: cdn-edge; hit" in head
                    if not c["hit"] and not any(x.get("shown") for x in conns):
                        c["shown"] = True
                        log("  not a hit:\n" + c["buf"][:i].decode("latin-1"))
                    c["left"] = int(re.search(r"content-length: (\d+)", head).group(1)) - (len(c["buf"]) - i - 4)
                    c["buf"] = b""
                else:
                    c["left"] -= k
                if c["left"] == 0:
                    sel.unregister(s)
                    pending -= 1
        t_read = time.perf_counter() - t0
        if pending:
            raise SystemExit(f"idle: {pending} responses not complete within 120 s")
        idle_peak_before = rss.peak
        time.sleep(3)  # 1,000 idle keep-alive connections
        idle_level = edge.rss()
        peak = rss.peak
    hits = sum(1 for c in conns if c["hit"] and c["status"] == 200)
    alive = 0
    for c in conns:  # still open (keep-alive): a peek says EAGAIN, not EOF
        try:
            c["sock"].setblocking(False)
            if c["sock"].recv(1, socket.MSG_PEEK) != b"":
                alive += 1
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    for c in conns:
        c["sock"].close()
    sel.close()
    log(f"  {n_conn} connections, {hits} hits of 1 MiB read in {t_read:.1f} s, {alive} still open after 3 s idle; "
        f"RssAnon before {mib(base):.1f} MiB, peak {mib(peak):.1f} MiB (while reading {mib(idle_peak_before):.1f}), "
        f"idle {mib(idle_level):.1f} MiB")
    edge.stop()
    origin.stop()
    ok = peak < IDLE_TARGET_MIB * 1024 and hits == n_conn
    return [row("idle: 1,000 keep-alive conns, 10 GiB cache", f"< {IDLE_TARGET_MIB} MiB RssAnon", f"{mib(peak):.1f} MiB peak", ok,
                "bench/scale.sh idle",
                f"fill {n_obj} x 1 MiB at {fill['fills_per_s']:.0f} fills/s ({fill['fills_per_s'] * MiB / 1e6:.0f} MB/s), "
                f"store {m['cdn_edge_store_bytes'] / GiB:.2f} GiB, peak RssAnon during the fill {mib(fill_rss.peak):.1f} MiB; "
                f"RssAnon {mib(base):.1f} MiB before the connections, {mib(idle_level):.1f} MiB with {alive} idle; "
                f"{hits}/{n_conn} hits")]


def run_slow(args, work):
    n_clients, rate, seconds, size = 50, MiB, 20, GiB
    origin = Origin(work)
    edge = Edge(args.edge, work, "edge-slow", origin.port, "4GiB", max_object_size="2GiB")
    edge.start()
    target = f"/o/big?len={size}"
    t0 = time.perf_counter()
    with RssSampler(edge.proc.pid, 0.1) as fill_rss:
        st, headers, n = http_get(edge.port, target, timeout=120)
        edge.wait_objects(1, 60)
    fill_s = time.perf_counter() - t0
    log(f"slow: 1 GiB filled in {fill_s:.1f} s ({headers.get('cache-status')}), peak RssAnon during the fill "
        f"{mib(fill_rss.peak):.1f} MiB")
    time.sleep(0.5)
    base = edge.rss()

    results = [None] * n_clients
    start_evt = threading.Event()

    def client(i):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        got, hit = 0, False
        try:
            s.connect(("127.0.0.1", edge.port))
            s.settimeout(10)
            start_evt.wait()
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{edge.port}\r\n\r\n".encode())
            status, h, rest = read_head(s, b"")
            hit = status == 200 and is_hit(h)
            got = len(rest)
            c0 = time.perf_counter()
            end = c0 + seconds
            while True:
                now = time.perf_counter()
                if now >= end:
                    break
                ahead = got - rate * (now - c0)
                if ahead > 0:
                    time.sleep(min(ahead / rate, end - now))
                    continue
                d = s.recv(16384)
                if not d:
                    break
                got += len(d)
        except OSError as e:
            log(f"  client {i}: {e}")
        finally:
            s.close()
        results[i] = (got, hit)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n_clients)]
    for t in threads:
        t.start()
    with RssSampler(edge.proc.pid, 0.1) as rss:
        start_evt.set()
        for t in threads:
            t.join(seconds + 30)
    edge.stop()
    origin.stop()
    samples = [(t, k) for t, k in rss.samples if t <= seconds]
    ks = [k for _, k in samples]
    early = [k for t, k in samples if 2 <= t < 7]
    late = [k for t, k in samples if t >= seconds - 5]
    trend = mib(sum(late) / len(late) - sum(early) / len(early))
    growth = mib(max(ks) - base)
    done = [r for r in results if r]
    got_mib = [r[0] / MiB for r in done]
    hits = sum(1 for r in done if r[1])
    log(f"  RssAnon before {mib(base):.1f} MiB; during: min {mib(min(ks)):.1f} max {mib(max(ks)):.1f} MiB, peak growth "
        f"{growth:.1f} MiB, trend (last 5 s - 2..7 s) {trend:+.2f} MiB; {len(ks)} samples; clients read "
        f"{min(got_mib):.1f}..{max(got_mib):.1f} MiB each, {hits} hits")
    ok = trend <= FLAT_TREND_MIB and growth <= FLAT_PEAK_MIB and hits == n_clients and min(got_mib) >= 0.9 * seconds * rate / MiB
    return [row("slow: 50 readers of a 1 GiB hit at 1 MiB/s", f"flat (trend <= {FLAT_TREND_MIB} MiB, peak growth <= "
                f"{FLAT_PEAK_MIB} MiB)", f"{mib(min(ks)):.1f}..{mib(max(ks)):.1f} MiB, +{growth:.1f} MiB, trend {trend:+.2f}",
                ok, "bench/scale.sh slow",
                f"1 GiB fill took {fill_s:.1f} s (peak RssAnon {mib(fill_rss.peak):.1f} MiB); RssAnon {mib(base):.1f} MiB "
                f"before the readers; each read {min(got_mib):.1f}..{max(got_mib):.1f} MiB in {seconds} s; {hits}/{n_clients} hits")]


def run_miss(args, work):
    n, size = 10_000, 16 * 1024
    origin = Origin(work)
    edge = Edge(args.edge, work, "edge-miss", origin.port, "2GiB")
    edge.start()
    log(f"miss: {n} distinct objects of 16 KiB, 64 connections")
    c_edge, c_origin, busy0 = cpu_s(edge.proc.pid), cpu_s(origin.proc.pid), cpu_busy()
    t0 = time.perf_counter()
    with RssSampler(edge.proc.pid, 0.05) as rss:
        fill = wrk_fill(work, edge.port, "/o/", n, size, 64, 120)
        t_served = time.perf_counter() - t0
        c_edge, c_origin, busy1 = cpu_s(edge.proc.pid) - c_edge, cpu_s(origin.proc.pid) - c_origin, cpu_busy()
        m = edge.wait_objects(n, 60)
    t_committed = time.perf_counter() - t0
    ost = origin.stats()
    cpu = (f"CPU during the run: edge {100 * c_edge / t_served:.0f}% (of CPU 0), origin {100 * c_origin / t_served:.0f}% "
           f"(of CPU 1, shared with wrk); CPU {SERVER_CPU} busy {busy_pct(busy0, busy1, int(SERVER_CPU)):.0f}%, "
           f"CPU {CLIENT_CPU} busy {busy_pct(busy0, busy1, int(CLIENT_CPU)):.0f}%")
    log("  " + cpu)
    log(f"  {fill['fills_per_s']:.0f} fills/s, p50 {fill['p50_ms']:.2f} ms, p99 {fill['p99_ms']:.2f} ms, max "
        f"{fill['max_ms']:.1f} ms, errors {fill['errors']}; origin {ost}; store {m['cdn_edge_store_objects']:.0f} objects; "
        f"peak RssAnon {mib(rss.peak):.1f} MiB")
    edge.stop()
    origin.stop()
    ok = ost["requests"] == n and ost["repeated"] == 0 and fill["errors"] == 0
    return [row("miss: 10,000 x 16 KiB, 64 clients", "origin requests = 10,000",
                f"{ost['requests']} origin requests, {fill['fills_per_s']:.0f} fills/s, p50 {fill['p50_ms']:.2f} ms, "
                f"p99 {fill['p99_ms']:.2f} ms", ok, "bench/scale.sh miss",
                f"{ost['repeated']} repeated origin targets; errors {fill['errors']}; max latency {fill['max_ms']:.1f} ms; "
                f"all 10,000 in the store {t_committed:.1f} s after the start; {cpu}; peak RssAnon {mib(rss.peak):.1f} MiB; "
                f"`wrk {' '.join(fill['argv'][4:9])} -s distinct.lua URL -- /o/ {n} {size}` (the Lua script is in scale.py)")]


def h2load_times(url, conns, logpath):
    """h2load --h1 with `conns` clients, one request each. @return (per-request ms list, total s, failed, argv)"""
    argv = ["taskset", "-c", CLIENT_CPU, "h2load", "--h1", "-t1", f"-c{conns}", f"-n{conns}", f"--log-file={logpath}", url]
    log("  $ " + " ".join(argv))
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120).stdout
    fin = re.search(r"finished in ([\d.]+)(ms|s)", out)
    st = H2LOAD_STATUS.search(out)
    if fin is None or st is None:
        raise SystemExit(f"h2load failed on {url}:\n{out}")
    times = [us / 1000.0 for us in h2load_latencies_us(logpath)]
    total = float(fin.group(1)) / (1000.0 if fin.group(2) == "ms" else 1.0)
    ttfb = re.search(r"time to 1st byte:\s+\S+\s+(\S+)", out)  # the max column (from the connect)
    return times, total, conns - int(st.group(1)), argv, sc_to_ms(ttfb.group(1)) if ttfb else float("nan")


def sc_to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)] if m else float("nan")


def run_coalesce(args, work):
    n, size, delay = 200, MiB, 500
    origin = Origin(work)
    edge = Edge(args.edge, work, "edge-coalesce", origin.port, "1GiB")
    edge.start()
    lp = os.path.join(work, "h2load.log")
    otimes, ototal, ofail, _, _ = h2load_times(f"http://127.0.0.1:{origin.port}/direct/x?len={size}&delay_ms={delay}", 1, lp)
    origin_ms = otimes[0] if otimes else float("nan")
    before = origin.stats()["requests"]
    times, total, failed, argv, ttfb = h2load_times(f"http://127.0.0.1:{edge.port}/o/cold?len={size}&delay_ms={delay}", n, lp)
    fetches = origin.stats()["requests"] - before
    # the same clients again, now on a hit: what delivering 200 MiB at once costs without any origin wait
    htimes, htotal, hfailed, _, _ = h2load_times(f"http://127.0.0.1:{edge.port}/o/cold?len={size}&delay_ms={delay}", n, lp)
    hmax = max(htimes) if htimes else float("nan")
    edge.stop()
    origin.stop()
    mx = max(times) if times else float("nan")
    times.sort()
    log(f"coalesce: origin alone {origin_ms:.1f} ms; {len(times)} of {n} clients done, fastest {times[0]:.1f} ms, "
        f"median {times[len(times) // 2]:.1f} ms, slowest {mx:.1f} ms, max time to first byte {ttfb:.1f} ms; h2load "
        f"total {total * 1000:.0f} ms; origin fetches {fetches}; the same 200 clients on the hit: slowest {hmax:.1f} ms, "
        f"failed {hfailed}")
    ok = failed == 0 and len(times) == n and mx <= origin_ms + COALESCE_SLACK_MS and fetches == 1
    # delivering 200 x 1 MiB takes time of its own, measured on the hit: what the miss adds beyond origin + that
    ok_adj = failed == 0 and len(times) == n and mx <= origin_ms + hmax + COALESCE_SLACK_MS and fetches == 1
    note = (f"{fetches} origin fetch(es); max time to first byte {ttfb:.1f} ms (from the connect); fastest client "
            f"{times[0]:.1f} ms, median {times[len(times) // 2]:.1f} ms; failed {failed}; whole h2load run "
            f"{total * 1000:.0f} ms (connects included); `{' '.join(argv[3:-2])} URL`")
    return [row("coalesce: 200 clients, one cold 1 MiB object, 500 ms origin", f"max <= origin + {COALESCE_SLACK_MS} ms",
                f"max {mx:.1f} ms, origin {origin_ms:.1f} ms", ok, "bench/scale.sh coalesce", note),
            row("coalesce, less delivery (the same 200 clients on the hit)",
                f"max <= origin + hit + {COALESCE_SLACK_MS} ms", f"max {mx:.1f} ms, origin {origin_ms:.1f} ms, "
                f"hit {hmax:.1f} ms", ok_adj, "bench/scale.sh coalesce",
                "the second h2load run, once the object is cached, measures what sending 200 MiB at once costs here")]


TESTS = {"restart": run_restart, "idle": run_idle, "slow": run_slow, "miss": run_miss, "coalesce": run_coalesce}


def print_results(rows, markdown):
    header = ["target", "goal", "measured", "result"]
    print_table(header, [[r["test"], r["target"], r["measured"], r["result"]] for r in rows], markdown)
    print()
    for r in rows:
        print(f"- {r['test']}: `{r['command']}`" + (f"\n  {r['note']}" if r["note"] else ""))


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "origin":
        ap = argparse.ArgumentParser()
        ap.add_argument("origin")
        ap.add_argument("--port-file", required=True)
        origin_main(ap.parse_args().port_file)
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tests", nargs="*", default=["all"], help="all (default), or some of: " + ", ".join(TESTS))
    ap.add_argument("--edge", default=os.environ.get("CDN_EDGE", "build/edge/cdn-edge"), help="the cdn-edge binary")
    ap.add_argument("--restart-objects", type=int, default=1_000_000, help="objects stored before the restart")
    ap.add_argument("--restart-round", type=int, default=100_000,
                    help="fill in rounds of this many, each committed before the next (0: one burst)")
    ap.add_argument("--idle-objects", type=int, default=10_000, help="1 MiB objects filled before the idle test")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (caches, logs)")
    args = ap.parse_args()
    names = list(TESTS) if args.tests == ["all"] else args.tests
    for t in names:
        if t not in TESTS:
            raise SystemExit(f"unknown test {t}: use all, " + ", ".join(TESTS))
    if not os.access(args.edge, os.X_OK):
        raise SystemExit(f"not found: {args.edge} (build first, or give --edge)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 8192 <= hard or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1,000 client sockets here; the edge inherits it
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2200:
        log("warning: RLIMIT_NOFILE below 2200: the idle test needs 1,000 sockets on each side")

    work = tempfile.mkdtemp(prefix="cdn-scale.")
    rows = []
    t0 = time.time()
    try:
        for t in names:
            ts = time.time()
            try:
                rows += TESTS[t](args, work)
            except (SystemExit, OSError, subprocess.SubprocessError, ValueError) as e:
                if isinstance(e, SystemExit) and not isinstance(e.code, str):
                    raise
                log(f"{t}: error: {e}")
                rows.append(row(t, "-", f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", False,
                                f"bench/scale.sh {t}"))
            finally:
                stop_all()  # what a failed test left running
            log(f"[{time.time() - t0:5.0f}s] {t} done in {time.time() - ts:.0f} s")
    finally:
        stop_all()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print_results(rows, args.markdown)
    print(f"# edge {args.edge} (workers: 1) on CPU {SERVER_CPU}; load and origin on CPU {CLIENT_CPU}; "
          f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
