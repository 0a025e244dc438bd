"""A scriptable HTTP/1.1 test origin for the cdn-edge integration tests (standard library only).

The origin runs in the test process, on threads, bound to 127.0.0.1 port 0. It counts requests per
request target (path + query, exactly as received), records every request (method, target, headers,
body) and numbers its responses: the body of an ordinary response starts with `n=<count>;`, and every
response carries `X-Origin-N: <count>`, so a hit (old number) and a miss (new number) tell apart.

Routes (every one takes the common query parameters below):

  /r/<anything>          an ordinary response
  /chunked/<anything>    the body in proper chunked encoding
  /truncate/length/...   Content-Length says `len` (default 1000), half is sent, then the connection closes
  /truncate/chunked/...  whole chunks, then the connection closes without the terminating 0-chunk
  /truncate/close/...    no Content-Length, not chunked: the body ends when the connection closes
  /slow/...              waits `delay_ms` before the head (also a common parameter)
  /silent/...            accepts the request and never answers (until the peer closes or the origin stops)
  /stall-after/...       Content-Length `size`, sends `bytes` bytes, then stalls (until the peer closes or
                         the origin stops); with `stall_once=1` only the first request for the target stalls
  /big/...               `size` bytes of a deterministic pseudo-random body (see big_body_pieces), streamed in
                         1 MiB pieces; the SHA-256 of what was sent is kept (Origin.sent_sha256)

Common query parameters:
  cc=VALUE        Cache-Control (none unless given)
  status=N        the status (default 200)
  len=N           body length (the body is `n=<count>;` padded with a filler, cut to N bytes)
  setcookie=1     adds `Set-Cookie: a=b`
  vary=VALUE      Vary
  ce=gzip         Content-Encoding: gzip, with a real gzip body of the ordinary body
  text=1          the body is gz_text(len) (pseudo-random words) instead of the filler
  ce=auto         gzip the ordinary body only when the request's Accept-Encoding names gzip (as most servers do),
                  with Vary: Accept-Encoding either way
  gz=MODE         Content-Encoding: gzip whatever the request says, with a body made for the gzip tests from
                  gz_text(len) (pseudo-random words, compresses about 3:1): text (one gzip member), multi (two
                  members, the text cut in half), bomb (len zero bytes instead: ratio about 1000:1), corrupt (the
                  deflate data damaged in its middle), truncated (the gzip cut before its end; the HTTP framing of
                  what is sent is whole).
  expires=SEC     Expires: now + SEC (may be negative)
  age=N           Age: N
  cs=VALUE        Cache-Status (an upstream member, as a cache in front of the origin would send)
  etag=VALUE      ETag
  hdr=Name:Value  any extra header (repeatable)
  chunked=1       send the body chunked instead of with Content-Length
  delay_ms=N      wait before sending the head
  ct=TYPE         Content-Type (default text/plain)
  cond=1          answer a matching If-None-Match (the etag parameter, weak comparison) or an If-Modified-Since
                  not older than the Last-Modified given with hdr= with 304 (the revalidation tests)
  then_status=N   every request for the target after the first gets status N (stale-if-error tests)
  then_cc=VALUE   every request for the target after the first gets this Cache-Control

HEAD is answered with the GET head (Content-Length included) and no body. 204 and 304 never have a body.

Also: refused_port() gives a port on which connections are refused.
Run as a script (`python3 origin_server.py [PORT]`) to serve on the console for manual testing.
"""

import functools
import gzip
import hashlib
import random
import select
import socket
import socketserver
import sys
import threading
import time
import urllib.parse
from email.utils import formatdate

REASONS = {
    200: "OK", 203: "Non-Authoritative Information", 204: "No Content", 206: "Partial Content",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Found", 304: "Not Modified",
    307: "Temporary Redirect", 308: "Permanent Redirect", 400: "Bad Request", 403: "Forbidden",
    404: "Not Found", 410: "Gone", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
}

BIG_PIECE = 1 << 20
_BIG_BASE = random.Random(20240601).randbytes(BIG_PIECE)


def big_body_pieces(size):
    """Yields the deterministic body of /big?size=SIZE in pieces of at most 1 MiB.

    Piece i is a fixed pseudo-random 1 MiB block rotated by a piece-dependent offset, so a piece that
    is lost, repeated or reordered changes the SHA-256, and nothing larger than one piece is held.
    """
    sent = 0
    i = 0
    while sent < size:
        k = (i * 7919 + 13) % BIG_PIECE
        piece = _BIG_BASE[k:] + _BIG_BASE[:k]
        n = min(BIG_PIECE, size - sent)
        yield piece[:n] if n < BIG_PIECE else piece
        sent += n
        i += 1


def big_body_sha256(size):
    """The SHA-256 (hex) of the /big?size=SIZE body, computed independently of any transfer."""
    h = hashlib.sha256()
    for piece in big_body_pieces(size):
        h.update(piece)
    return h.hexdigest()


def filler_body(n, length):
    """The ordinary body: `n=<n>;` followed by a deterministic filler, exactly `length` bytes."""
    head = ("n=%d;" % n).encode()
    if length is None:
        return head + b"hello from origin\n"
    if length <= len(head):
        return head[:length]
    unit = b"0123456789abcdefghijklmnopqrstuvwxyz\n"
    reps = (length - len(head)) // len(unit) + 1
    return (head + unit * reps)[:length]


@functools.lru_cache(maxsize=8)
def gz_text(length):
    """The identity body of the gz= modes: `length` bytes of deterministic pseudo-random words."""
    rnd = random.Random(length)
    letters = b"abcdefghijklmnopqrstuvwxyz"
    words = [bytes(rnd.choice(letters) for _ in range(rnd.randint(2, 9))) + (b"\n" if i % 10 == 0 else b" ")
             for i in range(256)]
    out = b"".join(rnd.choices(words, k=length // 5 + 16))
    while len(out) < length:
        out += out
    return out[:length]


@functools.lru_cache(maxsize=8)
def gz_body(mode, length):
    """The bytes sent for gz=MODE (see the module doc)."""
    if mode == "bomb":
        return gzip.compress(bytes(length), mtime=0)
    text = gz_text(length)
    if mode == "text":
        return gzip.compress(text, mtime=0)
    if mode == "multi":
        return gzip.compress(text[: length // 2], mtime=0) + gzip.compress(text[length // 2:], mtime=0)
    z = gzip.compress(text, mtime=0)
    if mode == "corrupt":
        mid = len(z) // 2
        return z[:mid] + bytes(b ^ 0x5A for b in z[mid:mid + 64]) + z[mid + 64:]
    if mode == "truncated":
        return z[: len(z) * 2 // 3]
    raise ValueError(mode)


def refused_port():
    """A 127.0.0.1 port nobody listens on: bound, then closed without listen()."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Request:
    """One request as the origin received it."""

    def __init__(self, method, target, version, headers, body, n):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # list of (name, value) as received
        self.body = body
        self.n = n
        parsed = urllib.parse.urlsplit(target)
        self.path = parsed.path
        self.query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)

    def header(self, name):
        """All values of a header joined with ', ' (case-insensitive), or None."""
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(vals) if vals else None

    def __repr__(self):
        return "Request(%s %s n=%d)" % (self.method, self.target, self.n)


class _PeerClosed(Exception):
    pass


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        self.origin = self.server.origin
        self.sock = self.request
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        with self.origin._lock:
            self.origin.connections += 1
        try:
            while not self.origin._stop.is_set():
                req = self.read_request()
                if req is None or self.origin._stop.is_set():
                    return  # a stopped origin answers nothing, even on a connection kept alive
                if not self.respond(req):
                    return
        except (_PeerClosed, ConnectionError, OSError):
            return

    # ---- input ----
    def recv_more(self):
        data = self.sock.recv(65536)
        if not data:
            raise _PeerClosed()
        self.buf += data

    def read_line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 65536:
                raise _PeerClosed()
            self.recv_more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def read_exact(self, n):
        while len(self.buf) < n:
            self.recv_more()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_request(self):
        try:
            line = self.read_line()
        except _PeerClosed:
            return None
        while line == "":
            line = self.read_line()
        method, target, version = line.split(" ", 2)
        headers = []
        while True:
            h = self.read_line()
            if h == "":
                break
            name, _, value = h.partition(":")
            headers.append((name.strip(), value.strip()))
        hdict = {k.lower(): v for k, v in headers}
        body = b""
        if "chunked" in hdict.get("transfer-encoding", "").lower():
            while True:
                size = int(self.read_line().split(";")[0], 16)
                if size == 0:
                    while self.read_line() != "":
                        pass
                    break
                body += self.read_exact(size)
                self.read_exact(2)
        elif "content-length" in hdict:
            body = self.read_exact(int(hdict["content-length"]))
        return self.origin._record(method, target, version, headers, body)

    # ---- output ----
    def send(self, data):
        self.sock.sendall(data)
        with self.origin._lock:
            self.origin.bytes_sent += len(data)

    def wait_peer_close(self):
        """Blocks until the peer closes the connection or the origin stops (a stalled or silent origin)."""
        while not self.origin._stop.is_set():
            r, _, _ = select.select([self.sock], [], [], 0.1)
            if r:
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return

    def close_now(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def respond(self, req):
        """Sends the response; returns True to keep the connection for another request."""
        q = {k: v[-1] for k, v in req.query.items()}
        p = req.path
        is_head = req.method == "HEAD"
        keep_alive = (req.header("connection") or "").lower() != "close" and req.version == "HTTP/1.1"

        delay_ms = int(q.get("delay_ms", "0"))
        if delay_ms:
            time.sleep(delay_ms / 1000.0)

        if p.startswith("/silent"):
            self.wait_peer_close()
            return False

        status = int(q.get("status", "200"))
        if "then_status" in q and req.n > 1:
            status = int(q["then_status"])
        if q.get("cond") == "1" and status == 200 and _not_modified_check(req, q):
            status = 304
        headers = [("Date", formatdate(usegmt=True)), ("Server", "test-origin"), ("X-Origin-N", str(req.n)),
                   ("Content-Type", q.get("ct", "text/plain"))]
        cc = q.get("then_cc") if "then_cc" in q and req.n > 1 else q.get("cc")
        if cc is not None:
            headers.append(("Cache-Control", cc))
        if q.get("setcookie") == "1":
            headers.append(("Set-Cookie", "a=b; Path=/"))
        if "vary" in q:
            headers.append(("Vary", q["vary"]))
        if "expires" in q:
            headers.append(("Expires", formatdate(time.time() + int(q["expires"]), usegmt=True)))
        if "age" in q:
            headers.append(("Age", q["age"]))
        if "cs" in q:
            headers.append(("Cache-Status", q["cs"]))
        if "etag" in q:
            headers.append(("ETag", q["etag"]))
        if 300 <= status < 400 and status != 304:
            headers.append(("Location", "/r/elsewhere"))
        for h in req.query.get("hdr", []):
            name, _, value = h.partition(":")
            headers.append((name.strip(), value.strip()))
        if not keep_alive:
            headers.append(("Connection", "close"))

        def head(extra):
            lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status"))]
            lines += ["%s: %s" % kv for kv in headers + extra]
            self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

        length = int(q["len"]) if "len" in q else None

        if p.startswith("/big"):
            size = int(q.get("size", str(BIG_PIECE)))
            head([("Content-Length", str(size))])
            if is_head:
                return keep_alive
            h = hashlib.sha256()
            done = 0
            for piece in big_body_pieces(size):
                h.update(piece)
                done += len(piece)
                if done == size:  # recorded before the last send, so a client that has it all finds it
                    self.origin._note_sha256(req.target, h.hexdigest())
                self.send(piece)
            return keep_alive

        if p.startswith("/stall-after"):
            size = int(q.get("size", "100000"))
            nbytes = int(q.get("bytes", str(size // 2)))
            stall = q.get("stall_once") != "1" or req.n == 1
            head([("Content-Length", str(size))])
            if is_head:
                return keep_alive
            sent = 0
            h = hashlib.sha256()
            for piece in big_body_pieces(size):
                if stall and sent + len(piece) > nbytes:
                    piece = piece[: nbytes - sent]
                h.update(piece)
                if not stall and sent + len(piece) == size:
                    self.origin._note_sha256(req.target, h.hexdigest())
                self.send(piece)
                sent += len(piece)
                if stall and sent >= nbytes:
                    self.origin._note_stalled(req.target)
                    self.wait_peer_close()
                    return False
            return keep_alive

        body = filler_body(req.n, length) if q.get("text") != "1" else gz_text(length or 1000)
        if q.get("ce") == "gzip":
            body = gzip.compress(body, mtime=0)
            headers.append(("Content-Encoding", "gzip"))
        elif q.get("ce") == "auto":
            headers.append(("Vary", "Accept-Encoding"))
            if "gzip" in (req.header("accept-encoding") or "").lower():
                body = gzip.compress(body, mtime=0)
                headers.append(("Content-Encoding", "gzip"))
        elif "gz" in q:
            body = gz_body(q["gz"], length if length is not None else 100000)
            headers.append(("Content-Encoding", "gzip"))
        if status in (204, 304) or 100 <= status < 200:
            body = b""

        if p.startswith("/truncate/length"):
            full = filler_body(req.n, length if length is not None else 1000)
            head([("Content-Length", str(len(full)))])
            if not is_head:
                self.send(full[: len(full) // 2])
                self.close_now()
            return False
        if p.startswith("/truncate/chunked"):
            full = filler_body(req.n, length if length is not None else 1000)
            head([("Transfer-Encoding", "chunked")])
            if not is_head:
                half = full[: len(full) // 2]
                for i in range(0, len(half), 100):
                    c = half[i:i + 100]
                    self.send(b"%x\r\n%s\r\n" % (len(c), c))
                self.close_now()
            return False
        if p.startswith("/truncate/close"):
            head([])
            if not is_head:
                self.send(body)
                self.close_now()
            return False
        if p.startswith("/chunked") or q.get("chunked") == "1":
            if status in (204, 304):
                head([])
                return keep_alive
            head([("Transfer-Encoding", "chunked")])
            if not is_head:
                step = max(1, min(len(body), 16384) // 3 or 1)
                for i in range(0, len(body), step):
                    c = body[i:i + step]
                    self.send(b"%x\r\n%s\r\n" % (len(c), c))
                self.send(b"0\r\n\r\n")
            return keep_alive
        # an ordinary response (/r/, /slow/, anything else)
        if status in (204, 304):
            head([])
        else:
            head([("Content-Length", str(len(body)))])
            if not is_head:
                self.send(body)
        return keep_alive


def _opaque(etag):
    etag = etag.strip()
    return etag[2:] if etag.startswith("W/") else etag


def _not_modified_check(req, q):
    inm = req.header("if-none-match")
    if inm is not None:
        tags = [_opaque(t) for t in inm.split(",")]
        return "etag" in q and (_opaque(q["etag"]) in tags or "*" in tags)
    ims = req.header("if-modified-since")
    if ims is not None:
        lm = None
        for h in req.query.get("hdr", []):
            name, _, value = h.partition(":")
            if name.strip().lower() == "last-modified":
                lm = value.strip()
        if lm is not None:
            from email.utils import parsedate_to_datetime
            try:
                return parsedate_to_datetime(lm) <= parsedate_to_datetime(ims)
            except (TypeError, ValueError):
                return False
    return False


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128


class Origin:
    """The test origin. Use as a context manager, or start()/stop()."""

    def __init__(self, port=0):
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._cond = threading.Condition(self._lock)
        self.requests = []      # every Request, in arrival order
        self.counts = {}        # target -> number of requests
        self.sent_sha256 = {}   # target -> SHA-256 of the last whole body sent for it (/big, /stall-after)
        self.stalled = {}       # target -> number of times it stalled
        self.connections = 0
        self.bytes_sent = 0
        self._server = _Server(("127.0.0.1", port), _Handler, bind_and_activate=True)
        self._server.origin = self
        self.port = self._server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="origin", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _record(self, method, target, version, headers, body):
        with self._lock:
            n = self.counts.get(target, 0) + 1
            self.counts[target] = n
            req = Request(method, target, version, headers, body, n)
            self.requests.append(req)
            self._cond.notify_all()
            return req

    def _note_sha256(self, target, digest):
        with self._lock:
            self.sent_sha256[target] = digest

    def _note_stalled(self, target):
        with self._lock:
            self.stalled[target] = self.stalled.get(target, 0) + 1
            self._cond.notify_all()

    def count(self, target):
        """How many requests the origin got for this exact target (path + query as sent)."""
        with self._lock:
            return self.counts.get(target, 0)

    def count_path(self, path):
        """How many requests the origin got for this path, whatever the query."""
        with self._lock:
            return sum(1 for r in self.requests if r.path == path)

    def last(self, target):
        """The last Request for the target, or None."""
        with self._lock:
            for r in reversed(self.requests):
                if r.target == target:
                    return r
        return None

    def wait_stalled(self, target, timeout=10.0):
        """Waits until a /stall-after response for the target has sent its part and stalls."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.stalled.get(target, 0) == 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True


if __name__ == "__main__":
    o = Origin(int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    print("origin listening on", o.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        o.stop()
