"""Settings from the environment, then ``.env``, then built-in defaults.

Each value remembers where it came from, because the first question when a session falls back
to mock mode is "which key/persona did the app actually pick up, and from where?". An
existing AwakNow ``.env`` with ``VITE_`` names works unchanged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx
from dotenv import dotenv_values

from awaknow.errors import ConfigError, shorten
from awaknow.logs import register_secret
from awaknow.pricing import Pricing

Source = Literal["env", ".env", "default"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PERSONA_ID = "p7e13c73f41f"
DEFAULT_REPLICA_ID = "r4317e64d25a"
DEFAULT_API_BASE_URL = "https://tavusapi.com"
DEFAULT_DB_PATH = "data/awaknow.duckdb"
CALLBACK_PATH = "/api/tavus/callback"
FALLBACKS = ("mock", "strict")
# Examples of a Tavus plan, not Tavus's prices: set the account's own in the environment.
DEFAULT_MINUTE_PRICE = "0.30"
DEFAULT_INCLUDED_MINUTES = "1000"
DEFAULT_OVERAGE_PRICE = "0.40"
TRUE_WORDS = ("1", "true", "yes", "on")

# Keys copied from the original app's templates: they mean "no key was configured".
PLACEHOLDER_KEYS = frozenset(
    {
        "your_tavus_api_key",
        "your_actual_tavus_api_key_here",
        "your_real_api_key_here",
        "your_api_key",
        "changeme",
    }
)

_PERSONA_ID = re.compile(r"^p[0-9a-f]{6,32}$")
_REPLICA_ID = re.compile(r"^r[0-9a-f]{6,32}$")
# AWS's own rules for what Tavus needs to write recordings into the account's bucket.
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")
RECORDING_VARIABLES = (
    "TAVUS_RECORDING_S3_BUCKET_NAME",
    "TAVUS_RECORDING_S3_BUCKET_REGION",
    "TAVUS_AWS_ASSUME_ROLE_ARN",
)
RECORDINGS_NOT_CONFIGURED = (
    "Recordings are not configured: Tavus records only into the account's own S3 bucket, so "
    "no recording is requested; set TAVUS_RECORDING_S3_BUCKET_NAME, "
    "TAVUS_RECORDING_S3_BUCKET_REGION and TAVUS_AWS_ASSUME_ROLE_ARN to record"
)


@dataclass(frozen=True)
class Setting:
    """A resolved value with the variable it came from (``name`` is None for defaults)."""

    value: str | None
    source: Source
    name: str | None = None


@dataclass(frozen=True)
class Settings:
    """Everything AwakNow reads from outside. ``api_key`` must never be printed."""

    api_key: Setting = field(repr=False)
    persona_id: Setting
    replica_id: Setting
    api_base_url: Setting
    db_path: Setting
    public_url: Setting
    callback_secret: Setting = field(repr=False)
    fallback: Setting
    log_level: Setting
    pricing: Pricing
    recording_bucket: Setting
    recording_region: Setting
    recording_role_arn: Setting
    # Sign-in: who gets which role, and the override for an open server. awaknow.access reads
    # and checks them (a malformed entry stops the service from opening, with its variable).
    admins: Setting = Setting(None, "default")
    staff: Setting = Setting(None, "default")
    analysts: Setting = Setting(None, "default")
    transcript_roles: Setting = Setting("admin", "default")
    groups_claim: Setting = Setting("groups", "default")
    access_contact: Setting = Setting(None, "default")
    allow_remote_without_signin: Setting = Setting(None, "default")

    @property
    def open_without_signin(self) -> bool:
        """The documented override: serve beyond this machine with no sign-in."""
        return (self.allow_remote_without_signin.value or "").lower() in TRUE_WORDS

    @property
    def api_key_configured(self) -> bool:
        return bool(self.api_key.value)

    @property
    def strict(self) -> bool:
        return self.fallback.value == "strict"

    @property
    def recording_configured(self) -> bool:
        """Tavus can record only into the account's bucket, so without one nothing is asked."""
        return bool(self.recording_bucket.value)

    def recording_properties(self) -> dict[str, str]:
        """The ``properties`` that point Tavus at the bucket; empty when none is configured."""
        if not self.recording_configured:
            return {}
        return {
            "recording_s3_bucket_name": self.recording_bucket.value or "",
            "recording_s3_bucket_region": self.recording_region.value or "",
            "aws_assume_role_arn": self.recording_role_arn.value or "",
        }

    @property
    def callback_url(self) -> str | None:
        """The URL Tavus should POST events to, or None when Tavus cannot reach us."""
        if not self.public_url.value:
            return None
        url = self.public_url.value.rstrip("/") + CALLBACK_PATH
        if self.callback_secret.value:
            url += f"?token={self.callback_secret.value}"
        return url

    def resolved_db_path(self) -> Path:
        """Relative paths are relative to the project, so the CLI and the app share one file."""
        path = Path(self.db_path.value or DEFAULT_DB_PATH).expanduser()
        return path if path.is_absolute() else PROJECT_ROOT / path


def _read_env_file(env_file: Path | str) -> dict[str, str | None]:
    """The ``.env`` values, or {} when there is no such file; unreadable is a ConfigError."""
    path = Path(env_file)
    try:
        if not path.is_file():
            return {}
        return dotenv_values(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = "not a text file" if isinstance(exc, UnicodeDecodeError) else type(exc).__name__
        if isinstance(exc, OSError) and exc.strerror:
            reason = exc.strerror
        raise ConfigError(
            f"Cannot read the .env file {shorten(str(path))} ({reason}): fix it, or point "
            "AWAKNOW_ENV_FILE at a readable UTF-8 .env (empty: none)"
        ) from None


def _http_url_problem(value: str) -> str | None:
    """Why ``value`` is not a usable http(s) base URL, or None when it is.

    A regex on the prefix is not enough: ``http://[::1`` passes one and then breaks httpx
    deep inside a request; urlsplit and httpx must both accept the URL here.
    """
    try:
        parts = urlsplit(value)
        port = parts.port
        httpx.URL(value)
    except ValueError as exc:  # httpx.InvalidURL is a ValueError too
        return str(exc).splitlines()[0] if str(exc) else "malformed"
    if parts.scheme not in ("http", "https"):
        return "it must start with http:// or https://"
    if not parts.hostname:
        return "it has no host name"
    if port == 0:
        return "port 0 is not a port to connect to"
    if any(ch.isspace() for ch in value):
        return "it contains spaces"
    return None


def _lookup(
    names: tuple[str, ...], environ: dict[str, str], dotenv: dict[str, str | None]
) -> Setting | None:
    for name in names:
        value = environ.get(name)
        if value is not None and value.strip():
            return Setting(value.strip(), "env", name)
    for name in names:
        value = dotenv.get(name)
        if value is not None and value.strip():
            return Setting(value.strip(), ".env", name)
    return None


def load_settings(
    environ: dict[str, str] | None = None, env_file: Path | str | None = None
) -> Settings:
    """Resolve every setting; raise ConfigError for a value that cannot work.

    ``environ`` and ``env_file`` exist so tests can exercise precedence without touching the
    process environment. ``AWAKNOW_ENV_FILE`` points at another ``.env`` (empty disables it).
    """
    environ = dict(os.environ if environ is None else environ)
    if env_file is None:
        env_file = environ.get("AWAKNOW_ENV_FILE", str(PROJECT_ROOT / ".env"))
    dotenv = _read_env_file(env_file) if env_file else {}

    def pick(names: tuple[str, ...], default: str | None) -> Setting:
        return _lookup(names, environ, dotenv) or Setting(default, "default")

    api_key = pick(("TAVUS_API_KEY", "VITE_TAVUS_API_KEY"), None)
    if api_key.value and api_key.value.lower() in PLACEHOLDER_KEYS:
        api_key = Setting(None, api_key.source, api_key.name)
    register_secret(api_key.value)

    persona = pick(("TAVUS_PERSONA_ID", "VITE_TAVUS_PERSONA_ID"), DEFAULT_PERSONA_ID)
    if not _PERSONA_ID.match(persona.value or ""):
        raise ConfigError(
            f"{persona.name} is {shorten(persona.value)}, not a Tavus persona id "
            "(p followed by hex digits, e.g. p7e13c73f41f): fix it in the environment or .env"
        )
    replica = pick(("TAVUS_REPLICA_ID", "VITE_TAVUS_REPLICA_ID"), DEFAULT_REPLICA_ID)
    if not _REPLICA_ID.match(replica.value or ""):
        raise ConfigError(
            f"{replica.name} is {shorten(replica.value)}, not a Tavus replica id "
            "(r followed by hex digits, e.g. r4317e64d25a): fix it in the environment or .env"
        )

    base_url = pick(("TAVUS_API_BASE_URL",), DEFAULT_API_BASE_URL)
    problem = _http_url_problem(base_url.value or "")
    if problem:
        raise ConfigError(
            f"TAVUS_API_BASE_URL is {shorten(base_url.value)} ({problem}): use an http(s) URL "
            f"such as {DEFAULT_API_BASE_URL}"
        )
    public_url = pick(("AWAKNOW_PUBLIC_URL",), None)
    problem = _http_url_problem(public_url.value) if public_url.value else None
    if problem:
        raise ConfigError(
            f"AWAKNOW_PUBLIC_URL is {shorten(public_url.value)} ({problem}): use the http(s) "
            "base URL Tavus can reach, e.g. https://awaknow.example.com"
        )
    secret = pick(("AWAKNOW_CALLBACK_SECRET",), None)
    register_secret(secret.value)
    if public_url.value and not secret.value:
        raise ConfigError(
            "AWAKNOW_PUBLIC_URL is set but AWAKNOW_CALLBACK_SECRET is not: set a long random "
            "secret so that only Tavus can post events to the callback route"
        )
    fallback = pick(("AWAKNOW_FALLBACK",), "mock")
    if (fallback.value or "").lower() not in FALLBACKS:
        raise ConfigError(f"AWAKNOW_FALLBACK is {shorten(fallback.value)}: use 'mock' or 'strict'")
    fallback = Setting(fallback.value.lower(), fallback.source, fallback.name)  # type: ignore[union-attr]

    bucket, region, role_arn = (pick((name,), None) for name in RECORDING_VARIABLES)
    _check_recording(bucket, region, role_arn)

    settings = Settings(
        api_key=api_key,
        persona_id=persona,
        replica_id=replica,
        api_base_url=Setting(base_url.value.rstrip("/"), base_url.source, base_url.name),  # type: ignore[union-attr]
        db_path=pick(("AWAKNOW_DB_PATH",), DEFAULT_DB_PATH),
        public_url=public_url,
        callback_secret=secret,
        fallback=fallback,
        log_level=pick(("AWAKNOW_LOG_LEVEL",), "WARNING"),
        pricing=_pricing(pick),
        admins=pick(("AWAKNOW_ADMINS",), None),
        staff=pick(("AWAKNOW_STAFF",), None),
        analysts=pick(("AWAKNOW_ANALYSTS",), None),
        transcript_roles=pick(("AWAKNOW_TRANSCRIPT_ROLES",), "admin"),
        groups_claim=pick(("AWAKNOW_GROUPS_CLAIM",), "groups"),
        access_contact=pick(("AWAKNOW_ACCESS_CONTACT",), None),
        allow_remote_without_signin=pick(("AWAKNOW_ALLOW_REMOTE_WITHOUT_SIGNIN",), None),
        recording_bucket=bucket,
        recording_region=region,
        recording_role_arn=role_arn,
    )
    return settings


def _number(setting: Setting, *, whole: bool = False) -> float:
    """A non-negative amount from a setting, or a ConfigError naming the variable."""
    text = (setting.value or "").strip()
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = -1
    if not value >= 0 or value == float("inf"):
        kind = "a whole number of minutes" if whole else "an amount in USD"
        raise ConfigError(
            f"{setting.name} is {setting.value!r}: use {kind} of zero or more, e.g. "
            f"{'1000' if whole else '0.30'}"
        )
    return value


def _pricing(pick: Callable[[tuple[str, ...], str | None], Setting]) -> Pricing:
    """The Tavus account's pricing: what analytics turns live minutes into money with."""
    budget = pick(("AWAKNOW_TAVUS_MONTHLY_BUDGET",), None)
    budget_usd = _number(budget) if budget.value else None
    if budget_usd == 0:
        raise ConfigError(
            "AWAKNOW_TAVUS_MONTHLY_BUDGET is 0: set the monthly budget in USD, or leave it unset"
        )
    return Pricing(
        minute_price=_number(pick(("AWAKNOW_TAVUS_MINUTE_PRICE",), DEFAULT_MINUTE_PRICE)),
        included_minutes=int(
            _number(pick(("AWAKNOW_TAVUS_INCLUDED_MINUTES",), DEFAULT_INCLUDED_MINUTES), whole=True)
        ),
        overage_price=_number(pick(("AWAKNOW_TAVUS_OVERAGE_PRICE",), DEFAULT_OVERAGE_PRICE)),
        monthly_budget=budget_usd,
    )


def _check_recording(bucket: Setting, region: Setting, role_arn: Setting) -> None:
    """All three recording settings or none: a partial set would make every create fail."""
    given = [s for s in (bucket, region, role_arn) if s.value]
    if not given:
        return
    if len(given) < 3:
        missing = [
            name
            for name, s in zip(RECORDING_VARIABLES, (bucket, region, role_arn), strict=True)
            if not s.value
        ]
        raise ConfigError(
            f"Recording storage is half configured: also set {', '.join(missing)} "
            "(or unset all three to run without recordings)"
        )
    if not _S3_BUCKET.match(bucket.value or ""):
        raise ConfigError(
            f"TAVUS_RECORDING_S3_BUCKET_NAME is {bucket.value!r}, not an S3 bucket name "
            "(3-63 lower-case letters, digits, dots and hyphens)"
        )
    if not _AWS_REGION.match(region.value or ""):
        raise ConfigError(
            f"TAVUS_RECORDING_S3_BUCKET_REGION is {region.value!r}, not an AWS region "
            "(e.g. us-east-1)"
        )
    if not _ROLE_ARN.match(role_arn.value or ""):
        raise ConfigError(
            f"TAVUS_AWS_ASSUME_ROLE_ARN is {role_arn.value!r}, not an IAM role ARN "
            "(arn:aws:iam::123456789012:role/NAME)"
        )
