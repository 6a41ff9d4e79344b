"""What users read when something goes wrong, in one place so the wording stays consistent.

Every text here is Slack mrkdwn. Anything that came from outside (CustomGPT's own error text)
is escaped and shortened before it is shown; no key or token ever reaches these strings.
"""

from __future__ import annotations

from bot.customgpt import (
    AuthError,
    CustomGPTError,
    NotFound,
    Project,
    ProjectPage,
    ProjectStats,
    PromptTooLong,
    RateLimited,
    RequestTimeout,
    ServerError,
    StreamError,
    StreamInterrupted,
    StreamTimeout,
)
from bot.log_setup import redact_text

THINKING = "_Thinking…_"
EMPTY_QUESTION = (
    "Hi! Ask me a question after the mention, for example `@CustomGPT what is your refund policy?`"
)
NO_PROJECT = (
    "No knowledge base is connected here yet. Bind one with `/customgpt use <project-id>` "
    "(see `/customgpt list`), or ask an admin to set `CUSTOMGPT_PROJECT_ID`."
)
QUEUED = "_Waiting for the answer above to finish…_"
CONVERSATION_RESTARTED = (
    "_I couldn't find our earlier conversation in CustomGPT (it was deleted), so this answer "
    "starts a new one without the earlier turns._"
)
EARLIER_TURNS_UNSEEN = (
    "_My storage is unreachable right now, so I couldn't see the earlier turns of this "
    "conversation; this answer starts from this question alone._"
)
ADMISSION = "_Many questions are being answered right now; yours is next in line…_"
BUSY_THREAD = (
    "I was still answering an earlier question in this thread, so I couldn't get to this "
    "one. Please ask it again."
)
SHUTTING_DOWN = "_The bot restarted while answering. Please ask again._"
KEY_FIX = (
    "A workspace admin can connect a working one with `/customgpt key` "
    "(or the bot's operator update `CUSTOMGPT_API_KEY`)."
)
NO_KEY = (
    ":key: This workspace hasn't connected a CustomGPT.ai account yet, so I can't answer. "
    "A workspace admin must connect one with `/customgpt key`."
)
NO_KEY_FOR_COMMAND = (
    ":key: This workspace hasn't connected a CustomGPT.ai account yet. A workspace admin must "
    "connect one with `/customgpt key` first."
)
STORE_DOWN = (
    ":warning: I can't reach my storage right now, so I can't answer safely. "
    "Please try again in a minute; if this persists, tell a Slack admin."
)
SLACK_REFUSED_REST = (
    ":warning: _Slack refused the rest of this answer. Ask again, or ask for a shorter answer._"
)
UNEXPECTED = ":warning: Something went wrong on my side while answering. Please ask again."
STOPPED_BY_USER = "_Stopped._"
EMPTY_ANSWER = "_CustomGPT returned an empty answer. Try rephrasing the question._"


def escape(text: str) -> str:
    """Escape the three characters Slack mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _outside_text(text: str, limit: int = 200) -> str:
    text = " ".join(redact_text(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return escape(text)


def searching(project_name: str) -> str:
    return f"_Searching {escape(project_name)}…_"


#: Why a native answer's search step failed, in the few words a task step shows (plain
#: text; the notice under the message says the rest).
_SEARCH_FAILURES = {
    "customgpt_auth_error": "CustomGPT refused this workspace's key",
    "customgpt_not_found": "The project or conversation was not found",
    "customgpt_rate_limited": "The CustomGPT account is out of query credits",
    "customgpt_prompt_too_long": "The question is too long",
    "customgpt_stream_timeout": "CustomGPT didn't answer in time",
    "customgpt_stream_interrupted": "The answer broke off",
    "customgpt_stream_error": "CustomGPT reported an error",
    "customgpt_server_error": "CustomGPT had a problem",
    "customgpt_request_timeout": "CustomGPT had a problem",
    "store_unavailable": "My storage is unreachable",
    "empty_answer": "CustomGPT returned an empty answer",
}


def search_failed(failure: str | None) -> str:
    """The reason a search step shows when no words came (`failure`: the metrics reason)."""
    if failure is None:
        return "Interrupted before an answer came"
    return _SEARCH_FAILURES.get(failure, "The search failed")


def _credits_exhausted(error: RateLimited) -> str:
    """A 429 from CustomGPT: the account's query credits are used up. Waiting does not help,
    so the user learns who can fix it, with CustomGPT's own words (already redacted by the
    client) when it gave any."""
    said = error.message.strip()
    quoted = "" if said == f"HTTP {error.status}" else f" (CustomGPT said: “{_outside_text(said)}”)"
    return (
        f":no_entry: The CustomGPT account has run out of query credits{quoted}. "
        "Please tell whoever manages the CustomGPT plan; asking again won't help until they "
        "add credits."
    )


def prompt_too_long(error: PromptTooLong) -> str:
    return (
        f":warning: Your question is {error.length:,} characters long; CustomGPT accepts at most "
        f"{error.limit:,}. Please shorten it and ask again."
    )


def skipped_frames(count: int) -> str:
    """Under an answer some of whose stream frames were too large to read."""
    parts = "part" if count == 1 else "parts"
    return (
        f":warning: _{count} {parts} of CustomGPT's answer {'was' if count == 1 else 'were'} "
        "too large to read and left out, so the answer above may have gaps._"
    )


def _server_trouble(error: ServerError) -> str:
    """CustomGPT failed, timed out or could not be reached: nothing the user did wrong."""
    if isinstance(error, RequestTimeout):
        return ":hourglass: CustomGPT didn't answer in time. Please try again in a minute."
    if error.status == 0:
        return ":warning: I couldn't reach CustomGPT. Please try again in a minute."
    return (
        f":warning: CustomGPT had a problem (error {error.status}). Please try again in a minute."
    )


def for_error(error: CustomGPTError, *, project_id: str, partial: bool) -> str:
    """The notice for a failed answer; `partial` when some text already reached the user."""
    if isinstance(error, AuthError):
        return (
            ":warning: I can't reach the knowledge base: this workspace's CustomGPT key is "
            "invalid or was revoked. " + KEY_FIX
        )
    if isinstance(error, NotFound):
        return (
            f":warning: CustomGPT project `{escape(project_id)}` (or this conversation) was "
            "not found. Check the id with `/customgpt list` and bind one with "
            "`/customgpt use <project-id>`."
        )
    if isinstance(error, RateLimited):
        return _credits_exhausted(error)
    if isinstance(error, PromptTooLong):
        return prompt_too_long(error)
    if isinstance(error, StreamInterrupted):
        if partial:
            return ":warning: _The answer was cut off before it finished. Ask again for the rest._"
        return ":warning: The answer stream broke off before any text arrived. Please ask again."
    if isinstance(error, StreamTimeout):
        if error.first_chunk:
            return ":hourglass: CustomGPT didn't start answering in time. Please ask again."
        return ":warning: _CustomGPT stopped responding; the answer above may be incomplete._"
    if isinstance(error, StreamError):
        return f":warning: CustomGPT reported an error: {_outside_text(error.message)}"
    if isinstance(error, ServerError):
        return _server_trouble(error)
    return (
        f":warning: CustomGPT refused the question (error {error.status}: "
        f"{_outside_text(error.message)})."
    )


FEEDBACK_UNREADABLE = "I couldn't read that feedback button. Please try again on a newer answer."
FEEDBACK_NO_MESSAGE_ID = (
    "CustomGPT didn't give this answer an id, so feedback can't be recorded for it."
)


def feedback_failed(error: CustomGPTError) -> str:
    if isinstance(error, NotFound):
        return "CustomGPT no longer knows this answer, so the feedback wasn't recorded."
    if isinstance(error, AuthError):
        return "Feedback wasn't recorded: this workspace's CustomGPT key is invalid or was revoked."
    if isinstance(error, RateLimited):
        return "Feedback wasn't recorded. " + _credits_exhausted(error).removeprefix(":no_entry: ")
    return "Feedback wasn't recorded because CustomGPT had a problem. Please try again."


FEEDBACK_RECORDED_NOT_SHOWN = "Thanks! Your feedback was recorded."
FEEDBACK_NO_KEY = (
    "Feedback wasn't recorded: this workspace has no CustomGPT key connected any more "
    "(an admin can connect one with `/customgpt key`)."
)
FEEDBACK_STORE_DOWN = (
    "Feedback wasn't recorded: I can't reach my storage right now. Please try again in a minute."
)


# -- /customgpt ----------------------------------------------------------------------------

HELP = "\n".join(
    [
        "*`/customgpt` commands*",
        "• `create <name> <sitemap-url>`: build a knowledge base from a sitemap, then this "
        "channel asks it (add `--no-bind` to keep the channel as it is). "
        "Example: `/customgpt create Acme Docs https://acme.com/sitemap.xml`",
        "• `use <project-id>`: this channel (or DM) asks that project. "
        "Example: `/customgpt use 12345`; `/customgpt use default` removes the binding",
        "• `status [project-id]`: which project answers here, and whether it is ready. "
        "Example: `/customgpt status`",
        "• `list [page]`: the account's projects. Example: `/customgpt list 2`",
        "• `new`: the next question here starts a fresh conversation. Example: `/customgpt new`",
        "• `key [remove]`: connect this workspace's own CustomGPT API key (admins; it is typed "
        "into a private form, never into a message); `/customgpt key remove` disconnects it",
        "• `help`: this list",
    ]
)
NOT_ADMIN = (
    ":lock: Only the bot's admins can create projects or change which project a channel asks. "
    "Ask one of them, or use `/customgpt status` to see what this channel asks."
)
CREATE_USAGE = (
    "Usage: `/customgpt create <name> <sitemap-url> [--no-bind]`, for example "
    "`/customgpt create Acme Docs https://acme.com/sitemap.xml`"
)
USE_USAGE = (
    "Usage: `/customgpt use <project-id>` (the number `/customgpt list` shows), "
    "or `/customgpt use default` to remove this channel's binding."
)
LIST_USAGE = "Usage: `/customgpt list [page]`, for example `/customgpt list 2`"
FRESH_START = (
    ":sparkles: Done: the next question here starts a fresh conversation "
    "(earlier messages are forgotten)."
)


def unknown_verb(verb: str) -> str:
    return f"I don't know `{_outside_text(verb, 40)}`.\n\n{HELP}"


def bad_sitemap_url(reason: str) -> str:
    return f":warning: That sitemap URL won't work: {reason}.\n{CREATE_USAGE}"


def bad_project_name(reason: str) -> str:
    return f":warning: That project name won't work: {reason}.\n{CREATE_USAGE}"


def bad_project_id(text: str) -> str:
    return (
        f":warning: `{_outside_text(text, 40)}` is not a project id: ids are numbers, "
        "see `/customgpt list`."
    )


def for_command_error(error: CustomGPTError, *, project_id: str | None = None) -> str:
    """What a `/customgpt` command says when CustomGPT refused or failed; always says what to
    do next (the answer flow's wording, `for_error`, is about a question instead)."""
    if isinstance(error, AuthError):
        return ":warning: CustomGPT rejected the API key (invalid or revoked). " + KEY_FIX
    if isinstance(error, NotFound):
        if project_id is None:
            return ":warning: CustomGPT doesn't know that project. See `/customgpt list`."
        return unknown_project(project_id)
    if isinstance(error, RateLimited):
        return _credits_exhausted(error)
    if isinstance(error, ServerError):
        return _server_trouble(error)
    return (
        f":warning: CustomGPT refused this (error {error.status}: {_outside_text(error.message)})."
    )


def unknown_project(project_id: str) -> str:
    return (
        f":warning: There is no project `{escape(project_id)}` in the CustomGPT account this "
        "workspace uses. See `/customgpt list` for the ids."
    )


def _project_label(name: str, project_id: str) -> str:
    return f"*{_outside_text(name, 100)}* (`{escape(project_id)}`)"


def _pages(stats: ProjectStats) -> str:
    return f"{stats.pages_found} pages found, {stats.pages_indexed} indexed"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{round(seconds)} seconds"
    return f"{round(seconds / 60)} minutes"


def creating(name: str, sitemap_url: str) -> str:
    return (
        f":hourglass_flowing_sand: Creating *{_outside_text(name, 100)}* from "
        f"`{_outside_text(sitemap_url, 300)}`… I'll post its progress in this channel."
    )


def indexing_status(
    name: str,
    project_id: str,
    sitemap_url: str,
    user: str,
    stats: ProjectStats | None,
    *,
    bind: bool,
) -> str:
    """The visible status message while CustomGPT crawls and indexes a new project."""
    progress = "waiting for CustomGPT to start crawling" if stats is None else _pages(stats)
    then = (
        "When it's ready, this channel will ask it."
        if bind
        else "This channel keeps its current project (`--no-bind`)."
    )
    return (
        f":hourglass_flowing_sand: <@{user}> is building {_project_label(name, project_id)} "
        f"from `{_outside_text(sitemap_url, 300)}`.\n"
        f"*Indexing:* {progress}…\n{then}"
    )


def project_ready(name: str, project_id: str, stats: ProjectStats | None, *, bound: bool) -> str:
    pages = "" if stats is None else f" ({stats.pages_indexed} pages indexed)"
    then = (
        "This channel now asks it: mention me with a question."
        if bound
        else f"Bind a channel to it with `/customgpt use {escape(project_id)}`."
    )
    return f":white_check_mark: {_project_label(name, project_id)} is ready{pages}. {then}"


def project_timed_out(
    name: str, project_id: str, stats: ProjectStats | None, timeout: float, *, bind: bool
) -> str:
    pages = "" if stats is None else f" ({_pages(stats)})"
    unbound = " This channel was not bound to it." if bind else ""
    return (
        f":warning: {_project_label(name, project_id)} still isn't ready after "
        f"{_duration(timeout)}{pages}, so I stopped watching it.{unbound} It may still finish: "
        f"check `/customgpt status {escape(project_id)}`, then bind it with "
        f"`/customgpt use {escape(project_id)}`."
    )


def watch_failed(name: str, project_id: str, error: CustomGPTError) -> str:
    """The watch ended early: CustomGPT refused the key or forgot the project."""
    if isinstance(error, NotFound):
        reason = "CustomGPT no longer has this project (was it deleted?)"
    elif isinstance(error, AuthError):
        reason = (
            "CustomGPT rejected this workspace's API key. A workspace admin can connect a "
            f"working one with `/customgpt key`, then check `/customgpt status "
            f"{escape(project_id)}`"
        )
    else:
        reason = for_command_error(error, project_id=project_id).removeprefix(":warning: ")
    return (
        f":warning: I stopped watching {_project_label(name, project_id)}: {reason}. "
        "This channel was not changed."
    )


def created_untracked(name: str, project_id: str) -> str:
    return (
        f":warning: I created {_project_label(name, project_id)}, but I can't follow its "
        "indexing because my storage is unreachable. Check it with "
        f"`/customgpt status {escape(project_id)}`, and bind it with "
        f"`/customgpt use {escape(project_id)}` once it is ready."
    )


def cannot_post_status(name: str, project_id: str, slack_error: str | None) -> str:
    if slack_error in ("not_in_channel", "channel_not_found"):
        why = "I'm not a member of this channel. Invite me with `/invite @CustomGPT`"
    else:
        why = f"Slack refused my message (`{escape(slack_error or 'rate limited')}`)"
    return (
        f":warning: I created {_project_label(name, project_id)}, but I can't post its progress "
        f"here: {why}. I'm still watching it; `/customgpt status {escape(project_id)}` "
        "shows how far it got."
    )


def bound(project: Project) -> str:
    return (
        f":white_check_mark: This channel now asks {_project_label(project.name, project.id)}. "
        "Mention me with a question (in a DM, just write it)."
    )


def binding_kept(pending: list[tuple[str, str]]) -> str:
    """Appended when a hand-made binding overrides projects still indexing for the channel."""
    if not pending:
        return ""
    names = ", ".join(_project_label(name, project_id) for name, project_id in pending)
    return f"\n_{names}, still indexing, will not take over this channel when ready._"


def unbound(default_project_id: str | None) -> str:
    if default_project_id:
        return (
            ":white_check_mark: Binding removed: this channel now asks the default project "
            f"(`{escape(default_project_id)}`)."
        )
    return (
        ":white_check_mark: Binding removed. No default project is set, so this channel has "
        "no knowledge base until someone runs `/customgpt use <project-id>`."
    )


def not_ready(project: Project) -> str:
    return (
        f":hourglass: {_project_label(project.name, project.id)} is still indexing and can't "
        f"answer yet. Try again later; `/customgpt status {escape(project.id)}` shows progress."
    )


NO_PROJECT_HERE = (
    "No knowledge base answers here yet. Bind one with `/customgpt use <project-id>` "
    "(see `/customgpt list`), create one with `/customgpt create <name> <sitemap-url>`, "
    "or ask an admin to set `CUSTOMGPT_PROJECT_ID`."
)


def project_status(
    project: Project, stats: ProjectStats, *, role: str | None, watching: bool
) -> str:
    """`role`: why this project is shown ("bound here", "the default project"), or None
    when the user named it."""
    heading = _project_label(project.name, project.id)
    if role:
        heading = f"This channel asks {heading}: {role}."
    answers = (
        "yes"
        if project.is_chat_active
        else "not yet, it is still indexing" + (" (I'm watching it)" if watching else "")
    )
    pages = f"{stats.pages_found} found, {stats.pages_indexed} indexed"
    return f"{heading}\n• Answers questions: {answers}\n• Pages: {pages}"


def project_list(page: ProjectPage, *, current: str | None) -> str:
    if not page.projects:
        if page.page > 1:
            return f"There is no page {page.page}: the list has {page.last_page} page(s)."
        return (
            "The bot's CustomGPT account has no projects yet. Create one with "
            "`/customgpt create <name> <sitemap-url>`."
        )
    lines = [f"*Projects* (page {page.page} of {page.last_page})"]
    for project in page.projects:
        state = "ready" if project.is_chat_active else "indexing"
        here = " ← this channel" if project.id == current else ""
        lines.append(f"• {_project_label(project.name, project.id)}: {state}{here}")
    if page.page < page.last_page:
        lines.append(f"Next page: `/customgpt list {page.page + 1}`")
    lines.append("Bind one here with `/customgpt use <project-id>`.")
    return "\n".join(lines)


# -- added for request checks (kept at the end of the file) -----------------------------------


def created_recently(name: str, project_id: str | None) -> str:
    """A `/customgpt create` sent again within minutes (a double submit, a replay)."""
    if project_id is None:
        return (
            f":hourglass_flowing_sand: *{_outside_text(name, 100)}* from that sitemap is "
            "already being created; its progress appears in the channel."
        )
    return (
        f":information_source: You just created {_project_label(name, project_id)} from that "
        "sitemap, so I didn't create it again. See its progress with "
        f"`/customgpt status {escape(project_id)}`."
    )


NEW_IN_A_CHANNEL = (
    "In a channel every new mention of me already starts a fresh conversation, and replies in "
    "its thread continue it, so there is nothing to reset here. (In a DM with me, "
    "`/customgpt new` starts over.)"
)

FEEDBACK_NOT_YOURS = (
    "Only the person who asked can rate this answer. Ask your own question to rate its answer."
)

FILES_NOT_READ = "_I can't read attached files yet: this answer is from your text only._"
FILES_ONLY = (
    "I can't read attached files yet. Please write your question as text "
    "(you can paste the relevant part of the file)."
)


# -- the App Home ------------------------------------------------------------------------------

HOME_ACCOUNT_UNKNOWN = (
    "*Default project*: unknown right now: my storage, which says which CustomGPT account "
    "answers here, is unreachable."
)
HOME_STORE_DOWN = (
    ":warning: My storage is unreachable right now, so I can't list the bound channels and "
    "the projects still indexing. Open this tab again in a minute."
)


# -- the assistant pane ------------------------------------------------------------------------


def assistant_greeting(project_name: str | None) -> str:
    """The first words of a new assistant thread."""
    about = f" about *{escape(project_name)}*" if project_name else ""
    return (
        f":wave: Hi! Ask me anything{about}: I answer from the knowledge base, with its sources. "
        "Each thread here is its own conversation, so follow-ups keep their context."
    )


PROMPTS_TITLE = "Try asking"
#: Offered when the project has no starter questions of its own (or CustomGPT can't say).
GENERIC_PROMPTS = (
    "What can you help me with?",
    "Give me an overview of the main topics you know about.",
    "Where do I start if I'm new here?",
)


# -- /customgpt key ------------------------------------------------------------------------

KEY_NOT_ADMIN = (
    ":lock: Only the bot's admins can connect or remove this workspace's CustomGPT key. "
    "Ask one of them."
)
KEY_NOT_ADMIN_SHORT = "Only the bot's admins can connect this workspace's CustomGPT key."
KEY_USAGE = (
    "Usage: `/customgpt key` opens a private form to paste this workspace's CustomGPT API key "
    "(never type a key into a message or after the command); `/customgpt key remove` "
    "disconnects it."
)
KEY_CANNOT_BE_STORED = (
    ":warning: This bot can't store workspace keys yet: its operator must set "
    "`CUSTOMGPT_KEY_ENCRYPTION_KEY` first."
)
KEY_MODAL_FAILED = ":warning: Slack didn't open the form. Please run `/customgpt key` again."
KEY_MODAL_HINT = (
    "CustomGPT.ai → your profile → API. It is checked with CustomGPT, stored encrypted, "
    "and never shown again."
)
KEY_MALFORMED = "That doesn't look like a CustomGPT API key: paste the key alone, without spaces."
KEY_REJECTED = "CustomGPT rejected this key (invalid or revoked). Check it and paste it again."
KEY_NOT_STORED = (
    "The key works, but I couldn't store it (my storage is unreachable). "
    "Please try again in a minute."
)


def key_not_checked(error: CustomGPTError) -> str:
    """The key could not be checked (CustomGPT failed or was slow): nothing was stored."""
    if isinstance(error, RateLimited):
        return "CustomGPT refused the check: this account's query credits are exhausted."
    return "CustomGPT couldn't check the key just now (nothing was saved). Please try again."


def key_modal_intro(*, connected: bool, shared: bool) -> str:
    """What the modal says above the field: what the key is for, and what it replaces."""
    if connected:
        now = "A key is connected; a new one replaces it."
    elif shared:
        now = "Until one is connected, the bot's own CustomGPT account answers here."
    else:
        now = "No key is connected: the bot can't answer in this workspace until one is."
    return (
        "Paste an API key of your CustomGPT.ai account. Every question asked here, and every "
        f"`/customgpt` command, then uses this account's knowledge bases and credits. {now}"
    )


def key_connected(projects: int) -> str:
    plural = "" if projects == 1 else "s"
    more = "+" if projects >= 20 else ""
    return (
        f":white_check_mark: Connected. The key sees {projects}{more} project{plural}: "
        "`/customgpt list` shows them, `/customgpt use <project-id>` binds one to a channel."
    )


def key_removed(removed: bool, *, shared: bool) -> str:
    if not removed:
        return "This workspace has no CustomGPT key of its own connected: nothing to remove."
    after = (
        "The bot's own CustomGPT account answers here again."
        if shared
        else "I can't answer here until an admin connects a key with `/customgpt key`."
    )
    return f":wastebasket: Removed this workspace's CustomGPT key. {after}"


def home_key(*, own: bool) -> str:
    """The Home tab's line on whose CustomGPT account answers (never any part of the key)."""
    if own:
        return (
            ":key: *CustomGPT account*: this workspace's own key is connected. "
            "`/customgpt key remove` disconnects it."
        )
    return (
        ":key: *CustomGPT account*: the bot's own account answers here; no key of this "
        "workspace's own is connected."
    )


def watch_without_key(name: str, project_id: str) -> str:
    return (
        f":warning: I stopped watching {_project_label(name, project_id)}: this workspace's "
        "CustomGPT key was removed. A workspace admin can connect one with `/customgpt key`."
    )


# -- who may administer (bot/admins.py) ------------------------------------------------------


def admin_not_checked(*, missing_scope: bool = False) -> str:
    """Slack could not say whether the user is a workspace admin: nothing was changed."""
    text = (
        ":warning: I couldn't check with Slack whether you are an admin of this workspace, "
        "so nothing was changed. Please try again in a moment."
    )
    if missing_scope:
        text += (
            " (Slack refused: the app lacks the `users:read` permission; a workspace admin "
            "must reinstall it.)"
        )
    return text


def admin_not_checked_short(*, missing_scope: bool = False) -> str:
    """The same, where a modal field's error shows it (at most a line or two)."""
    if missing_scope:
        return "Couldn't check that you are an admin: the app lacks users:read (reinstall it)."
    return "Couldn't check with Slack that you are an admin. Nothing changed; please try again."


HOME_ADMIN_NOT_CHECKED = (
    "_I couldn't check with Slack whether you are an admin of this workspace, so the admin "
    "controls are not shown. Open this tab again in a moment._"
)
