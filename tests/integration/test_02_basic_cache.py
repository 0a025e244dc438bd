"""Basic caching over HTTP/1.1: miss then hit, Age, HEAD, keys, forwarded headers, unsafe methods pass."""

import http.client
import time
import unittest

from harness import SLOWDOWN, EdgeTestCase, raw_request, url, wait_for


class BasicCache(EdgeTestCase):
    def setUp(self):
        super().setUp()
        self.start_edge()

    def test_miss_then_hit(self):
        t = url("/r/a", cc="max-age=60")
        r1 = self.get(t)
        self.assertEqual(r1.status, 200)
        self.assertStored(r1)
        self.assertEqual(r1.age(), 0)
        self.assertBodyN(r1, 1)
        r2 = self.get(t)
        self.assertEqual(r2.status, 200)
        self.assertHit(r2)
        self.assertBodyN(r2, 1)
        self.assertEqual(r2.body, r1.body)
        self.assertEqual(r2.header("content-type"), "text/plain")
        self.assertIsNotNone(r2.age())
        ttl = r2.edge_status()["ttl"]
        self.assertTrue(0 < ttl <= 60, ttl)
        self.assertEqual(self.origin.count(t), 1)

    def test_age_grows_and_ttl_shrinks(self):
        t = url("/r/age", cc="max-age=100")
        self.assertStored(self.get(t))
        time.sleep(2.2)  # Age has a one-second resolution: time must pass for it to grow
        r = self.get(t)
        self.assertHit(r)
        self.assertGreaterEqual(r.age(), 2)
        self.assertLessEqual(r.age(), 10)
        self.assertLessEqual(r.edge_status()["ttl"], 100 - 2)
        self.assertEqual(self.origin.count(t), 1)

    def test_s_maxage_and_expires_give_lifetime(self):
        for t in (url("/r/smax", cc="s-maxage=60"), url("/r/exp", expires=60)):
            with self.subTest(t):
                self.assertStored(self.get(t))
                r = self.get(t)
                self.assertHit(r)
                self.assertBodyN(r, 1)
                self.assertEqual(self.origin.count(t), 1)

    def test_query_and_path_are_part_of_the_key(self):
        a = url("/r/k", cc="max-age=60", x=1)
        b = url("/r/k", cc="max-age=60", x=2)
        c = url("/r/k2", cc="max-age=60", x=1)
        for t in (a, b, c):
            self.assertStored(self.get(t))
        for t in (a, b, c):
            self.assertHit(self.get(t))
            self.assertEqual(self.origin.count(t), 1)

    def test_keep_alive_client(self):
        t = url("/r/ka", cc="max-age=60")
        conn = http.client.HTTPConnection("127.0.0.1", self.edge.port, timeout=10)
        self.addCleanup(conn.close)
        bodies = []
        for _ in range(4):
            conn.request("GET", t)
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            bodies.append(resp.read())
        self.assertEqual(len(set(bodies)), 1)
        self.assertEqual(self.origin.count(t), 1)

    def test_head_miss_fills_with_get(self):
        t = url("/r/head", cc="max-age=60", len=1234)
        raw = raw_request(self.edge.port, ("HEAD %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n"
                                           % (t, self.edge.port)).encode())
        head, sep, rest = raw.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        self.assertEqual(rest, b"", "a HEAD response carried a body")
        self.assertEqual(self.origin.count(t), 1)
        self.assertEqual(self.origin.last(t).method, "GET")
        # the fill goes on without its HEAD client; a request in the few ms before its body is in is served
        # from the fill (collapsed), after that it is a hit
        r = wait_for(lambda: (lambda r: r if r.edge_status().get("hit") is True else None)(self.request("HEAD", t)),
                     5 * SLOWDOWN, what="a HEAD hit")
        self.assertEqual(r.body, b"")
        r = self.get(t)
        self.assertHit(r)
        self.assertEqual(len(r.body), 1234)
        self.assertBodyN(r, 1)
        self.assertEqual(self.origin.count(t), 1)
        raw = raw_request(self.edge.port, ("HEAD %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n"
                                           % (t, self.edge.port)).encode())
        self.assertEqual(raw.partition(b"\r\n\r\n")[2], b"", "a HEAD hit carried a body")

    def test_one_date_header_and_hop_by_hop_dropped(self):
        # the origin sends its own Date; h2o writes one: the client must see exactly one
        t = url("/r/date", cc="max-age=60")
        for r in (self.get(t), self.get(t), self.request("POST", t, body=b"x")):
            self.assertEqual(r.header_count("date"), 1, r)
            self.assertEqual(r.header_count("keep-alive"), 0, r)
            self.assertEqual(r.header_count("cache-status"), 1, r)

    def test_forwarded_request_headers(self):
        t = url("/r/fwd", cc="max-age=60")
        self.get(t, headers={"Accept-Encoding": "gzip, br", "X-Custom": "kept"})
        req = self.origin.last(t)
        self.assertEqual(req.method, "GET")
        # the edge's own choice, not the client's: gzip, which it decodes to store (test_17_origin_gzip)
        self.assertEqual(req.header("accept-encoding"), "gzip")
        self.assertIn("127.0.0.1", req.header("x-forwarded-for") or "")
        self.assertTrue(req.header("via"), "no Via header forwarded")
        self.assertEqual(req.header("x-custom"), "kept")

    def test_post_passes_with_body(self):
        t = url("/r/post", cc="max-age=60")
        payload = bytes(range(256)) * 40
        r = self.request("POST", t, body=payload, headers={"Content-Type": "application/octet-stream"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.edge_status().get("fwd"), "method")
        self.assertNotIn("stored", r.edge_status())
        req = self.origin.last(t)
        self.assertEqual((req.method, req.body), ("POST", payload))
        # the POST response was not stored: a GET is a miss
        r = self.get(t)
        self.assertStored(r)
        self.assertBodyN(r, 2)
        self.assertEqual(self.origin.count(t), 2)

    def test_other_unsafe_methods_pass(self):
        for method in ("PUT", "DELETE", "PATCH"):
            with self.subTest(method):
                t = url("/r/m-" + method.lower(), cc="max-age=60")
                r1 = self.request(method, t, body=b"x" if method != "DELETE" else None)
                r2 = self.request(method, t, body=b"x" if method != "DELETE" else None)
                for r in (r1, r2):
                    self.assertEqual(r.status, 200)
                    self.assertEqual(r.edge_status().get("fwd"), "method")
                self.assertEqual(self.origin.count(t), 2)
                self.assertEqual(self.origin.last(t).method, method)

    def test_passed_response_keeps_origin_age(self):
        t = url("/r/pass-age", cc="no-store", age=5)
        r = self.get(t)
        self.assertNotStored(r, "no-store")
        self.assertEqual(r.age(), 5)


if __name__ == "__main__":
    unittest.main()
