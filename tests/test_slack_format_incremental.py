"""A message rendered as its text grows shows exactly what rendering its whole text shows.

`TypingRender` keeps the rendering of a streaming message's finished paragraphs and renders
only the text after them again; the property feeds it the prefixes of an answer, cut
anywhere, and compares every edit with ``answer_blocks(prefix, typing=True)``.
"""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.slack_format import TypingRender, answer_blocks
from tests.test_slack_format_words import markdown_answers

# Pieces that make paragraph ends, fences, lists, quotes and inline markup meet at a cut.
_PIECES = st.sampled_from(
    [
        "a",
        "Word",
        " ",
        "\n",
        "\n\n",
        "\r\n",
        "*",
        "**",
        "_",
        "~~",
        "`",
        "```",
        "```py\n",
        "~~~",
        "[",
        "](",
        ")",
        "]",
        "]:",
        "<",
        "&",
        "#",
        "> ",
        "- ",
        "1. ",
        "    ",
        "@here",
        "https://e.com/x_y",
        "===",
        "é",
    ]
)
_RUNS = st.lists(_PIECES, max_size=12).map("".join)
# Paragraphs that start with a letter after a blank line: where the rendering is cut.
_PARAGRAPHS = st.lists(
    st.tuples(st.sampled_from(["A ", "Word", "x"]), _RUNS).map("".join), min_size=1, max_size=8
).map("\n\n".join)
_TEXTS = st.one_of(markdown_answers(), st.lists(_PIECES, max_size=40).map("".join), _PARAGRAPHS)


def prefixes(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(cut, len(text)) for cut in cuts} | {len(text)})
    return [text[:point] for point in points]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_TEXTS, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
@example(text="One para.\n\nTwo **bold\n\nThree ```py\ncode\n\nStill code", cuts=[12, 30, 45])
@example(text="- item\n\n- next\n\nText [r]\n\n[r]: https://e.com", cuts=[8, 16, 26])
def test_rendering_as_the_text_grows_equals_rendering_it_whole(text: str, cuts: list[int]) -> None:
    render = TypingRender()
    for prefix in prefixes(text, cuts):
        assert render.blocks(prefix) == answer_blocks(prefix, typing=True), prefix


@given(first=_TEXTS, second=_TEXTS)
def test_a_text_that_does_not_continue_the_last_one_is_rendered_afresh(
    first: str, second: str
) -> None:
    render = TypingRender()
    render.blocks(first)
    assert render.blocks(second) == answer_blocks(second, typing=True)
