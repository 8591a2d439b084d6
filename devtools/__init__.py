"""Development tools: the local Tavus-compatible server, the demo seeder and sign-in offline.

They use the product (``awaknow``); the product never imports them (tests/test_layout.py).
Run them as ``python -m devtools.fake_tavus`` and ``python -m devtools.seed``.
"""
