"""Purge propagation over a Redis stream: a real redis-server (127.0.0.1, a free port, no persistence, its own temp
dir, stopped by PID) and several real edges on the same stream.

A purge issued on one node reaches the others; a node that was stopped replays it before it serves; while Redis is
down the nodes keep serving, say so (healthz, cdn_edge_purge_stream_up) and refuse purges with 503 (nothing applied);
when Redis returns they reconnect.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import time
import unittest

from harness import ADMIN_TOKEN, SLOWDOWN, EdgeTestCase, http_request, url, wait_for

AUTH = {"Authorization": "Bearer " + ADMIN_TOKEN, "Content-Type": "application/json"}
HOST = "s.example"  # every edge keys the same URL the same way whatever its port


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """One redis-server process of ours."""

    def __init__(self, workdir, port=None):
        self.dir = os.path.join(workdir, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.proc = None

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self):
        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError("redis-server not installed (.ci/install-deps installs it)")
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.dir, "--daemonize", "no"],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for(self.ping, 10 * SLOWDOWN, what="redis-server to answer PING")
        return self

    def command(self, *args):
        """One command (RESP array of bulk strings); returns the raw reply line."""
        req = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5 * SLOWDOWN) as s:
            s.sendall(req)
            return s.recv(4096)

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.log.close()


class StreamCase(EdgeTestCase):
    def setUp(self):
        super().setUp()
        self.redis = Redis(self.tmp).start()
        self.addCleanup(self.redis.stop)  # runs before the edges stop: they must not mind

    def node(self, name, start=True):
        d = os.path.join(self.tmp, name)
        os.makedirs(d, exist_ok=True)
        e = self.make_edge({"purge": {"redis": "redis://127.0.0.1:%d" % self.redis.port, "stream": "it-purge",
                                      "catchup_timeout": "10s", "timeout": "5s"}}, workdir=d)
        return e.start() if start else e

    def purge(self, edge, body):
        return http_request(edge.admin_port, "POST", "/purge", headers=AUTH, body=json.dumps(body))

    def get(self, edge, target):
        return http_request(edge.port, "GET", target, headers={"Host": HOST})

    def fill(self, edge, *targets):
        for t in targets:
            self.assertEqual(self.get(edge, t).status, 200)
            self.assertHit(self.get(edge, t))

    def is_miss(self, edge, target):
        return self.get(edge, target).edge_status().get("fwd") == "miss"

    def assertHitNow(self, edge, target):
        self.assertHit(self.get(edge, target))

    def assertMissNow(self, edge, target):
        r = self.get(edge, target)
        self.assertEqual(r.edge_status().get("fwd"), "miss", r)

    def healthz(self, edge):
        return http_request(edge.admin_port, "GET", "/healthz")


class StreamPropagation(StreamCase):
    def test_purge_reaches_every_node_even_one_that_was_down(self):
        a, b, c = self.node("a"), self.node("b"), self.node("c")
        for e in (a, b, c):
            self.assertIn(b"purge stream: up", self.healthz(e).body)
        gone1, gone2, kept = url("/r/s/1", cc="max-age=600"), url("/r/s/2", cc="max-age=600"), url("/r/k", cc="max-age=600")
        for e in (a, b, c):
            self.fill(e, gone1, gone2, kept)
        c.stop()

        r = self.purge(a, {"prefixes": ["http://%s/r/s/" % HOST]})
        self.assertEqual(r.status, 200, r.body)
        out = json.loads(r.body)
        self.assertRegex(out["id"], r"^\d+-\d+$")
        self.assertEqual(out["prefixes"], 1)
        # the answer came after the local apply
        self.assertMissNow(a, gone1)
        self.assertHitNow(a, kept)
        # another running node applies it from the stream
        wait_for(lambda: b.metrics().get("cdn_edge_purge_stream_applied_total") >= 1, 10 * SLOWDOWN,
                 what="node b to apply the entry")
        self.assertMissNow(b, gone1)
        self.assertMissNow(b, gone2)
        self.assertHitNow(b, kept)
        # the stopped node replays it before it serves: its very first request for them is a miss
        c.start()
        self.assertMissNow(c, gone2)
        self.assertMissNow(c, gone1)
        self.assertHitNow(c, kept)
        m = c.metrics()
        self.assertEqual(m.get("cdn_edge_purge_stream_applied_total"), 1)
        self.assertEqual(m.get("cdn_edge_purges_total", kind="prefix"), 1)
        # a's own entry was applied once, through its consumer
        self.assertEqual(a.metrics().get("cdn_edge_purge_stream_applied_total"), 1)
        self.assertEqual(a.metrics().get("cdn_edge_purge_stream_published_total"), 1)

    def test_a_node_that_missed_trimmed_entries_purges_everything(self):
        a, c = self.node("a"), self.node("c")
        gone, other = url("/r/t/1", cc="max-age=600"), url("/r/t/2", cc="max-age=600")
        for e in (a, c):
            self.fill(e, gone, other)
        c.stop()
        self.assertEqual(self.purge(a, {"urls": ["http://%s%s" % (HOST, gone)]}).status, 200)
        # the entry c never read is trimmed away (as MAXLEN does to a node down for too long); a later one is kept
        self.assertTrue(self.redis.command("XTRIM", "it-purge", "MAXLEN", "0").startswith(b":1"))
        self.assertEqual(self.purge(a, {"urls": ["http://%s/r/t/unrelated" % HOST]}).status, 200)
        c.start()
        # the lost purge is not lost: c cannot know what it named, so nothing it stored before is served
        self.assertMissNow(c, gone)
        self.assertMissNow(c, other)
        m = c.metrics()
        self.assertEqual(m.get("cdn_edge_purge_stream_gaps_total"), 1)
        self.assertEqual(m.get("cdn_edge_purge_stream_applied_total"), 1, "the entry after the gap is applied")
        # the gap is handled once: after a restart what c stored since stays
        self.fill(c, other)
        c.stop()
        c.start()
        self.assertHitNow(c, other)
        self.assertEqual(c.metrics().get("cdn_edge_purge_stream_gaps_total"), 0)
        # a node whose cursor is past every trimmed entry sees no gap
        self.assertHitNow(a, other)
        self.assertEqual(a.metrics().get("cdn_edge_purge_stream_gaps_total"), 0)

    def test_entries_apply_in_order_and_restarts_do_not_reapply(self):
        a, b = self.node("a"), self.node("b")
        t = url("/r/o/1", cc="max-age=600")
        for i in range(3):
            self.fill(a, t)
            self.fill(b, t)
            r = self.purge(a if i % 2 == 0 else b, {"urls": ["http://%s%s" % (HOST, t)]})
            self.assertEqual(r.status, 200, r.body)
            # the other node applies the entry on its own time: a fill it began before that is refused at its
            # commit (by design), so the next round waits for both
            for e in (a, b):
                wait_for(lambda: e.metrics().get("cdn_edge_purge_stream_applied_total") == i + 1, 10 * SLOWDOWN,
                         what="both nodes to apply entry %d" % (i + 1))
        b.stop()
        b.start()
        self.fill(b, t)  # start-up replays before serving: had it replayed anything, it would have been before this
        self.assertHitNow(b, t)
        self.assertEqual(b.metrics().get("cdn_edge_purge_stream_applied_total"), 0)

    def test_purge_method_goes_through_the_stream(self):
        a, b = self.node("a"), self.node("b")
        t = url("/r/pm", cc="max-age=600")
        self.fill(a, t)
        self.fill(b, t)
        r = http_request(a.port, "PURGE", t, headers={"Host": HOST, "Authorization": "Bearer " + ADMIN_TOKEN})
        self.assertEqual(r.status, 200, r)
        self.assertMissNow(a, t)
        wait_for(lambda: self.is_miss(b, t), 10 * SLOWDOWN, what="node b to drop the URL")


class StreamDown(StreamCase):
    def test_redis_down_then_back(self):
        a, b = self.node("a"), self.node("b")
        t, u = url("/r/d/1", cc="max-age=600"), url("/r/d/2", cc="max-age=600")
        self.fill(a, t, u)
        self.fill(b, t, u)
        self.redis.stop()
        for e in (a, b):
            wait_for(lambda: b"purge stream: down" in self.healthz(e).body, 10 * SLOWDOWN, what="healthz to say down")
            self.assertEqual(self.healthz(e).status, 200)
            self.assertEqual(e.metrics().get("cdn_edge_purge_stream_up"), 0)
        r = self.purge(a, {"urls": ["http://%s%s" % (HOST, t)]})
        self.assertEqual(r.status, 503, r)
        self.assertEqual(json.loads(r.body)["error"], "purge stream unavailable")
        # nothing applied anywhere, and both nodes keep serving
        self.assertHitNow(a, t)
        self.assertHitNow(b, t)
        self.assertEqual(a.metrics().get("cdn_edge_purge_requests_total", result="unavailable"), 1)

        self.redis.start()  # same port, empty: entry ids restart from the clock, above every stored cursor
        for e in (a, b):
            wait_for(lambda: b"purge stream: up" in self.healthz(e).body, 20 * SLOWDOWN, what="healthz to say up")
            self.assertEqual(e.metrics().get("cdn_edge_purge_stream_up"), 1)
        r = self.purge(a, {"urls": ["http://%s%s" % (HOST, t)]})
        self.assertEqual(r.status, 200, r.body)
        self.assertMissNow(a, t)
        wait_for(lambda: self.is_miss(b, t), 10 * SLOWDOWN, what="node b to catch up")
        self.assertHitNow(b, u)

    def test_start_while_redis_is_down(self):
        self.redis.stop()
        started = time.monotonic()
        a = self.node("a")  # serves anyway, without waiting out the catch-up timeout
        self.assertLess(time.monotonic() - started, 8 * SLOWDOWN)
        t = url("/r/sd", cc="max-age=600")
        self.fill(a, t)
        self.assertIn(b"purge stream: down", self.healthz(a).body)
        self.redis.start()
        wait_for(lambda: b"purge stream: up" in self.healthz(a).body, 20 * SLOWDOWN, what="the consumer to connect")
        r = self.purge(a, {"urls": ["http://%s%s" % (HOST, t)]})
        self.assertEqual(r.status, 200, r.body)
        self.assertMissNow(a, t)


if __name__ == "__main__":
    unittest.main()
