"""Settings: defaults, validation, and a start-up that fails with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, Settings
from tests.test_cli import run_cli

REQUIRED = {
    "SLACK_BOT_TOKEN": "xoxb-1",
    "SLACK_SIGNING_SECRET": "s",
    "CUSTOMGPT_API_KEY": "k",
}


def test_defaults() -> None:
    settings = Settings.from_env(REQUIRED)
    assert settings.port == 3000
    assert settings.slack_update_interval == 1.0
    assert settings.customgpt_stream is True
    assert settings.store_ttl_seconds == 30 * 86400
    assert settings.redis_url is None
    assert settings.slack_api_url == "https://slack.com/api/"


def test_values_are_parsed() -> None:
    settings = Settings.from_env(
        {
            **REQUIRED,
            "CUSTOMGPT_STREAM": "false",
            "SLACK_API_URL": "http://127.0.0.1:9/api",
            "CUSTOMGPT_ADMIN_USERS": "U1, U2,,",
            "STORE_TTL_DAYS": "7",
        }
    )
    assert settings.customgpt_stream is False
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"
    assert settings.customgpt_admin_users == frozenset({"U1", "U2"})
    assert settings.store_ttl_seconds == 7 * 86400


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_each_required_variable_is_named_when_missing(missing: str) -> None:
    env = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        Settings.from_env(env)


def test_the_signing_secret_is_optional_in_socket_mode_only() -> None:
    socket_mode = {k: v for k, v in REQUIRED.items() if k != "SLACK_SIGNING_SECRET"}
    socket_mode["SLACK_APP_TOKEN"] = "xapp-1"
    settings = Settings.from_env(socket_mode)
    assert settings.slack_app_token == "xapp-1" and settings.slack_signing_secret == ""
    assert Settings.from_env({**socket_mode, "SLACK_SIGNING_SECRET": "s"}).slack_signing_secret
    del socket_mode["SLACK_APP_TOKEN"]
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        Settings.from_env(socket_mode)


def test_bad_values_are_named() -> None:
    with pytest.raises(ConfigError, match="SLACK_UPDATE_INTERVAL"):
        Settings.from_env({**REQUIRED, "SLACK_UPDATE_INTERVAL": "fast"})
    with pytest.raises(ConfigError, match="CUSTOMGPT_STREAM"):
        Settings.from_env({**REQUIRED, "CUSTOMGPT_STREAM": "maybe"})


async def test_start_without_a_token_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    code, out, err = await run_cli(None, tmp_path)  # no settings, no .env there
    assert code == 2
    assert err.strip().splitlines() == [
        "Configuration error: SLACK_BOT_TOKEN is not set (see .env.example)"
    ]
    assert out == ""


def test_the_streaming_transport_is_one_of_three() -> None:
    assert Settings.from_env(REQUIRED).slack_streaming == "auto"
    assert Settings.from_env({**REQUIRED, "SLACK_STREAMING": "Native"}).slack_streaming == "native"
    with pytest.raises(ConfigError, match="SLACK_STREAMING"):
        Settings.from_env({**REQUIRED, "SLACK_STREAMING": "websocket"})


def test_operations_settings() -> None:
    defaults = Settings.from_env(REQUIRED)
    assert (defaults.metrics_port, defaults.log_format) == (None, "text")
    settings = Settings.from_env({**REQUIRED, "METRICS_PORT": "9102", "LOG_FORMAT": "JSON"})
    assert (settings.metrics_port, settings.log_format) == (9102, "json")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("METRICS_PORT", "0"),
        ("METRICS_PORT", "70000"),
        ("METRICS_PORT", "9.5"),
        ("LOG_FORMAT", "xml"),
    ],
)
def test_malformed_operations_settings_are_named(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({**REQUIRED, name: value})
