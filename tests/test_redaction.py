"""No credential CustomGPT echoes in an error reaches Slack: every outside text shown to users
passes the same redaction as the logs (`log_setup.redact_text`)."""

from __future__ import annotations

import json
import string
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import log_setup
from bot.log_setup import REDACTED, redact_text
from tests.driver import RunningBot
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack
from tests.test_commands import run
from tests.views import final_text

SLACK_TOKEN = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx"
API_KEY = "4821|" + "Zq7" * 13 + "K"  # a CustomGPT (Sanctum) key: id, bar, 40 characters
SECRETS = (SLACK_TOKEN, API_KEY)
LEAKY = f"Invalid token {SLACK_TOKEN} for key {API_KEY}; check your settings"


def everything_slack_received(slack: FakeSlack) -> str:
    """Every Web API call and every response-URL message, as one searchable text."""
    calls = [json.dumps(call.params) for call in slack.calls]
    responses = [json.dumps(payload) for _, payload in slack.responses]
    return "\n".join(calls + responses)


def assert_no_secret(slack: FakeSlack) -> None:
    received = everything_slack_received(slack)
    for secret in SECRETS:
        assert secret not in received
    for part in ("1234567890-0987654321", "Zq7Zq7Zq7"):
        assert part not in received


async def test_a_refused_question_shows_customgpts_error_without_its_credentials(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.queue_answer([], error_status=400, error_message=LEAKY)
    ts = await bot.mention("q")
    await bot.idle()

    (reply,) = slack.thread("C1", ts)
    assert "Invalid token [redacted] for key [redacted]" in final_text(reply) + reply.text
    assert_no_secret(slack)


async def test_an_error_inside_the_stream_shows_no_credentials(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.queue_answer(["Half an answer"], stream_error_after=1, stream_error_message=LEAKY)
    ts = await bot.mention("q")
    await bot.idle()

    (reply,) = slack.thread("C1", ts)
    assert "CustomGPT reported an error" in reply.text and REDACTED in reply.text
    assert_no_secret(slack)


async def test_command_errors_show_no_credentials(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.fail_next(r"^/projects/42$", 400, message=LEAKY)
    customgpt.fail_next(r"^/projects$", 422, message=LEAKY)

    _, use = await run(bot, slack, "use 42")
    _, create = await run(bot, slack, "create Acme https://acme.example/sitemap.xml")

    assert REDACTED in use[0] and REDACTED in create[0]
    assert_no_secret(slack)


# -- the function itself ---------------------------------------------------------------------

_slack_tokens = st.builds(
    "{}-{}".format,
    st.sampled_from(["xoxb", "xoxp", "xoxa", "xoxe", "xoxs", "xoxr", "xapp"]),
    st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=60),
)
_api_keys = st.builds(
    "{}|{}".format,
    st.integers(min_value=0, max_value=10**8),
    st.text(string.ascii_letters + string.digits, min_size=40, max_size=60),
)
_bearer = st.builds(
    "{} {}".format,
    st.sampled_from(["Bearer", "bearer", "BEARER"]),
    st.text(string.ascii_letters + string.digits + "._~+/=-|", min_size=1, max_size=60),
)


@given(
    before=st.text(max_size=40),
    secret=_slack_tokens | _api_keys | _bearer,
    after=st.text(max_size=40),
)
def test_any_token_shaped_text_is_redacted_wherever_it_stands(
    before: str, secret: str, after: str
) -> None:
    assert secret not in redact_text(before + secret + after)


@pytest.fixture
def configured_secrets() -> Iterator[None]:
    log_setup.use_secrets(["a-configured-key-that-has-no-shape"])
    yield
    log_setup.use_secrets(())


def test_configured_secrets_are_redacted_too(configured_secrets: None) -> None:
    assert redact_text("key a-configured-key-that-has-no-shape refused") == (
        f"key {REDACTED} refused"
    )


def test_ordinary_text_is_left_alone() -> None:
    text = "Project 42 not found | try again in 30 s (error 404)"
    assert redact_text(text) == text


def test_an_oauth_code_and_state_are_redacted_where_logs_carry_them() -> None:
    access = 'GET /slack/oauth_redirect?code=1234.5678.abcdef&state=ST4TE HTTP/1.1" 200'
    bolt = "Failed to fetch oauth.v2.access result with code: 1234.5678.abcdef - error: x"
    debug = "request: {'code': ['1234.5678.abcdef'], 'state': ['ST4TE']}, data: {'code': 'c0d3'}"
    for line in (access, bolt, debug):
        clean = redact_text(line)
        for secret in ("1234.5678.abcdef", "ST4TE", "c0d3"):
            assert secret not in clean, clean


@pytest.mark.parametrize(
    "text",
    [
        "*Help with code: review* (`42`)",  # a project's name
        '{"code": "rate_limited", "message": "slow down"}',  # an error body shown in Slack
        "exchange failed with code: 429",
    ],
)
def test_the_word_code_alone_is_left_alone(text: str) -> None:
    assert redact_text(text) == text
