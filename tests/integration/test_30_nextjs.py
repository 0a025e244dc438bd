"""A real Next.js app (tests/fixtures/nextjs-app, Next.js 16, `next start` on loopback) behind the real cdn-edge.

Only behaviours that must hold for correctness are asserted here: the app must behave through the edge exactly as
it does directly. What the app sends directly is written down in tests/fixtures/nextjs-app/NOTES.md, with the list
of caching rules still to implement. The first run installs (npm ci) and builds (next build) the app: ~30 s; later
runs reuse both. The module is skipped, with a message, only when the npm registry cannot be reached.
"""

import base64
import gzip
import hashlib
import json
import re
import time
import unittest
import urllib.parse

from harness import SLOWDOWN, EdgeTestCase, http_request, wait_for
from nextjs import NextApp

APP = None


def setUpModule():
    global APP
    app = NextApp()
    app.prepare()  # raises unittest.SkipTest only when npm cannot reach its registry
    app.start()
    APP = app


def tearDownModule():
    if APP is not None:
        APP.cleanup()


# ---------------------------------------------------------------------------------------------------------------------
# What the Next.js 16 client sends (node_modules/next/dist/client/components/router-reducer/fetch-server-response.js,
# segment-cache/cache.js, shared/lib/router/utils/cache-busting-search-param.js)
# ---------------------------------------------------------------------------------------------------------------------

def rsc_hash(prefetch=None, segment=None, tree=None, next_url=None):
    """The `_rsc` value the client computes: base64url(SHA-256("prefetch,segment,tree,nextUrl")[:12]), '' when no
    header is set. The server answers 307 to an RSC request whose `_rsc` does not match its headers."""
    if (prefetch is None or prefetch == "0") and segment is None and tree is None and next_url is None:
        return ""
    text = ",".join(v if v is not None else "0" for v in (prefetch, segment, tree, next_url))
    digest = hashlib.sha256(text.encode()).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def rsc_request(path, prefetch=None, segment=None, tree=None, next_url=None):
    """(target, headers) of an RSC request as the client sends it."""
    headers = {"RSC": "1"}
    for name, v in (("Next-Router-Prefetch", prefetch), ("Next-Router-Segment-Prefetch", segment),
                    ("Next-Router-State-Tree", tree), ("Next-Url", next_url)):
        if v is not None:
            headers[name] = v
    sep = "&" if "?" in path else "?"
    return path + sep + "_rsc=" + rsc_hash(prefetch, segment, tree, next_url), headers


def state_tree(*segments):
    """The encoded Next-Router-State-Tree of the page at /<segments...> (as prepareFlightRouterStateForRequest)."""
    node = ["__PAGE__", {}]
    for s in reversed(segments):
        node = [s, {"children": node}]
    return urllib.parse.quote(json.dumps(["", {"children": node}], separators=(",", ":")), safe="")


def multipart(fields):
    boundary = "----cdnEdgeNextjsTest7MA4YWxk"
    parts = ["--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (boundary, k, v) for k, v in fields]
    return ("".join(parts) + "--%s--\r\n" % boundary).encode(), "multipart/form-data; boundary=" + boundary


def ctype(r):
    return (r.header("content-type") or "").split(";")[0].strip()


def direct(method, target, **kw):
    return http_request(APP.port, method, target, **kw)


class NextjsBehindEdge(EdgeTestCase):
    def setUp(self):
        super().setUp()
        self.start_edge({"origin": {"url": APP.url, "first_byte_timeout": "10s", "idle_timeout": "10s"}})

    def assertNeverStored(self, r, msg=None):
        """Forwarded, not stored, and Cache-Status says why (the exact detail word is the edge's choice)."""
        p = r.edge_status()
        self.assertNotIn("hit", p, msg or r)
        self.assertNotIn("stored", p, msg or r)
        self.assertEqual(p.get("fwd"), "miss", msg or r)
        self.assertIn("detail", p, msg or r)

    # ---- simple ------------------------------------------------------------------------------------------------------

    def test_static_page_html(self):
        r = self.get("/")
        self.assertEqual(r.status, 200)
        self.assertEqual(ctype(r), "text/html")
        self.assertIn(b"home-static", r.body)

    def test_next_static_asset_stored_then_hit(self):
        # the chunk names are content hashes: take one from the page
        home = direct("GET", "/")
        chunk = re.search(rb'/_next/static/chunks/[A-Za-z0-9_.\-]+\.js', home.body).group(0).decode()
        want = direct("GET", chunk)
        self.assertEqual(want.header("cache-control"), "public, max-age=31536000, immutable")
        r = self.get(chunk)
        self.assertStored(r)
        self.assertEqual(r.body, want.body)
        r = self.get(chunk)
        self.assertHit(r)
        self.assertGreater(r.edge_status()["ttl"], 31536000 - 60, r)
        self.assertEqual(r.body, want.body)
        self.assertEqual(ctype(r), "application/javascript")
        # the edge asked Next.js for gzip (less origin egress) and stored it decoded; Next.js compresses by default
        gz = direct("GET", chunk, headers={"Accept-Encoding": "gzip"})
        self.assertEqual(gz.header("content-encoding"), "gzip")
        self.assertGreaterEqual(self.edge.metrics().get("cdn_edge_origin_gunzip_total", result="ok") or 0, 1)
        # gzip clients get the origin's gzip bytes as Next.js sent them (the variant made from them once stored)
        wait_for(lambda: self.get(chunk, headers={"Accept-Encoding": "gzip"}).header("content-encoding") == "gzip",
                 10 * SLOWDOWN, what="the gzip variant")
        self.assertEqual(gzip.decompress(self.get(chunk, headers={"Accept-Encoding": "gzip"}).body), want.body)

    def test_public_file_served_with_its_type(self):
        for _ in range(3):
            r = self.get("/robots.txt")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"User-agent: *\nAllow: /\n")
            self.assertEqual(ctype(r), "text/plain")

    def test_pages_router_static_page_stored_then_hit(self):
        r = self.get("/legacy")
        self.assertStored(r)
        self.assertEqual(ctype(r), "text/html")
        r2 = self.get("/legacy")
        self.assertHit(r2)
        self.assertEqual(r2.body, r.body)

    def test_pages_router_data_request_json(self):
        t = "/_next/data/%s/legacy.json" % APP.build_id
        # x-nextjs-data is forwarded and keyed (as a Vary field the edge adds on /_next/data/): with middleware Next.js
        # answers a data request's redirect as a 200 + x-nextjs-redirect, which a request without it must never get
        def fetch(headers):
            r = self.get(t, headers=headers)
            self.assertEqual(r.status, 200)
            self.assertEqual(ctype(r), "application/json")
            self.assertIn(b'"__N_SSG":true', r.body)
            self.assertIn("x-nextjs-data", (r.header("vary") or "").lower())
            p = r.edge_status()
            return "hit" if p.get("hit") else str(p.get("fwd"))

        data, plain = {"x-nextjs-data": "1"}, {}
        self.assertEqual(fetch(data), "miss")
        wait_for(lambda: fetch(data) == "hit", 5 * SLOWDOWN, what="the data variant's hit")
        self.assertEqual(fetch(plain), "vary-miss", "a request without x-nextjs-data never gets the data object")
        wait_for(lambda: fetch(plain) == "hit", 5 * SLOWDOWN, what="the plain variant's hit")
        self.assertEqual(fetch(data), "hit")

    # ---- never stored --------------------------------------------------------------------------------------------------

    def test_dynamic_page_never_stored(self):
        seen = set()
        for _ in range(3):
            r = self.get("/dynamic", headers={"Cookie": "who=alice"})
            self.assertEqual(r.status, 200)
            self.assertNeverStored(r)
            self.assertIn(b"who=<!-- -->alice", r.body)
            seen.add(re.search(rb"rendered-at=(?:<!-- -->)?([0-9T:.\-Z]+)", r.body).group(1))
        # a request without the cookie must not see alice's page
        r = self.get("/dynamic")
        self.assertNeverStored(r)
        self.assertIn(b"who=<!-- -->anonymous", r.body)
        self.assertGreaterEqual(len(seen), 2, "every request renders anew: %r" % seen)

    def test_dynamic_rsc_never_stored(self):
        t, h = rsc_request("/dynamic", tree=state_tree())
        for _ in range(2):
            r = self.get(t, headers=h)
            self.assertEqual(r.status, 200)
            self.assertEqual(ctype(r), "text/x-component")
            self.assertNeverStored(r)

    def test_route_handler_without_cache_control_never_stored(self):
        served = []
        for _ in range(3):
            r = self.get("/api/nocc")
            self.assertEqual(r.status, 200)
            self.assertNeverStored(r)
            self.assertIsNone(r.header("cache-control"), "no default Cache-Control may be added")
            served.append(json.loads(r.body)["served"])
        self.assertEqual(served, sorted(set(served)), "each request reached the app: %r" % served)

    def test_not_found_page_never_stored(self):
        for _ in range(2):
            r = self.get("/no-such-page")
            self.assertEqual(r.status, 404)
            self.assertNeverStored(r)

    def test_rsc_redirect_for_wrong_cache_buster_not_stored(self):
        # an RSC request without the matching _rsc gets a 307 to the right one (Next.js's own poisoning guard)
        t, h = rsc_request("/isr", tree=state_tree())
        for _ in range(2):
            r = self.get("/isr?_rsc=wrong", headers=h)
            self.assertEqual(r.status, 307)
            self.assertEqual(r.header("location"), t)
            self.assertNeverStored(r)

    # ---- HTML and RSC on one URL ----------------------------------------------------------------------------------------

    def _html_and_rsc(self, target, rsc_headers, order):
        """Requests `target` as HTML and as RSC, twice each, in `order`; each answer has the type it asked for."""
        for kind in order * 2:
            if kind == "html":
                r = self.get(target)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(ctype(r), "text/html", "HTML request got %r (%r)" % (ctype(r), r))
                self.assertTrue(r.body.startswith(b"<!DOCTYPE html>"), r.body[:40])
            else:
                r = self.get(target, headers=rsc_headers)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(ctype(r), "text/x-component", "RSC request got %r (%r)" % (ctype(r), r))
                self.assertFalse(r.body.startswith(b"<"), r.body[:40])

    def test_html_then_rsc_same_url_static(self):
        self._html_and_rsc("/?_rsc", {"RSC": "1"}, ["html", "rsc"])

    def test_rsc_then_html_same_url_static(self):
        t, h = rsc_request("/", prefetch="1")
        self._html_and_rsc(t, h, ["rsc", "html"])

    def test_html_then_rsc_same_url_isr(self):
        t, h = rsc_request("/isr", tree=state_tree())
        self._html_and_rsc(t, h, ["html", "rsc"])

    def test_rsc_then_html_same_url_isr(self):
        t, h = rsc_request("/isr", prefetch="1")
        self._html_and_rsc(t, h, ["rsc", "html"])

    def test_segment_prefetches_are_not_confused(self):
        # same URL path, different Next-Router-Segment-Prefetch: the route tree, the page segment and the full payload
        # are different bodies (the _rsc value differs for each)
        want = {}
        reqs = {"tree": rsc_request("/isr", prefetch="1", segment="/_tree"),
                "page": rsc_request("/isr", prefetch="1", segment="/isr/__PAGE__"),
                "full": rsc_request("/isr", tree=state_tree())}
        for name, (t, h) in reqs.items():
            want[name] = direct("GET", t, headers=h)
            self.assertEqual(ctype(want[name]), "text/x-component")
        for _ in range(2):
            for name, (t, h) in reqs.items():
                r = self.get(t, headers=h)
                self.assertEqual(ctype(r), "text/x-component", name)
                if name == "tree":
                    self.assertTrue(r.body.startswith(want["tree"].body[:20]), (name, r.body[:60]))
                    self.assertLess(len(r.body), 1000, (name, r.body[:60]))
                else:
                    self.assertGreater(len(r.body), 1000, (name, r.body[:60]))

    # ---- ISR ---------------------------------------------------------------------------------------------------------

    def test_isr_page_regenerates_through_the_edge(self):
        # revalidate = 5: within a bounded time a request through the edge shows a newer generation
        def gen(r):
            self.assertEqual(r.status, 200)
            self.assertEqual(ctype(r), "text/html")
            return re.search(rb"generated-at=(?:<!-- -->)?([0-9T:.\-Z]+)", r.body).group(1)

        first = gen(self.get("/isr"))
        deadline = time.monotonic() + 40
        while True:
            now = gen(self.get("/isr"))
            if now > first:
                break
            self.assertLess(time.monotonic(), deadline, "/isr still shows generation %r" % first)
            time.sleep(0.5)

    # ---- images --------------------------------------------------------------------------------------------------------

    def test_image_optimizer_answers_per_accept_both_orders(self):
        for w, order in ((64, ("image/png", "image/webp,*/*")), (128, ("image/webp,*/*", "image/png"))):
            t = "/_next/image?url=%%2Flogo.png&w=%d&q=75" % w
            for accept in order * 2:
                r = self.get(t, headers={"Accept": accept})
                self.assertEqual(r.status, 200)
                want = "image/webp" if "webp" in accept else "image/png"
                self.assertEqual(ctype(r), want, "Accept %r got %r (%r)" % (accept, ctype(r), r))

    # ---- requests the app must receive intact, or never -----------------------------------------------------------------

    def test_internal_request_headers_not_forwarded(self):
        bad = {"x-middleware-subrequest": "middleware:middleware:middleware:middleware:middleware",
               "x-prerender-revalidate": "forged", "next-resume": "1", "x-now-route-matches": "1"}
        # control: the app itself lets these two through to a route handler, so the edge must drop them
        seen = json.loads(direct("GET", "/api/echo", headers=bad).body)
        self.assertEqual(seen["x-middleware-subrequest"], bad["x-middleware-subrequest"])
        self.assertEqual(seen["x-prerender-revalidate"], "forged")
        r = self.get("/api/echo", headers=bad)
        self.assertEqual(r.status, 200)
        self.assertNeverStored(r)
        seen = json.loads(r.body)
        for name in bad:
            self.assertIsNone(seen[name], "%s reached the app through the edge: %r" % (name, seen))
        # the app sees the host the client used (server actions compare it with Origin)
        self.assertEqual(seen["x-forwarded-host"], "127.0.0.1:%d" % self.edge.port)

    def _counter(self):
        r = self.get("/action")
        self.assertEqual(r.status, 200)
        self.assertNeverStored(r)
        return int(re.search(rb"counter=(?:<!-- -->)?(\d+)", r.body).group(1))

    def test_server_action_post_passes_through(self):
        page = self.get("/action")
        action_id = re.search(rb'name="\$ACTION_ID_([0-9a-f]+)"', page.body).group(1).decode()
        origin = "http://127.0.0.1:%d" % self.edge.port
        before = self._counter()
        # as the JS client sends it: Next-Action, Accept: text/x-component, the router state, a multipart body
        body, ct = multipart([("1_by", "1"), ("0", '["$K1"]')])
        r = self.request("POST", "/action", body=body,
                         headers={"Accept": "text/x-component", "Next-Action": action_id, "Origin": origin,
                                  "Next-Router-State-Tree": state_tree("action"), "Content-Type": ct})
        self.assertEqual(r.status, 200, r.body[:200])
        self.assertEqual(ctype(r), "text/x-component")
        self.assertEqual(r.header("x-action-revalidated"), "1")
        self.assertEqual(r.edge_status().get("fwd"), "method", r)
        self.assertEqual(self._counter(), before + 1)
        # as the no-JS form posts it: $ACTION_ID_<id> in a multipart body, HTML back
        body, ct = multipart([("$ACTION_ID_" + action_id, ""), ("by", "2")])
        r = self.request("POST", "/action", body=body, headers={"Origin": origin, "Content-Type": ct})
        self.assertEqual(r.status, 200)
        self.assertEqual(ctype(r), "text/html")
        self.assertEqual(self._counter(), before + 3)

    # ---- a client navigation -------------------------------------------------------------------------------------------

    def test_client_navigation_sequence(self):
        """The requests the App Router client makes on / when it prefetches the links and then navigates to /isr,
        /dynamic and back to /, twice (the second round may be served from the cache)."""
        for _ in range(2):
            r = self.get("/")
            self.assertEqual(ctype(r), "text/html")
            steps = []
            for path, segs in (("/isr", ("isr",)), ("/dynamic", ("dynamic",)), ("/action", ("action",))):
                steps.append(rsc_request(path, prefetch="1", segment="/_tree"))
                steps.append(rsc_request(path, prefetch="1", segment="/" + "/".join(segs) + "/__PAGE__"))
            steps.append(rsc_request("/isr", tree=state_tree()))
            steps.append(rsc_request("/dynamic", tree=state_tree("isr")))
            steps.append(rsc_request("/", tree=state_tree("dynamic")))
            for t, h in steps:
                r = self.get(t, headers=h)
                self.assertEqual(r.status, 200, "%s %r: %r" % (t, h, r))
                self.assertEqual(ctype(r), "text/x-component", "%s %r: %r" % (t, h, r))
                self.assertIn(APP.build_id.encode(), r.body, "%s: not an RSC payload of this build" % t)


if __name__ == "__main__":
    unittest.main()
