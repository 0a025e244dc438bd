"""Integration test harness for cdn-edge (standard library only).

What it gives a test:
- EdgeTestCase: a unittest.TestCase with a temp dir per test, a started test origin (origin_server.Origin)
  and helpers to write a config, start/stop/kill the real `cdn-edge` binary (path from $CDN_EDGE), read
  its ports from the ready file and poll /healthz; on failure the edge's stdout/stderr are printed.
- Edge: one cdn-edge process (config writer, start with a deadline, SIGTERM then SIGKILL to our pid only).
- HTTP clients: http_request() (http.client, HTTP/1.1, plain or TLS), raw_request() (bytes on a socket),
  curl() (h2c prior knowledge, TLS h2, TLS HTTP/1.1).
- parse_sf_list(): an RFC 8941 List parser (Cache-Status is a List of Items with parameters).
- parse_metrics(): a Prometheus text-format parser.

Environment: CDN_EDGE (the binary), EDGE_SOURCE_DIR (the repository), EDGE_SANITIZE (set under ASan:
memory bounds are not asserted and deadlines are longer), EDGE_KEEP_TMP=1 keeps temp dirs.
"""

import base64
import copy
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import origin_server  # noqa: E402

SANITIZE = bool(os.environ.get("EDGE_SANITIZE"))
SLOWDOWN = 3.0 if SANITIZE else 1.0
ADMIN_TOKEN = "t0k"


def edge_binary():
    path = os.environ.get("CDN_EDGE")
    if not path:
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, "..", "..", "build", "edge", "cdn-edge")
    return os.path.abspath(path)


def source_dir():
    d = os.environ.get("EDGE_SOURCE_DIR")
    if not d:
        d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    return os.path.abspath(d)


def url(path, **params):
    """Builds a request target: url('/r/a', cc='max-age=60', status=404) -> '/r/a?cc=max-age%3D60&status=404'.

    A list value repeats the parameter (hdr=['A: 1', 'B: 2']).
    """
    if not params:
        return path
    items = []
    for k, v in params.items():
        for one in (v if isinstance(v, (list, tuple)) else [v]):
            items.append((k, str(one)))
    return path + "?" + urllib.parse.urlencode(items)


# ---------------------------------------------------------------------------------------------------------------------
# RFC 8941 structured fields: List parser
# ---------------------------------------------------------------------------------------------------------------------

class SFError(ValueError):
    pass


class Token(str):
    """An sf-token (compares equal to a str of the same text)."""

    def __repr__(self):
        return "Token(%s)" % str.__repr__(self)


class Item:
    """A List member: value (int, float, str, Token, bytes, bool, or a list of Item for an inner list) and params."""

    def __init__(self, value, params):
        self.value = value
        self.params = params  # dict, insertion-ordered

    def __repr__(self):
        return "Item(%r, %r)" % (self.value, self.params)


class _SFParser:
    def __init__(self, text):
        self.s = text
        self.i = 0

    def peek(self):
        return self.s[self.i] if self.i < len(self.s) else ""

    def skip_sp(self):
        while self.peek() == " ":
            self.i += 1

    def skip_ows(self):
        while self.peek() in (" ", "\t") and self.peek() != "":
            self.i += 1

    def parse_list(self):
        members = []
        self.skip_sp()
        if self.i >= len(self.s):
            return members
        while True:
            if self.peek() == "(":
                members.append(self.parse_inner_list())
            else:
                members.append(self.parse_item())
            self.skip_ows()
            if self.i >= len(self.s):
                return members
            if self.peek() != ",":
                raise SFError("expected ',' at %d in %r" % (self.i, self.s))
            self.i += 1
            self.skip_ows()
            if self.i >= len(self.s):
                raise SFError("trailing ',' in %r" % self.s)

    def parse_inner_list(self):
        self.i += 1
        items = []
        while self.i < len(self.s):
            self.skip_sp()
            if self.peek() == ")":
                self.i += 1
                return Item(items, self.parse_params())
            items.append(self.parse_item())
            if self.peek() not in (" ", ")"):
                raise SFError("bad inner list in %r" % self.s)
        raise SFError("unterminated inner list in %r" % self.s)

    def parse_item(self):
        value = self.parse_bare()
        return Item(value, self.parse_params())

    def parse_params(self):
        params = {}
        while self.peek() == ";":
            self.i += 1
            self.skip_sp()
            key = self.parse_key()
            value = True
            if self.peek() == "=":
                self.i += 1
                value = self.parse_bare()
            params[key] = value
        return params

    def parse_key(self):
        c = self.peek()
        if not (c.islower() and c.isascii() or c == "*"):
            raise SFError("bad key start at %d in %r" % (self.i, self.s))
        start = self.i
        while self.peek() != "" and (self.peek().islower() and self.peek().isascii() or self.peek().isdigit()
                                     or self.peek() in "_-.*"):
            self.i += 1
        return self.s[start:self.i]

    def parse_bare(self):
        c = self.peek()
        if c == "-" or c.isdigit():
            return self.parse_number()
        if c == '"':
            return self.parse_string()
        if c == ":":
            return self.parse_bytes()
        if c == "?":
            return self.parse_bool()
        if c.isalpha() and c.isascii() or c == "*":
            return self.parse_token()
        raise SFError("bad item at %d in %r" % (self.i, self.s))

    def parse_number(self):
        m = re.compile(r"-?\d+(\.\d+)?").match(self.s, self.i)
        if not m:
            raise SFError("bad number in %r" % self.s)
        text = m.group(0)
        self.i = m.end()
        if m.group(1):
            ip, fp = text.lstrip("-").split(".")
            if len(ip) > 12 or len(fp) > 3:
                raise SFError("decimal out of range in %r" % self.s)
            return float(text)
        if len(text.lstrip("-")) > 15:
            raise SFError("integer out of range in %r" % self.s)
        return int(text)

    def parse_string(self):
        self.i += 1
        out = []
        while self.i < len(self.s):
            c = self.s[self.i]
            self.i += 1
            if c == "\\":
                if self.i >= len(self.s) or self.s[self.i] not in '"\\':
                    raise SFError("bad escape in %r" % self.s)
                out.append(self.s[self.i])
                self.i += 1
            elif c == '"':
                return "".join(out)
            elif not (0x20 <= ord(c) < 0x7F):
                raise SFError("bad string char in %r" % self.s)
            else:
                out.append(c)
        raise SFError("unterminated string in %r" % self.s)

    def parse_token(self):
        m = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*").match(self.s, self.i)
        self.i = m.end()
        return Token(m.group(0))

    def parse_bytes(self):
        end = self.s.find(":", self.i + 1)
        if end < 0:
            raise SFError("unterminated byte sequence in %r" % self.s)
        data = self.s[self.i + 1:end]
        self.i = end + 1
        return base64.b64decode(data)

    def parse_bool(self):
        v = self.s[self.i + 1:self.i + 2]
        if v not in ("0", "1"):
            raise SFError("bad boolean in %r" % self.s)
        self.i += 2
        return v == "1"


def parse_sf_list(text):
    """Parses an RFC 8941 List; returns a list of Item. Raises SFError on malformed input."""
    return _SFParser(text).parse_list()


# ---------------------------------------------------------------------------------------------------------------------
# Prometheus text format parser
# ---------------------------------------------------------------------------------------------------------------------

_METRIC_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+-?\d+)?$")
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


class Metrics:
    """Parsed samples: get(name, **labels) -> float or None (labels must match exactly)."""

    def __init__(self, samples, types):
        self.samples = samples  # {(name, frozenset(labels.items())): value}
        self.types = types      # {name: type}

    def get(self, name, **labels):
        return self.samples.get((name, frozenset(labels.items())))

    def names(self):
        return {name for name, _ in self.samples}

    def series(self, name):
        return {labels: v for (n, labels), v in self.samples.items() if n == name}


def _unescape_label(v):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}.get(m.group(1), "\\" + m.group(1)), v)


def parse_metrics(text):
    """Parses the Prometheus text exposition format (0.0.4). Raises ValueError on a malformed line."""
    samples = {}
    types = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3]
            continue
        m = _METRIC_RE.match(line)
        if not m:
            raise ValueError("metrics line %d malformed: %r" % (lineno, line))
        name, labeltext, value = m.group(1), m.group(2), m.group(3)
        labels = {}
        if labeltext:
            body = labeltext[1:-1]
            pos = 0
            while pos < len(body):
                lm = _LABEL_RE.match(body, pos)
                if not lm or lm.end() == pos:
                    raise ValueError("metrics line %d: bad labels: %r" % (lineno, line))
                labels[lm.group(1)] = _unescape_label(lm.group(2))
                pos = lm.end()
        if value in ("+Inf", "Inf"):
            v = float("inf")
        elif value == "-Inf":
            v = float("-inf")
        else:
            v = float(value)  # raises ValueError on garbage
        key = (name, frozenset(labels.items()))
        if key in samples:
            raise ValueError("metrics line %d: duplicate series %r" % (lineno, line))
        samples[key] = v
    return Metrics(samples, types)


# ---------------------------------------------------------------------------------------------------------------------
# HTTP clients
# ---------------------------------------------------------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body, complete, version, error=None):
        self.status = status
        self.headers = headers    # list of (name, value), names as received
        self.body = body
        self.complete = complete  # False: the body ended early (connection closed, stream reset)
        self.version = version    # "1.1", "2"
        self.error = error

    def header(self, name):
        """All values of a header joined with ', ' (case-insensitive), or None."""
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(vals) if vals else None

    def header_count(self, name):
        return sum(1 for k, _ in self.headers if k.lower() == name.lower())

    def cache_status(self):
        """The parsed Cache-Status list (raises SFError when malformed, AssertionError when absent)."""
        v = self.header("cache-status")
        if v is None:
            raise AssertionError("no Cache-Status header in response: %r" % (self.headers,))
        return parse_sf_list(v)

    def edge_status(self):
        """The params of the `cdn-edge` member, which must be the last member of Cache-Status."""
        members = self.cache_status()
        if not members or members[-1].value != "cdn-edge" or not isinstance(members[-1].value, Token):
            raise AssertionError("last Cache-Status member is not the token cdn-edge: %r"
                                 % self.header("cache-status"))
        return members[-1].params

    def age(self):
        v = self.header("age")
        return None if v is None else int(v)

    def __repr__(self):
        return "Response(%s, %d bytes, complete=%s, cache-status=%r)" % (
            self.status, len(self.body), self.complete, self.header("cache-status"))


def http_request(port, method, target, headers=None, body=None, tls=False, timeout=10.0, host="127.0.0.1"):
    """One request on a new HTTP/1.1 connection (http.client). A body cut short gives complete=False."""
    timeout *= SLOWDOWN
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        hdrs = list(resp.getheaders())
        complete = True
        error = None
        chunks = []
        try:
            # read1: a timeout or a close keeps the bytes already received
            while True:
                c = resp.read1(1 << 16)
                if not c:
                    break
                chunks.append(c)
            if resp.length:  # Content-Length not reached (read1 returns b"" instead of raising)
                complete = False
                error = http.client.IncompleteRead(b"".join(chunks), resp.length)
        except http.client.IncompleteRead as e:
            chunks.append(e.partial)
            complete = False
            error = e
        except (ConnectionError, socket.timeout, OSError) as e:
            complete = False
            error = e
        return Response(resp.status, hdrs, b"".join(chunks), complete, "1.1", error)
    finally:
        conn.close()


def get(port, target, **kw):
    return http_request(port, "GET", target, **kw)


def raw_request(port, data, timeout=10.0):
    """Sends raw bytes, reads until the peer closes (send `Connection: close`); returns all bytes received."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOWDOWN) as s:
        s.sendall(data)
        out = []
        while True:
            try:
                c = s.recv(65536)
            except ConnectionResetError:
                break
            if not c:
                break
            out.append(c)
        return b"".join(out)


def curl(url_, args=(), timeout=30.0, data=None, workdir=None):
    """Runs curl; returns a Response (version from %{http_version}; complete means curl exited 0)."""
    tmp = tempfile.mkdtemp(prefix="curl-", dir=workdir)
    try:
        hfile = os.path.join(tmp, "h")
        bfile = os.path.join(tmp, "b")
        cmd = ["curl", "-sS", "--max-time", str(int(timeout * SLOWDOWN)), "-D", hfile, "-o", bfile,
               "-w", "%{http_version}"] + list(args)
        if data is not None:
            dfile = os.path.join(tmp, "d")
            with open(dfile, "wb") as f:
                f.write(data)
            cmd += ["--data-binary", "@" + dfile]
        cmd.append(url_)
        p = subprocess.run(cmd, capture_output=True, timeout=timeout * SLOWDOWN + 10)
        version = p.stdout.decode().strip()
        status = 0
        headers = []
        if os.path.exists(hfile):
            with open(hfile, "rb") as f:
                blocks = [b for b in f.read().decode("latin-1").split("\r\n\r\n") if b.strip()]
            if blocks:
                lines = blocks[-1].split("\r\n")
                status = int(lines[0].split()[1])
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers.append((name.strip(), value.strip()))
        body = b""
        if os.path.exists(bfile):
            with open(bfile, "rb") as f:
                body = f.read()
        err = None if p.returncode == 0 else "curl exit %d: %s" % (p.returncode, p.stderr.decode().strip())
        return Response(status, headers, body, p.returncode == 0, version, err)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def wait_for(predicate, timeout, interval=0.02, what="condition"):
    """Polls predicate() until truthy (returns its value) or raises AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout * SLOWDOWN
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout * SLOWDOWN, what))
        time.sleep(interval)


def port_is_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------------------------------
# Config writing (a small YAML emitter)
# ---------------------------------------------------------------------------------------------------------------------

_PLAIN_RE = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./:\-]*$")
_YAML_SPECIAL = {"true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"}


def _yaml_scalar(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    s = str(v)
    if _PLAIN_RE.match(s) and s.lower() not in _YAML_SPECIAL and not s.endswith(":"):
        return s
    return json.dumps(s)


def to_yaml(obj, indent=0):
    """Emits a dict/list/scalar tree as block-style YAML."""
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:" % (pad, k))
                out.append(to_yaml(v, indent + 2))
            else:
                out.append("%s%s: %s" % (pad, k, _yaml_scalar(v) if not isinstance(v, (dict, list)) else "{}"))
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, dict) and v:
                inner = to_yaml(v, indent + 2).splitlines()
                out.append("%s- %s" % (pad, inner[0].lstrip()))
                out.extend(inner[1:])
            else:
                out.append("%s- %s" % (pad, _yaml_scalar(v)))
    else:
        out.append(pad + _yaml_scalar(obj))
    return "\n".join(out)


def default_config(origin_url):
    return {
        "listen": [
            {"address": "127.0.0.1:0"},
            {"address": "127.0.0.1:0",
             "tls": {"certificate": "tls/cert.pem", "key": "tls/key.pem", "self_signed": True}},
        ],
        "admin": {"address": "127.0.0.1:0", "token": ADMIN_TOKEN},
        "workers": 2,
        "cache": {"path": "cache", "max_size": "256MiB", "max_object_size": "64MiB"},
        "origin": {"url": origin_url, "connect_timeout": "1s", "first_byte_timeout": "2s", "idle_timeout": "2s"},
        "access_log": "access.log",
    }


def merge(base, overrides):
    """Deep-merges overrides into a copy of base: dicts merge, other values replace, None deletes a key."""
    out = copy.deepcopy(base)
    for k, v in (overrides or {}).items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# The edge process
# ---------------------------------------------------------------------------------------------------------------------

class EdgeStartError(AssertionError):
    pass


class Edge:
    """One cdn-edge process working in `workdir` (its config, cache, logs and ready file live there)."""

    START_TIMEOUT = 20.0
    STOP_TIMEOUT = 10.0

    def __init__(self, workdir, config, binary=None, assumed_ready=None):
        """config None: run without -c and --ready-file (the embedded default); then assumed_ready stands for
        the ready file (the ports the default listens on) and readiness is polled on its admin /healthz."""
        self.workdir = workdir
        self.config = config
        self.assumed_ready = assumed_ready
        self.binary = binary or edge_binary()
        self.config_path = os.path.join(workdir, "edge.yaml")
        self.ready_path = os.path.join(workdir, "ready.json")
        self.proc = None
        self.ready = None
        self.runs = 0
        self.logs = []  # (label, text) of finished runs, for failure reports
        self.returncode = None
        self.died = None  # set by stop() when the process was already gone (a crash)

    # ports from the ready file
    @property
    def pid(self):
        return self.proc.pid

    def _port(self, address):
        return int(address.rsplit(":", 1)[1])

    @property
    def port(self):
        """The first plain listener."""
        return next(self._port(l["address"]) for l in self.ready["listen"] if not l.get("tls"))

    @property
    def tls_port(self):
        return next(self._port(l["address"]) for l in self.ready["listen"] if l.get("tls"))

    @property
    def admin_port(self):
        return self._port(self.ready["admin"])

    def write_config(self):
        with open(self.config_path, "w") as f:
            f.write(to_yaml(self.config) + "\n")

    def _log_paths(self, run):
        return (os.path.join(self.workdir, "edge.%d.stdout" % run), os.path.join(self.workdir, "edge.%d.stderr" % run))

    def start(self, extra_args=(), wait=True):
        """Writes the config, starts the edge, waits for the ready file and /healthz (unless wait=False)."""
        if self.proc is not None:
            raise RuntimeError("edge already running")
        if not os.path.exists(self.binary):
            raise EdgeStartError("cdn-edge binary not found at %s (set CDN_EDGE)" % self.binary)
        if self.config is not None:
            self.write_config()
            args = [self.binary, "-c", self.config_path, "--ready-file", self.ready_path] + list(extra_args)
        else:
            args = [self.binary] + list(extra_args)
        if os.path.exists(self.ready_path):
            os.unlink(self.ready_path)
        self.runs += 1
        out, err = self._log_paths(self.runs)
        self._stdout = open(out, "wb")
        self._stderr = open(err, "wb")
        self.ready = None
        self.returncode = None
        self.proc = subprocess.Popen(args, cwd=self.workdir, stdout=self._stdout, stderr=self._stderr,
                                     stdin=subprocess.DEVNULL)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self):
        deadline = time.monotonic() + self.START_TIMEOUT * SLOWDOWN
        if self.config is None:
            self.ready = dict(self.assumed_ready, pid=self.proc.pid)
        while self.ready is None:
            if os.path.exists(self.ready_path):
                with open(self.ready_path) as f:
                    text = f.read()
                try:
                    self.ready = json.loads(text)
                    continue
                except ValueError:
                    raise EdgeStartError("ready file is not whole JSON (it must be written by rename): %r" % text)
            rc = self.proc.poll()
            if rc is not None:
                self._collect(rc)
                raise EdgeStartError("cdn-edge exited with %d before writing the ready file; stderr:\n%s"
                                     % (rc, self.logs[-1][1]))
            if time.monotonic() > deadline:
                raise EdgeStartError("cdn-edge wrote no ready file within %.0fs" % (self.START_TIMEOUT * SLOWDOWN))
            time.sleep(0.01)
        if self.ready.get("pid") != self.proc.pid:
            raise EdgeStartError("ready file pid %r is not the edge's pid %d" % (self.ready.get("pid"), self.proc.pid))
        while True:
            try:
                r = http_request(self.admin_port, "GET", "/healthz", timeout=2)
                if r.status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            if self.proc.poll() is not None:
                self._collect(self.proc.returncode)
                raise EdgeStartError("cdn-edge exited while waiting for /healthz")
            if time.monotonic() > deadline:
                raise EdgeStartError("GET /healthz on admin port %d did not answer 200 in time" % self.admin_port)
            time.sleep(0.02)

    def _collect(self, rc):
        """Closes the log files of a finished run and keeps their text for failure reports."""
        self.returncode = rc
        for f in (self._stdout, self._stderr):
            f.close()
        out, err = self._log_paths(self.runs)
        texts = []
        for p in (out, err):
            with open(p, "rb") as f:
                data = f.read()
            texts.append(data[-20000:].decode("utf-8", "replace"))
        self.logs.append(("run %d stdout (exit %s)" % (self.runs, rc), texts[0]))
        self.logs.append(("run %d stderr (exit %s)" % (self.runs, rc), texts[1]))
        self.proc = None

    def stop(self, timeout=None):
        """SIGTERM, wait up to timeout, then SIGKILL. Returns the exit status (negative: killed by a signal)."""
        if self.proc is None:
            return self.returncode
        timeout = (timeout or self.STOP_TIMEOUT) * SLOWDOWN
        if self.proc.poll() is not None:
            if not getattr(self, "sigterm_sent", False):
                self.died = "cdn-edge (pid %d) died on its own during the test with status %d" % (
                    self.proc.pid, self.proc.returncode)
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._collect("SIGKILL: no exit within %.0fs of SIGTERM" % timeout)
                return self.returncode
        rc = self.proc.returncode
        self._collect(rc)
        return rc

    def sigterm(self):
        """Sends SIGTERM without waiting (a test watching the drain); stop() then collects the exit."""
        self.sigterm_sent = True
        self.proc.send_signal(signal.SIGTERM)

    def kill9(self):
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self._collect(self.proc.returncode if self.proc else -9)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # admin helpers
    def metrics(self):
        r = http_request(self.admin_port, "GET", "/metrics")
        if r.status != 200:
            raise AssertionError("GET /metrics answered %d" % r.status)
        return parse_metrics(r.body.decode("utf-8"))

    def proc_status(self):
        """Fields of /proc/PID/status in kB: {'VmRSS': 1234, 'RssAnon': 567, ...}."""
        out = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                parts = v.split()
                if len(parts) == 2 and parts[1] == "kB":
                    out[k] = int(parts[0])
        return out

    def access_log_lines(self):
        p = os.path.join(self.workdir, "access.log")
        if not os.path.exists(p):
            return []
        with open(p, "rb") as f:
            return f.read().decode("utf-8", "replace").splitlines()


class MemoryMonitor:
    """Polls /proc/PID/status while running and keeps the peaks of VmRSS and RssAnon (kB)."""

    def __init__(self, pid, interval=0.02):
        self.pid = pid
        self.interval = interval
        self.peak = {"VmRSS": 0, "RssAnon": 0}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                with open("/proc/%d/status" % self.pid) as f:
                    for line in f:
                        k, _, v = line.partition(":")
                        if k in self.peak:
                            self.peak[k] = max(self.peak[k], int(v.split()[0]))
                self.samples += 1
            except (OSError, ValueError):
                return
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------------------------------------------------
# The test case base
# ---------------------------------------------------------------------------------------------------------------------

class EdgeTestCase(unittest.TestCase):
    """Each test gets self.tmp (a temp dir), self.origin (started) and, after start_edge(), self.edge."""

    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cdn-edge-it-")
        self.origin = origin_server.Origin().start()
        self.edges = []
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        problems = []
        for e in self.edges:
            was_running = e.alive()
            rc = e.stop()
            if e.died:
                problems.append(e.died)
            elif was_running and rc != 0:
                problems.append("cdn-edge exited with status %s on SIGTERM (sanitizer report or drain failure?)" % rc)
        self.origin.stop()
        if not os.environ.get("EDGE_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        # a crash or a bad exit fails the test even when every request happened to pass
        if problems:
            raise AssertionError("; ".join(problems))

    def run(self, result=None):
        # Prints the edge's output when this test failed: its files are gone by the time results print.
        before = (len(result.failures) + len(result.errors)) if result is not None else 0
        out = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            for e in getattr(self, "edges", []):
                for label, text in e.logs:
                    if text.strip():
                        sys.stderr.write("----- %s: cdn-edge %s -----\n%s\n" % (self.id(), label, text.rstrip()))
            sys.stderr.flush()
        return out

    def config(self, overrides=None):
        return merge(default_config(self.origin.url), overrides)

    def make_edge(self, overrides=None, workdir=None):
        e = Edge(workdir or self.tmp, self.config(overrides))
        self.edges.append(e)
        return e

    def start_edge(self, overrides=None, workdir=None):
        self.edge = self.make_edge(overrides, workdir).start()
        return self.edge

    # request helpers on the (last) started edge
    def get(self, target, **kw):
        return http_request(self.edge.port, "GET", target, **kw)

    def request(self, method, target, **kw):
        return http_request(self.edge.port, method, target, **kw)

    # assertions
    def assertStored(self, r, msg=None):
        p = r.edge_status()
        self.assertEqual(p.get("fwd"), "miss", msg or r)
        self.assertIs(p.get("stored"), True, msg or r)
        self.assertNotIn("detail", p, msg or r)

    def hit_eventually(self, t, headers=None):
        """Waits until a GET of t (with headers) is a hit: fills commit a moment after their response ends."""
        wait_for(lambda: self.get(t, headers=headers or {}).edge_status().get("hit") is True, 5,
                 what="a hit on %s %r" % (t, headers or {}))

    def assertHit(self, r, msg=None):
        p = r.edge_status()
        self.assertIs(p.get("hit"), True, msg or r)
        self.assertNotIn("fwd", p, msg or r)
        self.assertIsInstance(p.get("ttl"), int, msg or r)

    def assertNotStored(self, r, detail, msg=None):
        p = r.edge_status()
        self.assertEqual(p.get("fwd"), "miss", msg or r)
        self.assertNotIn("stored", p, msg or r)
        self.assertNotIn("hit", p, msg or r)
        self.assertEqual(str(p.get("detail")), detail, msg or r)

    def assertBodyN(self, r, n, msg=None):
        """The body is the origin's response number n (the filler body starts with `n=<n>;`)."""
        self.assertTrue(r.body.startswith(b"n=%d;" % n), msg or "body %r is not response n=%d" % (r.body[:40], n))
