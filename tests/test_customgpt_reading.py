"""How the CustomGPT client reads what comes back: SSE lines however the bytes are chunked,
frames over the size cap, ids in every numeric form, prompts over the limit, error texts
redacted, and exhausted credits logged once a minute (on a clock the test moves)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp_sse_client.client import EventSource
from hypothesis import given
from hypothesis import strategies as st

from bot.customgpt import (
    Chunk,
    CustomGPTClient,
    Finish,
    PromptTooLong,
    RateLimited,
    SseFrames,
    SseLines,
    StreamError,
    StreamEvent,
    normalise_id,
    parse_event_data,
)
from tests.clocks import ManualClock
from tests.conftest import PROJECT_ID
from tests.fakes.customgpt import FakeCustomGPT

LIMIT = 64  # a small cap, so that examples reach it


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def read_all(chunks: list[bytes]) -> list[bytes | None]:
    lines = SseLines(LIMIT)
    out: list[bytes | None] = []
    for chunk in chunks:
        out.extend(lines.feed(chunk))
    return [*out, *lines.end()]


def expected_lines(data: bytes) -> list[bytes | None]:
    """The lines by definition: split at LF, CR of a CRLF dropped, over-long lines as None."""
    *complete, last = data.split(b"\n")
    pieces = [*complete, last] if last else complete
    return [None if len(p) > LIMIT else p.removesuffix(b"\r") for p in pieces]


line_bytes = st.lists(
    st.one_of(st.binary(max_size=3 * LIMIT), st.sampled_from([b"\n", b"\r\n", b"\n\n"])),
    max_size=12,
).map(b"".join)


@given(data=line_bytes, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_lines_do_not_depend_on_how_the_bytes_are_chunked(data: bytes, cuts: list[int]) -> None:
    assert read_all(split_at(data, cuts)) == expected_lines(data)


def reference_frames(data: bytes) -> tuple[list[str], int]:
    """The frames' data by definition: aiohttp-sse-client's own field handling over the
    lines, a frame over the cap skipped (and counted), the last frame ended by the stream's
    end. Returns the data and how many frames were skipped."""
    source = EventSource("http://localhost/", session=object())
    frames: list[str] = []
    skipped = size = 0
    for line in [*expected_lines(data), b""]:
        if line == b"":
            if size > LIMIT:
                skipped += 1
                source._event_data = source._event_type = ""
            elif (message := source._dispatch_event()) is not None:
                frames.append(message.data)
            size = 0
            continue
        size += LIMIT + 1 if line is None else len(line) + 1
        if line is None or size > LIMIT:
            continue
        text = line.decode("utf-8", errors="replace")
        if not text.startswith(":"):
            name, _, value = text.partition(":")
            source._process_field(name, value.removeprefix(" "))
    return frames, skipped


sse_lines = st.lists(
    st.one_of(
        st.text(max_size=LIMIT).map(lambda t: b"data: " + t.encode()),
        st.text(max_size=8).map(lambda t: b"data:" + t.encode()),
        st.sampled_from([b"data", b"data:", b"data: ", b"", b"", b"event: progress", b": hi"]),
        st.sampled_from([b"id: 7", b"retry: 10", b"database: x", b"data\xff: x", b"da\xffta"]),
        st.binary(max_size=2 * LIMIT).map(lambda b: b"data: " + b),
        st.binary(max_size=16),
    ),
    max_size=16,
)


@given(
    lines=sse_lines,
    ending=st.sampled_from([b"\n", b"\r\n"]),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=8),
)
def test_frames_are_the_libraries_reading_however_the_bytes_are_chunked(
    lines: list[bytes], ending: bytes, cuts: list[int]
) -> None:
    data = ending.join(lines)
    frames = SseFrames(LIMIT)
    got: list[str] = []
    for chunk in split_at(data, cuts):
        got.extend(frames.feed(chunk))
    got.extend(frames.end())

    assert (got, frames.skipped) == reference_frames(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
events = st.fixed_dictionaries(
    {"status": st.sampled_from(["progress", "finish", "error", "start", None])},
    optional={
        "message": json_values,
        "id": json_values,
        "session_id": json_values,
        "citations": json_values,
        "error": json_values,
    },
)
frame_data = st.one_of(
    st.tuples(
        events | json_values,
        st.sampled_from([(",", ":"), (", ", ": ")]),
        st.sampled_from(["", " ", "\n", "\t", "x", "}", "{}", "1"]),
    ).map(lambda v: json.dumps(v[0], separators=v[1]) + v[2]),
    st.text(max_size=40),
)


def reading(data: str) -> Any:
    """What `parse_event_data` makes of `data`; errors compared by type and text."""
    parsed = parse_event_data(data)
    return (type(parsed), str(parsed)) if isinstance(parsed, Exception) else parsed


@given(frame_data)
def test_a_frame_reads_as_json_reads_it(data: str) -> None:
    """A frame's data is decoded by calling JSON's scanner directly (no whitespace allowed
    around the value); with a space before it, the full decoder reads it, and JSON ignores
    that space. Both must read every frame alike, valid or not."""
    assert reading(data) == reading(" " + data)


@given(st.integers(min_value=0, max_value=10**15), st.from_regex(r"0*", fullmatch=True))
def test_every_form_of_a_numeric_id_is_one_id(n: int, zeros: str) -> None:
    forms = [n, float(n), str(n), f"{n}.0", f"{n}.00", f"{zeros}{n}", f"{n}.{zeros}"]
    assert {normalise_id(form) for form in forms} == {str(n)}


def test_ids_that_are_not_numbers_stay_as_they_are() -> None:
    assert normalise_id("3f2b-uuid") == "3f2b-uuid"
    assert normalise_id("12061.5") == "12061.5"
    assert [normalise_id(v) for v in (None, "", True)] == [None, None, None]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def stream_all(client: CustomGPTClient, session_id: str) -> list[StreamEvent]:
    return [e async for e in client.stream_message(str(PROJECT_ID), session_id, "q")]


async def test_a_frame_of_small_lines_over_the_cap_in_total_is_skipped(
    customgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    client = CustomGPTClient(http, customgpt.api_url, "test-key")
    session_id = await client.create_conversation(str(PROJECT_ID), "x")
    many_lines = b"".join(b"data: " + b"w" * 500_000 + b"\n" for _ in range(3))
    customgpt.queue_answer(
        [],
        raw_frames=[
            b'data: {"status":"progress","message":"one "}\n\n',
            many_lines + b"\n",
            b'data: {"status":"progress","message":"two"}\n\n',
            b'data: {"status":"finish","id":"9.0","session_id":"s","citations":[]}\n\n',
        ],
    )

    events = await stream_all(client, session_id)

    assert events == [Chunk("one "), Chunk("two"), Finish("9", "s", [], skipped_frames=1)]


async def test_a_frame_nested_too_deep_to_read_is_skipped(
    customgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    """JSON nested deeper than Python's recursion limit raises RecursionError, not the
    ValueError of other bad JSON: it must not end the answer."""
    client = CustomGPTClient(http, customgpt.api_url, "test-key")
    session_id = await client.create_conversation(str(PROJECT_ID), "x")
    customgpt.queue_answer(
        [],
        raw_frames=[
            b'data: {"status":"progress","message":"one "}\n\n',
            b"data: " + b"[" * 200_000 + b"\n\n",
            b'data: {"status":"progress","message":"' + b"[" * 200_000 + b'"}\n\n',
            b'data: {"status":"progress","message":"two"}\n\n',
            b'data: {"status":"finish","id":"9.0","session_id":"s","citations":[]}\n\n',
        ],
    )

    events = await stream_all(client, session_id)

    # Chunks read together may come as one: the text and the end are what count.
    text = "".join(e.text for e in events if isinstance(e, Chunk))
    assert text == "one " + "[" * 200_000 + "two"
    assert events[-1] == Finish("9", "s", [])


async def test_a_prompt_over_the_limit_is_refused_before_anything_is_sent(
    customgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    client = CustomGPTClient(http, customgpt.api_url, "test-key")
    with pytest.raises(PromptTooLong) as whole:
        await client.send_message(str(PROJECT_ID), "s", "x" * 8001)
    with pytest.raises(PromptTooLong):
        async for _ in client.stream_message(str(PROJECT_ID), "s", "x" * 8001):
            pass

    assert (whole.value.length, whole.value.limit) == (8001, 8000)
    assert customgpt.requests == []


async def test_an_error_frame_loses_the_key_it_carried(
    customgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    client = CustomGPTClient(http, customgpt.api_url, "test-key")
    session_id = await client.create_conversation(str(PROJECT_ID), "x")
    customgpt.queue_answer(["a"], stream_error_after=1, stream_error_message="bad key test-key")

    with pytest.raises(StreamError) as caught:
        await stream_all(client, session_id)

    assert caught.value.message == "bad key [redacted]"


async def test_exhausted_credits_are_logged_at_most_once_a_minute(
    customgpt: FakeCustomGPT, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    client = CustomGPTClient(http, customgpt.api_url, "test-key", clock=clock)
    customgpt.fail_next(r"^/projects/\d+$", 429, "Resource Exhausted", times=4)
    caplog.set_level(logging.WARNING, logger="bot.customgpt")

    async def refused() -> None:
        with pytest.raises(RateLimited):
            await client.get_project(str(PROJECT_ID))

    await refused()
    await refused()
    clock.advance(59)
    await refused()
    clock.advance(1)
    await refused()

    assert [r.getMessage() for r in caplog.records] == [
        "CustomGPT refused a request (429): query credits exhausted? It said: Resource Exhausted",
        "CustomGPT refused a request (429): query credits exhausted? It said: Resource Exhausted"
        " (2 more like this not logged)",
    ]
