"""Compressed variants made once (gzip and brotli, off the event loops) and served on hits by the client's
Accept-Encoding (RFC 9110 §12.5.3), with Vary: Accept-Encoding and an ETag per encoding; ranges from identity."""

import gzip
import subprocess
import time
import unittest

from harness import SLOWDOWN, EdgeTestCase, curl, url, wait_for


class Compress(EdgeTestCase):
    def setUp(self):
        super().setUp()
        self.start_edge()

    def stored_with_variants(self, t):
        first = self.get(t)
        self.assertStored(first)
        wait_for(lambda: (self.edge.metrics().get("cdn_edge_compress_jobs_total", result="done") or 0) >= 1,
                 10 * SLOWDOWN, what="the compression job")
        wait_for(lambda: self.get(t, headers={"Accept-Encoding": "gzip"}).header("content-encoding") == "gzip",
                 5 * SLOWDOWN, what="the gzip variant")
        return first

    def test_gzip_and_brotli_decode_to_the_origin_bytes(self):
        t = url("/r/comp.js", cc="max-age=600", len=64 << 10, ct="application/javascript", etag='"js1"')
        identity = self.stored_with_variants(t).body
        self.assertEqual(len(identity), 64 << 10)

        r = self.get(t, headers={"Accept-Encoding": "gzip"})
        self.assertEqual(r.header("content-encoding"), "gzip")
        self.assertIn("accept-encoding", (r.header("vary") or "").lower())
        self.assertEqual(int(r.header("content-length")), len(r.body))
        self.assertLess(len(r.body), len(identity))
        self.assertEqual(gzip.decompress(r.body), identity)
        self.assertIs(r.edge_status().get("hit"), True)
        gz_etag = r.header("etag")

        # brotli is preferred when the client accepts both equally; curl decodes it
        rb = curl("http://127.0.0.1:%d%s" % (self.edge.port, t), ["-H", "Accept-Encoding: gzip, br", "--compressed"])
        self.assertEqual(rb.header("content-encoding"), "br")
        self.assertEqual(rb.body, identity)
        br_etag = rb.header("etag")

        plain = self.get(t)
        self.assertIsNone(plain.header("content-encoding"))
        self.assertIn("accept-encoding", (plain.header("vary") or "").lower())
        self.assertEqual(plain.body, identity)
        self.assertEqual(len({plain.header("etag"), gz_etag, br_etag}), 3, "an ETag per encoding")
        self.assertEqual(self.origin.count(t), 1)
        # a conditional request with the gzip ETag is answered by the gzip variant
        self.assertEqual(self.get(t, headers={"Accept-Encoding": "gzip", "If-None-Match": gz_etag}).status, 304)

    def test_ranges_and_q_values(self):
        t = url("/r/comp.css", cc="max-age=600", len=20000, ct="text/css")
        identity = self.stored_with_variants(t).body
        r = self.get(t, headers={"Accept-Encoding": "gzip", "Range": "bytes=100-199"})
        self.assertEqual(r.status, 206)
        self.assertIsNone(r.header("content-encoding"), "ranges are served from identity")
        self.assertEqual(r.body, identity[100:200])
        r = self.get(t, headers={"Accept-Encoding": "br;q=0, gzip;q=0.5"})
        self.assertEqual(r.header("content-encoding"), "gzip")
        r = self.get(t, headers={"Accept-Encoding": "gzip;q=0"})
        self.assertIsNone(r.header("content-encoding"))
        r = self.request("HEAD", t, headers={"Accept-Encoding": "gzip"})
        self.assertEqual(r.header("content-encoding"), "gzip")
        self.assertEqual(r.body, b"")

    def test_hot_objects_are_recompressed_at_the_best_levels(self):
        edge = self.make_edge({"compress": {"hot_hits": 3}}).start()
        self.edge = edge
        t = url("/r/hot.js", cc="max-age=600", len=200000, text=1, ct="application/javascript", etag='"hot"')
        identity = self.stored_with_variants(t).body
        before = curl("http://127.0.0.1:%d%s" % (edge.port, t), ["-H", "Accept-Encoding: br"])
        self.assertEqual(before.header("content-encoding"), "br")
        m = lambda: edge.metrics().get("cdn_edge_compress_hot_jobs_total") or 0
        self.assertEqual(m(), 0)
        # stored_with_variants made some encoded hits already; a few more cross the threshold, exactly once
        for _ in range(5):
            self.assertIs(self.get(t, headers={"Accept-Encoding": "gzip"}).edge_status().get("hit"), True)
        wait_for(lambda: m() == 1, 20 * SLOWDOWN, what="the hot recompression")
        after_br = curl("http://127.0.0.1:%d%s" % (edge.port, t), ["-H", "Accept-Encoding: br", "--compressed"])
        self.assertEqual((after_br.header("content-encoding"), after_br.body), ("br", identity))
        self.assertEqual(after_br.header("etag"), before.header("etag"), "the same representation, made smaller")
        raw_br = curl("http://127.0.0.1:%d%s" % (edge.port, t), ["-H", "Accept-Encoding: br"])
        self.assertLess(len(raw_br.body), len(before.body), "brotli 11 beats brotli 5 on this text")
        gz = self.get(t, headers={"Accept-Encoding": "gzip"})
        self.assertEqual(gzip.decompress(gz.body), identity)
        for _ in range(5):
            self.get(t, headers={"Accept-Encoding": "gzip"})
        time.sleep(0.5)
        self.assertEqual(m(), 1, "once per stored version")
        self.assertEqual(self.origin.count(t), 1)

    def test_not_compressible_types_get_no_variants(self):
        t = url("/r/img.png", cc="max-age=600", len=20000, ct="image/png")
        self.assertStored(self.get(t))
        self.assertHit(self.get(t))
        r = self.get(t, headers={"Accept-Encoding": "gzip, br"})
        self.assertIsNone(r.header("content-encoding"))
        self.assertIsNone(r.header("vary"))


if __name__ == "__main__":
    unittest.main()
