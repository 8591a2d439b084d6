"""Entry point for ``python -m awaknow``."""

from awaknow.cli import main

raise SystemExit(main())
