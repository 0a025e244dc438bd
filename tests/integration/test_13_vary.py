"""Vary (RFC 9111 §4.1): several variants per URL, each selected by the request fields the stored
response names; Vary: * never stored; purging or invalidating the URL removes every variant."""

import unittest

from harness import EdgeTestCase, url


class Vary(EdgeTestCase):
    def setUp(self):
        super().setUp()
        self.start_edge()

    def test_variants_are_kept_apart(self):
        t = url("/r/vary-lang", cc="max-age=600", vary="Accept-Language")
        en, fr = {"Accept-Language": "en"}, {"Accept-Language": "fr"}
        r_en = self.get(t, headers=en)
        self.assertStored(r_en)
        self.assertEqual(r_en.header("vary"), "Accept-Language")
        self.hit_eventually(t, en)
        r_fr = self.get(t, headers=fr)
        self.assertEqual(r_fr.edge_status().get("fwd"), "vary-miss", r_fr)
        self.assertIs(r_fr.edge_status().get("stored"), True, r_fr)
        self.assertBodyN(r_fr, 2)
        self.hit_eventually(t, fr)
        self.assertBodyN(self.get(t, headers=en), 1)
        self.assertBodyN(self.get(t, headers=fr), 2)
        self.assertEqual(self.origin.count(t), 2)
        # the request without the field is a variant of its own
        r_none = self.get(t)
        self.assertNotIn("hit", r_none.edge_status())
        self.assertBodyN(r_none, 3)
        self.assertEqual(self.origin.count(t), 3)

    def test_normalised_values_share_a_variant(self):
        t = url("/r/vary-norm", cc="max-age=600", vary="Accept-Language")
        self.assertStored(self.get(t, headers={"Accept-Language": "en, fr"}))
        self.hit_eventually(t, {"Accept-Language": "en,fr"})
        self.assertEqual(self.origin.count(t), 1)

    def test_vary_on_several_fields(self):
        t = url("/r/vary-two", cc="max-age=600", vary="Accept-Language, X-Tenant")
        a = {"Accept-Language": "en", "X-Tenant": "a"}
        b = {"Accept-Language": "en", "X-Tenant": "b"}
        self.assertStored(self.get(t, headers=a))
        self.hit_eventually(t, a)
        self.assertNotIn("hit", self.get(t, headers=b).edge_status())
        self.hit_eventually(t, b)
        self.assertBodyN(self.get(t, headers=a), 1)
        self.assertEqual(self.origin.count(t), 2)

    def test_vary_star_is_never_stored(self):
        t = url("/r/vary-star", cc="max-age=600", vary="*")
        self.assertNotStored(self.get(t), "vary")
        self.assertNotStored(self.get(t), "vary")
        self.assertEqual(self.origin.count(t), 2)

    def test_invalidation_removes_every_variant(self):
        t = url("/r/vary-inv", cc="max-age=600", vary="Accept-Language")
        for lang in ("en", "fr"):
            self.get(t, headers={"Accept-Language": lang})
            self.hit_eventually(t, {"Accept-Language": lang})
        self.assertEqual(self.request("POST", t, body=b"x").status, 200)
        for lang in ("en", "fr"):
            r = self.get(t, headers={"Accept-Language": lang})
            self.assertNotIn("hit", r.edge_status(), "variant %s survived the invalidation: %r" % (lang, r))

    def test_too_many_variants_keeps_the_newest(self):
        t = url("/r/vary-many", cc="max-age=600", vary="X-V")
        for i in range(40):
            self.get(t, headers={"X-V": str(i)})
        self.hit_eventually(t, {"X-V": "39"})
        m = self.edge.metrics()
        self.assertLessEqual(m.get("cdn_edge_store_objects"), 40, "the variants of one URL are capped")


if __name__ == "__main__":
    unittest.main()
