"""Self-test of the harness and the test origin, without cdn-edge: if these fail, no other result means anything."""

import gzip
import hashlib
import socket
import time
import unittest

import harness
from harness import Token, get, http_request, parse_metrics, parse_sf_list, raw_request, url
from origin_server import Origin, big_body_pieces, big_body_sha256, refused_port


class SFListParser(unittest.TestCase):
    def test_cache_status_members(self):
        items = parse_sf_list('upstream; hit, "str"; a=1, cdn-edge; fwd=miss; stored; ttl=-3; d=1.5; b=?0')
        self.assertEqual([i.value for i in items], ["upstream", "str", "cdn-edge"])
        self.assertIsInstance(items[0].value, Token)
        self.assertNotIsInstance(items[1].value, Token)
        self.assertEqual(items[0].params, {"hit": True})
        self.assertEqual(items[2].params, {"fwd": "miss", "stored": True, "ttl": -3, "d": 1.5, "b": False})
        self.assertIsInstance(items[2].params["fwd"], Token)

    def test_detail_string_and_inner_list(self):
        items = parse_sf_list('cdn-edge;fwd=miss;detail="no-store" ,  (a b);x, :aGk=:')
        self.assertEqual(items[0].params["detail"], "no-store")
        self.assertEqual([i.value for i in items[1].value], ["a", "b"])
        self.assertEqual(items[1].params, {"x": True})
        self.assertEqual(items[2].value, b"hi")

    def test_empty_and_malformed(self):
        self.assertEqual(parse_sf_list(""), [])
        for bad in ["a,", "a;", "a b", '"unterminated', "a;B=1", "1234567890123456", "?2", "a;x=@", ",a"]:
            with self.assertRaises(harness.SFError, msg=bad):
                parse_sf_list(bad)


class MetricsParser(unittest.TestCase):
    def test_parse(self):
        m = parse_metrics('# HELP x_total things\n# TYPE x_total counter\nx_total{cache="hit"} 3\n'
                          'x_total{cache="miss",b="q\\"z"} 4.5\nplain 7 1700000000\n\n')
        self.assertEqual(m.get("x_total", cache="hit"), 3)
        self.assertEqual(m.get("x_total", cache="miss", b='q"z'), 4.5)
        self.assertEqual(m.get("plain"), 7)
        self.assertIsNone(m.get("x_total"))
        self.assertEqual(m.types["x_total"], "counter")

    def test_malformed(self):
        for bad in ["x_total{cache=hit} 1", "x_total abc", "1x 2", 'x{a="1"} 1\nx{a="1"} 2']:
            with self.assertRaises(ValueError, msg=bad):
                parse_metrics(bad)


class YamlAndConfig(unittest.TestCase):
    def test_emit(self):
        cfg = harness.merge(harness.default_config("http://127.0.0.1:9"),
                            {"cache": {"max_size": "2GiB"}, "access_log": None, "workers": 1})
        text = harness.to_yaml(cfg)
        self.assertIn("listen:\n  - address: 127.0.0.1:0\n  - address: 127.0.0.1:0\n    tls:\n", text)
        self.assertIn("      self_signed: true\n", text)
        self.assertIn("  max_size: 2GiB\n", text)
        self.assertIn("  token: t0k\n", text)
        self.assertIn("workers: 1\n", text)
        self.assertNotIn("access_log", text)
        self.assertEqual(harness._yaml_scalar("on"), '"on"')
        self.assertEqual(harness._yaml_scalar("a b"), '"a b"')


class TestOrigin(unittest.TestCase):
    def setUp(self):
        self.o = Origin().start()
        self.addCleanup(self.o.stop)

    def test_numbering_and_headers(self):
        t = url("/r/a", cc="public, max-age=60", setcookie=1, vary="Origin", age=5, cs="up; hit",
                hdr=["X-A: 1", "X-B: 2"])
        r1 = get(self.o.port, t, headers={"X-Test": "yes"})
        r2 = get(self.o.port, t)
        self.assertEqual((r1.status, r2.status), (200, 200))
        self.assertTrue(r1.body.startswith(b"n=1;") and r2.body.startswith(b"n=2;"))
        self.assertEqual(r1.header("cache-control"), "public, max-age=60")
        self.assertEqual(r1.header("set-cookie"), "a=b; Path=/")
        self.assertEqual((r1.header("vary"), r1.header("age"), r1.header("x-a"), r1.header("x-b")),
                         ("Origin", "5", "1", "2"))
        self.assertEqual(r1.cache_status()[0].params, {"hit": True})
        self.assertEqual(self.o.count(t), 2)
        self.assertEqual(self.o.count_path("/r/a"), 2)
        self.assertEqual(self.o.last(t).header("x-test"), None)
        self.assertEqual(self.o.requests[0].header("x-test"), "yes")

    def test_status_len_gzip_expires_post(self):
        r = get(self.o.port, url("/r/b", status=404, len=5000))
        self.assertEqual((r.status, len(r.body)), (404, 5000))
        r = get(self.o.port, url("/r/c", status=204))
        self.assertEqual((r.status, r.body), (204, b""))
        r = get(self.o.port, url("/r/c", status=301))
        self.assertEqual(r.header("location"), "/r/elsewhere")
        r = get(self.o.port, url("/r/d", ce="gzip"))
        self.assertEqual(r.header("content-encoding"), "gzip")
        self.assertTrue(gzip.decompress(r.body).startswith(b"n=1;"))
        r = get(self.o.port, url("/r/e", expires=60))
        self.assertIn("GMT", r.header("expires"))
        r = http_request(self.o.port, "POST", "/r/post", body=b"payload=1")
        self.assertEqual(self.o.last("/r/post").body, b"payload=1")
        self.assertEqual(self.o.last("/r/post").method, "POST")

    def test_head_has_no_body(self):
        raw = raw_request(self.o.port, b"HEAD /r/h?len=100 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, _, rest = raw.partition(b"\r\n\r\n")
        self.assertIn(b"Content-Length: 100", head)
        self.assertEqual(rest, b"")

    def test_keep_alive(self):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.o.port, timeout=5)
        for i in range(3):
            c.request("GET", "/r/k")
            self.assertTrue(c.getresponse().read().startswith(b"n=%d;" % (i + 1)))
        c.close()
        self.assertEqual(self.o.connections, 1)

    def test_chunked_and_truncations(self):
        r = get(self.o.port, url("/chunked/x", len=50000))
        self.assertTrue(r.complete)
        self.assertEqual(r.header("transfer-encoding"), "chunked")
        self.assertEqual(len(r.body), 50000)
        r = get(self.o.port, "/truncate/length/x")
        self.assertFalse(r.complete)
        self.assertEqual(len(r.body), 500)
        r = get(self.o.port, "/truncate/chunked/x")
        self.assertFalse(r.complete)
        r = get(self.o.port, url("/truncate/close/x", len=3000))
        self.assertTrue(r.complete)
        self.assertEqual(len(r.body), 3000)
        self.assertIsNone(r.header("content-length"))

    def test_slow_silent_stall(self):
        t0 = time.monotonic()
        get(self.o.port, url("/slow/x", delay_ms=300))
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        with self.assertRaises(socket.timeout):
            get(self.o.port, "/silent/x", timeout=0.5)
        t = url("/stall-after/x", size=100000, bytes=30000, stall_once=1)
        r = get(self.o.port, t, timeout=0.5)
        self.assertFalse(r.complete)
        self.assertEqual(len(r.body), 30000)
        self.assertTrue(self.o.wait_stalled(t, 1))
        r = get(self.o.port, t)
        self.assertTrue(r.complete)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), self.o.sent_sha256[t])
        self.assertEqual(r.body, b"".join(big_body_pieces(100000)))

    def test_big(self):
        size = 3 * (1 << 20) + 12345
        r = get(self.o.port, url("/big/x", size=size))
        self.assertEqual(len(r.body), size)
        digest = hashlib.sha256(r.body).hexdigest()
        self.assertEqual(digest, big_body_sha256(size))
        self.assertEqual(digest, self.o.sent_sha256[url("/big/x", size=size)])
        # pieces differ, so a repeated piece would change the hash
        p = list(big_body_pieces(2 << 20))
        self.assertNotEqual(p[0], p[1])

    def test_refused_port(self):
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", refused_port()), timeout=2)


if __name__ == "__main__":
    unittest.main()
