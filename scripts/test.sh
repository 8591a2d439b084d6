#!/usr/bin/env bash
# Set up and run every check: format, lint, types, unit, integration (local Tavus server over
# HTTP), AppTest pages and the browser suite in Debian's chromium. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
scripts/ensure_chromium.sh
.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
