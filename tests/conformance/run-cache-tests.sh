#!/usr/bin/env bash
# Run the HTTP WG cache conformance suite (github.com/http-tests/cache-tests)
# against cdn-edge: the suite's origin server on a free loopback port, cdn-edge
# in front of it with that server as origin, and the suite's CLI client pointed
# at the edge.  Everything binds 127.0.0.1 only.  Not part of CI.
#
# Usage: run-cache-tests.sh [-i TEST_ID] [-x TEST_ID]... [-o RESULTS_JSON] [-k] CACHE_TESTS_DIR CDN_EDGE_BIN
#   CACHE_TESTS_DIR  a checkout of http-tests/cache-tests where `npm install` was run
#   CDN_EDGE_BIN     the cdn-edge executable to test
#   -i TEST_ID       run one test and print the suite's request/response dump
#   -x TEST_ID       skip this test (repeatable), e.g. one known to crash the edge
#   -o FILE          where to write the results JSON (default: ./cache-tests-results.json)
#   -k               keep the temp dir (edge config, stderr, access log, server log)
# Exit status: 0 when the run completed and the edge survived it (failures are
# reported, not fatal); 1 when the edge died, stopped answering or logged a
# sanitizer/assertion error; 2 on setup errors.
set -euo pipefail

TEST_ID=""
EXCLUDE=""
OUT="$PWD/cache-tests-results.json"
KEEP=0
RUN_TIMEOUT_SEC=${RUN_TIMEOUT_SEC:-900}
while getopts "i:x:o:kh" opt; do
    case "$opt" in
    i) TEST_ID=$OPTARG ;;
    x) EXCLUDE="$EXCLUDE $OPTARG" ;;
    o) OUT=$OPTARG ;;
    k) KEEP=1 ;;
    *) sed -n '2,16p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [[ $# -ne 2 ]]; then
    sed -n '2,16p' "$0"
    exit 2
fi
SUITE=$(cd "$1" && pwd)
EDGE_BIN=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
[[ -f "$SUITE/test-engine/cli.mjs" && -d "$SUITE/node_modules" ]] || { echo "error: $SUITE is not a cache-tests checkout with npm install done" >&2; exit 2; }
[[ -x "$EDGE_BIN" ]] || { echo "error: $EDGE_BIN is not executable" >&2; exit 2; }
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cache-tests.XXXXXX")
SERVER_PID=""
EDGE_PID=""
cleanup() {
    # Stop only what we started, by PID.
    for pid in $EDGE_PID $SERVER_PID; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    if [[ $KEEP -eq 1 ]]; then echo "temp dir kept: $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

wait_for() { # wait_for SECONDS PID COMMAND...: poll COMMAND until it succeeds or PID dies
    local deadline=$((SECONDS + $1)) pid=$2
    shift 2
    until "$@"; do
        kill -0 "$pid" 2>/dev/null || return 1
        [[ $SECONDS -lt $deadline ]] || return 1
        sleep 0.1
    done
}

# 1. The suite's origin server.  server.mjs calls server.listen(port), which
# binds every interface; this wrapper forces 127.0.0.1 and port 0 (the kernel
# picks a free port, read back from its "Listening on" line).
SERVER_WRAPPER='
import net from "node:net";
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, ...rest) {
    if (typeof port === "number" || typeof port === "string")
        return listen.call(this, Number(port), "127.0.0.1", ...rest);
    return listen.call(this, port, ...rest);
};
await import(process.argv[1]);
'
(cd "$SUITE" && exec env npm_config_protocol=http npm_config_port=0 npm_config_pidfile="$TMP/server.pid" \
    node --input-type=module -e "$SERVER_WRAPPER" "$SUITE/test-engine/server/server.mjs") >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
server_port() { sed -n 's|^Listening on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$TMP/server.log" | head -1; }
has_server_port() { [[ -n "$(server_port)" ]]; }
wait_for 30 "$SERVER_PID" has_server_port || { echo "error: suite server did not start:" >&2; cat "$TMP/server.log" >&2; exit 2; }
ORIGIN_PORT=$(server_port)

# 2. cdn-edge in front of it.
mkdir -p "$TMP/edge"
cat >"$TMP/edge/edge.yaml" <<YAML
listen: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
workers: 2
cache: {path: cache, max_size: 512MiB}
origin: {url: "http://127.0.0.1:$ORIGIN_PORT", first_byte_timeout: 10s, idle_timeout: 10s}
access_log: access.log
YAML
# For an ASan build: the repo's suppressions cover libh2o's per-thread recycled allocations only.
LSAN_SUPP="$(cd "$(dirname "$0")/.." && pwd)/lsan.supp"
[[ -f "$LSAN_SUPP" ]] && export LSAN_OPTIONS="suppressions=$LSAN_SUPP${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
(cd "$TMP/edge" && exec "$EDGE_BIN" -c edge.yaml --ready-file ready.json) >"$TMP/edge.stdout" 2>"$TMP/edge.stderr" &
EDGE_PID=$!
wait_for 30 "$EDGE_PID" test -s "$TMP/edge/ready.json" || { echo "error: cdn-edge did not start:" >&2; cat "$TMP/edge.stderr" >&2; exit 2; }
EDGE_PORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listen"][0]["address"].rsplit(":",1)[1])' "$TMP/edge/ready.json")
BASE="http://127.0.0.1:$EDGE_PORT"
echo "suite server 127.0.0.1:$ORIGIN_PORT (pid $SERVER_PID), cdn-edge $BASE (pid $EDGE_PID)" >&2

# 3. The client.  With -i, the suite's own cli.mjs (what `npm run cli` does;
# both npm_config_* and npm_package_config_* are set because cli.mjs falls back
# from one to the other).  Otherwise the same runTests()/getResults() calls as
# cli.mjs, minus the tests named with -x.
CLIENT='
import { pathToFileURL } from "node:url";
const [suite, base, exclude] = process.argv.slice(1);
const skip = new Set(exclude.split(" ").filter(Boolean));
const { runTests, getResults } = await import(pathToFileURL(suite + "/test-engine/client/runner.mjs"));
const tests = (await import(pathToFileURL(suite + "/tests/index.mjs"))).default;
const selected = tests.map(s => ({ ...s, tests: s.tests.filter(t => !skip.has(t.id)) }));
await runTests(selected, false, base);
console.log(JSON.stringify(getResults(), null, 2));
'
run_client() {
    if [[ -n "$TEST_ID" ]]; then
        (cd "$SUITE" && exec timeout "$RUN_TIMEOUT_SEC" env npm_config_base="$BASE" npm_package_config_base="$BASE" \
            npm_config_id="$TEST_ID" npm_package_config_id="$TEST_ID" node --no-warnings test-engine/cli.mjs)
    else
        (cd "$SUITE" && exec timeout "$RUN_TIMEOUT_SEC" node --no-warnings --input-type=module -e "$CLIENT" "$SUITE" "$BASE" "$EXCLUDE")
    fi
}

edge_alive() {
    kill -0 "$EDGE_PID" 2>/dev/null || return 1
    # Liveness through the proxy path: the suite server answers 404 for an unknown state id.
    local code
    code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$BASE/state/liveness-probe") || return 1
    [[ "$code" == 404 ]]
}

report_edge() {
    local rc=0
    if edge_alive; then
        echo "cdn-edge: alive and answering after the run"
    else
        rc=1
        if kill -0 "$EDGE_PID" 2>/dev/null; then
            echo "cdn-edge: RUNNING BUT NOT ANSWERING (hang) after the run"
        else
            wait "$EDGE_PID" 2>/dev/null && st=0 || st=$?
            EDGE_PID=""
            echo "cdn-edge: DIED during the run (exit status $st; >128 means signal $((st > 128 ? st - 128 : 0)))"
        fi
    fi
    local bad
    bad=$(grep -a -c -E 'AddressSanitizer|LeakSanitizer|runtime error:|Assertion .* failed' "$TMP/edge.stderr" || true)
    if [[ "$bad" != 0 ]]; then
        rc=1
        echo "cdn-edge stderr has $bad sanitizer/assertion line(s):"
        grep -a -E 'AddressSanitizer|LeakSanitizer|runtime error:|Assertion .* failed' "$TMP/edge.stderr" | head -n 10 | sed 's/^/  /'
    fi
    if [[ -s "$TMP/edge.stderr" ]]; then
        echo "cdn-edge stderr (last 30 of $(wc -l <"$TMP/edge.stderr") lines):"
        tail -n 30 "$TMP/edge.stderr" | sed 's/^/  /'
    fi
    return $rc
}

if [[ -n "$TEST_ID" ]]; then
    run_client || echo "client exited with status $?"
    report_edge
    exit $?
fi

client_rc=0
run_client >"$OUT.tmp" 2>"$TMP/client.stderr" || client_rc=$?
if [[ $client_rc -ne 0 ]]; then
    echo "error: client exited with status $client_rc (124 = timed out after ${RUN_TIMEOUT_SEC}s)" >&2
    tail -n 20 "$TMP/client.stderr" >&2
    mv "$OUT.tmp" "$OUT.partial" 2>/dev/null || true
    report_edge || true
    exit 1
fi
mv "$OUT.tmp" "$OUT"
echo "results: $OUT"
[[ -z "$EXCLUDE" ]] || echo "skipped (-x):$EXCLUDE"

# 4. Summary.  The suite classifies each test by `kind`: required (or absent),
# `optimal` (failure = not optimal, not a conformance problem) and `check`
# (informational yes/no).  Results are graded with the suite's own
# determineTestResult(), dependencies honoured as on cache-tests.fyi.
SUMMARY='
import { pathToFileURL } from "node:url";
import fs from "node:fs";
const [suite, out] = process.argv.slice(1);
const tests = (await import(pathToFileURL(suite + "/tests/index.mjs"))).default;
const { determineTestResult, resultTypes } = await import(pathToFileURL(suite + "/test-engine/lib/results.mjs"));
const results = JSON.parse(fs.readFileSync(out, "utf8"));
const label = new Map(Object.entries(resultTypes).map(([k, v]) => [v, k]));
const counts = {}, bad = [];
for (const s of tests) for (const t of s.tests) {
    if (!(t.id in results)) continue;
    const kind = t.kind || "required";
    const r = label.get(determineTestResult(tests, t.id, results));
    counts[kind] = counts[kind] || {};
    counts[kind][r] = (counts[kind][r] || 0) + 1;
    if (kind === "required" && r !== "pass") {
        let why = Array.isArray(results[t.id]) ? results[t.id].join(": ") : "";
        if (r === "dependency_fail")
            why = "untestable, depends on: " + (t.depends_on || [])
                .filter(d => !["pass", "yes"].includes(label.get(determineTestResult(tests, d, results))))
                .map(d => `${d} (${label.get(determineTestResult(tests, d, results))})`).join(", ");
        bad.push(`  ${r.padEnd(15)} ${t.id}  -- ${t.name}` + (why ? `\n${"".padEnd(18)}${why}` : ""));
    }
}
for (const kind of ["required", "optimal", "check"]) {
    const c = counts[kind] || {};
    const total = Object.values(c).reduce((a, b) => a + b, 0);
    const good = (c.pass || 0) + (c.yes || 0);
    const rest = Object.entries(c).filter(([k]) => k !== "pass" && k !== "yes").map(([k, v]) => `${k}=${v}`).join(" ");
    console.log(`${kind.padEnd(9)} ${kind === "check" ? "yes" : "passed"} ${good}/${total}  ${rest}`);
}
if (bad.length) console.log("required tests not passing:\n" + bad.join("\n"));
'
node --input-type=module -e "$SUMMARY" "$SUITE" "$OUT"
report_edge
