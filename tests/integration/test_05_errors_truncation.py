"""Origin errors (refused, silent, stalled) and truncated bodies: never stored, the client sees the cut."""

import hashlib
import time
import unittest

from harness import SLOWDOWN, EdgeTestCase, url
from origin_server import big_body_pieces, refused_port


class OriginErrors(EdgeTestCase):
    def test_refused_origin_is_502(self):
        self.start_edge({"origin": {"url": "http://127.0.0.1:%d" % refused_port()}})
        for t in ("/r/refused", url("/r/refused", cc="max-age=60")):
            r = self.get(t)
            self.assertEqual(r.status, 502, r)
            self.assertEqual(r.cache_status()[-1].value, "cdn-edge")
            self.assertNotIn("hit", r.edge_status())
            self.assertNotIn("stored", r.edge_status())

    def test_silent_origin_is_504_after_first_byte_timeout(self):
        self.start_edge()
        t0 = time.monotonic()
        r = self.get(url("/silent/x", cc="max-age=60"), timeout=15)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 504, r)
        self.assertEqual(r.cache_status()[-1].value, "cdn-edge")
        self.assertNotIn("stored", r.edge_status())
        self.assertGreaterEqual(elapsed, 1.8)  # first_byte_timeout: 2s
        self.assertLess(elapsed, 2 + 4 * SLOWDOWN)

    def test_slow_origin_within_first_byte_timeout(self):
        self.start_edge()
        t = url("/slow/x", cc="max-age=60", delay_ms=800)
        r = self.get(t)
        self.assertEqual(r.status, 200)
        self.assertStored(r)
        self.assertHit(self.get(t))
        self.assertEqual(self.origin.count(t), 1)

    def test_error_is_not_cached(self):
        # a 504 is the edge's own answer: the next request goes to the origin again
        self.start_edge({"origin": {"first_byte_timeout": "500ms"}})
        t = url("/silent/again", cc="max-age=60")
        self.assertEqual(self.get(t).status, 504)
        self.assertEqual(self.get(t).status, 504)
        self.assertEqual(self.origin.count(t), 2)


class Truncation(EdgeTestCase):
    def setUp(self):
        super().setUp()
        self.start_edge()

    def test_short_content_length_is_not_stored(self):
        t = url("/truncate/length/a", cc="max-age=60", len=20000)
        r1 = self.get(t)
        self.assertEqual(r1.status, 200)
        self.assertFalse(r1.complete, "the client of a cut fill must see an incomplete response: %r" % r1)
        self.assertLessEqual(len(r1.body), 10000)
        r2 = self.get(t)
        self.assertFalse(r2.complete)
        self.assertEqual(r2.edge_status().get("fwd"), "miss")
        self.assertNotIn("hit", r2.edge_status())
        self.assertEqual(self.origin.count(t), 2)

    def test_chunked_without_last_chunk_is_not_stored(self):
        t = url("/truncate/chunked/a", cc="max-age=60", len=20000)
        r1 = self.get(t)
        self.assertEqual(r1.status, 200)
        self.assertFalse(r1.complete, "the client of a cut fill must see an incomplete response: %r" % r1)
        r2 = self.get(t)
        self.assertFalse(r2.complete)
        self.assertEqual(r2.edge_status().get("fwd"), "miss")
        self.assertNotIn("hit", r2.edge_status())
        self.assertEqual(self.origin.count(t), 2)

    def test_close_delimited_is_not_stored(self):
        t = url("/truncate/close/a", cc="max-age=60", len=5000)
        r1 = self.get(t)
        self.assertEqual(r1.status, 200)
        self.assertNotStored(r1, "truncated")
        self.assertTrue(r1.complete)
        self.assertEqual(len(r1.body), 5000)
        self.assertBodyN(r1, 1)
        r2 = self.get(t)
        self.assertNotStored(r2, "truncated")
        self.assertBodyN(r2, 2)
        self.assertEqual(self.origin.count(t), 2)

    def test_proper_chunked_is_stored(self):
        t = url("/chunked/a", cc="max-age=60", len=200000)
        r1 = self.get(t)
        self.assertTrue(r1.complete)
        self.assertStored(r1)
        r2 = self.get(t)
        self.assertHit(r2)
        self.assertEqual(r2.body, r1.body)
        self.assertEqual(len(r2.body), 200000)
        self.assertEqual(self.origin.count(t), 1)

    def test_stalled_origin_is_cut_after_idle_timeout(self):
        # the origin sends 256 KiB of 1 MiB and stalls; idle_timeout (2s) ends the fill; the next request
        # gets the whole body (stall_once) and stores it
        size = 1 << 20
        t = url("/stall-after/a", size=size, bytes=256 << 10, stall_once=1, cc="max-age=60")
        t0 = time.monotonic()
        r1 = self.get(t, timeout=20)
        elapsed = time.monotonic() - t0
        self.assertFalse(r1.complete, r1)
        self.assertGreaterEqual(elapsed, 1.5)
        self.assertLess(elapsed, 15)
        r2 = self.get(t)
        self.assertTrue(r2.complete, r2)
        self.assertStored(r2)
        self.assertEqual(hashlib.sha256(r2.body).hexdigest(),
                         hashlib.sha256(b"".join(big_body_pieces(size))).hexdigest())
        self.assertEqual(self.origin.count(t), 2)
        r3 = self.get(t)
        self.assertHit(r3)
        self.assertEqual(r3.body, r2.body)


if __name__ == "__main__":
    unittest.main()
