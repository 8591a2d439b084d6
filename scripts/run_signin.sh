#!/usr/bin/env bash
# Start the app WITH sign-in, offline: a local OpenID provider (oidc-provider-mock, installed
# with the dev requirements) with four example people (admin, staff, analyst, no role), and the
# app configured against it. Open http://127.0.0.1:8501, press Sign in, pick a person.
# Options: --port N (app, 8501), --provider-port N (provider, 9400).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
exec .venv/bin/python -m devtools.signin_dev "$@"
