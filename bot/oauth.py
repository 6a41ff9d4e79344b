"""The OAuth install flow's wiring, when SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are set:
Bolt's own OAuth settings (`/slack/install`, `/slack/oauth_redirect`) and its
installation-store authorize, over the Redis stores of bot/oauth_stores.py.

Each request is then authorized with its own workspace's bot token (or its org's, for an
org-wide install). Bolt's authorize asks Slack `auth.test` once per token and remembers the
answer (`cache_enabled`): without that, a burst of questions would spend Slack's rate limit
on `auth.test` and lose the questions.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncBoltContext
from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.web.async_client import AsyncWebClient

from bot import keys
from bot.config import Settings
from bot.oauth_stores import RedisInstallationStore, RedisOAuthStateStore

log = logging.getLogger(__name__)


def oauth_settings(
    settings: Settings, installations: RedisInstallationStore, state: RedisOAuthStateStore
) -> AsyncOAuthSettings:
    assert settings.slack_client_id is not None and settings.slack_client_secret is not None
    return AsyncOAuthSettings(
        client_id=settings.slack_client_id,
        client_secret=settings.slack_client_secret,
        scopes=list(settings.slack_scopes),
        user_scopes=[],  # the bot never acts as a person: no user token is asked for or kept
        redirect_uri=settings.slack_redirect_uri,
        install_path=settings.slack_install_path,
        redirect_uri_path=settings.slack_redirect_uri_path,
        installation_store=installations,
        state_store=state,
        state_expiration_seconds=keys.OAUTH_STATE_TTL,
        logger=log,
    )


def authorize(
    settings: Settings, installations: RedisInstallationStore, client: AsyncWebClient
) -> AsyncInstallationStoreAuthorize:
    """Bolt's installation-store authorize, remembering each token's `auth.test`."""
    return AsyncInstallationStoreAuthorize(
        logger=log,
        installation_store=installations,
        client_id=settings.slack_client_id,
        client_secret=settings.slack_client_secret,
        cache_enabled=True,
        client=client,
    )


def workspace_of(context: AsyncBoltContext, body: dict[str, Any]) -> str:
    """The workspace a request is served as, whose data it reads and writes. Bolt's team is
    the installation's (a Slack Connect channel's event names the other side's team as its
    own); an org-wide installation names no team, so the request's own team is taken then."""
    user = body.get("user")
    return str(
        context.team_id
        or body.get("team_id")
        or (user.get("team_id") if isinstance(user, dict) else None)
        or "unknown"
    )
