"""RFC 9111 / RFC 9213 behaviour beyond the storing rules: targeted cache control, internal fields,
invalidation by unsafe methods, no-cache, only-if-cached."""

import threading
import time
import unittest

from harness import SLOWDOWN, EdgeTestCase, curl, url, wait_for


class HttpCaching(EdgeTestCase):
    def setUp(self):
        super().setUp()
        self.start_edge()

    def test_cdn_cache_control_rules_the_cache_and_is_removed(self):
        # RFC 9213: CDN-Cache-Control overrides Cache-Control (and Expires) for this cache only
        t = url("/r/cdncc", cc="private, no-store", hdr="CDN-Cache-Control:max-age=60", expires=-10)
        r = self.get(t)
        self.assertStored(r)
        self.assertEqual(r.header("cache-control"), "private, no-store", "Cache-Control must pass untouched")
        self.assertIsNone(r.header("cdn-cache-control"))
        r = self.get(t)
        self.assertHit(r)
        self.assertIsNone(r.header("cdn-cache-control"))
        self.assertEqual(self.origin.count(t), 1)

    def test_cdn_cache_control_no_store_wins(self):
        t = url("/r/cdnns", cc="public, max-age=60", hdr="CDN-Cache-Control:no-store")
        self.assertNotStored(self.get(t), "no-store")
        self.assertNotStored(self.get(t), "no-store")
        self.assertEqual(self.origin.count(t), 2)

    def test_surrogate_control_rules_when_no_cdn_cache_control(self):
        t = url("/r/sc", cc="no-store", hdr="Surrogate-Control:max-age=60")
        self.assertStored(self.get(t))
        r = self.get(t)
        self.assertHit(r)
        self.assertIsNone(r.header("surrogate-control"))

    def test_surrogate_keys_and_cache_tags_never_reach_clients(self):
        t = url("/r/tags", cc="max-age=60", hdr=["Surrogate-Key:a b", "Cache-Tag:x,y", "X-Next-Cache-Tags:t1"])
        for r in (self.get(t), self.get(t)):
            self.assertEqual(r.status, 200)
            for name in ("surrogate-key", "cache-tag", "x-next-cache-tags"):
                self.assertIsNone(r.header(name), "%s leaked to the client" % name)

    def test_internal_request_headers_are_not_forwarded(self):
        t = url("/r/inreq", cc="max-age=60")
        self.get(t, headers={"X-Middleware-Subrequest": "m", "Surrogate-Control": "no-store", "X-Kept": "1"})
        req = self.origin.last(t)
        self.assertIsNone(req.header("x-middleware-subrequest"))
        self.assertIsNone(req.header("surrogate-control"))
        self.assertEqual(req.header("x-kept"), "1")

    def test_no_cache_response_is_not_served_without_validation(self):
        t = url("/r/nocache", cc="no-cache, max-age=600")
        self.assertStored(self.get(t))
        r = self.get(t)
        self.assertNotIn("hit", r.edge_status(), r)
        self.assertEqual(self.origin.count(t), 2)

    def test_unsafe_method_invalidates_its_target(self):
        # RFC 9111 §4.4
        t = url("/r/inv", cc="max-age=600")
        self.assertStored(self.get(t))
        self.assertHit(self.get(t))
        r = self.request("POST", t, body=b"x")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.edge_status().get("fwd"), "method")
        r = self.get(t)
        self.assertStored(r, "the POST did not invalidate the stored response: %r" % r)
        self.assertEqual(self.origin.count(t), 3)

    def test_failed_unsafe_method_does_not_invalidate(self):
        # only a non-error status invalidates: a 500 naming the object in Location leaves it alone
        t = url("/r/inv500", cc="max-age=600")
        self.assertStored(self.get(t))
        bad = url("/r/inv500-post", status=500, hdr="Location:%s" % t)
        self.assertEqual(self.request("POST", bad, body=b"x").status, 500)
        self.assertHit(self.get(t))
        ok = url("/r/inv500-post", hdr="Location:%s" % t)
        self.assertEqual(self.request("POST", ok, body=b"x").status, 200)
        self.assertStored(self.get(t))

    def test_location_of_same_origin_is_invalidated_other_origins_not(self):
        a = url("/r/loc-a", cc="max-age=600")
        b = url("/r/loc-b", cc="max-age=600")
        self.assertStored(self.get(a))
        self.assertStored(self.get(b))
        post_same = url("/r/loc-post", hdr="Location:%s" % b)
        self.assertEqual(self.request("POST", post_same, body=b"x").status, 200)
        self.assertStored(self.get(b), "Location of the same origin was not invalidated")
        post_other = url("/r/loc-post2", hdr="Content-Location:http://other.example%s" % a)
        self.assertEqual(self.request("POST", post_other, body=b"x").status, 200)
        self.assertHit(self.get(a), "a Content-Location of another origin invalidated our object")

    def test_only_if_cached(self):
        t = url("/r/oic", cc="max-age=600")
        r = self.get(t, headers={"Cache-Control": "only-if-cached"})
        self.assertEqual(r.status, 504)
        self.assertEqual(self.origin.count(t), 0)
        self.assertStored(self.get(t))
        r = self.get(t, headers={"Cache-Control": "only-if-cached"})
        self.assertEqual(r.status, 200)
        self.assertHit(r)

    # --- conditional requests answered from the cache (RFC 9110 §13, RFC 9111 §4.3.2) ---

    def test_if_none_match_on_a_hit_answers_304(self):
        t = url("/r/inm", cc="max-age=600", etag='"v1"')
        self.assertStored(self.get(t))
        r = self.get(t, headers={"If-None-Match": '"v1"'})
        self.assertEqual(r.status, 304, r)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.header("etag"), '"v1"')
        self.assertIs(r.edge_status().get("hit"), True)
        self.assertEqual(r.header("cache-control"), "max-age=600")
        self.assertIsNotNone(r.header("age"))
        r = self.get(t, headers={"If-None-Match": 'W/"v1", "v2"'})  # weak comparison
        self.assertEqual(r.status, 304, r)
        r = self.get(t, headers={"If-None-Match": '"v2"'})
        self.assertEqual(r.status, 200, r)
        self.assertHit(r)
        self.assertEqual(self.origin.count(t), 1)

    def test_if_modified_since_on_a_hit(self):
        lm = "Tue, 01 Jan 2019 00:00:00 GMT"
        t = url("/r/ims", cc="max-age=600", hdr="Last-Modified:%s" % lm)
        self.assertStored(self.get(t))
        self.assertEqual(self.get(t, headers={"If-Modified-Since": lm}).status, 304)
        self.assertEqual(self.get(t, headers={"If-Modified-Since": "Mon, 01 Jan 2018 00:00:00 GMT"}).status, 200)
        self.assertEqual(self.origin.count(t), 1)

    def test_if_match_failing_goes_to_the_origin(self):
        t = url("/r/ifm", cc="max-age=600", etag='"v1"')
        self.assertStored(self.get(t))
        r = self.get(t, headers={"If-Match": '"other"'})
        self.assertNotIn("hit", r.edge_status(), r)
        self.assertEqual(self.origin.count(t), 2)
        self.assertEqual(self.origin.last(t).header("if-match"), '"other"')

    # --- byte ranges from the cache (RFC 9110 §14) ---

    def test_single_ranges_on_a_hit(self):
        t = url("/big/range", cc="max-age=600", size=200 << 10, etag='"r1"')
        full = self.get(t).body
        self.assertEqual(len(full), 200 << 10)
        cases = [("bytes=0-9", 0, 9), ("bytes=-5", len(full) - 5, len(full) - 1),
                 ("bytes=65530-65545", 65530, 65545),          # across a chunk boundary
                 ("bytes=100000-", 100000, len(full) - 1),
                 ("bytes=10-999999999999999999999", 10, len(full) - 1)]
        for spec, first, last in cases:
            with self.subTest(spec):
                r = self.get(t, headers={"Range": spec})
                self.assertEqual(r.status, 206, r)
                self.assertEqual(r.header("content-range"), "bytes %d-%d/%d" % (first, last, len(full)))
                self.assertEqual(r.body, full[first:last + 1])
                self.assertIs(r.edge_status().get("hit"), True)
        self.assertEqual(self.origin.count(t), 1)

    def test_unsatisfiable_multiple_and_if_range(self):
        t = url("/r/range2", cc="max-age=600", len=1000, etag='"r2"')
        full = self.get(t).body
        r = self.get(t, headers={"Range": "bytes=2000-"})
        self.assertEqual(r.status, 416, r)
        self.assertEqual(r.header("content-range"), "bytes */1000")
        r = self.get(t, headers={"Range": "bytes=0-1,5-6"})
        self.assertEqual((r.status, r.body), (200, full))
        r = self.get(t, headers={"Range": "bytes=0-1", "If-Range": '"r2"'})
        self.assertEqual((r.status, r.body), (206, full[:2]))
        r = self.get(t, headers={"Range": "bytes=0-1", "If-Range": '"old"'})
        self.assertEqual((r.status, r.body), (200, full))
        self.assertEqual(self.origin.count(t), 1)

    def test_range_on_http2_hit(self):
        t = url("/big/range-h2", cc="max-age=600", size=150 << 10)
        full = self.get(t).body
        r = curl("http://127.0.0.1:%d%s" % (self.edge.port, t), ["--http2-prior-knowledge", "-r", "70000-70099"])
        self.assertEqual(r.version, "2")
        self.assertEqual(r.status, 206, r)
        self.assertEqual(r.body, full[70000:70100])

    def test_range_on_a_miss(self):
        # the fill fetches the whole object once; the client gets its range; the next request is a hit
        t = url("/big/range-miss", cc="max-age=600", size=300 << 10)
        r = self.get(t, headers={"Range": "bytes=200000-200099"})
        self.assertEqual(r.status, 206, r)
        self.assertEqual(r.header("content-range"), "bytes 200000-200099/%d" % (300 << 10))
        self.assertEqual(len(r.body), 100)
        self.assertIsNone(self.origin.last(t).header("range"), "the fill must fetch the whole object")
        full = self.get(t).body
        self.assertEqual(len(full), 300 << 10)
        self.assertEqual(r.body, full[200000:200100])
        self.assertEqual(self.origin.count(t), 1)

    def test_hot_uncacheable_url_never_queues(self):
        # hit-for-pass: once a key is known uncacheable, its requests go to the origin in parallel
        t = url("/r/hfp", cc="no-store", delay_ms=800)
        self.assertNotStored(self.get(t, timeout=10 * SLOWDOWN), "no-store")
        results = []
        threads = [threading.Thread(target=lambda: results.append(self.get(t, timeout=20 * SLOWDOWN)))
                   for _ in range(6)]
        started = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.monotonic() - started
        self.assertEqual([r.status for r in results], [200] * 6)
        self.assertEqual(self.origin.count(t), 7)
        # queued behind one another's fills they would take at least two origin round trips (1.6 s)
        self.assertLess(elapsed, 1.5 * SLOWDOWN, "requests for an uncacheable URL waited on each other")

    def test_nextjs_stale_answer_is_stored_without_freshness(self):
        # Next.js serves the old page with x-nextjs-cache: STALE (and full s-maxage) while it regenerates
        t = url("/r/next-stale", cc="s-maxage=60", hdr="x-nextjs-cache:STALE")
        self.assertStored(self.get(t))
        r = self.get(t)
        self.assertNotIn("hit", r.edge_status(), r)
        self.assertEqual(self.origin.count(t), 2)

    def test_next_image_keys_on_the_accept_class(self):
        # Next.js's image optimizer varies on Accept with three outcomes: avif, webp, other
        t = url("/_next/image", w=128, q=75, cc="max-age=600", vary="Accept", ct="image/webp")
        webp1 = {"Accept": "image/webp,*/*"}
        self.assertStored(self.get(t, headers=webp1))
        wait_for(lambda: self.get(t, headers=webp1).edge_status().get("hit") is True, 5, what="a hit")
        # another Accept string of the same class shares the object
        self.assertHit(self.get(t, headers={"Accept": "image/webp, image/png;q=0.8"}))
        # another class does not
        self.assertEqual(self.get(t, headers={"Accept": "image/avif,image/webp,*/*"}).edge_status().get("fwd"),
                         "vary-miss")
        self.assertEqual(self.get(t, headers={"Accept": "image/png"}).edge_status().get("fwd"), "vary-miss")
        self.assertEqual(self.origin.count(t), 3)

    def test_empty_nextjs_page_is_never_stored(self):
        t = url("/r/next-empty", status=404, len=0, cc="s-maxage=5", hdr="x-nextjs-cache:HIT", ct="text/html")
        self.get(t)
        self.get(t)
        self.assertEqual(self.origin.count(t), 2)
        # the same from another origin is an ordinary empty 404, stored
        t2 = url("/r/plain-empty", status=404, len=0, cc="s-maxage=5", ct="text/html")
        self.assertStored(self.get(t2))


if __name__ == "__main__":
    unittest.main()
