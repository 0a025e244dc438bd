"""cdn-purge: one purge fanned out to every node of a nodes file, in parallel, with timeouts and retries.

The nodes are fake admin listeners (python threads on 127.0.0.1, port 0) that check the bearer token, record what they
received and answer from a script of statuses; a "down" node is a bound socket that does not listen (connections are
refused). The tool comes from $CDN_PURGE (default: build/purge/cdn-purge).
"""

import http.server
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness

OUT_RE_OK = r"^(?P<name>\S+) ok (?P<summary>.+) (?P<ms>\d+)ms$"


def purge_binary():
    path = os.environ.get("CDN_PURGE")
    if not path:
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, "..", "..", "build", "purge", "cdn-purge")
    return os.path.abspath(path)


class FakeAdmin:
    """A fake admin listener. script: statuses answered in order (the last one repeats); 'hang' sleeps past any
    timeout the test uses. Records (path, headers, body) of every request."""

    def __init__(self, token, script=(200,), reply=None):
        self.token = token
        self.script = list(script)
        self.reply = reply
        self.requests = []
        self.lock = threading.Lock()
        admin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with admin.lock:
                    admin.requests.append((self.path, dict(self.headers.items()), body))
                    step = admin.script[min(len(admin.requests), len(admin.script)) - 1]
                    count = len(admin.requests)
                if self.headers.get("Authorization") != "Bearer " + admin.token:
                    return self.answer(401, b"unauthorized\n", "text/plain")
                if step == "hang":
                    time.sleep(3 * harness.SLOWDOWN)
                    return self.answer(200, b'{"purge_id":"late"}', "application/json")
                if step == "text":
                    return self.answer(200, b"purged\n", "text/plain")
                if step != 200:
                    return self.answer(step, b"try later\n", "text/plain")
                reply = admin.reply if admin.reply is not None else {"purge_id": "p-%d" % count, "urls": 1}
                return self.answer(200, json.dumps(reply).encode(), "application/json")

            def answer(self, status, body, ctype):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # the tool gave up (timeout)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self):
        with self.lock:
            return [json.loads(b) for (_, _, b) in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class CdnPurge(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cdn-purge-test-")
        self.admins = []
        self.sockets = []

    def tearDown(self):
        for a in self.admins:
            a.close()
        for s in self.sockets:
            s.close()
        if not os.environ.get("EDGE_KEEP_TMP"):
            import shutil
            shutil.rmtree(self.tmp, ignore_errors=True)

    def admin(self, token="secret", **kw):
        a = FakeAdmin(token, **kw)
        self.admins.append(a)
        return a

    def refusing_port(self):
        """A port on which connections are refused: bound (so nobody else takes it) but not listening."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        self.sockets.append(s)
        return s.getsockname()[1]

    def write_nodes(self, text):
        path = os.path.join(self.tmp, "nodes.yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def nodes_file(self, nodes, token="secret"):
        """nodes: list of (name, port or url, token or None)."""
        lines = ['token: "%s"' % token, "nodes:"]
        for name, where, tok in nodes:
            admin = where if isinstance(where, str) else "http://127.0.0.1:%d" % where
            lines.append("  - name: %s" % name)
            lines.append("    admin: %s" % admin)
            if tok is not None:
                lines.append('    token: "%s"' % tok)
        return self.write_nodes("\n".join(lines) + "\n")

    def run_purge(self, args, timeout=60):
        p = subprocess.run([purge_binary()] + args, capture_output=True, stdin=subprocess.DEVNULL,
                           timeout=timeout * harness.SLOWDOWN)
        out, err = p.stdout.decode(), p.stderr.decode()
        for secret in ("secret", "other-token", "wrong"):
            self.assertNotIn(secret, out + err, "a token was printed")
        return p.returncode, out, err

    def node_lines(self, out):
        lines = {}
        for line in out.splitlines():
            name, _, rest = line.partition(" ")
            self.assertNotIn(name, lines, "two lines for %s in %r" % (name, out))
            lines[name] = rest
        return lines

    # ---- tests, simple to complex ----

    def test_01_usage_errors_send_nothing(self):
        a = self.admin()
        nodes = self.nodes_file([("fra-1", a.port, None)])
        cases = [
            ([], "-n NODES.yaml is required"),
            (["-n", nodes], "cdn-purge: invalid purge: body: nothing to purge"),
            (["-n", nodes, "--url", "/relative"], "cdn-purge: invalid purge: urls[0]: not an absolute http or https URL"),
            (["-n", nodes, "--all", "--tag", "x"], "all: cannot be combined"),
            (["-n", nodes, "--url", "http://a/", "--timeout", "soon"], "--timeout: bad duration 'soon'"),
            (["-n", nodes, "--url", "http://a/", "--retries", "-1"], "--retries: expected 0..10"),
            (["-n", os.path.join(self.tmp, "missing.yaml"), "--all"], "missing.yaml: No such file or directory"),
        ]
        for args, msg in cases:
            rc, out, err = self.run_purge(args)
            self.assertEqual(rc, 2, (args, out, err))
            self.assertIn(msg, err, args)
            self.assertEqual(out, "", args)
        bad = self.write_nodes('token: "secret"\nnodes:\n  - name: a\n    admin: ftp://h\n')
        rc, out, err = self.run_purge(["-n", bad, "--all"])
        self.assertEqual(rc, 2)
        self.assertEqual(err.strip(), "%s:4: nodes[0].admin: bad URL: not an absolute http or https URL" % bad)
        self.assertEqual(a.requests, [])

    def test_02_all_nodes_up(self):
        a, b = self.admin(), self.admin(token="other-token")
        nodes = self.nodes_file([("fra-1", a.port, None), ("sin-1", b.port, "other-token")])
        rc, out, err = self.run_purge(["-n", nodes, "--all", "--soft"])
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(err, "")
        lines = self.node_lines(out)
        self.assertEqual(sorted(lines), ["fra-1", "sin-1"])
        for name in lines:
            self.assertRegex(name + " " + lines[name], r"^%s ok id=p-1 \d+ms$" % name)
        expected = {"urls": [], "prefixes": [], "hosts": [], "tags": [], "all": True, "soft": True}
        for node in (a, b):
            self.assertEqual(node.bodies(), [expected])
            path, headers, _ = node.requests[0]
            self.assertEqual(path, "/purge")
            self.assertEqual(headers.get("Content-Type"), "application/json")

    def test_03_one_node_down(self):
        a, b, c = self.admin(), self.admin(), self.admin(token="other-token")
        down = self.refusing_port()
        nodes = self.nodes_file([("fra-1", a.port, None), ("down-1", down, None), ("ams-1", b.port, None),
                                 ("sin-1", c.port, "other-token")])
        rc, out, err = self.run_purge(["-n", nodes, "--timeout", "2s", "--retries", "1",
                                       "--url", "HTTP://Example.COM:80/x/../a?b=1", "--url", "http://example.com/a?b=1",
                                       "--prefix", "https://example.com/blog/", "--host", "Example.com:8080",
                                       "--tag", "product-1", "--tag", "_N_T_/layout"])
        self.assertEqual(rc, 1, out + err)
        lines = self.node_lines(out)
        self.assertEqual(sorted(lines), ["ams-1", "down-1", "fra-1", "sin-1"])
        self.assertRegex(lines["down-1"], r"^FAILED .*(refused|connect).* \(2 attempts\)$")
        for name in ("fra-1", "ams-1", "sin-1"):
            self.assertRegex(lines[name], r"^ok id=p-1 \d+ms$")
        self.assertEqual(err.splitlines()[-1], "cdn-purge: not confirmed: down-1")
        expected = {"urls": ["http://example.com/a?b=1"], "prefixes": ["https://example.com/blog/"],
                    "hosts": ["example.com:8080"], "tags": ["product-1", "_N_T_/layout"], "all": False,
                    "soft": False}
        for node in (a, b, c):
            self.assertEqual(node.bodies(), [expected])  # exactly once, normalised and de-duplicated

    def test_04_several_down_are_all_named(self):
        a = self.admin()
        nodes = self.nodes_file([("x-1", self.refusing_port(), None), ("fra-1", a.port, None),
                                 ("y-1", self.refusing_port(), None)])
        rc, out, err = self.run_purge(["-n", nodes, "--retries", "0", "--tag", "t"])
        self.assertEqual(rc, 1)
        self.assertEqual(err.splitlines()[-1], "cdn-purge: not confirmed: x-1, y-1")
        self.assertRegex(self.node_lines(out)["x-1"], r"\(1 attempt\)$")

    def test_05_retries_on_503(self):
        a = self.admin(script=(503, 503, 200))
        nodes = self.nodes_file([("fra-1", a.port, None)])
        t0 = time.monotonic()
        rc, out, err = self.run_purge(["-n", nodes, "--retries", "2", "--tag", "t"])
        self.assertEqual(rc, 0, out + err)
        self.assertRegex(out.strip(), r"^fra-1 ok id=p-3 \d+ms$")
        self.assertEqual(len(a.requests), 3)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)  # backoff 100 ms then 200 ms
        # one retry is not enough: the reason is the last answer
        b = self.admin(script=(503, 503, 200))
        nodes = self.nodes_file([("fra-1", b.port, None)])
        rc, out, err = self.run_purge(["-n", nodes, "--retries", "1", "--tag", "t"])
        self.assertEqual(rc, 1)
        self.assertEqual(out.strip(), "fra-1 FAILED HTTP 503: try later (2 attempts)")
        self.assertEqual(len(b.requests), 2)

    def test_06_401_fails_without_retry(self):
        a = self.admin(token="right")
        good = self.admin()
        nodes = self.nodes_file([("fra-1", a.port, "wrong"), ("ams-1", good.port, None)])
        rc, out, err = self.run_purge(["-n", nodes, "--retries", "3", "--url", "http://a/"])
        self.assertEqual(rc, 1)
        lines = self.node_lines(out)
        self.assertEqual(lines["fra-1"], "FAILED HTTP 401: unauthorized (1 attempt)")
        self.assertEqual(len(a.requests), 1)
        self.assertEqual(a.requests[0][1].get("Authorization"), "Bearer wrong")
        self.assertEqual(err.splitlines()[-1], "cdn-purge: not confirmed: fra-1")

    def test_07_timeout_is_retried(self):
        a = self.admin(script=("hang", 200))
        nodes = self.nodes_file([("fra-1", a.port, None)])
        rc, out, err = self.run_purge(["-n", nodes, "--timeout", "500ms", "--retries", "1", "--tag", "t"])
        self.assertEqual(rc, 0, out + err)
        self.assertRegex(out.strip(), r"^fra-1 ok id=p-2 \d+ms$")
        b = self.admin(script=("hang",))
        nodes = self.nodes_file([("fra-1", b.port, None)])
        t0 = time.monotonic()
        rc, out, err = self.run_purge(["-n", nodes, "--timeout", "300ms", "--retries", "1", "--tag", "t"])
        self.assertEqual(rc, 1)
        self.assertRegex(out.strip(), r"^fra-1 FAILED .*timed out.* \(2 attempts\)$")
        self.assertLess(time.monotonic() - t0, 2.5 * harness.SLOWDOWN)

    def test_08_200_without_json_is_not_a_confirmation(self):
        a = self.admin(script=("text",))
        b = self.admin(reply={"ok": True, "removed": 3})
        nodes = self.nodes_file([("fra-1", a.port, None), ("ams-1", b.port, None)])
        rc, out, err = self.run_purge(["-n", nodes, "--host", "example.com"])
        self.assertEqual(rc, 1)
        lines = self.node_lines(out)
        self.assertEqual(lines["fra-1"], "FAILED HTTP 200 without a JSON object: purged? (1 attempt)")
        self.assertRegex(lines["ams-1"], r'^ok \{"ok":true,"removed":3\} \d+ms$')  # no id: the body summarised

    def test_09_admin_base_path(self):
        a = self.admin()
        nodes = self.nodes_file([("fra-1", "http://127.0.0.1:%d/edge/" % a.port, None)])
        rc, out, err = self.run_purge(["-n", nodes, "--tag", "t"])
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(a.requests[0][0], "/edge/purge")


if __name__ == "__main__":
    unittest.main()
