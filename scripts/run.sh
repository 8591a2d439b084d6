#!/usr/bin/env bash
# Set up and start the app on its embedded defaults: data/awaknow.duckdb, mock mode without a
# Tavus key, demo data on first start. Extra arguments go to `streamlit run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh runtime
.venv/bin/python -m devtools.seed --if-empty
exec .venv/bin/python -m streamlit run app.py "$@"
