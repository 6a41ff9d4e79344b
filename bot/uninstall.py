"""A workspace that uninstalls the app, or revokes its bot token, leaves nothing behind.

Everything the bot keeps about a workspace lives under that workspace's key prefix (see
bot/keys.py): channel bindings, thread → conversation mappings, answer-once claims, thread
locks, project watches, answers in flight, Slack rate-limit buckets, caches. Deleting the
prefix deletes all of it, whichever kinds are added later.

A revocation of user tokens alone keeps the data: the bot's own token still works, and the
bot never stored a user token.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from bot import keys
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


def _is_team_id(team: str) -> bool:
    # Anything else (the "unknown" placeholder, a blank) would name the wrong prefix.
    return _TEAM_ID.fullmatch(team) is not None


_TEAM_ID = re.compile(r"[A-Z0-9]+")
