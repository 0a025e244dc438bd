"""The real Next.js app of tests/fixtures/nextjs-app: install, build and run it on loopback (standard library only).

NextApp.prepare() makes the fixture runnable:
- install: `npm ci` from the committed package-lock.json, only when node_modules does not match the lock (a stamp
  in node_modules holds the lock's SHA-256). node_modules stays in the fixture dir (git-ignored) between runs.
- build: `next build`, only when the sources changed (a stamp in .next holds the SHA-256 of every source file,
  the lock and the node version).
- skip: unittest.SkipTest with a visible message ONLY when an install is needed and the npm registry cannot be
  reached (`npm ping` fails). A missing node/npm, an old node, a failed install or build is an error, not a skip.
NextApp.start() runs `next start -p <free port> -H 127.0.0.1` as a child in its own process group, polls GET / until
it answers, and stop() sends SIGTERM then SIGKILL to that group (our pid) only.

Time taken here (2 cores, Node 20, Next.js 16.4.6 with Turbopack): npm ci ~15 s, next build ~13 s, next start ready
in ~1 s. A run with both stamps current only starts the server.

A file lock (fcntl) in the fixture dir serialises install and build between concurrent test runs (e.g. the plain and
the ASan build dirs running ctest at once). NEXT_TELEMETRY_DISABLED=1 is set for every npm/next command.
"""

import fcntl
import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE_DIR = os.path.normpath(os.path.join(HERE, "..", "fixtures", "nextjs-app"))

MIN_NODE = (20, 9)                 # next@16 "engines": {"node": ">=20.9.0"}
INSTALL_TIMEOUT_SEC = 600
BUILD_TIMEOUT_SEC = 600
START_TIMEOUT_SEC = 60
STOP_TIMEOUT_SEC = 10

# files and folders that are not build inputs
_NOT_SOURCES = {"node_modules", ".next", "NOTES.md", ".gitignore", ".edge-setup.lock", "next-env.d.ts"}


def _env():
    env = dict(os.environ)
    env["NEXT_TELEMETRY_DISABLED"] = "1"
    env.pop("NODE_OPTIONS", None)
    return env


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)


def free_port():
    """A loopback port that was free a moment ago (bind port 0, read it, close)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class NextApp:
    """The fixture app: prepare() once (install/build if needed), then start()/stop() a `next start` server."""

    def __init__(self, app_dir=FIXTURE_DIR):
        self.app_dir = app_dir
        self.proc = None
        self.port = None
        self.logdir = None
        self.build_id = None

    # ---- tools -------------------------------------------------------------------------------------------------------

    def _run(self, args, timeout, what):
        p = subprocess.run(args, cwd=self.app_dir, env=_env(), stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout)
        if p.returncode != 0:
            out = (p.stdout + p.stderr).decode("utf-8", "replace")[-6000:]
            raise RuntimeError("%s failed (exit %d):\n%s" % (what, p.returncode, out))
        return p.stdout.decode("utf-8", "replace")

    def _check_tools(self):
        for tool in ("node", "npm"):
            if shutil.which(tool) is None:
                raise RuntimeError("%s is not installed: the Next.js integration test needs Node.js >= %d.%d and npm"
                                   % (tool, MIN_NODE[0], MIN_NODE[1]))
        v = self._run(["node", "--version"], 30, "node --version").strip()
        m = re.match(r"v(\d+)\.(\d+)", v)
        if not m or (int(m.group(1)), int(m.group(2))) < MIN_NODE:
            raise RuntimeError("node %s is too old for the fixture's Next.js (needs >= %d.%d)" % (v, *MIN_NODE))
        return v

    # ---- install and build -------------------------------------------------------------------------------------------

    def _install_stamp_path(self):
        return os.path.join(self.app_dir, "node_modules", ".edge-install-stamp")

    def _build_stamp_path(self):
        return os.path.join(self.app_dir, ".next", "edge-build-stamp")

    def _sources_hash(self, node_version):
        h = hashlib.sha256(node_version.encode() + b"\0")
        for root, dirs, files in os.walk(self.app_dir):
            dirs[:] = sorted(d for d in dirs if d not in _NOT_SOURCES)
            for name in sorted(files):
                if name in _NOT_SOURCES:
                    continue
                path = os.path.join(root, name)
                h.update(os.path.relpath(path, self.app_dir).encode() + b"\0" + _sha256_file(path).encode() + b"\0")
        return h.hexdigest()

    def prepare(self):
        """Installs (npm ci) and builds (next build) when needed. Raises unittest.SkipTest only when an install is
        needed and `npm ping` fails; RuntimeError on any other problem."""
        node_version = self._check_tools()
        with open(os.path.join(self.app_dir, ".edge-setup.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            lock_hash = _sha256_file(os.path.join(self.app_dir, "package-lock.json"))
            if _read(self._install_stamp_path()) != lock_hash:
                try:
                    subprocess.run(["npm", "ping"], cwd=self.app_dir, env=_env(), stdin=subprocess.DEVNULL,
                                   capture_output=True, timeout=60, check=True)
                except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
                    out = getattr(e, "stderr", b"") or b""
                    raise unittest.SkipTest("SKIPPED: the npm registry cannot be reached (`npm ping` failed), so the "
                                            "Next.js fixture cannot be installed: %s"
                                            % out.decode("utf-8", "replace").strip()[-300:])
                self._run(["npm", "ci", "--no-audit", "--no-fund"], INSTALL_TIMEOUT_SEC, "npm ci")
                _write(self._install_stamp_path(), lock_hash)
            src_hash = self._sources_hash(node_version)
            if (_read(self._build_stamp_path()) != src_hash
                    or not os.path.exists(os.path.join(self.app_dir, ".next", "BUILD_ID"))):
                self._run([self._next_bin(), "build"], BUILD_TIMEOUT_SEC, "next build")
                _write(self._build_stamp_path(), src_hash)
        self.build_id = _read(os.path.join(self.app_dir, ".next", "BUILD_ID"))
        return self

    def _next_bin(self):
        return os.path.join(self.app_dir, "node_modules", ".bin", "next")

    # ---- the server --------------------------------------------------------------------------------------------------

    def start(self):
        """Starts `next start` on a free loopback port and waits until GET / answers 200."""
        if self.proc is not None:
            raise RuntimeError("next start already running")
        self.logdir = tempfile.mkdtemp(prefix="nextjs-app-")
        self._out = open(os.path.join(self.logdir, "next.log"), "wb")
        self.port = free_port()
        self.proc = subprocess.Popen([self._next_bin(), "start", "-p", str(self.port), "-H", "127.0.0.1"],
                                     cwd=self.app_dir, env=_env(), stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_SEC
        while True:
            if self.proc.poll() is not None:
                log = self.log()
                self._reap()
                raise RuntimeError("next start exited with %s before answering:\n%s" % (self.proc_rc, log))
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/")
                resp = conn.getresponse()
                # the port was free when picked, but another process may have taken it since: only our Next.js
                # app counts as ready (it answers with X-Powered-By: Next.js)
                if resp.status == 200 and (resp.getheader("x-powered-by") or "").startswith("Next.js"):
                    conn.close()
                    return self
                conn.close()
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("next start did not answer GET / within %ds" % START_TIMEOUT_SEC)
            time.sleep(0.1)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def log(self):
        if not self.logdir:
            return ""
        with open(os.path.join(self.logdir, "next.log"), "rb") as f:
            return f.read()[-20000:].decode("utf-8", "replace")

    def _signal_group(self, sig):
        # the group is ours: start_new_session made our child its leader, so its pgid is our child's pid
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def _reap(self):
        self.proc_rc = self.proc.returncode
        self.proc = None
        self._out.close()

    def stop(self):
        """SIGTERM to the server's process group (our child's pid), SIGKILL after STOP_TIMEOUT_SEC."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_SEC)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.proc.wait()
        self._reap()

    def cleanup(self):
        self.stop()
        if self.logdir and not os.environ.get("EDGE_KEEP_TMP"):
            shutil.rmtree(self.logdir, ignore_errors=True)
        self.logdir = None


if __name__ == "__main__":
    # manual use: python3 nextjs.py  -> prepares, starts, prints the URL, runs until Ctrl-C or SIGTERM
    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    app = NextApp().prepare()
    app.start()
    print("Next.js fixture (build %s) at %s" % (app.build_id, app.url), flush=True)
    try:
        while app.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        app.cleanup()
