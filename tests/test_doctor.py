"""`python -m bot doctor` against the fakes: a good configuration passes every check; each
broken one fails its own line, with a fix, and the exit status says so. No secret printed."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bot import doctor
from bot.config import Settings
from tests.conftest import PROJECT_ID, REDIS_URL
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import BOT_SCOPES, FakeSlack

GOOD_SECRET = "0123456789abcdef0123456789abcdef"
SECRETS = ("xoxb-test-token", GOOD_SECRET, "test-key", "xapp-1-good")


@pytest.fixture
def good(settings: Settings) -> Settings:
    return replace(settings, slack_signing_secret=GOOD_SECRET)


async def diagnose(settings: Settings) -> tuple[int, dict[str, str]]:
    """The exit status, and each check's line by its name."""
    out = io.StringIO()
    code = await doctor.run(settings, out=out)
    text = out.getvalue()
    for secret in SECRETS:
        assert secret not in text
    lines = text.splitlines()
    by_name = {line[9:].split(":", 1)[0]: line for line in lines[:-1]}
    return code, by_name


def status(line: str) -> str:
    return line.split()[0]


async def test_a_good_configuration_passes_every_check(good: Settings) -> None:
    code, lines = await diagnose(good)
    assert code == 0
    assert {name: status(line) for name, line in lines.items()} == {
        "Slack bot token": "ok",
        "Slack token scopes": "ok",
        "Slack OAuth credentials": "skipped",
        "OAuth install flow": "skipped",
        "Slack signing secret": "ok",
        "Socket Mode token": "skipped",
        "CustomGPT API key": "ok",
        "default project": "ok",
        "Redis": "ok",
    }
    assert "version" in lines["Redis"]


async def test_optional_settings_left_unset_are_skipped(good: Settings) -> None:
    code, lines = await diagnose(replace(good, customgpt_project_id=None, redis_url=None))
    assert code == 0
    assert status(lines["default project"]) == "skipped"
    assert status(lines["Redis"]) == "skipped"


async def test_socket_mode_checks_the_app_token_and_skips_the_signing_secret(
    good: Settings, slack: FakeSlack
) -> None:
    slack.app_token = "xapp-1-good"
    socket_mode = replace(good, slack_app_token="xapp-1-good", slack_signing_secret="")
    code, lines = await diagnose(socket_mode)
    assert code == 0
    assert status(lines["Socket Mode token"]) == "ok"
    assert status(lines["Slack signing secret"]) == "skipped"

    code, lines = await diagnose(replace(socket_mode, slack_app_token="xapp-1-revoked"))
    assert code == 1
    assert status(lines["Socket Mode token"]) == "FAIL"
    assert "invalid_auth" in lines["Socket Mode token"] and "Fix:" in lines["Socket Mode token"]


@pytest.mark.parametrize(
    ("change", "check", "expected"),
    [
        ({"slack_bot_token": "xoxb-revoked-token"}, "Slack bot token", "invalid_auth"),
        ({"slack_bot_token": "xoxp-a-user-token"}, "Slack bot token", "xoxb-"),
        ({"slack_signing_secret": ""}, "Slack signing secret", "not set"),
        ({"slack_signing_secret": "not-hex-" * 4}, "Slack signing secret", "hexadecimal"),
        ({"slack_signing_secret": GOOD_SECRET[:-2]}, "Slack signing secret", "32"),
        ({"customgpt_api_key": "wrong-key"}, "CustomGPT API key", "refused"),
        ({"customgpt_project_id": "999"}, "default project", "does not exist"),
        ({"redis_url": "redis://127.0.0.1:1/0"}, "Redis", "unreachable at 127.0.0.1:1"),
        ({"slack_app_token": "xoxb-not-an-app-token"}, "Socket Mode token", "xapp-"),
    ],
    ids=[
        "revoked-token",
        "user-token",
        "no-signing-secret",
        "signing-secret-not-hex",
        "signing-secret-short",
        "customgpt-key",
        "missing-project",
        "redis-down",
        "app-token-shape",
    ],
)
async def test_each_broken_setting_fails_its_line_with_a_fix(
    good: Settings, slack: FakeSlack, change: dict[str, str], check: str, expected: str
) -> None:
    slack.token = "xoxb-test-token"  # only the configured bot token is valid
    code, lines = await diagnose(replace(good, **change))
    assert code == 1
    line = lines[check]
    assert status(line) == "FAIL" and expected in line and "Fix:" in line
    failed = [name for name, line in lines.items() if status(line) == "FAIL"]
    assert failed == [check]


async def test_missing_scopes_are_named(good: Settings, slack: FakeSlack) -> None:
    slack.scopes = [s for s in BOT_SCOPES if s not in ("reactions:write", "commands")]
    code, lines = await diagnose(good)
    assert code == 1
    line = lines["Slack token scopes"]
    assert status(line) == "FAIL" and "missing commands, reactions:write" in line


async def test_a_single_token_is_not_held_to_the_scopes_only_oauth_uses(
    good: Settings, slack: FakeSlack
) -> None:
    slack.scopes = [s for s in BOT_SCOPES if s != "users:read"]
    code, lines = await diagnose(good)
    assert code == 0, lines
    assert status(lines["Slack token scopes"]) == "ok"
    slack.scopes = [s for s in BOT_SCOPES if s not in ("users:read", "assistant:write")]
    code, lines = await diagnose(good)
    assert code == 1 and "missing assistant:write" in lines["Slack token scopes"]


async def test_a_project_still_indexing_fails(good: Settings, customgpt: FakeCustomGPT) -> None:
    customgpt.set_active(PROJECT_ID, False)
    code, lines = await diagnose(good)
    assert code == 1
    assert status(lines["default project"]) == "FAIL"
    assert "does not answer yet" in lines["default project"]


def test_the_manifest_scopes_are_the_ones_a_fake_token_has() -> None:
    assert doctor.manifest_bot_scopes(doctor.MANIFEST) == set(BOT_SCOPES)


async def test_the_command_exits_with_the_doctors_verdict(
    slack: FakeSlack, customgpt: FakeCustomGPT, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CUSTOMGPT_"))}
    env |= {
        "PYTHONPATH": os.getcwd(),
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": GOOD_SECRET,
        "SLACK_API_URL": slack.api_url,
        "CUSTOMGPT_API_KEY": "test-key",
        "CUSTOMGPT_API_URL": customgpt.api_url,
        "CUSTOMGPT_PROJECT_ID": str(PROJECT_ID),
        "REDIS_URL": REDIS_URL,
    }
    for key_env, expected in ((env, 0), (env | {"CUSTOMGPT_API_KEY": "wrong-key"}, 1)):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "doctor",
            cwd=str(tmp_path),
            env=key_env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode == expected, (out, err)
        assert len(out.decode().splitlines()) == 10
        for secret in (*SECRETS, "wrong-key"):
            assert secret.encode() not in out + err
