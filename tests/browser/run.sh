#!/usr/bin/env bash
# Real-browser test of the search page served at GET /.
#
#   bash tests/browser/run.sh      (from anywhere; as root it installs what is missing)
#
# Installs Debian's chromium and playwright-core (tests/browser/node_modules) when
# missing, builds ./xun, indexes corpus/news.jsonl into a temporary folder, serves it
# on a free loopback port, runs search.spec.mjs against it, always stops the server,
# and exits with the spec's status. Screenshots: build/browser/search.png and
# build/browser/search-phone.png; the server's log: build/browser/server.log.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
export DEBIAN_FRONTEND=noninteractive

say() { printf 'browser: %s\n' "$*"; }
die() { printf 'browser: %s\n' "$*" >&2; exit 1; }

apt_updated=""
apt_install() {
    [ "$(id -u)" = 0 ] || die "missing $*; as root run: apt-get install $*"
    if [ -z "$apt_updated" ]; then
        timeout 300 apt-get update -qq || die "apt-get update failed"
        apt_updated=1
    fi
    timeout 600 apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}

# --- what the test needs ---
if [ ! -x /usr/bin/chromium ]; then
    say "installing chromium"
    apt_install chromium
fi
# A Chinese font, so that the screenshots show Chinese rather than boxes (the test
# itself reads text, not pixels).
has_cjk_font() {
    if command -v fc-list >/dev/null 2>&1; then
        [ -n "$(fc-list :lang=zh 2>/dev/null | head -n 1)" ]
    else
        dpkg -s fonts-noto-cjk >/dev/null 2>&1 || dpkg -s fonts-wqy-microhei >/dev/null 2>&1 ||
            dpkg -s fonts-wqy-zenhei >/dev/null 2>&1
    fi
}
if ! has_cjk_font; then
    say "installing a Chinese font (fonts-wqy-microhei)"
    apt_install fonts-wqy-microhei
fi
command -v node >/dev/null 2>&1 || die "node (20 or newer) is not installed"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "node $(node --version) is too old: playwright-core needs 20 or newer"
if [ ! -d "$here/node_modules/playwright-core" ]; then
    say "installing playwright-core (npm ci)"
    (cd "$here" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) ||
        die "npm ci failed in tests/browser"
fi

# --- the server ---
make -s deps xun

tmp="$(mktemp -d "${TMPDIR:-/tmp}/xun-browser.XXXXXX")"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

timeout 120 ./xun index --data "$tmp/data" corpus/news.jsonl >"$tmp/index.log" 2>&1 ||
    { cat "$tmp/index.log" >&2; die "xun index failed"; }

# A free port: bind port 0, read it, let it go (and retry if someone takes it first).
started=""
for attempt in 1 2 3; do
    port="$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
    # No API key: the spec writes its own test documents.
    env -u XUN_API_KEY ./xun serve --data "$tmp/data" --listen "127.0.0.1:$port" --quiet \
        >"$tmp/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do   # up to 10 s
        if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
        if node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' \
               "http://127.0.0.1:$port/health" 2>/dev/null; then
            started=1
            break
        fi
        sleep 0.1
    done
    [ -n "$started" ] && break
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    say "server did not start on port $port (attempt $attempt):"
    cat "$tmp/server.log" >&2
done
[ -n "$started" ] || die "could not start ./xun serve"
say "server at http://127.0.0.1:$port (pid $server_pid)"

# --- the browser test ---
status=0
timeout 240 node "$here/search.spec.mjs" "http://127.0.0.1:$port" || status=$?
# Keep the server's log beside the screenshots (printing it here would push the
# spec's closing "browser: N passed, M failed" line off the end).
mkdir -p build/browser
cp "$tmp/server.log" build/browser/server.log 2>/dev/null || true
exit "$status"
