"""Bot tokens kept in the process for a short while, in front of the installation store.

Every Slack write names its workspace's bot token (OAuth): without this, each post, edit and
reaction of a streaming answer would read the installation from Redis first. A token is kept
for TOKEN_TTL seconds after it was read, then read again: a reinstall done through another
replica is picked up within that time. Sooner where it matters:
- an uninstall or a revocation handled by this process drops the workspace's token (and, for
  an org-wide installation, every workspace's it served) at once;
- a token Slack refuses (`invalid_auth`, `token_revoked`, `account_inactive`: revoked or
  replaced elsewhere) is dropped, so the next call reads the installation again.
This class owns that lifetime; nothing else keeps a token.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.clock import Clock

TOKEN_TTL = 30.0  # seconds a token read from the installation store is used without a read
#: Slack's answers meaning the token itself no longer works (not the call).
DEAD_TOKEN_ERRORS = frozenset({"invalid_auth", "token_revoked", "account_inactive"})


@dataclass(frozen=True)
class _Kept:
    token: str
    owner: str  # whose installation issued it: the team, or its org's enterprise
    read_at: float


class TokenCache:
    def __init__(self, clock: Clock, ttl: float = TOKEN_TTL) -> None:
        self._clock = clock
        self._ttl = ttl
        self._by_team: dict[str, _Kept] = {}

    def get(self, team: str) -> str | None:
        """The team's token if one was read less than `ttl` seconds ago."""
        kept = self._by_team.get(team)
        if kept is None:
            return None
        if self._clock.now() - kept.read_at >= self._ttl:
            del self._by_team[team]
            return None
        return kept.token

    def put(self, team: str, token: str, owner: str) -> None:
        """`token` serves `team`, issued by `owner`'s installation (the team's own, or its
        org's enterprise for an org-wide one)."""
        self._by_team[team] = _Kept(token, owner, self._clock.now())

    def drop_owner(self, owner: str) -> None:
        """`owner` (a team or an enterprise) was uninstalled, revoked or installed again:
        every token its installation issued goes."""
        for team, kept in list(self._by_team.items()):
            if owner in (team, kept.owner):
                del self._by_team[team]

    def refused(self, team: str, token: str) -> None:
        """Slack refused `token` for good: drop it, unless a newer one is kept already."""
        kept = self._by_team.get(team)
        if kept is not None and kept.token == token:
            del self._by_team[team]
