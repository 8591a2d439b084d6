#!/usr/bin/env bash
# Make sure Debian's chromium is at /usr/bin/chromium for the browser tests (Playwright drives
# it through executable_path; no browser is ever downloaded by Playwright). Quiet on success.
set -uo pipefail

CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "ensure_chromium: $CHROMIUM is missing and this user cannot run apt-get (not root, no sudo)" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! $SUDO apt-get update -qq >"$log" 2>&1; then
    echo "ensure_chromium: apt-get update failed: $(tail -n 1 "$log")" >&2
    exit 1
fi
if ! $SUDO apt-get install -y -qq --no-install-recommends chromium >"$log" 2>&1; then
    echo "ensure_chromium: apt-get install chromium failed: $(tail -n 1 "$log")" >&2
    exit 1
fi
if [ ! -x "$CHROMIUM" ]; then
    echo "ensure_chromium: chromium installed but $CHROMIUM is still missing" >&2
    exit 1
fi
