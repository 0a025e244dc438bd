"""Admin listener: /healthz and the Prometheus counters, asserted as deltas around known traffic."""

import unittest

from harness import EdgeTestCase, http_request, url, wait_for

COUNTERS = [
    ("cdn_edge_requests_total", {"cache": "hit"}),
    ("cdn_edge_requests_total", {"cache": "miss"}),
    ("cdn_edge_requests_total", {"cache": "pass"}),
    ("cdn_edge_requests_total", {"cache": "error"}),
    ("cdn_edge_client_bytes_total", {}),
    ("cdn_edge_origin_bytes_total", {}),
    ("cdn_edge_origin_requests_total", {}),
    ("cdn_edge_fills_total", {"result": "stored"}),
    ("cdn_edge_fills_total", {"result": "unstored"}),
    ("cdn_edge_fills_total", {"result": "aborted"}),
    ("cdn_edge_store_bytes", {}),
    ("cdn_edge_store_objects", {}),
    ("cdn_edge_evictions_total", {}),
]


class Snapshot:
    def __init__(self, test, edge):
        self.test = test
        self.edge = edge
        self.m = edge.metrics()

    def value(self, m, name, labels):
        v = m.get(name, **labels)
        self.test.assertIsNotNone(v, "metric %s%r missing; have %s" % (name, labels, sorted(m.names())))
        return v

    def delta(self, name, **labels):
        now = self.edge.metrics()
        return self.value(now, name, labels) - self.value(self.m, name, labels)


class AdminMetrics(EdgeTestCase):
    def setUp(self):
        super().setUp()
        self.start_edge({"origin": {"first_byte_timeout": "500ms"}})

    def test_healthz(self):
        r = http_request(self.edge.admin_port, "GET", "/healthz")
        self.assertEqual(r.status, 200)

    def test_metrics_format_and_all_series_present_at_start(self):
        r = http_request(self.edge.admin_port, "GET", "/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue((r.header("content-type") or "").startswith("text/plain"), r.header("content-type"))
        m = self.edge.metrics()
        for name, labels in COUNTERS:
            self.assertIsNotNone(m.get(name, **labels), "%s%r missing at start" % (name, labels))
        for name, labels in COUNTERS:
            if name.endswith("_total"):
                self.assertIn(m.types.get(name), ("counter", None), name)
                self.assertEqual(m.get(name, **labels), 0, "%s%r is not 0 at start" % (name, labels))

    def test_miss_hit_counters(self):
        t = url("/r/m1", cc="max-age=60", len=10000, ct="application/octet-stream")  # no compressed variants
        s = Snapshot(self, self.edge)
        self.assertStored(self.get(t))
        # the fill is counted when it is committed: poll for it rather than racing the writer
        wait_for(lambda: s.delta("cdn_edge_fills_total", result="stored") == 1, 10, 0.05, "fills stored +1")
        self.assertEqual(s.delta("cdn_edge_requests_total", cache="miss"), 1)
        self.assertEqual(s.delta("cdn_edge_requests_total", cache="hit"), 0)
        self.assertEqual(s.delta("cdn_edge_origin_requests_total"), 1)
        self.assertGreaterEqual(s.delta("cdn_edge_origin_bytes_total"), 10000)
        self.assertGreaterEqual(s.delta("cdn_edge_client_bytes_total"), 10000)
        self.assertEqual(s.delta("cdn_edge_store_objects"), 1)
        self.assertGreaterEqual(s.delta("cdn_edge_store_bytes"), 10000)

        s = Snapshot(self, self.edge)
        for _ in range(3):
            self.assertHit(self.get(t))
        self.assertEqual(s.delta("cdn_edge_requests_total", cache="hit"), 3)
        self.assertEqual(s.delta("cdn_edge_requests_total", cache="miss"), 0)
        self.assertEqual(s.delta("cdn_edge_origin_requests_total"), 0)
        self.assertEqual(s.delta("cdn_edge_origin_bytes_total"), 0)
        self.assertGreaterEqual(s.delta("cdn_edge_client_bytes_total"), 30000)
        self.assertEqual(s.delta("cdn_edge_fills_total", result="stored"), 0)

    def test_pass_and_unstored(self):
        s = Snapshot(self, self.edge)
        self.request("POST", "/r/p", body=b"abc")
        self.assertEqual(s.delta("cdn_edge_requests_total", cache="pass"), 1)
        self.assertEqual(s.delta("cdn_edge_origin_requests_total"), 1)
        self.assertEqual(s.delta("cdn_edge_fills_total", result="stored"), 0)

        s = Snapshot(self, self.edge)
        self.assertNotStored(self.get(url("/r/ns", cc="no-store")), "no-store")
        self.assertEqual(s.delta("cdn_edge_requests_total", cache="miss"), 1)
        self.assertEqual(s.delta("cdn_edge_fills_total", result="unstored"), 1)
        self.assertEqual(s.delta("cdn_edge_fills_total", result="stored"), 0)
        self.assertEqual(s.delta("cdn_edge_store_objects"), 0)

    def test_error_and_aborted(self):
        s = Snapshot(self, self.edge)
        self.assertEqual(self.get("/silent/e").status, 504)
        self.assertEqual(s.delta("cdn_edge_requests_total", cache="error"), 1)
        self.assertEqual(s.delta("cdn_edge_fills_total", result="stored"), 0)

        s = Snapshot(self, self.edge)
        self.assertFalse(self.get(url("/truncate/length/e", cc="max-age=60")).complete)
        wait_for(lambda: s.delta("cdn_edge_fills_total", result="aborted") == 1, 10, 0.05, "fills aborted +1")
        self.assertEqual(s.delta("cdn_edge_fills_total", result="stored"), 0)
        self.assertEqual(s.delta("cdn_edge_store_objects"), 0)

    def test_access_log_has_a_line_per_request(self):
        before = len(self.edge.access_log_lines())
        t = url("/r/log", cc="max-age=60")
        self.get(t)
        self.get(t)
        lines = wait_for(lambda: (lambda l: l if len(l) >= before + 2 else None)(self.edge.access_log_lines()),
                         10, 0.05, "two access log lines")
        self.assertEqual(len(lines), before + 2)
        self.assertIn("/r/log", lines[-1])
        self.assertIn("hit", lines[-1])
        self.assertIn("miss", lines[-2])


class Eviction(EdgeTestCase):
    def test_budget_is_kept_by_evicting(self):
        budget = 8 << 20
        edge = self.start_edge({"cache": {"max_size": "8MiB", "max_object_size": "1MiB"}})
        targets = [url("/big/ev%d" % i, cc="max-age=600", size=900 << 10, ct="application/octet-stream") for i in range(24)]
        for t in targets:
            r = self.get(t)
            self.assertEqual((r.status, len(r.body)), (200, 900 << 10))
        m = wait_for(lambda: (lambda m: m if (m.get("cdn_edge_evictions_total") or 0) > 0 else None)(edge.metrics()),
                     15, 0.1, "cdn_edge_evictions_total > 0")
        self.assertLessEqual(m.get("cdn_edge_store_bytes"), budget)
        self.assertLess(m.get("cdn_edge_store_objects"), len(targets))
        self.assertGreater(m.get("cdn_edge_store_objects"), 0)
        # the latest object is kept
        self.assertHit(self.get(targets[-1]))

    def test_a_hot_object_survives_eviction(self):
        # second chance: an object hit since eviction last looked at it is kept while cold ones go
        edge = self.start_edge({"cache": {"max_size": "8MiB", "max_object_size": "1MiB"}})
        hot = url("/big/hot", cc="max-age=600", size=500 << 10, ct="application/octet-stream")
        self.assertStored(self.get(hot))
        cold = [url("/big/cold%d" % i, cc="max-age=600", size=500 << 10, ct="application/octet-stream") for i in range(40)]
        for t in cold:
            self.assertEqual(self.get(t).status, 200)
            self.assertEqual(self.get(hot).status, 200)
        m = edge.metrics()
        self.assertGreater(m.get("cdn_edge_evictions_total"), 0)
        self.assertHit(self.get(hot))
        self.assertEqual(self.origin.count(hot), 1, "the hot object was evicted and fetched again")
        self.assertGreater(sum(1 for t in cold[:10] if self.origin.count(t) == 1 and
                               self.get(t).edge_status().get("hit") is not True), 0,
                           "no cold object was evicted")


if __name__ == "__main__":
    unittest.main()
