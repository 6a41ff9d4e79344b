"""What users read when something goes wrong, in one place so the wording stays consistent.

Every text here is Slack mrkdwn. Anything that came from outside (CustomGPT's own error text)
is escaped and shortened before it is shown; no key or token ever reaches these strings.
"""

from __future__ import annotations

from bot.customgpt import (
    AuthError,
    CustomGPTError,
    NotFound,
    RateLimited,
    ServerError,
    StreamError,
    StreamInterrupted,
    StreamTimeout,
)

THINKING = "_Thinking…_"
EMPTY_QUESTION = (
    "Hi! Ask me a question after the mention, for example `@CustomGPT what is your refund policy?`"
)
NO_PROJECT = (
    "No knowledge base is connected here yet. Bind one with `/customgpt use <project-id>` "
    "(see `/customgpt list`), or ask an admin to set `CUSTOMGPT_PROJECT_ID`."
)
QUEUED = "_Waiting for the answer above to finish…_"
BUSY_THREAD = (
    "I was still answering an earlier question in this thread, so I couldn't get to this "
    "one. Please ask it again."
)
SHUTTING_DOWN = "_The bot restarted while answering. Please ask again._"
STORE_DOWN = (
    ":warning: I can't reach my storage right now, so I can't answer safely. "
    "Please try again in a minute; if this persists, tell a Slack admin."
)
EMPTY_ANSWER = "_CustomGPT returned an empty answer. Try rephrasing the question._"


def escape(text: str) -> str:
    """Escape the three characters Slack mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _outside_text(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return escape(text)


def searching(project_name: str) -> str:
    return f"_Searching {escape(project_name)}…_"


def _wait_hint(retry_after: float | None) -> str:
    if retry_after is None or retry_after <= 0:
        return "in a minute"
    seconds = round(retry_after)
    if seconds < 90:
        return f"in {seconds} second{'s' if seconds != 1 else ''}"
    return f"in about {round(seconds / 60)} minutes"


def for_error(error: CustomGPTError, *, project_id: str, partial: bool) -> str:
    """The notice for a failed answer; `partial` when some text already reached the user."""
    if isinstance(error, AuthError):
        return (
            ":warning: I can't reach the knowledge base: the bot's CustomGPT key is invalid "
            "or was revoked. Ask a Slack admin to update `CUSTOMGPT_API_KEY`."
        )
    if isinstance(error, NotFound):
        return (
            f":warning: CustomGPT project `{escape(project_id)}` (or this conversation) was "
            "not found. Check the id with `/customgpt list` and bind one with "
            "`/customgpt use <project-id>`."
        )
    if isinstance(error, RateLimited):
        return (
            ":hourglass: CustomGPT is busy right now. Please ask again "
            f"{_wait_hint(error.retry_after)}."
        )
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
        if error.status == 0:
            return ":warning: I couldn't reach CustomGPT. Please try again in a minute."
        return (
            f":warning: CustomGPT had a problem (error {error.status}). "
            "Please try again in a minute."
        )
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
        return "Feedback wasn't recorded: the bot's CustomGPT key is invalid or was revoked."
    if isinstance(error, RateLimited):
        return f"CustomGPT is busy; please click again {_wait_hint(error.retry_after)}."
    return "Feedback wasn't recorded because CustomGPT had a problem. Please try again."


FEEDBACK_RECORDED_NOT_SHOWN = "Thanks! Your feedback was recorded."
