"""gzip from the origin (issue #4): with compression on, a cacheable request goes to the origin with
`Accept-Encoding: gzip`; the fill decodes what the origin sent (bounded: size and ratio), so clients, the store
and the compression jobs see identity; the origin's own gzip bytes become the gzip variant (one member only), and
brotli is made from the decoded bytes. A corrupt, truncated or bomb body is never stored: a 502 when it is found
before the head went out, else a cut response."""

import gzip
import time
import unittest
import zlib

from harness import SLOWDOWN, EdgeTestCase, curl, url, wait_for
from origin_server import gz_body, gz_text


class OriginGzip(EdgeTestCase):
    def setUp(self):
        super().setUp()
        self.start_edge()

    def metric(self, result):
        return self.edge.metrics().get("cdn_edge_origin_gunzip_total", result=result) or 0

    def wait_encoded(self, t, enc):
        wait_for(lambda: self.get(t, headers={"Accept-Encoding": enc}).header("content-encoding") == enc,
                 10 * SLOWDOWN, what="the %s variant" % enc)
        return self.get(t, headers={"Accept-Encoding": enc})

    def test_asks_for_gzip_stores_identity_and_keeps_the_origins_gzip_as_sent(self):
        n = 200000
        t = url("/r/g1.js", cc="max-age=600", gz="text", len=n, ct="application/javascript", etag='"g1"')
        text, sent = gz_text(n), gz_body("text", n)

        r = self.get(t)  # a client that takes no coding gets the decoded body on the miss already
        self.assertEqual(self.origin.last(t).header("accept-encoding"), "gzip")
        self.assertStored(r)
        self.assertIsNone(r.header("content-encoding"))
        self.assertEqual(r.body, text)
        self.assertEqual(self.metric("ok"), 1)

        wait_for(lambda: self.get(t).edge_status().get("hit") is True, 5 * SLOWDOWN, what="the identity hit")
        plain = self.get(t)
        self.assertEqual((plain.body, plain.header("content-encoding")), (text, None))
        self.assertEqual(int(plain.header("content-length")), n)
        self.assertEqual(plain.header("etag"), '"g1"')

        rg = self.wait_encoded(t, "gzip")
        self.assertIs(rg.edge_status().get("hit"), True)
        self.assertEqual(rg.body, sent, "the gzip variant is the origin's bytes as sent")
        self.assertEqual(int(rg.header("content-length")), len(sent))
        self.assertIn("accept-encoding", rg.header("vary").lower())
        self.assertNotEqual(rg.header("etag"), '"g1"', "an ETag per encoding")

        rb = curl("http://127.0.0.1:%d%s" % (self.edge.port, t), ["-H", "Accept-Encoding: br", "--compressed"])
        self.assertEqual(rb.header("content-encoding"), "br")
        self.assertEqual(rb.body, text)
        self.assertEqual(self.origin.count(t), 1, "one origin request for all three encodings")

    def test_a_gzip_client_on_the_miss_gets_the_decoded_body(self):
        n = 50000
        t = url("/r/g-miss.css", cc="max-age=600", gz="text", len=n, ct="text/css")
        r = self.get(t, headers={"Accept-Encoding": "gzip, br"})
        self.assertStored(r)
        self.assertIsNone(r.header("content-encoding"))
        self.assertEqual(r.body, gz_text(n))

    def test_several_members_are_decoded_whole_and_the_gzip_variant_is_made_anew(self):
        n = 100000
        t = url("/r/g-multi.css", cc="max-age=600", gz="multi", len=n, ct="text/css")
        text = gz_text(n)
        self.assertEqual(self.get(t).body, text)
        rg = self.wait_encoded(t, "gzip")
        self.assertNotEqual(rg.body, gz_body("multi", n))
        d = zlib.decompressobj(wbits=31)
        self.assertEqual(d.decompress(rg.body), text)
        self.assertEqual(d.unused_data, b"", "one member: clients that read only the first get it all")

    def test_a_bomb_is_a_502_and_never_stored(self):
        t = url("/r/bomb.txt", cc="max-age=600", gz="bomb", len=64 << 20)
        gz_body("bomb", 64 << 20)  # made once, before the origin's first-byte timeout starts counting
        for i in (1, 2):
            r = self.get(t)
            self.assertEqual(r.status, 502, r)
            self.assertEqual(self.origin.count(t), i, "nothing stored: the next request goes to the origin")
        self.assertEqual(self.metric("failed"), 2)
        self.assertEqual(self.edge.metrics().get("cdn_edge_store_objects") or 0, 0)

    def test_corrupt_and_truncated_gzip_are_never_stored(self):
        for mode in ("corrupt", "truncated"):
            t = url("/r/bad-%s.txt" % mode, cc="max-age=600", gz=mode, len=100000)
            for i in (1, 2):
                r = self.get(t)
                # found before the head: a 502; found at the end of a body whose head went out: a cut response
                self.assertTrue(r.status == 502 or (r.status == 200 and not r.complete), (mode, r))
                self.assertEqual(self.origin.count(t), i, mode)
        self.assertGreaterEqual(self.metric("failed"), 4)

    def test_a_large_chunked_gzip_crosses_the_memory_bound(self):
        # 4 MiB of text in gzip: one 64 KiB origin slice decodes to far more than the fill may hold, so the
        # decoder stops, the origin pauses and the rest is decoded as the store commits
        n = 4 << 20
        t = url("/r/g-large.txt", cc="max-age=600", gz="text", len=n, chunked=1)
        text = gz_text(n)
        gz_body("text", n)
        r = self.get(t)
        self.assertStored(r)
        self.assertEqual(r.body, text)
        wait_for(lambda: self.get(t).edge_status().get("hit") is True, 5 * SLOWDOWN, what="the hit")
        self.assertEqual(self.get(t).body, text)

    def test_unstored_gzip_passes_as_sent_to_a_gzip_client_and_decoded_to_others(self):
        n = 3 << 20
        t = url("/r/g-nostore.txt", cc="no-store", gz="text", len=n)
        sent, text = gz_body("text", n), gz_text(n)
        r = self.get(t, headers={"Accept-Encoding": "gzip"})
        self.assertEqual((r.status, r.header("content-encoding")), (200, "gzip"))
        self.assertEqual(r.body, sent)
        r = self.get(t)  # decoded, paced by this client: chunks stay in memory until it passed them
        self.assertEqual((r.status, r.header("content-encoding")), (200, None))
        self.assertEqual(r.body, text)

    def test_revalidation_asks_for_gzip_with_the_origins_validator(self):
        n = 30000
        t = url("/r/g-reval.js", cc="max-age=1", gz="text", len=n, ct="application/javascript", etag='"rv"', cond=1)
        self.assertStored(self.get(t))
        time.sleep(1.5)
        r = self.get(t)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, gz_text(n))
        last = self.origin.last(t)
        self.assertEqual((last.header("if-none-match"), last.header("accept-encoding")), ('"rv"', "gzip"))
        self.assertEqual(self.origin.count(t), 2)


if __name__ == "__main__":
    unittest.main()
