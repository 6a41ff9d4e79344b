"""The CustomGPT client at the protocol level: SSE frames, typed errors, timeouts.

End-to-end tests cover the same client through the bot; these pin down the edges."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bot.customgpt import (
    AuthError,
    Chunk,
    CustomGPTClient,
    Finish,
    RateLimited,
    RequestTimeout,
    StreamError,
    StreamInterrupted,
    parse_event_data,
)
from tests.conftest import PROJECT_ID
from tests.fakes.customgpt import FakeCustomGPT


def test_frames_are_read_by_their_json_status() -> None:
    assert parse_event_data('{"status":"progress","message":"Hi"}') == Chunk("Hi")
    assert parse_event_data('{"status":"progress","message":""}') is None
    assert parse_event_data('{"status":"start","prompt":"q"}') is None
    assert parse_event_data('{"status":"something-new"}') is None
    assert parse_event_data("not json") is None
    assert parse_event_data(
        '{"status":"finish","id":7,"session_id":"s","citations":["12061",3]}'
    ) == Finish("7", "s", ["12061", "3"])
    error = parse_event_data('{"status":"error","message":"boom"}')
    assert isinstance(error, StreamError) and error.message == "boom"
    assert isinstance(parse_event_data('{"error":"bad"}'), StreamError)


@pytest.fixture
async def client(customgpt: FakeCustomGPT) -> AsyncIterator[CustomGPTClient]:
    async with aiohttp.ClientSession() as session:
        yield CustomGPTClient(session, customgpt.api_url, "test-key")


async def test_errors_keep_status_message_and_retry_after(
    customgpt: FakeCustomGPT, client: CustomGPTClient
) -> None:
    customgpt.fail_next(r"/conversations$", 429, "Too many requests", retry_after=17)
    with pytest.raises(RateLimited) as caught:
        await client.create_conversation(str(PROJECT_ID), "x")
    assert (caught.value.status, caught.value.message, caught.value.retry_after) == (
        429,
        "Too many requests",
        17.0,
    )


async def test_a_stream_refused_before_it_starts_is_a_typed_error(
    customgpt: FakeCustomGPT,
) -> None:
    async with aiohttp.ClientSession() as session:
        wrong = CustomGPTClient(session, customgpt.api_url, "wrong-key")
        with pytest.raises(AuthError) as caught:
            async for _ in wrong.stream_message(str(PROJECT_ID), "s", "q"):
                pass
    assert caught.value.status == 401
    assert "invalid" in caught.value.message


async def test_an_early_end_is_an_interruption_and_never_a_second_request(
    customgpt: FakeCustomGPT, client: CustomGPTClient
) -> None:
    session_id = await client.create_conversation(str(PROJECT_ID), "x")
    customgpt.queue_answer(["a", "b", "c"], cut_after=1)
    received: list[str] = []
    with pytest.raises(StreamInterrupted):
        async for event in client.stream_message(str(PROJECT_ID), session_id, "once"):
            assert isinstance(event, Chunk)
            received.append(event.text)
    assert received == ["a"]
    assert customgpt.prompts() == ["once"]


async def test_a_request_customgpt_never_answers_times_out() -> None:
    released = asyncio.Event()

    async def stall(_: web.Request) -> web.Response:
        await released.wait()
        return web.Response()

    application = web.Application()
    application.router.add_post("/api/v1/projects/1/conversations", stall)
    runner = web.AppRunner(application)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            stalled = CustomGPTClient(
                session, f"http://127.0.0.1:{port}/api/v1", "k", request_timeout=0.2
            )
            with pytest.raises(RequestTimeout):
                await stalled.create_conversation("1", "x")
    finally:
        released.set()
        await runner.cleanup()
