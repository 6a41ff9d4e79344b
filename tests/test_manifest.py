"""manifest.yml asks Slack for what the code uses, all of it and nothing more, and shows people
what `/customgpt` takes, as the help text does."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_bolt.async_app import AsyncApp, AsyncAssistant
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages
from bot.app import build_app
from bot.config import Settings
from bot.runtime import Runtime
from bot.slack_permissions import (
    APP_TOKEN_METHODS,
    COMMAND_SCOPE,
    EVENT_SUBSCRIPTIONS,
    METHOD_SCOPES,
    SUBSCRIPTION_SCOPES,
    UNSCOPED_METHODS,
    required_scopes,
)

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "manifest.yml"
USAGE_HINT_LIMIT = 1000  # Slack's maximum for a slash command's usage_hint
#: What a Web API call sending a method named by a string looks like in our code.
SENDING_CALLS = frozenset({"must_land", "offer", "api_call"})


def manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def usage_hint() -> str:
    """The hint as Slack reads it: one double-quoted YAML scalar (JSON-compatible here)."""
    (line,) = [ln for ln in MANIFEST.read_text().splitlines() if "usage_hint:" in ln]
    value = line.split("usage_hint:", 1)[1].strip()
    assert value.startswith('"') and value.endswith('"'), "keep the hint one quoted line"
    return str(json.loads(value))


@pytest.fixture
async def app() -> AsyncIterator[AsyncApp]:
    """The Bolt app as production builds it (no server: only its listeners are looked at)."""
    settings = Settings.from_env(
        {
            "SLACK_BOT_TOKEN": "xoxb-manifest-test",
            "SLACK_SIGNING_SECRET": "manifest-test-secret",
            "CUSTOMGPT_API_KEY": "manifest-test-key",
        }
    )
    runtime = await Runtime.open(settings)
    try:
        yield build_app(runtime)
    finally:
        await runtime.close()


def listened_events(app: AsyncApp) -> set[str]:
    """The event types the built app has listeners for, read from Bolt's own matchers (an
    `app.event("x")` matcher closes over the event type, under Bolt's async wrapper) and
    from the assistant middleware, whose listeners take its thread events and DM messages."""
    events: set[str] = set()
    for listener in app._async_listeners:
        for matcher in listener.matchers:
            events.update(_closed_over_event_types(getattr(matcher, "func", None)))
    for middleware in app._async_middleware_list:
        if isinstance(middleware, AsyncAssistant):
            kinds = {
                "assistant_thread_started": middleware._thread_started_listeners,
                "assistant_thread_context_changed": middleware._thread_context_changed_listeners,
                "message": middleware._user_message_listeners,
            }
            events.update(kind for kind, listeners in kinds.items() if listeners)
    return events


def _closed_over_event_types(func: Any, depth: int = 3) -> set[str]:
    if depth == 0 or func is None or getattr(func, "__closure__", None) is None:
        return set()
    cells = {
        name: cell.cell_contents
        for name, cell in zip(func.__code__.co_freevars, func.__closure__, strict=True)
    }
    if isinstance(cells.get("event_type"), str):
        return {cells["event_type"]}
    if isinstance(cells.get("constraints"), dict):
        return {str(cells["constraints"]["type"])}
    return _closed_over_event_types(cells.get("func"), depth - 1)


def sent_methods() -> set[str]:
    """Every Slack Web API method the bot's code sends: string methods given to the scheduler
    or `api_call`, and slack_sdk's named methods (`client.auth_test()` → `auth.test`)."""
    named = {name for name in vars(AsyncWebClient) if not name.startswith("_")}
    methods: set[str] = set()
    for path in (ROOT / "bot").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            attr = node.func.attr
            if attr in SENDING_CALLS and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    methods.add(first.value)
            elif attr in named:
                methods.add(attr.replace("_", "."))
    return methods


def test_every_event_listened_to_is_subscribed_and_nothing_else(app: AsyncApp) -> None:
    listened = listened_events(app)
    assert {"app_mention", "message", "app_home_opened", "assistant_thread_started"} <= listened
    assert listened == set(EVENT_SUBSCRIPTIONS)
    subscribed = manifest()["settings"]["event_subscriptions"]["bot_events"]
    assert len(subscribed) == len(set(subscribed))
    expected = {sub for subs in EVENT_SUBSCRIPTIONS.values() for sub in subs}
    assert set(subscribed) == expected


def test_every_method_sent_has_its_scope_listed() -> None:
    sent = sent_methods()
    assert {"chat.postMessage", "views.publish", "assistant.threads.setTitle"} <= sent
    assert sent - set(APP_TOKEN_METHODS) - UNSCOPED_METHODS == set(METHOD_SCOPES), (
        "list new methods' scopes"
    )


def test_the_manifest_asks_for_exactly_the_scopes_the_code_needs() -> None:
    data = manifest()
    asked = data["oauth_config"]["scopes"]["bot"]
    assert len(asked) == len(set(asked))
    assert set(asked) == required_scopes()
    assert set(SUBSCRIPTION_SCOPES) == {s for subs in EVENT_SUBSCRIPTIONS.values() for s in subs}
    assert COMMAND_SCOPE in asked and data["features"]["slash_commands"]


def test_the_manifest_enables_the_home_tab_and_the_assistant_view() -> None:
    features = manifest()["features"]
    assert features["app_home"]["home_tab_enabled"] is True
    view = features["assistant_view"]
    assert view["assistant_description"].strip()
    prompts = view["suggested_prompts"]
    assert [p["message"] for p in prompts] == list(messages.GENERIC_PROMPTS)
    assert all(set(p) == {"title", "message"} for p in prompts)


def test_the_usage_hint_names_every_verb_with_its_arguments() -> None:
    hint = usage_hint()
    # Each help line starts with "• `verb <arguments>`": the hint must show the same.
    forms = re.findall(r"^• `([^`]+)`", messages.HELP, flags=re.MULTILINE)
    assert len(forms) >= 6
    for form in forms:
        assert form in hint
    assert "--no-bind" in hint and "default" in hint
    assert len(hint) <= USAGE_HINT_LIMIT and "\n" not in hint
