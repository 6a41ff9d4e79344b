"""Markdown → Slack conversion, streaming repair, splitting and the answer's blocks."""

from __future__ import annotations

import re

import pytest

from bot.slack_format import (
    SECTION_LIMIT,
    TYPING_MARKER,
    Source,
    answer_blocks,
    feedback_block,
    plain_text,
    sources_block,
    split_all,
    split_for_slack,
    to_mrkdwn,
    to_mrkdwn_partial,
)

MENTIONS = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!subteam^S0123ABC|@support>",
    "<@U0123ABC>",
    "<@W0123ABC|someone>",
    "<#C0123ABC|general>",
    "<!date^1392734382^{date}|Feb 18>",
]

SAMPLE = """## Installing the **CLI**

To install, run the following *carefully*. See [the install guide]({url}) for details,
or `pip install foo_bar`.

```python
def main() -> None:
    print("a < b & c")
```

- First **step** here
- Then _the second_ one
- And ~~third~~ done.

Done!""".format(url="https://docs.example.com/install?x=1&y=2")


def no_control_sequence(mrkdwn: str) -> bool:
    """True when no Slack `<!…>`, `<@…>` or `<#…>` sequence is left to be parsed."""
    return re.search(r"<[!@#]", mrkdwn) is None


# --- to_mrkdwn ------------------------------------------------------------------------


def test_bold_and_italics() -> None:
    assert (
        to_mrkdwn("Use **bold** and *italic* and _also_.") == "Use *bold* and _italic_ and _also_."
    )
    assert to_mrkdwn("~~gone~~") == "~gone~"


def test_bold_glued_to_a_word_gets_an_invisible_boundary() -> None:
    # Slack ignores `*foo*bar`; a zero-width space lets it see the closing marker.
    assert to_mrkdwn("**foo**bar") == "*foo*\u200bbar"


def test_links_become_slack_links() -> None:
    assert to_mrkdwn("See [the docs](https://example.com/a).") == (
        "See <https://example.com/a|the docs>."
    )
    assert to_mrkdwn("<https://example.com>") == "<https://example.com|https://example.com>"


def test_link_urls_are_escaped_and_cannot_break_out() -> None:
    assert to_mrkdwn("[q](https://e.com/?a=1&b=2)") == "<https://e.com/?a=1&amp;b=2|q>"
    out = to_mrkdwn("[t](<https://e.com/a b|c>)")
    assert out.startswith("<https://e.com/a%20b%7Cc|t>")


def test_links_that_are_not_web_links_keep_only_their_text() -> None:
    assert to_mrkdwn("[click](javascript:alert(1))") == "[click](javascript:alert(1))"
    assert to_mrkdwn("[everyone](!channel)") == "everyone"
    assert to_mrkdwn("[me](@U123)") == "me"
    assert to_mrkdwn("[page](/relative/path)") == "page"


def test_lists() -> None:
    lines = to_mrkdwn("- one\n- **two**\n  - nested\n\n1. first\n2. second").splitlines()
    assert lines[0].startswith("•") and lines[0].endswith("one")
    assert lines[1].startswith("•") and lines[1].endswith("*two*")
    assert lines[2].lstrip().startswith("◦") and lines[2].startswith(" ")
    assert lines[-2].startswith("1.") and lines[-2].endswith("first")
    assert lines[-1].startswith("2.") and lines[-1].endswith("second")


def test_code_blocks_drop_the_language_and_keep_their_lines() -> None:
    out = to_mrkdwn("Run:\n\n```bash\n#!/bin/bash\necho hi\n```\nafter")
    assert out == "Run:\n\n```\n#!/bin/bash\necho hi\n```\n\nafter"


def test_code_blocks_opened_mid_line_or_closed_before_prose_keep_that_prose() -> None:
    assert to_mrkdwn("Run this: ```bash\npip install x\n```") == (
        "Run this:\n\n```\npip install x\n```"
    )
    assert to_mrkdwn("```\ncode\n```, then restart.") == "```\ncode\n```\n\n, then restart."
    # A line that only looks like an opening fence: its text is prose, not a language tag.
    assert to_mrkdwn("Done.\n\n``` to finish.") == "Done.\n\nto finish."
    assert to_mrkdwn("> Quote ```\n> code\n> ``` after").endswith("after")
    # Inside a list item, the block stays in the item.
    assert to_mrkdwn("- Run: ```bash\n  pip install x\n  ```") == (
        "•   Run:\n```\npip install x\n```"
    )


def test_code_is_escaped_too() -> None:
    assert to_mrkdwn("`a<b && c>d`") == "`a&lt;b &amp;&amp; c&gt;d`"
    assert to_mrkdwn("```\nif a < b & c:\n```") == "```\nif a &lt; b &amp; c:\n```"


def test_headings_become_bold_lines() -> None:
    assert to_mrkdwn("# Title\n\nText") == "*Title*\n\nText"
    assert to_mrkdwn("### A **bold** heading") == "*A bold heading*"
    assert to_mrkdwn("Setext\n======") == "*Setext*"


def test_an_empty_heading_leaves_no_stray_asterisks() -> None:
    assert to_mrkdwn("##") == ""
    assert "**" not in to_mrkdwn("Text\n\n#\n\nMore")


def test_ampersand_and_angle_brackets_are_escaped() -> None:
    assert to_mrkdwn("AT&T says 5 > 3 and a < b") == "AT&amp;T says 5 &gt; 3 and a &lt; b"
    assert to_mrkdwn("<b>html</b>") == "&lt;b&gt;html&lt;/b&gt;"


def test_markdown_entities_are_decoded_then_escaped() -> None:
    assert to_mrkdwn("&lt;tag&gt; &amp; &copy;") == "&lt;tag&gt; &amp; ©"


def test_block_quotes_quote_every_line() -> None:
    assert to_mrkdwn("> one\n> two\n\nafter") == "> one\n> two\n\nafter"


@pytest.mark.parametrize("mention", MENTIONS)
def test_mentions_are_shown_as_text(mention: str) -> None:
    for markdown in (
        f"Hey {mention} look",
        f"**{mention}**",
        f"`{mention}`",
        f"```\n{mention}\n```",
        f"[{mention}](https://example.com)",
        f"![{mention}](https://example.com/i.png)",
        f"# {mention}",
        f"- {mention}",
    ):
        out = to_mrkdwn(markdown)
        assert no_control_sequence(out), (markdown, out)
        # `<!subteam^…|@x>` looks like an e-mail autolink to CommonMark: a harmless mailto.
        assert "&lt;" in out or "<mailto:" in out


@pytest.mark.parametrize("word", ["channel", "here", "everyone", "Here"])
def test_bare_broadcast_words_cannot_ping(word: str) -> None:
    out = to_mrkdwn(f"Tell @{word} about it")
    assert f"@{word}" not in out
    assert out.replace("\u2060", "") == f"Tell @{word} about it"
    assert to_mrkdwn("mail me at team@here.com") == "mail me at team@here.com"


def test_tables_stay_readable_text() -> None:
    out = to_mrkdwn("| A | B |\n|---|---|\n| 1 & 2 | x |")
    assert "| 1 &amp; 2 | x |" in out


def test_empty_input() -> None:
    assert to_mrkdwn("") == ""
    assert to_mrkdwn("   \n\n ") == ""


# --- to_mrkdwn_partial ----------------------------------------------------------------


def test_partial_closes_an_unclosed_fence() -> None:
    out = to_mrkdwn_partial("Code:\n\n```python\nx = 1\ny = ")
    assert out == "Code:\n\n```\nx = 1\ny =\n```"


def test_partial_drops_a_fence_that_has_only_its_opening_line() -> None:
    assert to_mrkdwn_partial("Code:\n\n```py") == "Code:"
    assert to_mrkdwn_partial("Code:\n\n```py\n") == "Code:"


def test_partial_shows_a_code_block_opened_mid_line_as_code() -> None:
    assert to_mrkdwn_partial("Run this: ```bash") == "Run this:"
    assert to_mrkdwn_partial("Run this: ```bash\npip ins") == "Run this:\n\n```\npip ins\n```"


def test_partial_drops_a_half_written_closing_fence() -> None:
    assert to_mrkdwn_partial("```\nx = 1\n``") == "```\nx = 1\n```"


def test_partial_shows_only_the_text_of_a_half_link() -> None:
    assert to_mrkdwn_partial("See [the docs](htt") == "See the docs"
    assert to_mrkdwn_partial("See [the docs]") == "See the docs"
    assert to_mrkdwn_partial("See [the do") == "See the do"
    assert (
        to_mrkdwn_partial("See [the docs](https://e.com) ok") == "See <https://e.com|the docs> ok"
    )


def test_partial_closes_or_drops_open_emphasis() -> None:
    assert to_mrkdwn_partial("This is **bold te") == "This is *bold te*"
    assert to_mrkdwn_partial("This is **bold*") == "This is *bold*"
    assert to_mrkdwn_partial("This is **") == "This is"
    assert to_mrkdwn_partial("This is _it") == "This is _it_"
    assert to_mrkdwn_partial("call `foo_b") == "call `foo_b`"
    assert to_mrkdwn_partial("call `") == "call"
    assert to_mrkdwn_partial("snake_case stays") == "snake_case stays"


def test_partial_of_complete_text_is_the_full_conversion() -> None:
    assert to_mrkdwn_partial(SAMPLE) == to_mrkdwn(SAMPLE)


def test_partial_never_shows_broken_markup_at_any_prefix() -> None:
    for end in range(len(SAMPLE) + 1):
        out = to_mrkdwn_partial(SAMPLE[:end])
        assert "**" not in out, (end, out)
        assert "](" not in out, (end, out)
        assert out.count("```") % 2 == 0, (end, out)


# --- plain_text -----------------------------------------------------------------------


def test_plain_text_has_no_markdown_left() -> None:
    text = plain_text(SAMPLE)
    for mark in ("**", "#", "](", "`", "~~", "_the"):
        assert mark not in text, mark
    assert "the install guide (https://docs.example.com/install?x=1&amp;y=2)" in text
    assert 'print("a &lt; b &amp; c")' in text


def test_plain_text_keeps_autolinks_once() -> None:
    assert plain_text("Go to <https://e.com/x>") == "Go to https://e.com/x"


@pytest.mark.parametrize("mention", MENTIONS)
def test_plain_text_neutralises_mentions(mention: str) -> None:
    assert no_control_sequence(plain_text(f"**Hi** {mention}"))
    assert "@here" not in plain_text("ping @here")


def test_plain_text_is_truncated_with_an_ellipsis() -> None:
    text = plain_text("word " * 2000, limit=100)
    assert len(text) <= 100 and text.endswith("…")
    escaped = plain_text("&" * 500, limit=50)
    assert len(escaped) <= 50 and escaped.endswith("&amp;…")


def test_plain_text_of_a_partial_answer_has_no_raw_markers() -> None:
    assert plain_text("A **bold sta") == "A bold sta"


# --- splitting ------------------------------------------------------------------------


def long_answer() -> str:
    """About 9,000 characters: paragraphs with links, one code block longer than a message."""

    def paragraph(n: int) -> str:
        sentence = (
            f"Topic {n} covers **feature {n}** & its limits; the "
            f"[reference page {n}](https://docs.example.com/ref/{n}?lang=en&v=2) says more. "
        )
        return (sentence * 3).strip()

    code = (
        "```python\n"
        + "\n".join(
            f"value_{n} = compute({n}) if {n} < limit else None  # step {n}" for n in range(60)
        )
        + "\n```"
    )
    parts = [paragraph(n) for n in range(5)] + [code] + [paragraph(n) for n in range(5, 16)]
    return "\n\n".join(parts)


LINK = re.compile(r"\[[^\]]*\]\([^)]*\)")


def rejoin(pieces: list[str], opener: str = "```python\n") -> str:
    """The pieces put back together, with the closed-and-reopened fence repair undone."""
    text = pieces[0]
    for piece in pieces[1:]:
        if text.endswith("\n```") and piece.startswith(opener):
            text, piece = text[: -len("```")], piece[len(opener) :]
        text += piece
    return text


def test_everything_fits_means_no_tail() -> None:
    assert split_for_slack("short answer") == ("short answer", "")
    assert split_all("short answer") == ["short answer"]
    assert split_all("") == []


def test_a_long_answer_splits_into_fitting_pieces_that_rejoin() -> None:
    answer = long_answer()
    assert 8500 <= len(answer) <= 9500
    pieces = split_all(answer, 3000)
    assert len(pieces) >= 3
    assert all(piece.strip() for piece in pieces)
    assert all(len(to_mrkdwn(piece)) <= 3000 for piece in pieces)
    assert rejoin(pieces) == answer


def test_cuts_are_never_inside_a_link_or_between_fences() -> None:
    answer = long_answer()
    pieces = split_all(answer, 3000)
    links = [m.span() for m in LINK.finditer(answer)]
    code_start = answer.index("```python")
    code_end = answer.index("\n```", code_start) + 4
    position = 0
    for piece in rejoin_positions(pieces):
        position += piece
        assert not any(start < position < end for start, end in links)
        if code_start < position < code_end:
            assert answer[position - 1] == "\n"  # only the oversized block, between lines
    for piece in pieces:
        # Every piece is balanced: a cut code block is closed and reopened.
        assert piece.count("```") % 2 == 0
        assert to_mrkdwn(piece).count("```") % 2 == 0


def rejoin_positions(pieces: list[str], opener: str = "```python\n") -> list[int]:
    """How many characters of the original text each piece (but the last) carries."""
    lengths: list[int] = []
    for index, piece in enumerate(pieces[:-1]):
        length = len(piece)
        if piece.endswith("\n```") and pieces[index + 1].startswith(opener):
            length -= len("```")
        if index and piece.startswith(opener) and pieces[index - 1].endswith("\n```"):
            length -= len(opener)
        lengths.append(length)
    return lengths


def test_oversized_code_block_is_closed_and_reopened_with_its_language() -> None:
    code = "```js\n" + "\n".join(f"console.log({n});" for n in range(400)) + "\n```"
    head, tail = split_for_slack(code, 1000)
    assert head.endswith("\n```") and tail.startswith("```js\n")
    assert len(to_mrkdwn(head)) <= 1000
    assert head[: -len("```")] + tail[len("```js\n") :] == code


def test_prefers_a_paragraph_break_in_the_last_half() -> None:
    first = "First paragraph. " * 100
    answer = first.strip() + "\n\n" + "Second paragraph. " * 100
    head, tail = split_for_slack(answer, 3000)
    assert head == first.strip() + "\n\n"
    assert tail == answer[len(head) :]


def test_falls_back_to_a_sentence_end_then_a_space() -> None:
    answer = "This is one sentence. " * 200
    head, tail = split_for_slack(answer, 1000)
    assert head.endswith(". ") and len(to_mrkdwn(head)) <= 1000
    assert head + tail == answer
    words = "word " * 400
    head, tail = split_for_slack(words, 1000)
    assert head.endswith(" ") and head + tail == words


def test_a_single_huge_word_is_cut_anyway() -> None:
    blob = "x" * 5000
    head, tail = split_for_slack(blob, 1000)
    assert len(to_mrkdwn(head)) <= 1000 and head + tail == blob


def test_without_spaces_the_cut_is_next_to_a_link_or_at_punctuation() -> None:
    links = "".join(f"[page{n}](https://e.com/{n})" for n in range(40))
    head, tail = split_for_slack(links, 200)
    assert head.endswith(")") and tail.startswith("[page") and head + tail == links
    words = "alpha-beta-gamma-" * 100
    head, tail = split_for_slack(words, 200)
    assert head.endswith("-") and head + tail == words


def test_prose_after_a_closing_fence_is_split_as_prose() -> None:
    # The tail used to start with the closing line, which then read as an opening fence whose
    # "language tag" (all the prose after it) was dropped.
    answer = "```\nx = 1\n``` and " + "more_words_" * 30
    head, tail = split_for_slack(answer, 100)
    assert head == "```\nx = 1\n``` and " and head + tail == answer
    assert to_mrkdwn(head) == "```\nx = 1\n```\n\nand"


def test_a_cut_never_makes_a_code_fence_of_backticks_in_a_line() -> None:
    # At the start of the tail, "``` end" would open a code block tagged "end" (not shown).
    answer = "a" * 45 + " ``` end"
    head, tail = split_for_slack(answer, 50)
    assert head + tail == answer and not tail.startswith("```")
    assert "end" in to_mrkdwn(head) + to_mrkdwn(tail)


def test_escaping_counts_towards_the_limit() -> None:
    answer = "a & b " * 600
    head, _ = split_for_slack(answer, 1000)
    assert len(to_mrkdwn(head)) <= 1000


def test_an_unfinished_link_at_the_end_of_a_streaming_answer_is_not_cut() -> None:
    streaming = "word " * 590 + "see [the page about installing the tool on many machines"
    head, tail = split_for_slack(streaming, 3000)
    assert head + tail == streaming
    assert "[" not in head and tail.startswith("[the page")


def test_tiny_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        split_for_slack("text", 10)


# --- sources --------------------------------------------------------------------------


def sources_text(block: dict[str, object] | None) -> str:
    assert block is not None and block["type"] == "context"
    elements = block["elements"]
    assert isinstance(elements, list) and len(elements) == 1
    assert elements[0]["type"] == "mrkdwn"
    text = elements[0]["text"]
    assert isinstance(text, str) and len(text) <= 3000
    return text


def test_sources_are_links_deduplicated() -> None:
    block = sources_block(
        [
            Source("Install guide", "https://docs.example.com/install"),
            Source("Install guide (again)", "https://docs.example.com/install"),
            Source("Install guide", "https://docs.example.com/install/"),
            Source(None, "https://docs.example.com/faq/"),
            Source("Printed manual", None),
            Source("printed  manual", None),
            Source(None, None),
            Source("  ", "  "),
        ]
    )
    assert sources_text(block) == (
        "*Sources:* <https://docs.example.com/install|Install guide>"
        " · <https://docs.example.com/faq/|docs.example.com/faq>"
        " · Printed manual"
    )


def test_sources_escape_titles_and_urls() -> None:
    block = sources_block([Source("Q&A <!channel>", "https://e.com/?a=1&b=2|x")])
    assert sources_text(block) == (
        "*Sources:* <https://e.com/?a=1&amp;b=2%7Cx|Q&amp;A &lt;!channel&gt;>"
    )


def test_sources_show_a_limited_number_then_how_many_more() -> None:
    sources = [Source(f"Page {n}", f"https://e.com/{n}") for n in range(8)]
    text = sources_text(sources_block(sources))
    assert text.count("<https://") == 5
    assert text.endswith(" · +3 more")
    assert "Page 4" in text and "Page 5" not in text
    assert sources_text(sources_block(sources, shown=8)).count("<https://") == 8


def test_sources_stay_within_slacks_text_limit() -> None:
    sources = [Source(f"Page {n}", f"https://e.com/{'x' * 900}/{n}") for n in range(5)]
    text = sources_text(sources_block(sources))
    listed = text.count("<https://")
    assert listed < 5
    assert text.endswith(f"+{5 - listed} more")


def test_no_sources_no_block() -> None:
    assert sources_block([]) is None
    assert sources_block([Source(None, None), Source("", "")]) is None


def test_non_web_source_urls_show_as_text() -> None:
    text = sources_text(sources_block([Source("Intranet", "file:///srv/doc.pdf")]))
    assert text == "*Sources:* Intranet"


# --- feedback -------------------------------------------------------------------------


def test_feedback_block_has_two_buttons_with_the_value() -> None:
    block = feedback_block("m1:s2")
    assert block["type"] == "actions" and block["block_id"] == "feedback"
    liked, disliked = block["elements"]
    assert liked["action_id"] == "feedback_liked" and liked["text"]["text"] == "👍"
    assert disliked["action_id"] == "feedback_disliked" and disliked["text"]["text"] == "👎"
    assert liked["value"] == disliked["value"] == "m1:s2"
    assert "style" not in liked and "style" not in disliked


@pytest.mark.parametrize(
    ("selected", "styled"),
    [("liked", "feedback_liked"), ("disliked", "feedback_disliked"), (None, None)],
)
def test_feedback_block_shows_the_recorded_choice(selected: str | None, styled: str | None) -> None:
    elements = feedback_block("v", selected)["elements"]
    primary = [e["action_id"] for e in elements if e.get("style") == "primary"]
    assert primary == ([styled] if styled else [])


def test_feedback_value_limit() -> None:
    feedback_block("x" * 2000)
    with pytest.raises(ValueError):
        feedback_block("x" * 2001)
    with pytest.raises(ValueError):
        feedback_block("v", "loved")


# --- answer_blocks --------------------------------------------------------------------


def test_final_answer_blocks() -> None:
    text, blocks = answer_blocks(
        SAMPLE,
        sources=[Source("Guide", "https://e.com/guide")],
        feedback_value="42",
        selected="liked",
    )
    assert [b["type"] for b in blocks] == ["section", "context", "actions"]
    assert blocks[0]["text"] == {"type": "mrkdwn", "text": to_mrkdwn(SAMPLE)}
    assert text == plain_text(SAMPLE)
    assert blocks[2]["elements"][0]["style"] == "primary"


def test_answer_without_sources_or_feedback_is_one_section() -> None:
    _, blocks = answer_blocks("Hello **there**")
    assert blocks == [{"type": "section", "text": {"type": "mrkdwn", "text": "Hello *there*"}}]


def test_typing_answer_has_the_marker_and_nothing_else() -> None:
    text, blocks = answer_blocks(
        "Partial **answ", sources=[Source("G", "https://e.com")], feedback_value="1", typing=True
    )
    assert blocks == [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"Partial *answ* {TYPING_MARKER}"}}
    ]
    assert text == "Partial answ"


@pytest.mark.parametrize("typing", [False, True])
def test_empty_answer_gets_a_placeholder(typing: bool) -> None:
    text, blocks = answer_blocks("  ", typing=typing)
    assert text.strip()
    section = blocks[0]["text"]["text"]
    assert section.strip() and section.strip() != TYPING_MARKER
    assert section.endswith(TYPING_MARKER) == typing


@pytest.mark.parametrize("typing", [False, True])
def test_overlong_text_spreads_over_several_sections(typing: bool) -> None:
    _, blocks = answer_blocks(long_answer(), typing=typing)
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert len(sections) >= 3
    assert all(0 < len(s) <= SECTION_LIMIT for s in sections)
    assert sections[-1].endswith(TYPING_MARKER) == typing
