"""Stale objects (RFC 9111 §4.2.4, §4.3; RFC 5861): revalidation with the stored validators, a 304 that
freshens the stored head, stale-while-revalidate with one background revalidation, stale-if-error,
heuristic freshness. Lifetimes here are 1-2 s: the tests wait for real expiry."""

import threading
import time
import unittest

from harness import SLOWDOWN, EdgeTestCase, http_request, url, wait_for


def expire(seconds):
    time.sleep(seconds + 0.2)


class Stale(EdgeTestCase):
    def setUp(self):
        super().setUp()
        self.start_edge()

    def test_revalidation_304_freshens_and_serves_the_stored_body(self):
        t = url("/r/reval", cc="max-age=1", then_cc="max-age=600", etag='"e1"', cond=1)
        first = self.get(t)
        self.assertStored(first)
        expire(1)
        r = self.get(t)
        self.assertEqual(r.status, 200, r)
        p = r.edge_status()
        self.assertEqual(p.get("fwd"), "stale", r)
        self.assertEqual(p.get("fwd-status"), 304, r)
        self.assertEqual(r.body, first.body, "a 304 must serve the stored body")
        self.assertEqual(self.origin.count(t), 2)
        self.assertEqual(self.origin.last(t).header("if-none-match"), '"e1"')
        # freshened: a hit again, the same body
        wait_for(lambda: self.get(t).edge_status().get("hit") is True, 5 * SLOWDOWN, what="a hit after the 304")
        self.assertEqual(self.get(t, headers={}).body[:40], first.body[:40])
        self.assertEqual(self.origin.count(t), 2)
        self.assertGreaterEqual(self.edge.metrics().get("cdn_edge_revalidations_total"), 1)

    def test_revalidation_with_last_modified(self):
        lm = "Tue, 01 Jan 2019 00:00:00 GMT"
        t = url("/r/reval-lm", cc="max-age=1", hdr="Last-Modified:%s" % lm, cond=1)
        self.assertStored(self.get(t))
        expire(1)
        r = self.get(t)
        self.assertEqual(r.edge_status().get("fwd-status"), 304, r)
        self.assertEqual(self.origin.last(t).header("if-modified-since"), lm)

    def test_changed_object_replaces_the_stale_one(self):
        t = url("/r/reval-new", cc="max-age=1", then_cc="max-age=600", etag='"e1"')  # no cond: the origin answers 200 again
        self.assertStored(self.get(t))
        expire(1)
        r = self.get(t)
        p = r.edge_status()
        self.assertEqual((p.get("fwd"), p.get("stored")), ("stale", True), r)
        self.assertBodyN(r, 2)
        wait_for(lambda: self.get(t).edge_status().get("hit") is True, 5 * SLOWDOWN, what="a hit on the new object")
        self.assertBodyN(self.get(t), 2)

    def test_stale_while_revalidate_answers_at_once_and_revalidates_once(self):
        t = url("/r/swr", cc="max-age=1, stale-while-revalidate=60", then_cc="max-age=600", delay_ms=700)
        self.assertStored(self.get(t, timeout=10 * SLOWDOWN))
        expire(1)
        started = time.monotonic()
        r = self.get(t)
        elapsed = time.monotonic() - started
        p = r.edge_status()
        self.assertIs(p.get("hit"), True, r)
        self.assertEqual(str(p.get("detail")), "stale-while-revalidate")
        self.assertLess(p.get("ttl"), 0)
        self.assertBodyN(r, 1)
        self.assertLess(elapsed, 0.5 * SLOWDOWN, "a stale-while-revalidate hit waited for the origin")
        # more stale requests while the revalidation is under way start no other
        results = []
        threads = [threading.Thread(target=lambda: results.append(self.get(t))) for _ in range(5)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertTrue(all(x.status == 200 for x in results))
        wait_for(lambda: self.get(t).edge_status().get("ttl", -1) >= 0, 10 * SLOWDOWN, what="the revalidated object")
        self.assertEqual(self.origin.count(t), 2, "exactly one background revalidation")
        self.assertBodyN(self.get(t), 2)
        self.assertGreaterEqual(self.edge.metrics().get("cdn_edge_background_revalidations_total"), 1)

    def test_stale_if_error_on_5xx(self):
        t = url("/r/sie", cc="max-age=1, stale-if-error=60", then_status=503)
        first = self.get(t)
        self.assertStored(first)
        expire(1)
        r = self.get(t)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(str(r.edge_status().get("detail")), "stale-if-error")
        self.assertEqual(r.body, first.body)

    def test_stale_if_error_when_the_origin_is_down(self):
        t = url("/r/sie-down", cc="max-age=1, stale-if-error=60")
        first = self.get(t)
        self.assertStored(first)
        self.origin.stop()
        expire(1)
        r = self.get(t)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(str(r.edge_status().get("detail")), "stale-if-error", r)
        self.assertEqual(r.body, first.body)

    def test_no_stale_if_error_without_permission(self):
        for name, cc in (("plain", "max-age=1"), ("must-revalidate", "max-age=1, stale-if-error=60, must-revalidate")):
            with self.subTest(name):
                t = url("/r/nosie-" + name, cc=cc, then_status=503)
                self.assertStored(self.get(t))
                expire(1)
                r = self.get(t)
                self.assertEqual(r.status, 503, r)

    def test_heuristic_freshness_from_last_modified(self):
        # RFC 9111 §4.2.2: no explicit lifetime, but Last-Modified ten days ago: stored, fresh for a while
        t = url("/r/heur", hdr="Last-Modified:%s" % time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                                                  time.gmtime(time.time() - 10 * 86400)))
        self.assertStored(self.get(t))
        wait_for(lambda: self.get(t).edge_status().get("hit") is True, 5 * SLOWDOWN, what="a heuristic hit")
        self.assertEqual(self.origin.count(t), 1)

    def test_unreachable_origin_serves_stale_within_the_configured_grace(self):
        # RFC 9111 §4.2.4: a disconnected cache may serve stale; cache.stale_if_unreachable (default 24h),
        # unless the response forbids it
        plain = url("/r/unreach", cc="max-age=1")
        strict = url("/r/unreach-mr", cc="max-age=1, must-revalidate")
        first = self.get(plain)
        self.assertStored(first)
        self.assertStored(self.get(strict))
        self.origin.stop()
        expire(1)
        r = self.get(plain)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(str(r.edge_status().get("detail")), "stale-if-error", r)
        self.assertEqual(r.body, first.body)
        self.assertEqual(self.get(strict).status, 502)

    def test_unreachable_grace_can_be_turned_off(self):
        self.edge.stop()
        self.start_edge({"cache": {"stale_if_unreachable": "0"}})
        t = url("/r/unreach-off", cc="max-age=1")
        self.assertStored(self.get(t))
        self.origin.stop()
        expire(1)
        self.assertEqual(self.get(t).status, 502)


if __name__ == "__main__":
    unittest.main()
