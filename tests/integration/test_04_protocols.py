"""Protocols: h2c with prior knowledge, TLS + ALPN h2, TLS HTTP/1.1 (curl, nghttp, Python ssl)."""

import hashlib
import shutil
import subprocess
import unittest

import harness
from harness import EdgeTestCase, curl, http_request, parse_sf_list, url


class Protocols(EdgeTestCase):
    def setUp(self):
        super().setUp()
        for tool in ("curl", "nghttp"):
            self.assertIsNotNone(shutil.which(tool), "%s is not installed (.ci/run installs it)" % tool)
        self.start_edge()

    def plain(self, t):
        return "http://127.0.0.1:%d%s" % (self.edge.port, t)

    def tls(self, t):
        return "https://127.0.0.1:%d%s" % (self.edge.tls_port, t)

    def test_h2c_prior_knowledge_miss_then_hit(self):
        t = url("/r/h2c", cc="max-age=60")
        r1 = curl(self.plain(t), ["--http2-prior-knowledge"])
        self.assertTrue(r1.complete, r1.error)
        self.assertEqual((r1.version, r1.status), ("2", 200))
        self.assertStored(r1)
        r2 = curl(self.plain(t), ["--http2-prior-knowledge"])
        self.assertEqual((r2.version, r2.status), ("2", 200))
        self.assertHit(r2)
        self.assertEqual(r2.body, r1.body)
        self.assertBodyN(r2, 1)
        self.assertEqual(self.origin.count(t), 1)

    def test_h1_fill_serves_h2c_hit(self):
        t = url("/r/cross", cc="max-age=60")
        self.assertStored(self.get(t))
        r = curl(self.plain(t), ["--http2-prior-knowledge"])
        self.assertEqual(r.version, "2")
        self.assertHit(r)
        self.assertBodyN(r, 1)
        self.assertEqual(self.origin.count(t), 1)

    def test_tls_h2_miss_then_hit(self):
        t = url("/r/tls-h2", cc="max-age=60")
        r1 = curl(self.tls(t), ["-k", "--http2"])
        self.assertTrue(r1.complete, r1.error)
        self.assertEqual((r1.version, r1.status), ("2", 200))
        self.assertStored(r1)
        r2 = curl(self.tls(t), ["-k", "--http2"])
        self.assertEqual((r2.version, r2.status), ("2", 200))
        self.assertHit(r2)
        self.assertBodyN(r2, 1)
        self.assertEqual(self.origin.count(t), 1)

    def test_tls_http11(self):
        t = url("/r/tls-h1", cc="max-age=60")
        r1 = curl(self.tls(t), ["-k", "--http1.1"])
        self.assertTrue(r1.complete, r1.error)
        self.assertEqual((r1.version, r1.status), ("1.1", 200))
        self.assertStored(r1)
        r2 = http_request(self.edge.tls_port, "GET", t, tls=True)
        self.assertHit(r2)
        self.assertBodyN(r2, 1)
        self.assertEqual(self.origin.count(t), 1)

    def test_h2_large_body_intact(self):
        # several flow-control windows (65535 bytes initial) on both the miss and the hit
        size = 5 * (1 << 20) + 321
        t = url("/big/h2", size=size, cc="max-age=60")
        expected = harness.origin_server.big_body_sha256(size)
        for i, mode in enumerate(["miss", "hit"]):
            r = curl(self.tls(t), ["-k", "--http2"])
            self.assertTrue(r.complete, r.error)
            self.assertEqual(r.version, "2")
            self.assertEqual(len(r.body), size, mode)
            self.assertEqual(hashlib.sha256(r.body).hexdigest(), expected, mode)
            (self.assertStored if mode == "miss" else self.assertHit)(r)
        self.assertEqual(self.origin.count(t), 1)

    def test_h2c_post_passes_body(self):
        t = url("/r/h2-post", cc="max-age=60")
        payload = b"0123456789" * 10000
        r = curl(self.plain(t), ["--http2-prior-knowledge", "-H", "Content-Type: application/octet-stream"],
                 data=payload)
        self.assertEqual((r.version, r.status), ("2", 200))
        self.assertEqual(r.edge_status().get("fwd"), "method")
        req = self.origin.last(t)
        self.assertEqual((req.method, req.body), ("POST", payload))

    def test_h2_head(self):
        t = url("/r/h2-head", cc="max-age=60", len=777)
        r = curl(self.tls(t), ["-k", "--http2", "-I"])  # (-I writes the head into the output file)
        self.assertTrue(r.complete, r.error)
        self.assertEqual((r.version, r.status), ("2", 200))
        self.assertEqual(r.header("content-length"), "777")
        self.assertEqual(self.origin.last(t).method, "GET")
        r = curl(self.tls(t), ["-k", "--http2"])
        self.assertHit(r)
        self.assertEqual(len(r.body), 777)

    def test_nghttp_tls(self):
        t = url("/r/nghttp", cc="max-age=60")
        for expect_hit in (False, True):
            p = subprocess.run(["nghttp", "-nv", "-t", str(int(20 * harness.SLOWDOWN)), self.tls(t)],
                               capture_output=True, timeout=40 * harness.SLOWDOWN)
            out = p.stdout.decode("utf-8", "replace")
            self.assertEqual(p.returncode, 0, out + p.stderr.decode())
            self.assertIn("h2", out)  # ALPN negotiated h2
            status = [l for l in out.splitlines() if "recv (stream_id=" in l and ":status:" in l]
            self.assertTrue(status and status[0].rstrip().endswith(":status: 200"), out)
            cs = [l.split("cache-status:", 1)[1].strip() for l in out.splitlines() if "cache-status:" in l]
            self.assertTrue(cs, out)
            params = parse_sf_list(cs[0])[-1].params
            if expect_hit:
                self.assertIs(params.get("hit"), True, cs)
            else:
                self.assertIs(params.get("stored"), True, cs)
        self.assertEqual(self.origin.count(t), 1)

    def test_h2c_multiplexed_streams(self):
        # one connection, several streams at once: curl --parallel multiplexes on one h2 connection
        targets = [url("/r/mux%d" % i, cc="max-age=60") for i in range(6)]
        args = ["curl", "-sS", "--http2-prior-knowledge", "--parallel", "--parallel-immediate",
                "--max-time", str(int(20 * harness.SLOWDOWN)), "-w", "%{http_code} %{http_version}\\n"]
        for t in targets:
            args += ["-o", "/dev/null", self.plain(t)]
        p = subprocess.run(args, capture_output=True, timeout=40 * harness.SLOWDOWN)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.decode().split(), ["200", "2"] * 6)
        for t in targets:
            self.assertEqual(self.origin.count(t), 1)


if __name__ == "__main__":
    unittest.main()
