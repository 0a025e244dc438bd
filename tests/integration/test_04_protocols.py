"""Protocols: h2c with prior knowledge, TLS + ALPN h2, TLS HTTP/1.1 (curl, nghttp, Python ssl)."""

import hashlib
import http.client
import shutil
import socket
import ssl
import subprocess
import unittest

import harness
from harness import EdgeTestCase, curl, http_request, parse_sf_list, url, wait_for


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

    def test_tls_http11_keepalive_hits(self):
        # small stored bodies go out in the buffer of the head (h2o's pull interface: one TLS record), bigger ones
        # are pushed; on one keep-alive connection, mixed with HEAD and a range, every response is whole and framed
        lens = (1, 1000, 16384, 16385, 70000)
        targets = [url("/r/tls-ka/%d" % n, cc="max-age=60", len=n) for n in lens]
        stored = {}
        for t in targets:
            r = curl(self.tls(t), ["-k", "--http1.1"])
            self.assertStored(r)
            stored[t] = r.body
        for t in targets:  # (the key has the scheme: these are not the objects of the cleartext listener)
            wait_for(lambda: curl(self.tls(t), ["-k", "--http1.1"]).edge_status().get("hit") is True, 5,
                     what="a TLS hit on " + t)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", self.edge.tls_port, timeout=10 * harness.SLOWDOWN, context=ctx)
        try:
            for rnd in range(2):
                for t in targets:
                    conn.request("GET", t)
                    resp = conn.getresponse()
                    body = resp.read()
                    self.assertEqual(resp.status, 200, t)
                    self.assertIn("; hit", resp.getheader("cache-status"), t)
                    self.assertEqual(int(resp.getheader("content-length")), len(stored[t]), t)
                    self.assertEqual(body, stored[t], t)
                    conn.request("HEAD", t)
                    resp = conn.getresponse()
                    self.assertEqual((resp.status, resp.read()), (200, b""), t)
                    self.assertEqual(int(resp.getheader("content-length")), len(stored[t]), t)
                conn.request("GET", targets[1], headers={"Range": "bytes=10-19"})
                resp = conn.getresponse()
                self.assertEqual((resp.status, resp.read()), (206, stored[targets[1]][10:20]))
        finally:
            conn.close()
        self.assertEqual(sum(self.origin.count(t) for t in targets), len(targets))

    def test_tls_client_picks_the_suite(self):
        # every suite offered is forward-secret AEAD, so the client's order decides (no server preference)
        def tls12(ciphers):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers(ciphers)
            with socket.create_connection(("127.0.0.1", self.edge.tls_port), timeout=10) as raw:
                with ctx.wrap_socket(raw) as tls:
                    return tls.version(), tls.cipher()[0]

        self.assertEqual(tls12("ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                               "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"),
                         ("TLSv1.2", tls12("ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")[1]))
        self.assertIn("AES128-GCM", tls12("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                          "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384")[1])
        with self.assertRaises(ssl.SSLError):  # CBC and no forward secrecy are not offered
            tls12("ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES128-GCM-SHA256:AES256-SHA")
        # TLS 1.3 (Python's ssl cannot order TLS 1.3 suites: openssl s_client does)
        self.assertIsNotNone(shutil.which("openssl"), "openssl is not installed (.ci/run installs it)")
        for suites, want in (("TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256"),
                             ("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")):
            p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.edge.tls_port, "-tls1_3",
                                "-ciphersuites", suites], input="", capture_output=True, text=True,
                               timeout=20 * harness.SLOWDOWN)
            self.assertIn("Cipher is %s" % want, p.stdout, p.stdout + p.stderr)

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
