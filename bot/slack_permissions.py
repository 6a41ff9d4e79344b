"""What the app asks Slack for, and why: the one table of it the code owns.

Slack delivers an event only to an app subscribed to it, and answers a Web API method only
to a token holding its scope. manifest.yml must ask for exactly what is listed here: no
less (a listener that never fires, a call refused with `missing_scope`), no more (a scope
an admin is asked to grant for nothing). tests/test_manifest.py holds the manifest, the
listeners of the built app and every method the code sends to these tables.
"""

from __future__ import annotations

#: Each event type the app listens to (Bolt's name), and the manifest's `bot_events` that
#: deliver it: `message` arrives through one subscription per kind of conversation.
EVENT_SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {
    "app_mention": ("app_mention",),
    "message": ("message.im", "message.channels", "message.groups", "message.mpim"),
    "app_home_opened": ("app_home_opened",),
    "assistant_thread_started": ("assistant_thread_started",),
    "assistant_thread_context_changed": ("assistant_thread_context_changed",),
    "app_uninstalled": ("app_uninstalled",),
    "tokens_revoked": ("tokens_revoked",),
}

#: The scope a subscription needs (None: Slack sends it to every app that subscribes).
SUBSCRIPTION_SCOPES: dict[str, str | None] = {
    "app_mention": "app_mentions:read",
    "message.im": "im:history",
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "message.mpim": "mpim:history",
    "app_home_opened": None,
    "assistant_thread_started": None,
    "assistant_thread_context_changed": None,
    "app_uninstalled": None,
    "tokens_revoked": None,
}

#: Every Web API method the bot token calls, and the scope it needs (None: none).
METHOD_SCOPES: dict[str, str | None] = {
    "auth.test": None,
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.startStream": "chat:write",
    "chat.appendStream": "chat:write",
    "chat.stopStream": "chat:write",
    # Since March 2026 setStatus accepts chat:write (and works in channel threads).
    "assistant.threads.setStatus": "chat:write",
    "assistant.threads.setSuggestedPrompts": "assistant:write",
    "assistant.threads.setTitle": "assistant:write",
    "reactions.add": "reactions:write",
    "reactions.remove": "reactions:write",
    "views.publish": None,
    "views.open": None,  # the key form (`/customgpt key`, the Home tab's button)
    # Whether someone is a workspace admin or owner (OAuth installs, bot/admins.py).
    "users.info": "users:read",
}

#: Scopes only an app installed through OAuth uses: a single-token deployment decides who is
#: an admin by CUSTOMGPT_ADMIN_USERS or lets everyone (bot/admins.py), never by `users.info`.
OAUTH_ONLY_SCOPES: frozenset[str] = frozenset({"users:read"})

#: The scope the `/customgpt` slash command needs.
COMMAND_SCOPE = "commands"


def required_scopes() -> set[str]:
    """Every bot scope the app needs: the manifest's list, exactly."""
    scopes = {COMMAND_SCOPE}
    for subscriptions in EVENT_SUBSCRIPTIONS.values():
        scopes.update(s for sub in subscriptions if (s := SUBSCRIPTION_SCOPES[sub]) is not None)
    scopes.update(s for s in METHOD_SCOPES.values() if s is not None)
    return scopes


#: Methods called with the app-level token (`xapp-…`, Socket Mode), whose scope is granted to
#: that token in the app's settings, not asked for by the manifest's bot scopes.
APP_TOKEN_METHODS: dict[str, str] = {"apps.connections.open": "connections:write"}

#: Methods that need no bot scope: `api.test` (readiness with OAuth, no token) and
#: `oauth.v2.access` (the install flow, authenticated by the app's client id and secret).
UNSCOPED_METHODS: frozenset[str] = frozenset({"api.test", "oauth.v2.access"})
