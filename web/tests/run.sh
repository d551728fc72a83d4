#!/usr/bin/env bash
# Browser tests of the web client. Installs what they need if it is missing
# (Debian's chromium, Node.js, the npm packages), then runs them against the
# local stack. Runs from any directory; exits non-zero when a test fails.
#
#   CHAT_LOCAL_BIN  the chat-local binary (default <repo>/target/debug/chat-local,
#                   built by `cargo build -p chat-local`)
#   CHROMIUM_BIN    the browser (default /usr/bin/chromium)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export CHAT_LOCAL_BIN="${CHAT_LOCAL_BIN:-$repo/target/debug/chat-local}"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "run.sh: need root (or sudo) to run: $*" >&2
    exit 1
  fi
}

apt_updated=false
apt_install() {
  if [ "$apt_updated" = false ]; then
    as_root apt-get update
    apt_updated=true
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

if [ -z "${CHROMIUM_BIN:-}" ] && [ ! -x /usr/bin/chromium ]; then
  echo "run.sh: installing chromium"
  apt_install chromium
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "run.sh: installing Node.js"
  apt_install nodejs npm
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "run.sh: Node.js 20 or newer is needed (playwright-core), found $(node --version)" >&2
  exit 1
fi

if [ ! -x "$CHAT_LOCAL_BIN" ]; then
  echo "run.sh: no chat-local at $CHAT_LOCAL_BIN; build it with \`cargo build -p chat-local\` or set CHAT_LOCAL_BIN" >&2
  exit 1
fi

cd "$here"
if [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

mkdir -p artifacts
npm test
echo "run.sh: screenshots in $here/artifacts/"
