"""`python -m bot doctor`: every setting checked against the service it names, one line per
check, with the fix for each failure. Exit status 0 only when every check passes; an optional
setting left unset is "skipped", not a failure. No secret is ever printed: Slack's and
CustomGPT's answers are reduced to their error codes and messages, redacted.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit

import aiohttp
import redis.asyncio as redis
import yaml
from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import ConfigError, Settings
from bot.customgpt import AuthError, CustomGPTClient, CustomGPTError, NotFound
from bot.log_setup import Redactor
from bot.runtime import HTTP_TIMEOUT, customgpt_client, slack_client
from bot.slack_calls import error_code
from bot.slack_permissions import OAUTH_ONLY_SCOPES

MANIFEST = Path(__file__).resolve().parent.parent / "manifest.yml"
CHECK_TIMEOUT = 10.0  # seconds per check: a host that does not answer is a failure too
SIGNING_SECRET = re.compile(r"[0-9a-f]{32}")

Status = Literal["ok", "FAIL", "skipped"]


@dataclass(frozen=True)
class Result:
    name: str
    status: Status
    detail: str
    fix: str | None = None

    def line(self) -> str:
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"{self.status:<8} {self.name}: {self.detail}.{fix}"


def ok(name: str, detail: str) -> Result:
    return Result(name, "ok", detail)


def fail(name: str, detail: str, fix: str) -> Result:
    return Result(name, "FAIL", detail, fix)


def skipped(name: str, detail: str) -> Result:
    return Result(name, "skipped", detail)


BOT_TOKEN_FIX = (
    "copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page into "
    "SLACK_BOT_TOKEN (install or reinstall the app first if there is none)"
)
SIGNING_FIX = (
    "copy the Signing Secret from the app's Basic Information page into SLACK_SIGNING_SECRET"
)
APP_TOKEN_FIX = (
    "enable Socket Mode, create an app-level token with the connections:write scope under "
    "Basic Information → App-Level Tokens and put it (xapp-…) in SLACK_APP_TOKEN; or unset "
    "SLACK_APP_TOKEN to serve over HTTP"
)
CUSTOMGPT_FIX = "create an API key in CustomGPT.ai (Settings → API) and put it in CUSTOMGPT_API_KEY"
PROJECT_FIX = "set CUSTOMGPT_PROJECT_ID to an id from `python -m bot projects list`, or unset it"
OAUTH_FIX = (
    "copy the Client ID and Client Secret from the app's Basic Information → App Credentials "
    "into SLACK_CLIENT_ID and SLACK_CLIENT_SECRET"
)
#: What `oauth.v2.access` answers a made-up code when the app's credentials are right.
CREDENTIALS_ACCEPTED = "invalid_code"


async def run(settings: Settings, manifest: Path = MANIFEST, out: TextIO | None = None) -> int:
    """Print one line per check; 0 when all passed, 1 otherwise."""
    out = out or sys.stdout
    redactor = Redactor(_secrets(settings))
    results = await check_all(settings, manifest)
    for result in results:
        print(redactor.redact(result.line()), file=out)
    failed = sum(1 for r in results if r.status == "FAIL")
    print(f"{failed} check(s) failed." if failed else "All checks passed.", file=out)
    return 1 if failed else 0


def report_config_error(error: ConfigError, out: TextIO | None = None) -> int:
    """A setting is missing or malformed before anything could be checked."""
    result = fail("configuration", str(error), "set it in the environment or in .env")
    print(result.line(), file=out or sys.stdout)
    return 1


async def check_all(settings: Settings, manifest: Path = MANIFEST) -> list[Result]:
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        slack = slack_client(session, settings)
        customgpt = customgpt_client(session, settings)
        results = await _slack_token(slack, settings, manifest)
        results.append(await _timed("Slack OAuth credentials", _oauth_credentials(slack, settings)))
        results.append(_oauth_serving(settings))
        results.append(_signing_secret(settings))
        results.append(await _timed("Socket Mode token", _app_token(slack, settings)))
        key = await _timed("CustomGPT API key", _customgpt_key(customgpt, settings))
        results.append(key)
        if key.status != "ok" and settings.customgpt_project_id:
            results.append(skipped("default project", "not checked without a working key"))
        else:
            project = _default_project(customgpt, settings)
            results.append(await _timed("default project", project))
    results.append(await _timed("Redis", _redis(settings)))
    return results


async def _timed(name: str, check: Awaitable[Result]) -> Result:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            return await check
    except TimeoutError:
        return fail(name, f"no answer within {CHECK_TIMEOUT:g} s", "check the network and URL")


# -- Slack ------------------------------------------------------------------------------------


async def _slack_token(slack: AsyncWebClient, settings: Settings, manifest: Path) -> list[Result]:
    name, scopes = "Slack bot token", "Slack token scopes"
    token = settings.slack_bot_token
    if not token and settings.uses_oauth:
        return [
            skipped(name, "not set: with OAuth each workspace's token comes from its install"),
            _scopes(scopes, set(settings.slack_scopes), manifest, asked="SLACK_SCOPES"),
        ]
    if not token:
        return [
            fail(name, "SLACK_BOT_TOKEN is not set", BOT_TOKEN_FIX),
            skipped(scopes, "no token"),
        ]
    if not token.startswith("xoxb-"):
        return [
            fail(name, "not a bot token (it should start with xoxb-)", BOT_TOKEN_FIX),
            skipped(scopes, "no bot token"),
        ]
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            answer = await slack.auth_test()
    except SlackApiError as error:
        return [
            fail(name, f"Slack refused it ({_slack_code(error)})", BOT_TOKEN_FIX),
            skipped(scopes, "token invalid"),
        ]
    except (aiohttp.ClientError, TimeoutError) as error:
        fix = "check SLACK_API_URL and the network"
        return [
            fail(name, f"Slack did not answer ({type(error).__name__})", fix),
            skipped(scopes, "token not checked"),
        ]
    who = f"valid for team {answer.get('team_id')} as bot user {answer.get('user_id')}"
    granted = _granted_scopes(answer.headers)
    return [ok(name, who), _scopes(scopes, granted, manifest, oauth=False)]


def _granted_scopes(headers: Any) -> set[str] | None:
    header = headers.get("x-oauth-scopes") if headers is not None else None
    if header is None:
        return None
    return {s.strip() for s in str(header).split(",") if s.strip()}


def _scopes(
    name: str,
    granted: set[str] | None,
    manifest: Path,
    asked: str | None = None,
    *,
    oauth: bool = True,
) -> Result:
    """Whether the token's scopes (or, with `asked`, the setting asking for them at install)
    cover every bot scope the manifest lists; a single token (`oauth=False`) is not held to
    the scopes only OAuth installs use."""
    try:
        required = manifest_bot_scopes(manifest)
        if not oauth:
            required -= OAUTH_ONLY_SCOPES
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        return skipped(name, f"manifest.yml not readable here ({type(error).__name__})")
    if granted is None:
        return fail(
            name, "Slack did not say the token's scopes", "check SLACK_API_URL points at Slack"
        )
    missing = sorted(required - granted)
    if missing and asked is not None:
        return fail(name, f"{asked} misses {', '.join(missing)}", f"add them to {asked}")
    if missing:
        return fail(
            name,
            f"missing {', '.join(missing)}",
            "add them under OAuth & Permissions → Scopes (manifest.yml lists them all), then "
            "reinstall the app and copy the new bot token",
        )
    return ok(name, f"all {len(required)} the manifest asks for")


def manifest_bot_scopes(manifest: Path) -> set[str]:
    """The bot scopes manifest.yml asks for."""
    data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    return {str(scope) for scope in data["oauth_config"]["scopes"]["bot"]}


async def _oauth_credentials(slack: AsyncWebClient, settings: Settings) -> Result:
    """The client id and secret, checked by exchanging a made-up code: Slack names a wrong
    id or secret before it looks at the code."""
    name = "Slack OAuth credentials"
    if not settings.uses_oauth:
        return skipped(name, "SLACK_CLIENT_ID is not set (one workspace, SLACK_BOT_TOKEN)")
    assert settings.slack_client_id is not None and settings.slack_client_secret is not None
    try:
        await slack.oauth_v2_access(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret,
            code="doctor-made-up-code",
            redirect_uri=settings.slack_redirect_uri,
        )
    except SlackApiError as error:
        code = _slack_code(error)
        if code == CREDENTIALS_ACCEPTED:
            return ok(name, "Slack accepts the client id and secret")
        return fail(name, f"Slack refused them ({code})", OAUTH_FIX)
    except aiohttp.ClientError as error:
        return fail(name, f"Slack did not answer ({type(error).__name__})", OAUTH_FIX)
    return fail(name, "Slack exchanged a made-up code", "check SLACK_API_URL points at Slack")


def _oauth_serving(settings: Settings) -> Result:
    name = "OAuth install flow"
    if not settings.uses_oauth:
        return skipped(name, "SLACK_CLIENT_ID is not set")
    if not settings.uses_redis:
        return fail(name, "needs Redis to keep installations", "set REDIS_URL")
    if settings.slack_app_token:
        return fail(name, "needs HTTP, not Socket Mode", "unset SLACK_APP_TOKEN")
    where = settings.slack_redirect_uri or f"<this host>{settings.slack_redirect_uri_path}"
    return ok(name, f"installs at {settings.slack_install_path}, Slack redirects to {where}")


def _signing_secret(settings: Settings) -> Result:
    name = "Slack signing secret"
    if settings.slack_app_token:
        return skipped(name, "Socket Mode: Slack signs nothing")
    secret = settings.slack_signing_secret
    if not secret:
        return fail(name, "SLACK_SIGNING_SECRET is not set", SIGNING_FIX)
    if not SIGNING_SECRET.fullmatch(secret):
        return fail(name, "not 32 hexadecimal characters, as Slack's are", SIGNING_FIX)
    return ok(name, "present and well formed")


async def _app_token(slack: AsyncWebClient, settings: Settings) -> Result:
    name = "Socket Mode token"
    token = settings.slack_app_token
    if not token:
        return skipped(name, "SLACK_APP_TOKEN is not set (serving over HTTP)")
    if not token.startswith("xapp-"):
        return fail(name, "not an app-level token (it should start with xapp-)", APP_TOKEN_FIX)
    try:
        await slack.apps_connections_open(app_token=token)
    except SlackApiError as error:
        return fail(name, f"Slack refused it ({_slack_code(error)})", APP_TOKEN_FIX)
    except aiohttp.ClientError as error:
        return fail(name, f"Slack did not answer ({type(error).__name__})", APP_TOKEN_FIX)
    return ok(name, "Slack opens a Socket Mode connection with it")


def _slack_code(error: SlackApiError) -> str:
    return error_code(error) or f"HTTP {getattr(error.response, 'status_code', '?')}"


# -- CustomGPT --------------------------------------------------------------------------------


async def _customgpt_key(customgpt: CustomGPTClient, settings: Settings) -> Result:
    name = "CustomGPT API key"
    if not settings.customgpt_api_key:
        return skipped(name, "CUSTOMGPT_API_KEY is not set (each workspace connects its own)")
    try:
        page = await customgpt.list_projects(1)
    except AuthError as error:
        return fail(name, f"CustomGPT refused it ({error.message})", CUSTOMGPT_FIX)
    except CustomGPTError as error:
        return fail(name, f"listing projects failed ({error.message})", "check CUSTOMGPT_API_URL")
    return ok(name, f"valid ({len(page.projects)} project(s) on the first page)")


async def _default_project(customgpt: CustomGPTClient, settings: Settings) -> Result:
    name = "default project"
    project_id = settings.customgpt_project_id
    if not project_id:
        return skipped(name, "CUSTOMGPT_PROJECT_ID is not set (channels bind their own)")
    try:
        project = await customgpt.get_project(project_id)
    except NotFound:
        return fail(name, f"project {project_id} does not exist", PROJECT_FIX)
    except CustomGPTError as error:
        return fail(name, f"could not read project {project_id} ({error.message})", PROJECT_FIX)
    if not project.is_chat_active:
        return fail(
            name,
            f"project {project_id} ({project.name}) does not answer yet (is_chat_active is off)",
            f"wait until it has indexed: `python -m bot projects status {project_id}`",
        )
    return ok(name, f"project {project_id} ({project.name}) answers")


# -- Redis ------------------------------------------------------------------------------------


async def _redis(settings: Settings) -> Result:
    name = "Redis"
    if not settings.redis_url:
        return skipped(name, "REDIS_URL is not set (in-process store: one instance only)")
    parts = urlsplit(settings.redis_url)
    where = f"{parts.hostname}:{parts.port or 6379}"  # never the URL: it may hold a password
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=CHECK_TIMEOUT)
    try:
        info = await client.info("server")
    except (RedisError, OSError) as error:
        return fail(
            name,
            f"unreachable at {where} ({type(error).__name__})",
            "check REDIS_URL (host, port, password) and that Redis is running",
        )
    finally:
        await client.aclose()
    return ok(name, f"reachable at {where}, version {info.get('redis_version', 'unknown')}")


def _secrets(settings: Settings) -> Iterable[str]:
    return [*settings.secrets, urlsplit(settings.redis_url or "").password or ""]
