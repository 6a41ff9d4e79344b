"""Who may administer the bot in a workspace: create and bind projects, connect or remove its
CustomGPT key. The one place that decides it, because a wrong answer lets any member point
every answer of the workspace at a knowledge base of their own choosing.

- `CUSTOMGPT_ADMIN_USERS` set: exactly those Slack user ids, in every workspace (unchanged).
- Otherwise, with one bot token (`SLACK_BOT_TOKEN`, one company's own workspace): everyone.
- Otherwise, with OAuth installs: the operator cannot name the people of workspaces that
  install the app later, so the workspace's own admins and owners, as Slack says
  (`users.info`: `is_admin`, `is_owner`, `is_primary_owner`), asked with that workspace's
  token through its scheduler. A member of another workspace (a Slack Connect guest, or
  someone Slack does not know here) is never an admin of this one, whatever they are at home.

Slack's answer is kept in this process for `ANSWER_TTL` seconds (a demoted admin loses the
rights within that time); a failure is not kept, so the next attempt asks again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bot.clock import Clock
from bot.config import Settings
from bot.slack_calls import SlackSchedulers, SlackUnavailable

log = logging.getLogger(__name__)

#: Seconds to wait for `users.info`: a modal's trigger id lives 3 seconds, and a slash
#: command must be acknowledged within 3, so the answer must come well before.
CHECK_WAIT = 2.0
#: Seconds an answer from Slack is trusted in this process.
ANSWER_TTL = 5 * 60
#: Answers kept at most (a workspace's members asking at once stay far below).
MAX_KEPT = 10_000
#: Slack's flags naming a workspace's admins and owners.
ADMIN_FLAGS = ("is_admin", "is_owner", "is_primary_owner")
#: `users.info` refusals that answer the question: Slack knows no such user here.
NOT_A_MEMBER = frozenset({"user_not_found", "user_not_visible"})


class AdminCheckFailed(Exception):
    """Slack could not be asked whether the user is an admin (no answer in time, or a
    refusal): the user must be told so, not that they are no admin, and nothing changes.
    `code` is Slack's error when it gave one (`missing_scope`: the install lacks
    `users:read`)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class Admins:
    def __init__(self, settings: Settings, slack: SlackSchedulers, clock: Clock) -> None:
        self._listed = settings.customgpt_admin_users
        self._ask_slack = settings.uses_oauth
        self._slack = slack
        self._clock = clock
        self._answers: dict[tuple[str, str], tuple[bool, float]] = {}

    async def may_administer(self, team: str, user: str) -> bool:
        """Whether `user` may administer the bot in workspace `team`; AdminCheckFailed when
        Slack had to be asked and could not be."""
        if self._listed:
            return user in self._listed
        if not self._ask_slack:
            return True
        kept = self._answers.get((team, user))
        if kept is not None and kept[1] > self._clock.now():
            return kept[0]
        answer = await self._ask(team, user)
        self._keep(team, user, answer)
        return answer

    async def _ask(self, team: str, user: str) -> bool:
        try:
            async with asyncio.timeout(CHECK_WAIT):
                found = await self._slack.for_team(team).user_info(user)
        except TimeoutError as error:
            log.warning("team %s: users.info for %s got no answer in time", team, user)
            raise AdminCheckFailed("users.info: no answer in time") from error
        except SlackUnavailable as error:
            if error.code in NOT_A_MEMBER:
                return False
            log.warning("team %s: users.info for %s failed: %s", team, user, error)
            raise AdminCheckFailed(str(error), error.code) from error
        return _is_admin_here(found, team)

    def _keep(self, team: str, user: str, answer: bool) -> None:
        now = self._clock.now()
        if len(self._answers) >= MAX_KEPT:
            self._answers = {k: v for k, v in self._answers.items() if v[1] > now}
            while len(self._answers) >= MAX_KEPT:  # all fresh: the oldest goes
                del self._answers[next(iter(self._answers))]
        self._answers[(team, user)] = (answer, now + ANSWER_TTL)


def _is_admin_here(user: dict[str, Any], team: str) -> bool:
    """Slack's flags count only for a member of `team` itself: someone from another
    workspace seen through a shared channel carries their own workspace's flags."""
    if user.get("deleted") or user.get("is_bot"):
        return False
    enterprise_teams = (user.get("enterprise_user") or {}).get("teams") or []
    if user.get("team_id") != team and team not in enterprise_teams:
        return False
    return any(user.get(flag) is True for flag in ADMIN_FLAGS)
