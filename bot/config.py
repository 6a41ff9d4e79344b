"""Settings from the environment, read and validated once at start-up.

Every variable the bot reads is named here, so the README table, `.env.example` and this file
are the three places to keep in step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_CUSTOMGPT_API_URL = "https://app.customgpt.ai/api/v1"
DEFAULT_INSTALL_PATH = "/slack/install"  # Bolt's defaults, kept when the settings are unset
DEFAULT_REDIRECT_URI_PATH = "/slack/oauth_redirect"
STREAMING_MODES = ("update", "native", "auto")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable and nothing secret."""


@dataclass(frozen=True)
class Settings:
    slack_bot_token: str
    slack_signing_secret: str
    customgpt_api_key: str
    slack_app_token: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    customgpt_api_url: str = DEFAULT_CUSTOMGPT_API_URL
    customgpt_project_id: str | None = None
    customgpt_stream: bool = True
    customgpt_lang: str = "en"
    customgpt_first_chunk_timeout: float = 30.0
    customgpt_idle_timeout: float = 60.0
    customgpt_index_timeout: float = 1800.0
    customgpt_admin_users: frozenset[str] = frozenset()
    redis_url: str | None = None
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str | None = None
    redis_password: str | None = None
    redis_cluster: bool = False
    redis_max_connections: int = 50
    store_ttl_days: int = 30
    port: int = 3000
    metrics_port: int | None = None  # /metrics on its own port, off the public one
    slack_update_interval: float = 1.0
    slack_update_budget: int = 50
    slack_update_burst: int = 20
    slack_post_budget: int = 60
    slack_post_burst: int = 5
    slack_workspace_post_budget: int = 300
    slack_workspace_post_burst: int = 25
    slack_delivery_deadline: float = 900.0
    slack_overload_wait: float = 5.0
    slack_streaming: str = "auto"
    slack_native_in_channels: bool = False
    slack_stream_budget: int = 20
    slack_stream_burst: int = 5
    slack_append_budget: int = 100
    slack_append_burst: int = 20
    max_concurrent_answers: int = 500
    shutdown_grace: float = 10.0
    slack_thread_followups: bool = True
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one JSON object a line
    slack_client_id: str | None = None  # with the secret: OAuth, one installation per workspace
    slack_client_secret: str | None = None
    slack_scopes: tuple[str, ...] = ()
    slack_redirect_uri: str | None = None
    slack_install_path: str = DEFAULT_INSTALL_PATH
    slack_redirect_uri_path: str = DEFAULT_REDIRECT_URI_PATH

    #: The environment's CUSTOMGPT_API_KEY serves every workspace without a key of its own.
    customgpt_shared_key: bool = True
    #: Fernet keys sealing the workspaces' CustomGPT keys at rest: the first encrypts, all
    #: decrypt (a rotation adds a new first key and keeps the old one for a while).
    customgpt_key_encryption_keys: tuple[str, ...] = ()

    @property
    def secrets(self) -> list[str]:
        """Every secret the settings hold, for the log redaction (workspaces' tokens from
        OAuth installations are redacted by their shape)."""
        return [
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token or "",
            self.redis_password or "",
            self.customgpt_api_key,
            self.slack_client_secret or "",
            *self.customgpt_key_encryption_keys,
        ]

    @property
    def uses_oauth(self) -> bool:
        """Whether workspaces install the app through OAuth (each with its own bot token from
        its installation) rather than the app serving the one workspace SLACK_BOT_TOKEN is for."""
        return self.slack_client_id is not None

    @property
    def store_ttl_seconds(self) -> int:
        return self.store_ttl_days * 86400

    @property
    def uses_redis(self) -> bool:
        """Whether the store is shared (a Redis URL, a Cluster or a Sentinel-watched master);
        otherwise this process keeps it in memory."""
        return bool(self.redis_url or self.redis_sentinels)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, need_slack: bool = True) -> Settings:
        """Build settings; `need_slack=False` serves the terminal commands, which never talk to
        Slack and so must not demand its secrets."""
        env = os.environ if env is None else env
        reader = _Reader(env)
        slack_required = reader.required if need_slack else reader.optional_str
        app_token = reader.optional_str("SLACK_APP_TOKEN")
        # Socket Mode requests come over our own WebSocket and carry no signature, so the
        # signing secret is needed only over HTTP ("" when not set).
        signing_required = slack_required if app_token is None else reader.optional_str
        oauth = _oauth_settings(reader)
        redis = _redis_settings(reader)
        if oauth and need_slack:
            _check_oauth_can_serve(app_token, redis)
        # An OAuth app's tokens come from its installations; SLACK_BOT_TOKEN is then optional.
        token_required = reader.optional_str if oauth else slack_required
        return cls(
            slack_bot_token=token_required("SLACK_BOT_TOKEN") or "",
            slack_signing_secret=signing_required("SLACK_SIGNING_SECRET") or "",
            **_customgpt_key_settings(reader, need_slack=need_slack),
            slack_app_token=app_token,
            slack_api_url=_with_trailing_slash(
                reader.optional_str("SLACK_API_URL") or DEFAULT_SLACK_API_URL
            ),
            customgpt_api_url=(
                reader.optional_str("CUSTOMGPT_API_URL") or DEFAULT_CUSTOMGPT_API_URL
            ).rstrip("/"),
            customgpt_project_id=reader.optional_str("CUSTOMGPT_PROJECT_ID"),
            customgpt_stream=reader.boolean("CUSTOMGPT_STREAM", True),
            customgpt_lang=reader.optional_str("CUSTOMGPT_LANG") or "en",
            customgpt_first_chunk_timeout=reader.number("CUSTOMGPT_FIRST_CHUNK_TIMEOUT", 30.0),
            customgpt_idle_timeout=reader.number("CUSTOMGPT_IDLE_TIMEOUT", 60.0),
            customgpt_index_timeout=reader.number("CUSTOMGPT_INDEX_TIMEOUT", 1800.0),
            customgpt_admin_users=frozenset(
                u.strip()
                for u in (reader.optional_str("CUSTOMGPT_ADMIN_USERS") or "").split(",")
                if u.strip()
            ),
            **redis,
            redis_max_connections=int(reader.number("REDIS_MAX_CONNECTIONS", 50, minimum=1)),
            store_ttl_days=int(reader.number("STORE_TTL_DAYS", 30, minimum=1)),
            port=int(reader.number("PORT", 3000, minimum=1)),
            metrics_port=reader.optional_port("METRICS_PORT"),
            slack_update_interval=reader.number("SLACK_UPDATE_INTERVAL", 1.0),
            slack_update_budget=int(reader.number("SLACK_UPDATE_BUDGET", 50, minimum=1)),
            slack_update_burst=int(reader.number("SLACK_UPDATE_BURST", 20, minimum=1)),
            slack_post_budget=int(reader.number("SLACK_POST_BUDGET", 60, minimum=1)),
            slack_post_burst=int(reader.number("SLACK_POST_BURST", 5, minimum=1)),
            slack_workspace_post_budget=int(
                reader.number("SLACK_WORKSPACE_POST_BUDGET", 300, minimum=1)
            ),
            slack_workspace_post_burst=int(
                reader.number("SLACK_WORKSPACE_POST_BURST", 25, minimum=1)
            ),
            slack_delivery_deadline=reader.number("SLACK_DELIVERY_DEADLINE", 900.0, minimum=1),
            slack_overload_wait=reader.number("SLACK_OVERLOAD_WAIT", 5.0),
            slack_streaming=reader.choice("SLACK_STREAMING", "auto", STREAMING_MODES),
            slack_native_in_channels=reader.boolean("SLACK_NATIVE_IN_CHANNELS", False),
            slack_stream_budget=int(reader.number("SLACK_STREAM_BUDGET", 20, minimum=1)),
            slack_stream_burst=int(reader.number("SLACK_STREAM_BURST", 5, minimum=1)),
            slack_append_budget=int(reader.number("SLACK_APPEND_BUDGET", 100, minimum=1)),
            slack_append_burst=int(reader.number("SLACK_APPEND_BURST", 20, minimum=1)),
            max_concurrent_answers=int(reader.number("MAX_CONCURRENT_ANSWERS", 500, minimum=1)),
            shutdown_grace=reader.number("SHUTDOWN_GRACE", 10.0),
            slack_thread_followups=reader.boolean("SLACK_THREAD_FOLLOWUPS", True),
            log_level=(reader.optional_str("LOG_LEVEL") or "INFO").upper(),
            log_format=reader.choice("LOG_FORMAT", "text", ("text", "json")),
            **oauth,
        )


def _oauth_settings(reader: _Reader) -> dict[str, Any]:
    """Bolt's own OAuth setting names; empty (single-token mode) unless the client id and
    secret are both set. One without the other is refused: half an OAuth setup would
    otherwise fall back to single-token mode without a word."""
    client_id = reader.optional_str("SLACK_CLIENT_ID")
    client_secret = reader.optional_str("SLACK_CLIENT_SECRET")
    if client_id is None and client_secret is None:
        return {}
    if client_id is None or client_secret is None:
        missing = "SLACK_CLIENT_ID" if client_id is None else "SLACK_CLIENT_SECRET"
        raise ConfigError(f"{missing} is not set: OAuth needs both SLACK_CLIENT_ID and the secret")
    scopes = tuple(
        s.strip() for s in (reader.optional_str("SLACK_SCOPES") or "").split(",") if s.strip()
    )
    if not scopes:
        raise ConfigError("SLACK_SCOPES is not set: OAuth asks for manifest.yml's bot scopes")
    paths = {}
    for name, default in (
        ("SLACK_INSTALL_PATH", DEFAULT_INSTALL_PATH),
        ("SLACK_REDIRECT_URI_PATH", DEFAULT_REDIRECT_URI_PATH),
    ):
        path = reader.optional_str(name) or default
        if not path.startswith("/"):
            raise ConfigError(f"{name} must be a path starting with /, not {path!r}")
        paths[name.lower()] = path
    return {
        "slack_client_id": client_id,
        "slack_client_secret": client_secret,
        "slack_scopes": scopes,
        "slack_redirect_uri": reader.optional_str("SLACK_REDIRECT_URI"),
        **paths,
    }


def _check_oauth_can_serve(app_token: str | None, redis: dict[str, Any]) -> None:
    """Installations must outlive the process and be shared by every replica (Redis), and
    Slack's redirect must reach the process over HTTP (not Socket Mode)."""
    if not (redis["redis_url"] or redis["redis_sentinels"]):
        raise ConfigError(
            "SLACK_CLIENT_ID is set (OAuth) but REDIS_URL is not: installations are kept in Redis"
        )
    if app_token is not None:
        raise ConfigError(
            "SLACK_CLIENT_ID is set (OAuth) but so is SLACK_APP_TOKEN: OAuth serves over HTTP, "
            "unset SLACK_APP_TOKEN"
        )


def _customgpt_key_settings(reader: _Reader, *, need_slack: bool) -> dict[str, Any]:
    """Whose CustomGPT key serves a workspace. The environment's key serves them all
    (`CUSTOMGPT_SHARED_KEY`, on unless the app is distributed through OAuth: one company's own
    workspaces, as a single-token deployment always was); otherwise each workspace's admin
    connects one, sealed with `CUSTOMGPT_KEY_ENCRYPTION_KEY`. The terminal commands (no Slack)
    use the environment's key, and say so when it is not set."""
    shared = reader.boolean("CUSTOMGPT_SHARED_KEY", reader.optional_str("SLACK_CLIENT_ID") is None)
    api_key = reader.optional_str("CUSTOMGPT_API_KEY")
    if api_key is None and shared:
        raise ConfigError("CUSTOMGPT_API_KEY is not set (see .env.example)")
    sealing = _fernet_keys(reader.optional_str("CUSTOMGPT_KEY_ENCRYPTION_KEY"))
    if need_slack and not shared and not sealing:
        raise ConfigError(
            "CUSTOMGPT_SHARED_KEY=false needs CUSTOMGPT_KEY_ENCRYPTION_KEY, to store the keys "
            "workspaces connect (see .env.example)"
        )
    return {
        "customgpt_api_key": api_key or "",
        "customgpt_shared_key": shared,
        "customgpt_key_encryption_keys": sealing,
    }


def _fernet_keys(value: str | None) -> tuple[str, ...]:
    """Comma-separated Fernet keys, each checked now: a malformed one would otherwise be found
    when the first workspace connects its key. The message never repeats a key."""
    keys = tuple(k.strip() for k in (value or "").split(",") if k.strip())
    for position, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except ValueError:
            raise ConfigError(
                f"CUSTOMGPT_KEY_ENCRYPTION_KEY (key {position}) is not a Fernet key "
                "(32 url-safe base64-encoded bytes); generate one with: python -c "
                '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
            ) from None
    return keys


def _redis_settings(reader: _Reader) -> dict[str, Any]:
    """Where Redis is: one URL (`redis://`, `rediss://` for TLS, `unix://`), a Cluster reached
    through one of its nodes' URL, or a master found through Sentinel. Exactly one of them;
    a mix is refused rather than one silently winning."""
    url = reader.optional_str("REDIS_URL")
    cluster = reader.boolean("REDIS_CLUSTER", False)
    sentinels = _sentinels(reader.optional_str("REDIS_SENTINELS"))
    master = reader.optional_str("REDIS_SENTINEL_MASTER")
    password = reader.optional_str("REDIS_PASSWORD")
    if cluster and not url:
        raise ConfigError("REDIS_CLUSTER=true needs REDIS_URL (any one node of the cluster)")
    if sentinels and (url or cluster):
        raise ConfigError("REDIS_SENTINELS replaces REDIS_URL and REDIS_CLUSTER: set only one")
    if sentinels and not master:
        raise ConfigError("REDIS_SENTINELS needs REDIS_SENTINEL_MASTER (the master's name)")
    if (master or password) and not sentinels:
        name = "REDIS_SENTINEL_MASTER" if master else "REDIS_PASSWORD"
        raise ConfigError(f"{name} is only read with REDIS_SENTINELS (a URL carries its own)")
    return {
        "redis_url": url,
        "redis_cluster": cluster,
        "redis_sentinels": sentinels,
        "redis_sentinel_master": master,
        "redis_password": password,
    }


def _sentinels(value: str | None) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` → ((host, port), …); IPv6 hosts in brackets (`[::1]:26379`)."""
    sentinels = []
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        host, _, port = item.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"REDIS_SENTINELS must be host:port,host:port, not {item!r}")
        sentinels.append((host, int(port)))
    return tuple(sentinels)


def _with_trailing_slash(url: str) -> str:
    # slack_sdk joins method names onto the base URL and needs the slash.
    return url if url.endswith("/") else url + "/"


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def optional_str(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.optional_str(name)
        if value is None:
            raise ConfigError(f"{name} is not set (see .env.example)")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.optional_str(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name} must be true or false, not {value!r}")

    def choice(self, name: str, default: str, options: tuple[str, ...]) -> str:
        value = (self.optional_str(name) or default).lower()
        if value not in options:
            raise ConfigError(f"{name} must be one of {', '.join(options)}, not {value!r}")
        return value

    def optional_port(self, name: str) -> int | None:
        if self.optional_str(name) is None:
            return None
        port = self.number(name, 0, minimum=1)
        if port != int(port) or port > 65535:
            raise ConfigError(f"{name} must be a port number (1-65535), not {port:g}")
        return int(port)

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.optional_str(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number, not {value!r}") from None
        if number < minimum:
            raise ConfigError(f"{name} must be at least {minimum:g}, not {value!r}")
        return number
