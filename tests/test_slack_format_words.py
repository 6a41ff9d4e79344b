"""No word of an answer is lost on its way to Slack, whatever Markdown the model writes.

The property runs generated Markdown through the path a real answer takes: split into
message-sized parts (``split_all``), each part turned into its message (``answer_blocks``).
Every word of the input (a run of letters or digits) must appear, in order, in the
sections' text put back together. Rewrites the conversion may make are undone before
comparing: ``& < >`` escapes, link targets, and the invisible characters that neutralise
mentions or separate emphasis from a letter. Words joined by punctuation alone may show
glued, as the markup between them may go (``foo**bar**`` shows as foobar).

What is not a word of the answer: a link's destination (``(url)``, the ``[label]`` of a
reference link, a reference definition line), and a code block's language tag (one
identifier against the opening run, "```python": Slack cannot highlight, and would show
it as a line of code).
"""

from __future__ import annotations

import html
import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot import slack_format
from bot.slack_format import answer_blocks, split_all, to_mrkdwn

_ALNUM = re.compile(r"[^\W_]+")
_INLINE_DESTINATION = re.compile(r"\]\((?:[^()\n]|\([^()\n]*\))*\)")
_REFERENCE_LABEL = re.compile(r"\]\[(?:r1|r2)?\]")  # the labels defined below
_DEFINITION_LINE = re.compile(r"^[ \t>]*\[[^\[\]\n]+\]:.*$", re.MULTILINE)
_LANGUAGE_TAG = re.compile(r"(`{3,}|~{3,})[A-Za-z0-9_+#.-]+[ \t]*$", re.MULTILINE)
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_INVISIBLE = re.compile("[\u200b\u2060]")
_SLACK_LINK_TARGET = re.compile(r"<(?:https?|mailto):[^<>|\s]*\|")
_SLACK_LINK = re.compile(r"<(?:https?|mailto):[^<>|\s]*>")  # a link without text


def input_words(markdown: str) -> list[list[str]]:
    """The words a reader of the Markdown reads (see the module docstring), grouped: words
    with only punctuation between them form one group ("AT&T", "a[b](url)c")."""
    text = _DEFINITION_LINE.sub("", markdown)
    text = _REFERENCE_LABEL.sub("]", text)
    text = _INLINE_DESTINATION.sub("]", text)
    text = _LANGUAGE_TAG.sub(lambda m: m.group(1), text)
    # A character reference is one character (`&copy;` reads ©), not the word "copy".
    text = _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)
    return [_ALNUM.findall(chunk) for chunk in text.split() if _ALNUM.search(chunk)]


def shown_text(mrkdwn: str) -> str:
    """The text Slack shows for `mrkdwn`: escapes undone, link targets left out."""
    text = _SLACK_LINK.sub("", _SLACK_LINK_TARGET.sub("", _INVISIBLE.sub("", mrkdwn)))
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _starts_word(shown: str, position: int) -> bool:
    return position == 0 or not shown[position - 1].isalnum()


def missing_words(expected: list[list[str]], shown: str) -> list[str]:
    """The words of `expected` that `shown` does not hold in order (empty when all are).

    A group must start and end on a word boundary; inside it, each word either follows the
    one before directly (glued, as markup between them may go) or starts a word of its own
    (the text shown may hold more between them, such as a destination that stayed text).
    """
    position = 0
    missing: list[str] = []
    for group in expected:
        end = _group_end(group, shown, position)
        if end is None:
            missing += group
        else:
            position = end
    return missing


def _group_end(group: list[str], shown: str, position: int) -> int | None:
    """Where the earliest placement of `group` at or after `position` ends, or None."""
    failed: set[tuple[int, int]] = set()  # (word index, position) known to lead nowhere

    def place(index: int, at: int) -> int | None:
        if index == len(group):
            return None if shown[at : at + 1].isalnum() else at
        if (index, at) in failed:
            return None
        found = shown.find(group[index], at)
        while found >= 0:
            if (index and found == at) or _starts_word(shown, found):
                end = place(index + 1, found + len(group[index]))
                if end is not None:
                    return end
            found = shown.find(group[index], found + 1)
        failed.add((index, at))
        return None

    return place(0, position)


def delivered(markdown: str, limit: int) -> str:
    """The mrkdwn of every section Slack would receive for the answer, in order."""
    texts: list[str] = []
    for part in split_all(markdown, limit):
        _, blocks = answer_blocks(part)
        texts += [block["text"]["text"] for block in blocks if block["type"] == "section"]
    return "\n".join(texts)


# --- generated Markdown ---------------------------------------------------------------

LETTERS = "abcXYZ019éßжΩ中ü٣"
_word = st.text(alphabet=LETTERS, min_size=1, max_size=6)
_lang = st.sampled_from(["", "", "python", "js", "bash", "c++", "json"])
_url = st.builds(lambda w: f"https://e.com/{w}?a=1&b=2", _word)
_ticks = st.sampled_from(["`", "``", "```"])
_specials = st.sampled_from(
    [
        "&", "<", ">", "&amp;", "&copy;", "*", "**", "_", "~~", "`", "```", "~~~", "|", "\\",
        "#", "[", "]", "!", "@here", "<!channel>", "<!here>", "<@U123>", "<#C1|gen>",
        "<div>", "</b>", '<span class="x">', "<https://e.com/auto>", "1.", "- ",
    ]
)  # fmt: skip


def _words(draw: st.DrawFn, least: int = 1, most: int = 4) -> str:
    return " ".join(draw(st.lists(_word, min_size=least, max_size=most)))


@st.composite
def _inline(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 11))
    if kind <= 2:
        return _words(draw)
    if kind == 3:
        marker = draw(st.sampled_from(["**", "*", "_", "__", "~~"]))
        return f"{marker}{_words(draw)}{marker}"
    if kind == 4:
        ticks = draw(_ticks)
        inner = draw(st.sampled_from(["", " ` ", " `` "])) if len(ticks) == 3 else ""
        return f"{ticks}{_words(draw)}{inner}{_words(draw)}{ticks}"
    if kind == 5:
        return f"[{_words(draw)}]({draw(_url)})"
    if kind == 6:
        target = draw(st.sampled_from(["!channel", "/rel/path", "@U123", "mailto:a@e.com"]))
        return f"[{_words(draw)}]({target})"
    if kind == 7:
        return f"![{_words(draw, 0)}]({draw(_url)})"
    if kind == 8:
        return draw(
            st.sampled_from([f"[{_words(draw)}][r1]", "[r1]", "[r2][]", f"[{_words(draw)}][nope]"])
        )
    if kind == 9:
        # A code block opened in the middle of a line, as models write them.
        closer = draw(st.sampled_from(["", "\n```", "\n``` ", f"\n``` {_words(draw)}"]))
        return f"```{draw(_lang)}\n{_words(draw)}{closer}"
    return draw(_specials)


@st.composite
def _line(draw: st.DrawFn) -> str:
    parts = draw(st.lists(_inline(), min_size=1, max_size=6))
    glue = draw(st.sampled_from([" ", " ", ""]))
    return glue.join(parts)


@st.composite
def _block(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 11))
    if kind <= 2:
        return "\n".join(draw(st.lists(_line(), min_size=1, max_size=3)))
    if kind == 3:
        return "#" * draw(st.integers(1, 6)) + " " + draw(_line())
    if kind == 4:
        items = draw(st.lists(_line(), min_size=1, max_size=4))
        nested = draw(st.booleans())
        return "\n".join(
            ("  " if nested and n % 2 else "")
            + draw(st.sampled_from(["- ", "* ", f"{n + 1}. "]))
            + item
            for n, item in enumerate(items)
        )
    if kind == 5:
        return "\n".join("> " + line for line in draw(st.lists(_line(), min_size=1, max_size=3)))
    if kind == 6:
        fence = draw(st.sampled_from(["```", "````", "~~~"]))
        body = "\n".join(draw(st.lists(_line(), min_size=0, max_size=3)))
        closer = draw(st.sampled_from([fence, fence, "", f"{fence} {_words(draw)}"]))
        return f"{fence}{draw(_lang)}\n{body}\n{closer}".rstrip("\n")
    if kind == 7:
        cells = [_words(draw, 1, 2) for _ in range(4)]
        return f"| {cells[0]} | {cells[1]} |\n|---|---|\n| {cells[2]} | {cells[3]} |"
    if kind == 8:
        return "[r1]: https://e.com/r1\n[r2]: https://e.com/r2"
    if kind == 9:
        return draw(st.sampled_from(["---", "***", "", "Setext\n===", "    indented code"]))
    if kind == 10:
        return draw(_line()) + " " + draw(_specials)
    # Code blocks inside a list item or a quote.
    code = _words(draw)
    return draw(
        st.sampled_from(
            [
                f"- {_words(draw)} ```bash\n  {code}\n  ```",
                f"1. ```\n   {code}\n   ```",
                f"> ```\n> {code}\n> ```",
                f"> {_words(draw)} ```\n> {code}\n> ``` {_words(draw)}",
            ]
        )
    )


@st.composite
def markdown_answers(draw: st.DrawFn) -> str:
    blocks = draw(st.lists(_block(), min_size=1, max_size=8))
    separators = [draw(st.sampled_from(["\n", "\n\n", "\n\n\n"])) for _ in blocks]
    return "".join(block + separator for block, separator in zip(blocks, separators, strict=True))


# --- the property ---------------------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markdown=markdown_answers(), limit=st.sampled_from([60, 120, 300, 3000]))
@example(markdown="Run ```pip install x``` and then ```\nimport x\n``` to finish.", limit=3000)
@example(markdown="x ```\ncode\n``` after text", limit=3000)
# An inline code span ("```00 0```") cut after "```00 ": the head's last line opened a block.
@example(markdown="0 0 0 0 000000 & & ``` ``0 00 0000 00000 00000``\n```00 0```\n", limit=60)
@example(markdown="0 ``` & 0 000 00000 **0 0 0 000** <!channel>\n```00 0``` 0\n", limit=60)
def test_no_word_is_lost_on_the_way_to_slack(markdown: str, limit: int) -> None:
    out = delivered(markdown, limit)
    assert not missing_words(input_words(markdown), shown_text(out)), (markdown, out)
    assert re.search(r"<[!@#]", out) is None, out


# --- the cases that were seen -----------------------------------------------------------


def test_text_after_a_code_block_opened_mid_line_is_kept() -> None:
    out = to_mrkdwn("Run ```pip install x``` and then ```\nimport x\n``` to finish.")
    assert "import x" in out
    assert out.endswith("to finish.")


def test_text_after_the_closing_fence_is_kept() -> None:
    out = to_mrkdwn("x ```\ncode\n``` after text")
    assert "code" in out
    assert out.endswith("after text")


# Derandomized: the same 300 answers every run (6,000 more were checked when it was
# written), so CI never meets a case no developer saw.
@settings(max_examples=300, deadline=None, derandomize=True)
@given(markdown=markdown_answers())
def test_the_cheap_bound_never_underestimates_the_converted_length(markdown: str) -> None:
    bound = slack_format.mrkdwn_bound(markdown)
    if bound is not None:
        assert len(slack_format.to_mrkdwn(markdown)) <= bound
        assert len(slack_format.to_mrkdwn_partial(markdown)) <= bound
