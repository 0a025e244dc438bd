"""Command line: --version, -t (config check) with `file:line: key: reason` errors, the ready file, /healthz."""

import os
import re
import socket
import subprocess
import unittest

import harness
from harness import EdgeTestCase, http_request

ERR_RE = re.compile(r"^(?P<file>[^:\s]+):(?P<line>\d+): (?P<key>\S+): (?P<reason>.+)$")

GOOD = """\
listen:
  - address: 127.0.0.1:0
  - address: 127.0.0.1:0
    tls: { certificate: tls/cert.pem, key: tls/key.pem, self_signed: true }
admin: { address: 127.0.0.1:0, token: "t0k" }
workers: 2
cache: { path: cache, max_size: 256MiB, max_object_size: 64MiB }
origin: { url: "http://127.0.0.1:9", connect_timeout: 1s, first_byte_timeout: 2s, idle_timeout: 2s }
access_log: access.log
"""


def good_with(line_no, new_line):
    """GOOD with line `line_no` (1-based) replaced (or inserted before, when new_line starts with '+')."""
    lines = GOOD.splitlines()
    if new_line.startswith("+"):
        lines.insert(line_no - 1, new_line[1:])
    else:
        lines[line_no - 1] = new_line
    return "\n".join(lines) + "\n"


# (name, yaml text, expected line, expected key)
BAD_CASES = [
    ("unknown top-level key", good_with(6, "+bogus: 1"), 6, "bogus"),
    ("bad size", good_with(7, "cache: { path: cache, max_size: 12XB, max_object_size: 64MiB }"), 7, "cache.max_size"),
    ("bad duration", good_with(8, 'origin: { url: "http://127.0.0.1:9", connect_timeout: soon }'), 8,
     "origin.connect_timeout"),
    ("bad origin scheme", good_with(8, 'origin: { url: "ftp://127.0.0.1:9" }'), 8, "origin.url"),
    ("port out of range", good_with(2, "  - address: 127.0.0.1:99999"), 2, "listen[0].address"),
    ("second listener bad", good_with(3, "  - address: nowhere"), 3, "listen[1].address"),
    ("duplicate key", good_with(7, "+workers: 3"), 7, "workers"),
    ("workers not a number", good_with(6, "workers: many"), 6, "workers"),
]


class ConfigCli(EdgeTestCase):
    def run_edge(self, args, cwd=None, timeout=20):
        return subprocess.run([harness.edge_binary()] + args, cwd=cwd or self.tmp, capture_output=True,
                              timeout=timeout * harness.SLOWDOWN, stdin=subprocess.DEVNULL)

    def test_version(self):
        p = self.run_edge(["--version"])
        self.assertEqual(p.returncode, 0, p.stderr)
        out = (p.stdout + p.stderr).decode()
        expected = os.environ.get("EDGE_VERSION")
        self.assertRegex(out, r"\d+\.\d+\.\d+")
        if expected:
            self.assertIn(expected, out)

    def test_check_good_file(self):
        with open(os.path.join(self.tmp, "good.yaml"), "w") as f:
            f.write(GOOD)
        p = self.run_edge(["-t", "-c", "good.yaml"])
        self.assertEqual(p.returncode, 0, p.stderr.decode())

    def test_check_harness_config(self):
        e = self.make_edge()
        e.write_config()
        p = self.run_edge(["-t", "-c", e.config_path])
        self.assertEqual(p.returncode, 0, p.stderr.decode())

    def test_check_bad_files(self):
        for name, text, line, key in BAD_CASES:
            with self.subTest(name):
                with open(os.path.join(self.tmp, "bad.yaml"), "w") as f:
                    f.write(text)
                p = self.run_edge(["-t", "-c", "bad.yaml"])
                err = p.stderr.decode()
                self.assertEqual(p.returncode, 1, "exit %d, stderr: %r" % (p.returncode, err))
                matches = [ERR_RE.match(l) for l in err.splitlines()]
                matches = [m for m in matches if m and m.group("file") == "bad.yaml"]
                self.assertTrue(matches, "no `bad.yaml:LINE: key: reason` line in stderr %r" % err)
                m = matches[0]
                self.assertEqual((int(m.group("line")), m.group("key")), (line, key), err)
                self.assertTrue(m.group("reason").strip())

    def test_check_missing_file(self):
        p = self.run_edge(["-t", "-c", "nope.yaml"])
        self.assertEqual(p.returncode, 1)
        self.assertIn("nope.yaml", p.stderr.decode())

    def test_ready_file_and_healthz(self):
        e = self.start_edge()
        r = e.ready
        self.assertEqual(r["pid"], e.pid)
        self.assertEqual(len(r["listen"]), 2)
        self.assertEqual([l["tls"] for l in r["listen"]], [False, True])
        for l in r["listen"]:
            host, port = l["address"].rsplit(":", 1)
            self.assertEqual(host, "127.0.0.1")
            self.assertGreater(int(port), 0)
        self.assertTrue(r["admin"].startswith("127.0.0.1:"))
        self.assertEqual(http_request(e.admin_port, "GET", "/healthz").status, 200)
        # the client listeners answer too (plain and TLS)
        self.assertEqual(http_request(e.port, "GET", "/r/x").status, 200)
        self.assertEqual(http_request(e.tls_port, "GET", "/r/x", tls=True).status, 200)
        # the self-signed certificate was made where the config said
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "tls", "cert.pem")))
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "tls", "key.pem")))

    def test_bind_failure_reports_line(self):
        # a listening socket without SO_REUSEPORT blocks the edge's bind to the same port
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        self.addCleanup(s.close)
        port = s.getsockname()[1]
        e = self.make_edge({"listen": [{"address": "127.0.0.1:0"}, {"address": "127.0.0.1:%d" % port}]})
        e.write_config()
        p = self.run_edge(["-c", e.config_path, "--ready-file", e.ready_path])
        err = p.stderr.decode()
        self.assertNotEqual(p.returncode, 0, err)
        self.assertFalse(os.path.exists(e.ready_path))
        with open(e.config_path) as f:
            line = 1 + f.read().splitlines().index("  - address: 127.0.0.1:%d" % port)
        self.assertTrue(any(l.startswith("%s:%d: listen[1].address: " % (e.config_path, line)) for l in err.splitlines()),
                        "expected `%s:%d: listen[1].address: reason` in %r" % (e.config_path, line, err))

    def test_two_listeners_on_one_port_are_refused(self):
        # SO_REUSEPORT would let both bind and split the port's traffic: refused before anything listens
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        e = self.make_edge({"listen": [{"address": "127.0.0.1:%d" % port}],
                            "admin": {"address": "127.0.0.1:%d" % port}})
        e.write_config()
        p = self.run_edge(["-c", e.config_path, "--ready-file", e.ready_path])
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("admin.address: 127.0.0.1:%d is already used by listen[0]" % port, err)
        self.assertFalse(os.path.exists(e.ready_path))


if __name__ == "__main__":
    unittest.main()
