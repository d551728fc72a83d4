#!/usr/bin/env bash
# The one place infra/'s tools are installed. Sourced by infra/build.sh and
# infra/check.sh; run it directly to install (or update) them by hand:
#
#   infra/tools.sh            # the Python tools: infra/.venv from requirements.txt
#   infra/tools.sh --node     # and the pinned Serverless CLI (npm ci)
#
# Python tools (cargo-lambda, zig, cfn-lint, pytest) live in the virtual
# environment infra/.venv, at the versions pinned in infra/requirements.txt,
# never in the system Python (Debian 12 refuses that: "externally managed
# environment"). The Serverless CLI lives in infra/node_modules, at the
# version pinned in package.json and package-lock.json. Missing system
# packages (python3-venv, nodejs, npm) come from apt-get when there is one.

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
INFRA_VENV="$INFRA_DIR/.venv"

infra_apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "infra/tools.sh: missing $*, and no apt-get to install it" >&2
        return 1
    fi
    echo "infra/tools.sh: apt-get install $*"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# infra/.venv with requirements.txt installed, then its bin/ first on PATH:
# `cargo lambda`, `cfn-lint`, `python` (with pytest and ziglang; cargo-lambda
# runs zig as `python3 -m ziglang`) all resolve there.
infra_python_tools() {
    if ! command -v python3 >/dev/null 2>&1; then
        infra_apt_install python3 python3-venv || return 1
    fi
    if [[ ! -x "$INFRA_VENV/bin/python" ]]; then
        # Debian's python3 has no venv (ensurepip) without python3-venv.
        if ! python3 -m venv "$INFRA_VENV" >/dev/null 2>&1; then
            rm -rf "$INFRA_VENV"
            infra_apt_install python3-venv || return 1
            python3 -m venv "$INFRA_VENV" || return 1
        fi
    fi
    # Reinstall only when requirements.txt changed since the last install.
    local stamp="$INFRA_VENV/.requirements.txt"
    if ! cmp -s "$INFRA_DIR/requirements.txt" "$stamp"; then
        echo "infra/tools.sh: installing infra/requirements.txt into infra/.venv"
        "$INFRA_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            -r "$INFRA_DIR/requirements.txt" || return 1
        cp "$INFRA_DIR/requirements.txt" "$stamp"
    fi
    case ":$PATH:" in
        *":$INFRA_VENV/bin:"*) ;;
        *) export PATH="$INFRA_VENV/bin:$PATH" ;;
    esac
}

# Node and npm (Debian's, if missing) and the pinned Serverless CLI.
infra_node_tools() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        infra_apt_install nodejs npm || return 1
    fi
    local pinned installed
    pinned="$(cd "$INFRA_DIR" && node -p 'require("./package.json").devDependencies.serverless')"
    installed="$(cd "$INFRA_DIR" && node -p 'require("./node_modules/serverless/package.json").version' 2>/dev/null || true)"
    if [[ "$installed" != "$pinned" ]]; then
        (cd "$INFRA_DIR" && npm ci --no-audit --no-fund) || return 1
    fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    infra_python_tools
    if [[ "${1:-}" == "--node" ]]; then
        infra_node_tools
    fi
    "$INFRA_VENV/bin/python" -m pip list --disable-pip-version-check 2>/dev/null \
        | grep -iE '^(cargo-lambda|ziglang|cfn-lint|pytest) '
fi
