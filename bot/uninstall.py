"""A workspace that uninstalls the app, or revokes its bot token, leaves nothing behind.

Everything the bot keeps about a workspace lives under that workspace's key prefix (see
bot/keys.py): channel bindings, thread → conversation mappings, answer-once claims, thread
locks, project watches, answers in flight, Slack rate-limit buckets, caches. Deleting the
prefix deletes all of it, whichever kinds are added later.

A revocation of user tokens alone keeps the data: the bot's own token still works, and the
bot never stored a user token.

With OAuth the installation goes too (its key is under the same prefix; the list of
installations and an org's index of workspaces drop it). An org-wide installation's uninstall
names the enterprise, not a workspace: every workspace the org's installation served loses its
data, then the enterprise's own keys (the installation, that index) go.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from bot import keys
from bot.oauth_stores import RedisInstallationStore
from bot.store import Store, StoreUnavailable

log = logging.getLogger(__name__)


def revokes_bot_token(event: Mapping[str, Any]) -> bool:
    """Whether a `tokens_revoked` event names a bot token (`tokens.bot`), not only users'
    (`tokens.oauth`)."""
    tokens = event.get("tokens")
    return isinstance(tokens, Mapping) and bool(tokens.get("bot"))


async def forget_workspace(store: Store, team: str, reason: str) -> Counter[str] | None:
    """Delete every key of `team`; how many of each kind were deleted (logged, never a
    value, never a channel), or None when the store could not be reached (logged as an
    error: the data is still there and an operator must delete the prefix)."""
    if not _is_team_id(team):
        log.error("%s for an unknown team (%r): nothing deleted", reason, team)
        return None
    try:
        deleted = await store.delete_prefix(keys.workspace(team))
    except StoreUnavailable as error:
        log.error(
            "%s for team %s, but the store is unreachable (%s): its data is still stored under %s*",
            reason,
            team,
            error,
            keys.workspace(team),
        )
        return None
    counts = Counter(keys.kind(key) or "other" for key in deleted)
    summary = ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items()))
    log.warning(
        "%s for team %s: deleted its %d stored key(s) (%s)",
        reason,
        team,
        sum(counts.values()),
        summary or "none",
    )
    return counts


async def forget_install(
    store: Store, installations: RedisInstallationStore, team: str, reason: str
) -> Counter[str] | None:
    """A workspace's installation and all of its data (`forget_workspace`)."""
    if _is_team_id(team):
        try:
            await installations.forget(team)
        except StoreUnavailable as error:
            log.error("%s for team %s: installation not deleted (%s)", reason, team, error)
    return await forget_workspace(store, team, reason)


async def forget_org(
    store: Store, installations: RedisInstallationStore, enterprise: str, reason: str
) -> Counter[str] | None:
    """An org-wide installation: the data of every workspace it served, then its own keys.
    Returns what was deleted across them all (None when the store could not be reached)."""
    if not _is_team_id(enterprise):
        log.error("%s for an unknown enterprise (%r): nothing deleted", reason, enterprise)
        return None
    try:
        teams = sorted(await installations.org_teams(enterprise))
        await installations.forget(enterprise)
    except StoreUnavailable as error:
        log.error(
            "%s for enterprise %s, but the store is unreachable (%s): its installation and "
            "workspaces' data are still stored",
            reason,
            enterprise,
            error,
        )
        return None
    why = f"{reason} (enterprise {enterprise})"
    total: Counter[str] = Counter()
    for team in teams:
        counts = await forget_install(store, installations, team, why)
        if counts is None:
            return None
        total += counts
    own = await forget_workspace(store, enterprise, why)  # what is left: the teams index
    return None if own is None else total + own


def _is_team_id(team: str) -> bool:
    # Anything else (the "unknown" placeholder, a blank) would name the wrong prefix.
    return _TEAM_ID.fullmatch(team) is not None


_TEAM_ID = re.compile(r"[A-Z0-9]+")
