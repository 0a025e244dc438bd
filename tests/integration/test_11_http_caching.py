"""RFC 9111 / RFC 9213 behaviour beyond the storing rules: targeted cache control, internal fields,
invalidation by unsafe methods, no-cache, only-if-cached."""

import unittest

from harness import EdgeTestCase, url


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


if __name__ == "__main__":
    unittest.main()
