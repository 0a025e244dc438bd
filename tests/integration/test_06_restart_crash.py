"""The cache survives a restart; a kill -9 in the middle of a fill never leaves a partial object visible."""

import hashlib
import http.client
import time
import unittest

from harness import SLOWDOWN, EdgeTestCase, url, wait_for
from origin_server import big_body_sha256


# The edge listens on port 0, so its port changes across restarts; the cache key holds the Host, so every
# request here names the same site, as real clients do.
HOST = {"Host": "www.example.test"}


class RestartCrash(EdgeTestCase):
    def get(self, target, **kw):
        return super().get(target, headers=HOST, **kw)

    def test_restart_keeps_the_cache(self):
        edge = self.start_edge()
        targets = [url("/r/persist", cc="max-age=600"), url("/r/persist404", cc="max-age=600", status=404),
                   url("/big/persist", cc="max-age=600", size=3 << 20)]
        first = {}
        for t in targets:
            r = self.get(t)
            self.assertStored(r)
            first[t] = r.body
        rc = edge.stop()
        self.assertEqual(rc, 0, "cdn-edge did not exit 0 on SIGTERM")
        edge.start()
        self.assertEqual(edge.ready["pid"], edge.pid)
        for t in targets:
            r = self.get(t)
            self.assertHit(r, "first request after a restart must be a hit: %r" % r)
            self.assertEqual(r.body, first[t])
            self.assertEqual(self.origin.count(t), 1)

    def test_kill9_during_fill_leaves_no_partial_object(self):
        # idle_timeout is long so the fill is still in progress when the edge is killed
        edge = self.start_edge({"origin": {"idle_timeout": "30s"}})
        size = 8 << 20
        sent = 5 << 20
        t = url("/stall-after/crash", size=size, bytes=sent, stall_once=1, cc="max-age=600")
        conn = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=20 * SLOWDOWN)
        self.addCleanup(conn.close)
        conn.request("GET", t, headers=HOST)
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        got = 0
        deadline = time.monotonic() + 20 * SLOWDOWN
        while got < sent and time.monotonic() < deadline:
            c = resp.read1(1 << 16)
            if not c:
                break
            got += len(c)
        self.assertTrue(self.origin.wait_stalled(t, 5))
        self.assertGreaterEqual(got, sent // 2, "the edge streamed too little of the fill to the client")
        time.sleep(0.3)  # let the store's writer commit the chunks it has: the crash must happen mid-fill
        edge.kill9()
        conn.close()

        edge.start()
        r = self.get(t, timeout=30)
        self.assertTrue(r.complete, r)
        self.assertEqual(r.edge_status().get("fwd"), "miss", "a partial fill survived the crash: %r" % r)
        self.assertEqual(self.origin.count(t), 2)
        self.assertEqual(len(r.body), size)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), big_body_sha256(size))
        r = self.get(t, timeout=30)
        self.assertHit(r)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), big_body_sha256(size))
        self.assertEqual(self.origin.count(t), 2)

    def test_kill9_after_fill_keeps_the_object(self):
        # a committed object is durable: kill -9 right after the fill, and it is still a hit
        edge = self.start_edge()
        t = url("/big/durable", cc="max-age=600", size=2 << 20)
        r = self.get(t)
        self.assertStored(r)
        # the object exists once its metadata is committed; wait for the counter that says so
        wait_for(lambda: (edge.metrics().get("cdn_edge_store_objects") or 0) >= 1, 10, 0.05,
                 "cdn_edge_store_objects >= 1")
        edge.kill9()
        edge.start()
        r2 = self.get(t)
        self.assertHit(r2)
        self.assertEqual(r2.body, r.body)
        self.assertEqual(self.origin.count(t), 1)


if __name__ == "__main__":
    unittest.main()
