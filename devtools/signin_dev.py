"""Run the app WITH sign-in, offline: a local OpenID provider and four example people.

``bash scripts/run_signin.sh`` runs this. It starts ``oidc-provider-mock`` (a real OpenID
Connect provider for tests, from PyPI) on 127.0.0.1 with the people below, writes a
``secrets.toml`` whose ``[auth]`` points Streamlit at it, and starts ``streamlit run app.py``
with roles given by configuration: the admin by email, staff by the provider's groups claim,
analysts by email domain; the fourth person has no role. Open the app, press Sign in and pick
a person on the provider's page. The browser tests use the same people and the same files.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
WORK_DIR = ROOT / "data" / "signin-dev"
DEFAULT_DB = ROOT / "data" / "awaknow-signin.duckdb"
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Person:
    email: str
    name: str
    groups: tuple[str, ...]
    role: str | None  # what the configuration below gives them

    def claims(self) -> dict[str, object]:
        """What the provider puts in the ID token (``sub`` is what its form shows)."""
        return {
            "sub": self.email,
            "email": self.email,
            "email_verified": True,
            "name": self.name,
            "groups": list(self.groups),
        }


PEOPLE = (
    Person("ada@awaknow.example", "Ada Admin", ("awaknow-leads",), "admin"),
    Person("sam@awaknow.example", "Sam Staff", ("front-desk",), "staff"),
    Person("ann@insights.example", "Ann Analyst", (), "analyst"),
    Person("nick@elsewhere.example", "Nick Nobody", (), None),
)
# The roles, one per kind of grant: email (admin), group (staff), domain (analysts).
ROLE_ENV = {
    "AWAKNOW_ADMINS": "ada@awaknow.example",
    "AWAKNOW_STAFF": "group:front-desk",
    "AWAKNOW_ANALYSTS": "@insights.example",
}


def write_secrets(folder: Path, *, app_port: int, provider_port: int) -> Path:
    """``secrets.toml`` with ``[auth]`` for the local provider (the cookie secret is kept
    between runs so a browser stays signed in across restarts)."""
    folder.mkdir(parents=True, exist_ok=True)
    cookie_file = folder / "cookie_secret"
    if not cookie_file.exists():
        cookie_file.write_text(secrets.token_urlsafe(32))
        cookie_file.chmod(0o600)
    path = folder / "secrets.toml"
    path.write_text(
        "# Written by devtools/signin_dev.py for the local provider; development only.\n"
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{app_port}/oauth2callback"\n'
        f'cookie_secret = "{cookie_file.read_text().strip()}"\n'
        'client_id = "awaknow-dev"\n'
        'client_secret = "awaknow-dev-client-secret"\n'
        f'server_metadata_url = "http://127.0.0.1:{provider_port}'
        '/.well-known/openid-configuration"\n'
    )
    path.chmod(0o600)
    return path


def provider_command(port: int) -> list[str]:
    command = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    for person in PEOPLE:
        command += ["--user-claims", json.dumps(person.claims())]
    return command


def app_command(port: int, secrets_file: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.port", str(port), "--server.address", "127.0.0.1",
        "--secrets.files", str(secrets_file), *extra,
    ]  # fmt: skip


def wait_until_up(url: str, proc: subprocess.Popen, what: str) -> None:
    """Poll ``url`` until it answers 200; fail with one line if the process exits first."""
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"{what} exited with status {proc.returncode}")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)  # polling interval of the probe
    raise SystemExit(f"{what} did not answer at {url} within {START_TIMEOUT:.0f} s")


@contextmanager
def running_provider(port: int, log_file: Path | None = None) -> Iterator[str]:
    """The local provider on 127.0.0.1:``port`` until the block ends; yields its issuer."""
    out = log_file.open("w") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen(provider_command(port), stdout=out, stderr=subprocess.STDOUT)
    issuer = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{issuer}/.well-known/openid-configuration", proc, "oidc-provider-mock")
        yield issuer
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if log_file:
            out.close()  # type: ignore[union-attr]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8501, help="the app's port (8501)")
    parser.add_argument("--provider-port", type=int, default=9400, help="the provider's (9400)")
    args = parser.parse_args(argv)

    env = {**os.environ, **ROLE_ENV}
    env.setdefault("AWAKNOW_DB_PATH", str(DEFAULT_DB))
    subprocess.run(
        [sys.executable, "-m", "devtools.seed", "--if-empty"], cwd=ROOT, env=env, check=True
    )
    secrets_file = write_secrets(WORK_DIR, app_port=args.port, provider_port=args.provider_port)
    with running_provider(args.provider_port) as issuer:
        print(f"OpenID provider (oidc-provider-mock): {issuer}")
        for person in PEOPLE:
            role = person.role or "no role"
            print(f"  {person.email:<26} {role:<8} groups: {', '.join(person.groups) or '-'}")
        print(f"Sign in at http://127.0.0.1:{args.port} and pick a person on the provider's page.")
        app = subprocess.Popen(app_command(args.port, secrets_file), cwd=ROOT, env=env)
        signal.signal(signal.SIGTERM, lambda *_: app.terminate())
        try:
            return app.wait()
        except KeyboardInterrupt:
            app.terminate()
            return app.wait()


if __name__ == "__main__":
    raise SystemExit(main())
