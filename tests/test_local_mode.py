"""Local mode for real: ``streamlit run app.py`` as scripts/run.sh starts it, no ``[auth]``.

It must listen on the loopback address only and print no Network URL; another address needs
the documented override, which then warns on every page; without it the server refuses to
start with one line. Each server gets a free port, a temporary database and no secrets file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, clean_awaknow_env, free_port
from tests.test_browser import SERVER_START_TIMEOUT, _wait_healthy

LISTEN = "0A"  # the TCP state of a listening socket in /proc/net/tcp*


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as the kernel writes them) of sockets listening on ``port``."""
    found: set[str] = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == LISTEN:
                found.add(address)
    return found


def start(tmp_path: Path, *flags: str, **env: str) -> tuple[subprocess.Popen, int, Path]:
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    environment = clean_awaknow_env(tmp_path / "awaknow.duckdb", PYTHONUNBUFFERED="1", **env)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--secrets.files", str(tmp_path / "no-secrets.toml"), *flags],
            cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return proc, port, log


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


def test_default_start_listens_on_loopback_only(tmp_path: Path) -> None:
    proc, port, log = start(tmp_path)
    try:
        _wait_healthy(proc, f"http://127.0.0.1:{port}", log)
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1 and nothing else
    finally:
        stop(proc)
    printed = log.read_text()
    assert f"URL: http://127.0.0.1:{port}" in printed
    assert "Network URL" not in printed and "External URL" not in printed


def test_another_address_without_sign_in_is_refused(tmp_path: Path) -> None:
    proc, _, log = start(tmp_path, "--server.address", "0.0.0.0")
    try:
        code = proc.wait(timeout=SERVER_START_TIMEOUT)
    finally:
        if proc.poll() is None:
            stop(proc)
    assert code == 2
    lines = [line for line in log.read_text().splitlines() if line.startswith("awaknow:")]
    assert lines == [
        "awaknow: Refusing to listen on 0.0.0.0 without sign-in: configure [auth] in "
        ".streamlit/secrets.toml (see the README), listen on 127.0.0.1, or set "
        "AWAKNOW_ALLOW_REMOTE_WITHOUT_SIGNIN=1 to accept the risk."
    ]
    assert "Traceback" not in log.read_text()


def test_the_override_serves_everyone_and_every_page_warns(tmp_path: Path) -> None:
    """With AWAKNOW_ALLOW_REMOTE_WITHOUT_SIGNIN the server starts on every interface."""
    proc, port, log = start(
        tmp_path, "--server.address", "0.0.0.0", AWAKNOW_ALLOW_REMOTE_WITHOUT_SIGNIN="1"
    )
    try:
        _wait_healthy(proc, f"http://127.0.0.1:{port}", log)
        assert listening_addresses(port) == {"00000000"}  # 0.0.0.0: every interface
    finally:
        stop(proc)


def test_the_open_warning_is_on_every_page(
    monkeypatch: pytest.MonkeyPatch, mock_mode_env: Path
) -> None:
    from streamlit.testing.v1 import AppTest

    from awaknow import access, signin
    from tests.test_pages import APP, PAGES, TIMEOUT

    monkeypatch.setenv("AWAKNOW_ALLOW_REMOTE_WITHOUT_SIGNIN", "1")
    monkeypatch.setattr(signin, "listen_address", lambda: "0.0.0.0")  # as --server.address gives
    expected = access.OPEN_WARNING.format(address="0.0.0.0")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    for page in PAGES.values():
        at.switch_page(page).run()
        assert [w.value for w in at.warning][:1] == [expected], page
