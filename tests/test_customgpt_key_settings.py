"""Whose CustomGPT key serves a workspace, as the environment says: the shared key by
default (single-token deployments keep working unchanged), each workspace's own once the app
is distributed through OAuth, and a malformed encryption key refused at start-up."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bot import doctor
from bot.config import ConfigError, Settings
from tests.fakes.customgpt import FakeCustomGPT
from tests.test_cli import run_cli

SLACK = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}
#: What an app distributed through OAuth sets besides (bot/config.py refuses OAuth without them).
OAUTH = {
    "SLACK_CLIENT_ID": "1.2",
    "SLACK_CLIENT_SECRET": "c" * 32,
    "SLACK_SCOPES": "chat:write",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}
SEALING = Fernet.generate_key().decode()


def test_the_environments_key_serves_every_workspace_unless_the_app_is_distributed() -> None:
    single = Settings.from_env({**SLACK, "CUSTOMGPT_API_KEY": "k"})
    assert single.customgpt_shared_key is True and single.customgpt_key_encryption_keys == ()

    distributed = Settings.from_env({**SLACK, **OAUTH, "CUSTOMGPT_KEY_ENCRYPTION_KEY": SEALING})
    assert distributed.customgpt_shared_key is False
    assert distributed.customgpt_api_key == ""  # not needed: each workspace brings its own
    assert distributed.customgpt_key_encryption_keys == (SEALING,)

    own_company = Settings.from_env(
        {
            **SLACK,
            **OAUTH,
            "CUSTOMGPT_SHARED_KEY": "true",
            "CUSTOMGPT_API_KEY": "k",
        }
    )
    assert own_company.customgpt_shared_key is True


def test_without_the_shared_key_an_encryption_key_is_required() -> None:
    with pytest.raises(ConfigError, match="needs CUSTOMGPT_KEY_ENCRYPTION_KEY"):
        Settings.from_env({**SLACK, "CUSTOMGPT_SHARED_KEY": "false", "CUSTOMGPT_API_KEY": "k"})
    with pytest.raises(ConfigError, match="CUSTOMGPT_API_KEY is not set"):
        Settings.from_env({**SLACK, "CUSTOMGPT_SHARED_KEY": "true"})


async def test_the_terminal_commands_still_need_the_environments_key(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CUSTOMGPT_SHARED_KEY=false\n")
    code, out, err = await run_cli(None, tmp_path, "projects", "list")

    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "Configuration error: CUSTOMGPT_API_KEY is not set (see .env.example)"
    ]


def test_rotation_lists_several_encryption_keys() -> None:
    newer = Fernet.generate_key().decode()
    settings = Settings.from_env(
        {**SLACK, "CUSTOMGPT_API_KEY": "k", "CUSTOMGPT_KEY_ENCRYPTION_KEY": f"{newer}, {SEALING}"}
    )
    assert settings.customgpt_key_encryption_keys == (newer, SEALING)


@pytest.mark.parametrize("value", ["not-a-fernet-key", SEALING[:-4], f"{SEALING},short"])
def test_a_malformed_encryption_key_is_named_and_never_repeated(value: str) -> None:
    with pytest.raises(ConfigError, match="CUSTOMGPT_KEY_ENCRYPTION_KEY") as refused:
        Settings.from_env(
            {**SLACK, "CUSTOMGPT_API_KEY": "k", "CUSTOMGPT_KEY_ENCRYPTION_KEY": value}
        )
    message = str(refused.value)
    assert "\n" not in message
    assert all(part not in message for part in value.split(","))


async def test_start_with_a_malformed_encryption_key_prints_one_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "SLACK_BOT_TOKEN=xoxb-1\nSLACK_SIGNING_SECRET=s\nCUSTOMGPT_API_KEY=k\n"
        "CUSTOMGPT_KEY_ENCRYPTION_KEY=tooshort\n"
    )
    code, out, err = await run_cli(None, tmp_path)

    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("Configuration error: CUSTOMGPT_KEY_ENCRYPTION_KEY (key 1) is not")
    assert "tooshort" not in line


async def test_doctor_skips_the_key_check_where_workspaces_bring_their_own(
    settings: Settings, customgpt: FakeCustomGPT
) -> None:
    own_keys = replace(
        settings,
        slack_signing_secret="0123456789abcdef0123456789abcdef",
        customgpt_api_key="",
        customgpt_shared_key=False,
    )
    out = io.StringIO()

    code = await doctor.run(own_keys, out=out)

    (key_line,) = [line for line in out.getvalue().splitlines() if "CustomGPT API key" in line]
    assert key_line.split()[0] == "skipped" and "each workspace connects its own" in key_line
    assert code == 0
    assert customgpt.requests == []
