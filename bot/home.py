"""The App Home tab: what this workspace's bot answers from, in one glance.

Published with `views.publish` each time someone opens the Home tab, built from what the bot
knows then: the default project and whether it answers, the channels bound to a project, the
projects still indexing and the `/customgpt` help; admins also read how to bind a channel.
Anything that cannot be read (CustomGPT down, the key revoked, the store unreachable) becomes
a line in the view saying so: the tab is never left empty because one part failed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from bot import bindings, messages
from bot.admins import AdminCheckFailed
from bot.customgpt import (
    CustomGPTClient,
    CustomGPTError,
    Project,
    ProjectStats,
    failure_log_level,
)
from bot.customgpt_keys import NoKey
from bot.degraded_store import FallbackStore
from bot.indexing import Indexer, Watch
from bot.runtime import Runtime
from bot.slack_calls import SlackUnavailable
from bot.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

SECTION_LIMIT = 3000  # characters in a section block's text (Slack's limit)
NAME_LIMIT = 100  # characters of a project name shown
KEY_BUTTON = "connect_customgpt_key"  # opens the key modal (bot/key_modal.py), admins only


@dataclass(frozen=True)
class DefaultProject:
    """The default project as CustomGPT described it, or why it could not."""

    project_id: str
    project: Project | None = None
    stats: ProjectStats | None = None
    failure: str | None = None


@dataclass(frozen=True)
class HomeFacts:
    default: DefaultProject | None  # None: no default project is configured
    bound: list[tuple[str, str, str | None]]  # (channel, project id, project name if known)
    indexing: list[Watch]
    store_down: bool
    is_admin: bool
    no_key: bool = False  # no CustomGPT key serves this workspace: an admin must connect one
    own_key: bool = False  # the workspace connected a key of its own (else the shared one)
    can_connect: bool = False  # a key can be stored here (an encryption key is set)
    #: The store, which says whose CustomGPT key serves this workspace, is unreachable.
    account_unknown: bool = False
    #: Slack could not say whether the viewer is an admin (bot/admins.py): no admin controls.
    admin_unknown: bool = False


async def publish_home(runtime: Runtime, team: str, user: str) -> None:
    """Show `user` the workspace's Home tab as it is now."""
    facts = await gather_facts(runtime, team, user)
    try:
        await runtime.slack_writes.for_team(team).publish_home(user, home_view(facts))
    except SlackUnavailable as error:
        log.warning("could not publish the App Home: %s", error)


async def gather_facts(runtime: Runtime, team: str, user: str) -> HomeFacts:
    is_admin, admin_unknown = False, False
    try:
        is_admin = await runtime.admins.may_administer(team, user)
    except AdminCheckFailed as error:
        log.warning("App Home without admin controls: %s", error)
        admin_unknown = True
    facts = await _gather(runtime, team, is_admin)
    return replace(facts, admin_unknown=admin_unknown) if admin_unknown else facts


async def _gather(runtime: Runtime, team: str, is_admin: bool) -> HomeFacts:
    can_connect = runtime.customgpt_keys.can_connect
    try:
        account = await runtime.customgpt_keys.account_for(team)
    except NoKey:
        return HomeFacts(
            None, [], [], False, is_admin=is_admin, no_key=True, can_connect=can_connect
        )
    except StoreUnavailable as error:  # no shared key stands in: nothing can be said
        log.warning("App Home without the workspace's key: store unreachable: %s", error)
        return HomeFacts(
            None, [], [], True, is_admin=is_admin, account_unknown=True, can_connect=can_connect
        )
    customgpt, default_id = account.client, account.default_project
    default = None if default_id is None else await _default_project(customgpt, default_id)
    bound: list[tuple[str, str, str | None]] = []
    indexing: list[Watch] = []
    # Marked down already: nothing to list (nor project names to ask CustomGPT for).
    store_down = _answering_from_memory(runtime.store)
    if not store_down:
        try:
            channels = await bindings.bound_channels(runtime.store, team)
            project_ids = {p for _, p in channels}
            answerer = runtime.answerer
            names = {pid: await answerer.project_name(team, pid, customgpt) for pid in project_ids}
            bound = [(channel, pid, names[pid]) for channel, pid in channels]
            indexing = await Indexer(runtime).pending(team)
        except StoreUnavailable as error:
            log.warning("App Home without bindings: store unreachable: %s", error)
            store_down = True
        if _answering_from_memory(runtime.store):  # marked down while listing
            bound, indexing, store_down = [], [], True
    return HomeFacts(
        default,
        bound,
        indexing,
        store_down,
        is_admin=is_admin,
        own_key=account.own_key,
        can_connect=can_connect,
    )


def _answering_from_memory(store: Store) -> bool:
    """Redis is marked down and this process's memory stands in (bot/degraded_store.py): it
    holds the bindings this process has used, not the workspace's index of them nor its
    watches, so a listing from it would say "none" where there are some."""
    return isinstance(store, FallbackStore) and store.down


async def _default_project(customgpt: CustomGPTClient, project_id: str) -> DefaultProject:
    try:
        project = await customgpt.get_project(project_id)
        stats = await customgpt.project_stats(project_id)
    except CustomGPTError as error:
        log.log(failure_log_level(error), "App Home: default project unreadable: %s", error)
        return DefaultProject(
            project_id, failure=messages.for_command_error(error, project_id=project_id)
        )
    return DefaultProject(project_id, project, stats)


# -- the view ------------------------------------------------------------------------------------


def home_view(facts: HomeFacts) -> dict[str, Any]:
    """The Home tab's view (`type: home`), within Slack's block limits."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "CustomGPT knowledge bases"}},
        _section(
            messages.HOME_ACCOUNT_UNKNOWN if facts.account_unknown else _default_text(facts.default)
        ),
        {"type": "divider"},
    ]
    if not facts.store_down:  # else whether a key is connected is not known
        key_state = messages.NO_KEY if facts.no_key else messages.home_key(own=facts.own_key)
        blocks.append(_section(key_state))
        if facts.is_admin and facts.can_connect:
            blocks.append(_key_button(replace=facts.own_key))
    if facts.store_down:
        blocks.append(_section(messages.HOME_STORE_DOWN))
    elif not facts.no_key:
        blocks.append(_section(_bound_text(facts.bound)))
        blocks.append(_section(_indexing_text(facts.indexing)))
    blocks += [{"type": "divider"}, _section(messages.HELP)]
    if facts.is_admin:
        blocks.append(_section(ADMIN_NOTE))
    elif facts.admin_unknown:
        blocks.append(_section(messages.HOME_ADMIN_NOT_CHECKED))
    return {"type": "home", "blocks": blocks}


ADMIN_NOTE = (
    "*For admins*: to choose what a channel asks, invite me to it and run "
    "`/customgpt use <project-id>` there (`/customgpt list` shows the ids); "
    "`/customgpt use default` sends it back to the default project. "
    "`/customgpt create <name> <sitemap-url>` in a channel builds a new knowledge base and binds "
    "the channel once it is ready. `/customgpt key` connects this workspace's own CustomGPT "
    "account. Everyone else can ask questions, `status` and `list`."
)


def _key_button(*, replace: bool) -> dict[str, Any]:
    """Opens the key modal (bot/key_modal.py); drawn for admins only, and a click is checked
    again there."""
    text = "Replace CustomGPT key" if replace else "Connect CustomGPT key"
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": KEY_BUTTON,
                "text": {"type": "plain_text", "text": text},
            }
        ],
    }


def _label(name: str | None, project_id: str) -> str:
    if not name:
        return f"project `{messages.escape(project_id)}`"
    shown = name if len(name) <= NAME_LIMIT else name[: NAME_LIMIT - 1] + "…"
    return f"*{messages.escape(shown)}* (`{messages.escape(project_id)}`)"


def _default_text(default: DefaultProject | None) -> str:
    if default is None:
        return (
            "*Default project*: none is set (`CUSTOMGPT_PROJECT_ID`), so only channels bound "
            "to a project can be asked."
        )
    if default.project is None or default.stats is None:
        return f"*Default project* `{messages.escape(default.project_id)}`\n{default.failure}"
    project, stats = default.project, default.stats
    state = (
        ":white_check_mark: answering questions"
        if project.is_chat_active
        else ":hourglass: still indexing, not answering yet"
    )
    return (
        f"*Default project*: {_label(project.name, project.id)}, asked wherever no project is "
        f"bound\n{state} · {stats.pages_indexed} of {stats.pages_found} pages indexed"
    )


def _bound_text(bound: list[tuple[str, str, str | None]]) -> str:
    if not bound:
        return "*Channels bound to a project*\n_None: every channel asks the default project._"
    lines = [f"• <#{channel}> → {_label(name, pid)}" for channel, pid, name in bound]
    return _listing("*Channels bound to a project*", lines)


def _indexing_text(watches: list[Watch]) -> str:
    if not watches:
        return "*Projects still indexing*\n_None._"
    lines = []
    for watch in watches:
        then = f", then <#{watch.channel}> asks it" if watch.bind else ""
        lines.append(f"• {_label(watch.name, watch.project_id)} from <@{watch.user}>{then}")
    return _listing("*Projects still indexing*", lines)


def _listing(title: str, lines: list[str]) -> str:
    """`title` and as many lines as one section holds, then how many more there are."""
    text = title
    for shown, line in enumerate(lines):
        more = f"\n_…and {len(lines) - shown} more_"
        if len(text) + 1 + len(line) + len(more) > SECTION_LIMIT:
            return text + more
        text += "\n" + line
    return text


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}
