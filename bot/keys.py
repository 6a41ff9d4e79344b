"""Every store key the bot uses, in one place.

Keys are namespaced by `cgpt:` and carry the Slack team id (an org-wide install's keys carry
its enterprise id; two OAuth keys, `installations` and `oauth-state`, belong to no workspace),
so one Redis can serve several workspaces and an operator can find (or delete) a workspace's
data by prefix.
"""

from __future__ import annotations

import hashlib
import json

PREFIX = "cgpt"


def conversation(team: str, channel: str, thread_ts: str) -> str:
    """JSON {project_id, session_id} of the CustomGPT conversation behind a Slack thread."""
    return f"{PREFIX}:{team}:conv:{channel}:{thread_ts}"


def binding(team: str, channel: str) -> str:
    """The project a channel (or DM) asks."""
    return f"{PREFIX}:{team}:bind:{channel}"


def workspace(team: str) -> str:
    """What every key of the workspace starts with (and no other workspace's: team ids never
    contain ":"), to find or delete all of its data."""
    return f"{PREFIX}:{team}:"


def kind(key: str) -> str:
    """What a key holds, by the name of its builder's part ("conv", "bind", "lock", …):
    the hash tag some keys carry after the team is skipped."""
    parts = key.split(":", 4)
    if len(parts) < 3 or parts[0] != PREFIX:
        return ""
    return parts[3] if parts[2].startswith("{") and len(parts) > 3 else parts[2]


def is_conversation(key: str) -> bool:
    """Whether `key` was built by `conversation`."""
    return kind(key) == "conv"


def is_binding(key: str) -> bool:
    """Whether `key` was built by `binding`."""
    return kind(key) == "bind"


def message_claim(team: str, channel: str, ts: str) -> str:
    """Claimed by the one replica that answers a user message: Slack retries an event, and has
    delivered one message under two event ids."""
    return f"{PREFIX}:{team}:msg:{channel}:{ts}"


def thread_lock(team: str, channel: str, thread_ts: str) -> str:
    """Held while a thread's question is answered, so follow-ups keep their order.

    The Redis store keeps the line of waiters beside it: `<this key>:queue` (a sorted set
    ordered by message ts) and `<this key>:waiter:<ticket>` (each waiter's heartbeat)."""
    return f"{PREFIX}:{team}:lock:{channel}:{thread_ts}"


def citation(team: str, project_id: str, citation_id: str) -> str:
    """Cached JSON {title, url} of a citation."""
    return f"{PREFIX}:{team}:citation:{project_id}:{citation_id}"


def pending_projects(team: str) -> str:
    """Set of project watches still waiting for indexing to finish."""
    return f"{PREFIX}:{team}:pending"


def pending_project(team: str, project_id: str) -> str:
    """JSON description of one watch (channel, status message ts, deadline, bind or not)."""
    return f"{PREFIX}:{team}:pending:{project_id}"


def project_name(team: str, project_id: str) -> str:
    """Cached display name of a project, for "Searching <name>…"."""
    return f"{PREFIX}:{team}:project-name:{project_id}"


def watch_owner(team: str, project_id: str) -> str:
    """Which process is watching a pending project (a short TTL it keeps renewing), so
    several replicas resuming at start-up never watch one project twice."""
    return f"{PREFIX}:{team}:pending-owner:{project_id}"


def slack_buckets(team: str) -> str:
    """Hash of the workspace's Slack rate-limit buckets (see bot/rate_buckets.py). Its `{team}`
    hash tag puts it in one Redis Cluster slot with `finals_expected`: one script uses both."""
    return f"{PREFIX}:{team}:{{{team}}}:slack-buckets"


def finals_expected(team: str) -> str:
    """Sorted set of the answers streaming in the workspace, on any replica, that will need a
    final edit (member: answer id, score: when to forget it if never settled)."""
    return f"{PREFIX}:{team}:{{{team}}}:finals-expected"


def recent_create(team: str, user: str, name: str, sitemap_url: str) -> str:
    """A `/customgpt create` just run ("1" while it runs, then JSON {project_id}), so the same
    request sent again (Slack replays within 5 minutes, a double submit) creates nothing.
    Name and URL are hashed: they are free text of any length."""
    digest = hashlib.sha256(json.dumps([name, sitemap_url]).encode()).hexdigest()[:32]
    return f"{PREFIX}:{team}:recent-create:{user}:{digest}"


def inflight(team: str, channel: str, question_ts: str) -> str:
    """JSON journal entry of an answer in flight (bot/journal.py): its reply and text so far."""
    return f"{PREFIX}:{team}:inflight:{channel}:{question_ts}"


def inflight_index(team: str) -> str:
    """Set of `<channel>:<question ts>` of the answers in flight, for recovery to look at."""
    return f"{PREFIX}:{team}:inflight"


def inflight_takeover(team: str, channel: str, question_ts: str) -> str:
    """Claimed by the one process finishing an answer whose process died."""
    return f"{PREFIX}:{team}:inflight-takeover:{channel}:{question_ts}"


def process_alive(team: str, process_id: str) -> str:
    """Renewed every second by a running bot process; gone when it stopped or died."""
    return f"{PREFIX}:{team}:alive:{process_id}"


# -- OAuth installations (bot/oauth_stores.py) -------------------------------------------------

OAUTH_STATE_TTL = 600  # seconds an install link's state is good for (Bolt's default, 10 min)


def installation(owner: str) -> str:
    """JSON of the app's installation: `owner` is the team of a workspace install, or the
    enterprise of an org-wide one (its own prefix, deleted with the org's uninstall)."""
    return f"{PREFIX}:{owner}:installation"


def org_install(team: str) -> str:
    """The enterprise whose org-wide installation serves this workspace (no installation of
    its own), so work that outlives a request finds the workspace's token."""
    return f"{PREFIX}:{team}:org-install"


def enterprise_teams(enterprise: str) -> str:
    """Set of the workspaces an org-wide installation has served: an org-wide uninstall
    deletes each one's data."""
    return f"{PREFIX}:{enterprise}:teams"


def installations() -> str:
    """Set of every installation's owner (team or enterprise ids), for the work that runs
    for every workspace (resuming watches, finishing answers left behind). Not under a team:
    no workspace owns it; uninstalls remove their member."""
    return f"{PREFIX}:installations"


def oauth_state(state: str) -> str:
    """An install link's state, issued by `/slack/install` and taken once by the redirect
    (OAUTH_STATE_TTL). Not under a team: nobody has installed anything yet. Lower case, so
    it can never share a prefix with a team (team ids are upper case)."""
    return f"{PREFIX}:oauth-state:{state}"


def oauth_state_taken(state: str) -> str:
    """Claimed by the one redirect that takes a state (OAUTH_STATE_TTL)."""
    return f"{PREFIX}:oauth-state:{state}:taken"


def bound_channels(team: str) -> str:
    """Set of the workspace's channels (and DMs) that have a `binding`, for the App Home: a
    listing without scanning keys. Kept beside the bindings by bot/bindings.py."""
    return f"{PREFIX}:{team}:bound-channels"


def assistant_titled(team: str, channel: str, thread_ts: str) -> str:
    """Claimed by the first question of an assistant thread, which names the thread (and its
    CustomGPT conversation); later questions leave the title alone."""
    return f"{PREFIX}:{team}:assistant-titled:{channel}:{thread_ts}"


def assistant_greeted(team: str, channel: str, thread_ts: str) -> str:
    """Claimed by the one delivery of an assistant thread's start that greets it (Slack
    retries events, and has delivered one under two event ids)."""
    return f"{PREFIX}:{team}:assistant-greeted:{channel}:{thread_ts}"


def customgpt_key(team: str) -> str:
    """The workspace's own CustomGPT API key, encrypted (a Fernet token: bot/customgpt_keys.py)
    with who connected it. Under the team's prefix, so an uninstall deletes it with the rest."""
    return f"{PREFIX}:{team}:customgpt-key"


def is_customgpt_key(key: str) -> bool:
    """Whether `key` was built by `customgpt_key`."""
    return kind(key) == "customgpt-key"
