"""Markdown answers → Slack messages: mrkdwn, splitting, sources and feedback blocks.

Everything here is a pure function of its arguments, so the streamer can call it on every
chunk and the tests need no Slack.

The conversion itself is slackify-markdown's (a markdown-it parser with a Slack renderer),
with the renderer corrected where it is unsafe or wrong for model output (see docs/formatting.md):

- it lets ``<!channel>``, ``<!here>``, ``<@U…>``, ``<#C…>`` and ``<!subteam^…>`` through, and
  turns ``[x](!channel)`` into ``<!channel|x>``: a model (or a crawled page it quotes) could
  ping a whole channel. We escape every ``<``, so mentions show as text.
- it leaves code spans, code blocks and image captions unescaped, although Slack parses
  ``& < >`` everywhere, code included;
- it drops the first line of a code block when it starts with ``#!`` (a shell script's
  shebang), renders an empty heading as a raw ``**``, and quotes only the first line of a
  block quote;
- it drops text: models open code blocks mid-line ("Run ```bash") and write prose after the
  closing run ("``` to finish."), which CommonMark reads as an opening fence whose language
  tag (dropped) is that prose. The fences a model meant are put on lines of their own
  before parsing, and text after an opening run is kept unless it is a language tag.

Bare ``@channel``, ``@here`` and ``@everyone`` do not notify anyone in text sent through the
Web API: Slack only turns them into pings when the call sets ``link_names`` (or
``parse=full``), which this project never does; API text has to use the ``<!here>`` form,
which we escape. As a second fence a word joiner (U+2060, invisible) is put after the ``@``
in prose, so even a call that sets ``link_names`` would not ping.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.common.utils import unescapeAll
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from slackify_markdown.slackify import SlackifyMarkdown

TYPING_MARKER = "▍"
"""Shown at the end of a message while its answer is still arriving."""

SECTION_LIMIT = 3000
"""Slack's maximum for the text of a section block (and of a context element)."""

PLAIN_TEXT_LIMIT = 3000
"""The most a message's plain ``text`` (notifications) holds; longer text ends in "…"."""

BUTTON_VALUE_LIMIT = 2000
"""Slack's maximum for a button's value."""

THINKING_TEXT = "Thinking…"
"""Placeholder for an answer that has not produced any text yet."""

EMPTY_ANSWER_TEXT = "No answer text was received."
"""Placeholder for a finished answer without text: Slack rejects an empty section."""

_MIN_SPLIT = 50
_SOURCE_TITLE_LIMIT = 100
_SOURCE_URL_LIMIT = 1000
_LINK_SCHEMES = ("http", "https", "mailto")
_BROADCAST = re.compile(r"(?<![\w@])@(channel|here|everyone)\b", re.IGNORECASE)
_WORD_JOINER = "\u2060"
_ZERO_WIDTH_SPACE = "\u200b"


# --- escaping -------------------------------------------------------------------------


def _escape(text: str) -> str:
    """Escape Slack's three control characters; everything else is Slack's to format."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_prose(text: str) -> str:
    escaped = _escape(text)
    if "@" not in escaped:  # most text: no broadcast to defuse, no pattern to run
        return escaped
    return _BROADCAST.sub(lambda m: f"@{_WORD_JOINER}{m.group(1)}", escaped)


def _link_target(url: str) -> str | None:
    """The URL as it may stand inside ``<…|…>``, or None when it must not become a link.

    Only web and mail links are kept: anything else (``!channel``, ``@U123``, relative paths,
    ``slack://``) would be a Slack control sequence or a dead link. Characters that would end
    the link early are percent-encoded.
    """
    url = url.strip()
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in _LINK_SCHEMES or len(url) <= len(scheme) + 1:
        return None
    for char, code in ((" ", "%20"), ("<", "%3C"), (">", "%3E"), ("|", "%7C")):
        url = url.replace(char, code)
    return url.replace("&", "&amp;")


# --- code fences ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fence:
    """A fenced code block, by offsets into the text it was found in."""

    start: int  # start of the opening line, or of the opening run when it ends a line of prose
    content_start: int  # just after the opening line
    close_start: int  # start of the closing line; len(text) when unclosed
    end: int  # just after the closing line (its run, when prose follows); len(text) if unclosed
    indent: str
    marker: str  # the closing marker: the opening run's character and length

    @property
    def closed(self) -> bool:
        return self.end > self.close_start


_FENCE_LINE = re.compile(r"([ \t]*)(`{3,}|~{3,})(.*)")
_LANGUAGE_TAG = re.compile(r"[A-Za-z0-9_+#.-]+[ \t]*")  # right against the run: ```python
_BACKTICKS = re.compile(r"`+")
_CONTAINER_MARKS = re.compile(r"(?:[ \t]*>)*[ \t]*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+)?")


def _opens(match: re.Match[str]) -> bool:
    """Whether a line matching `_FENCE_LINE` opens a block (CommonMark: a backtick run's
    info string holds no backtick)."""
    return not (match.group(2)[0] == "`" and "`" in match.group(3))


def _is_prose(info: str) -> bool:
    """Whether the text after a fence's run is prose rather than nothing or a language tag.

    A tag is written against the run ("```python"); "``` after" is the model's prose.
    """
    return bool(info.strip()) and not _LANGUAGE_TAG.fullmatch(info)


def _closing_run(body: str, marker: str = "```") -> re.Match[str] | None:
    """The match of a line that ends a code block opened with `marker`, or None.

    CommonMark only closes on a bare run, but models write prose after it ("``` to finish.")
    and mean the block to end there. A word right against the run does not count: it reads
    as the language tag of a nested opener (a code block showing Markdown). Whether a line
    closes depends only on its start, so a cut in its prose cannot change that.
    """
    match = _FENCE_LINE.fullmatch(body)
    if match is None:
        return None
    run, rest = match.group(2), match.group(3)
    if run[0] != marker[0] or len(run) < len(marker) or _LANGUAGE_TAG.match(rest):
        return None
    return match


def _mid_line_opener(body: str) -> re.Match[str] | None:
    """The backtick run that opens a code block at the end of a line of prose, or None.

    Models write "Run this: ```bash" with the code on the next lines. The run must be the
    last on the line, followed by at most a language tag, and not close an inline code span
    the line opened ("Run ```pip``` then ```").
    """
    if "```" not in body:  # no run that could open a block (most lines)
        return None
    runs = list(_BACKTICKS.finditer(body))
    if len(runs[-1].group()) < 3:
        return None
    last = runs[-1]
    if _is_prose(body[last.end() :]):
        return None
    before = body[: last.start()].rstrip()
    marks = _CONTAINER_MARKS.match(before)
    if marks is None or ">" in marks.group() or not before[marks.end() :].strip():
        # Nothing but a list marker before it, so not prose; or in a quote, whose lines
        # this fence finder does not follow (CommonMark's reading is kept there).
        return None
    index = 0
    while index < len(runs) - 1:
        length = len(runs[index].group())
        pair = next(
            (n for n in range(index + 1, len(runs)) if len(runs[n].group()) == length), None
        )
        if pair == len(runs) - 1:
            return None
        index = index + 1 if pair is None else pair + 1
    return last


def _fences(text: str) -> list[_Fence]:
    """The fenced code blocks of `text`, as the renderer and the splitter both see them.

    Besides CommonMark's fences, a block opened at the end of a line of prose counts when
    the next backtick fence line closes it, or when there is none but text follows (like any
    code block, one without a closing line runs to the end: while an answer streams, its
    closing line has not arrived yet). A closing run may have prose after it.
    """
    lines: list[tuple[int, str, str]] = []  # offset, line with its newline, line without
    offset = 0
    # Split on "\n" alone, as markdown-it does (splitlines would also break at U+2028).
    for body in text.split("\n"):
        line = body + "\n" if offset + len(body) < len(text) else body
        lines.append((offset, line, body.rstrip("\r")))
        offset += len(line)
    # For each line, the index of the first backtick fence line from there on.
    next_fence = [len(lines)] * (len(lines) + 1)
    for index in range(len(lines) - 1, -1, -1):
        match = _FENCE_LINE.fullmatch(lines[index][2])
        is_fence = match is not None and match.group(2)[0] == "`"
        next_fence[index] = index if is_fence else next_fence[index + 1]

    fences: list[_Fence] = []
    opened: tuple[int, int, str, str] | None = None  # start, content start, indent, marker
    for index, (offset, line, body) in enumerate(lines):
        if opened is None:
            match = _FENCE_LINE.fullmatch(body)
            if match and _opens(match):
                opened = (offset, offset + len(line), match.group(1), match.group(2))
                continue
            run = _mid_line_opener(body)
            closer = next_fence[index + 1]
            if closer == len(lines):
                closes = any(later.strip() for _, _, later in lines[index + 1 :])
            else:
                closes = run is not None and _closing_run(lines[closer][2], run.group()) is not None
            if run and closes:
                opened = (offset + run.start(), offset + len(line), "", run.group())
        elif closing := _closing_run(body, opened[3]):
            start, content_start, indent, marker = opened
            # Prose after the closing run is not part of the block.
            end = offset + (closing.end(2) if closing.group(3).strip() else len(line))
            fences.append(_Fence(start, content_start, offset, end, indent, marker))
            opened = None
    if opened is not None:
        start, content_start, indent, marker = opened
        fences.append(_Fence(start, content_start, len(text), len(text), indent, marker))
    return fences


def _normalise_fences(markdown: str) -> str:
    """Put what `_fences` finds where the parser will see it too.

    A block opened at the end of a line of prose gets its opening run on a line of its own,
    and prose after a closing run a line of its own. Left as they are, the parser reads the
    closing line as the opening of an empty block and its prose as a language tag: the
    text after it was lost (``x ```\ncode\n``` after text`` rendered as ``x ```\ncode``).
    """
    pieces: list[str] = []
    previous = 0
    for fence in _fences(markdown):
        closing = markdown[fence.close_start : fence.end]
        indent = closing[: len(closing) - len(closing.lstrip(" \t"))]
        line_start = markdown.rfind("\n", 0, fence.start) + 1
        if markdown[line_start : fence.start].strip():
            pieces += [markdown[previous : fence.start].rstrip(" \t"), "\n", indent]
            previous = fence.start
        if fence.closed and fence.end < len(markdown) and markdown[fence.end - 1] != "\n":
            pieces += [markdown[previous : fence.end], "\n", indent]
            previous = len(markdown) - len(markdown[fence.end :].lstrip(" \t"))
    pieces.append(markdown[previous:])
    return "".join(pieces)


# --- the renderer ---------------------------------------------------------------------


def _word_char_at(tokens: Sequence[Token], idx: int, last: bool) -> bool:
    """Whether the text token at `idx` ends (`last`) or starts with a letter or digit."""
    if not 0 <= idx < len(tokens) or tokens[idx].type != "text" or not tokens[idx].content:
        return False
    char = tokens[idx].content[-1 if last else 0]
    return char.isalnum()


def _fence_parts(token: Token) -> tuple[str, str]:
    """A code block's prose and code: the text after its opening run, unless a language tag.

    Slack has no syntax highlighting, so a language tag is dropped (it would show as a first
    code line). Anything else there is the model's prose on a line that only looks like a
    fence ("``` to finish." with no block open), and is kept as prose.
    """
    prose = unescapeAll(token.info.strip()) if _is_prose(token.info) else ""
    return prose, token.content


# The parser slackify-markdown builds for every conversion (its `slackify`), built once: a
# parser holds no state between documents, and building one cost more than parsing an answer.
_PARSER = MarkdownIt(
    "gfm-like", options_update={"html": False, "linkify": False, "breaks": False}
).disable("table")
_RULE_NAMES: dict[type, tuple[str, ...]] = {}


class _RulesOnce(RendererHTML):
    """Lists a renderer class's token rules once per class instead of once per document.

    markdown-it's renderer finds its rules with ``inspect.getmembers`` in every constructor,
    which cost as much as rendering a whole message; the rules of a class never change.
    """

    def __init__(self, parser: Any = None) -> None:
        names = _RULE_NAMES.get(type(self))
        if names is None:
            super().__init__(parser)
            _RULE_NAMES[type(self)] = tuple(self.rules)
        else:
            self.rules = {name: getattr(self, name) for name in names}


# slackify-markdown ships no type information, so mypy sees its renderer as Any.
class _MrkdwnRenderer(SlackifyMarkdown, _RulesOnce):  # type: ignore[misc]
    """slackify-markdown's renderer with escaping and mention safety fixed.

    One renderer renders one document, so the state kept here lives for one conversion.
    Helpers start with ``_`` because markdown-it treats every other method as a token rule.
    """

    _quote_prefix = "> "

    def __init__(self, markdown_text: Any) -> None:
        super().__init__(markdown_text)
        self._links: list[str | None] = []
        self._quote_depth = 0
        self._skip_heading = False

    def text(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return _escape_prose(tokens[idx].content)

    def code_inline(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return f"`{_escape(tokens[idx].content)}`"

    def fence(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        prose, content = _fence_parts(tokens[idx])
        shown = _escape_prose(prose) + str(self.NEW_LINE) * 2 if prose else ""
        if content.strip():
            shown += f"```\n{_escape(content)}```" + str(self.NEW_LINE) * 2
        return shown

    code_block = fence

    def link_open(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        url = _link_target(str(tokens[idx].attrGet("href") or ""))
        self._links.append(url)
        if url is None:
            return ""
        if idx + 1 < len(tokens) and tokens[idx + 1].type == "link_close":
            return f"<{url}"
        return f"<{url}|"

    def link_close(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        url = self._links.pop() if self._links else None
        return "" if url is None else ">"

    def image(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        token = tokens[idx]
        url = _link_target(str(token.attrGet("src") or ""))
        caption = token.content or str(token.attrGet("title") or "")
        if url is None:
            return _escape_prose(caption)
        return f"<{url}|{_escape_prose(caption)}>" if caption else f"<{url}>"

    def heading_open(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        inline = tokens[idx + 1] if idx + 1 < len(tokens) else None
        self._skip_heading = inline is None or not inline.content.strip()
        if self._skip_heading:
            return ""
        return str(super().heading_open(tokens, idx, options, env))

    def heading_close(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        if self._skip_heading:
            self._skip_heading = False
            return ""
        return str(super().heading_close(tokens, idx, options, env))

    # Slack only sees `*bold*` when the markers touch no letter outside them
    # (`**foo**bar`); a zero-width space gives it that boundary without a visible change.
    def _marker(self, tokens: Sequence[Token], idx: int, marker: str, opening: bool) -> str:
        if opening and _word_char_at(tokens, idx - 1, last=True):
            return _ZERO_WIDTH_SPACE + marker
        if not opening and _word_char_at(tokens, idx + 1, last=False):
            return marker + _ZERO_WIDTH_SPACE
        return marker

    def strong_open(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return "" if self._in_heading else self._marker(tokens, idx, "*", opening=True)

    def strong_close(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return "" if self._in_heading else self._marker(tokens, idx, "*", opening=False)

    def em_open(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return self._marker(tokens, idx, "_", opening=True)

    def em_close(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return self._marker(tokens, idx, "_", opening=False)

    def s_open(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return self._marker(tokens, idx, "~", opening=True)

    def s_close(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return self._marker(tokens, idx, "~", opening=False)

    # Slack quotes line by line, so every line of a quote needs its own `> `.
    def blockquote_open(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        self._quote_depth += 1
        return ""

    def blockquote_close(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        self._quote_depth -= 1
        return str(self.NEW_LINE)

    def paragraph_open(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return self._quote_prefix if self._quote_depth else ""

    def paragraph_close(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        if self._quote_depth:
            return str(self.NEW_LINE)
        return str(super().paragraph_close(tokens, idx, options, env))

    def softbreak(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return "\n" + (self._quote_prefix if self._quote_depth else "")

    hardbreak = softbreak

    def list_item_open(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        bullet = str(super().list_item_open(tokens, idx, options, env))
        return (self._quote_prefix if self._quote_depth else "") + bullet

    def list_item_close(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        # An empty item has no paragraph to end its line; the next bullet would join it.
        return str(self.NEW_LINE) if tokens[idx - 1].type == "list_item_open" else ""


class _PlainRenderer(_MrkdwnRenderer):
    """Renders for a notification: the words, no formatting marks at all."""

    _quote_prefix = ""
    _BULLETS_BY_DEPTH = ("•", "◦", "▪")
    _INDENT_UNIT = "  "

    def __init__(self, markdown_text: Any) -> None:
        super().__init__(markdown_text)
        self._link_stack: list[tuple[str | None, str]] = []

    def _marker(self, tokens: Sequence[Token], idx: int, marker: str, opening: bool) -> str:
        return ""

    def code_inline(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return _escape(tokens[idx].content)

    def fence(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        prose, content = _fence_parts(tokens[idx])
        return "".join(_escape(part) + str(self.NEW_LINE) for part in (prose, content) if part)

    code_block = fence

    def heading_open(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        self._in_heading = True
        return ""

    def heading_close(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        self._in_heading = False
        return str(self.NEW_LINE) * 2

    def link_open(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        href = str(tokens[idx].attrGet("href") or "")
        label = ""
        for token in tokens[idx + 1 :]:
            if token.type == "link_close":
                break
            label += token.content
        self._link_stack.append((_link_target(href), label))
        return ""

    def link_close(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        url, label = self._link_stack.pop() if self._link_stack else (None, "")
        if url is None:
            return ""
        shown = url.replace("&amp;", "&")
        if not label.strip():
            return url
        if label.strip() in (shown, shown.removeprefix("mailto:")):
            return ""
        return f" ({url})"

    def image(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return _escape_prose(tokens[idx].content)


def _raw_renders(markdown: str, *renderers: type[_MrkdwnRenderer]) -> list[str]:
    """`markdown` rendered by each renderer from one parse, before `_finish`: what
    slackify-markdown's `slackify` renders, its structural-newline character scrubbed from the
    input first and its token filter applied. The raw renderings of consecutive paragraphs
    concatenate to the raw rendering of the whole (see `TypingRender`)."""
    text = _normalise_fences(markdown).replace(SlackifyMarkdown.NEW_LINE, "")
    env: EnvType = {}
    tokens = _PARSER.parse(text, env)
    kept = [token for token in tokens if token.type in SlackifyMarkdown.SUPPORTED_TOKENS]
    return [
        str(RendererHTML.render(renderer(text), kept, _PARSER.options, env))
        for renderer in renderers
    ]


def _finish(raw: str) -> str:
    """A raw rendering as text: slackify-markdown's end of `render` (at most one blank line
    from its structural newlines), without the blank lines and spaces around it."""
    newline = SlackifyMarkdown.NEW_LINE
    capped = SlackifyMarkdown._NEW_LINE_CAP_RE.sub(newline * 2, raw) if newline * 3 in raw else raw
    return str(capped).replace(newline, "\n").strip("\n").rstrip()


def _render_with(markdown: str, *renderers: type[_MrkdwnRenderer]) -> list[str]:
    return [_finish(raw) for raw in _raw_renders(markdown, *renderers)]


def _render(markdown: str, renderer: type[_MrkdwnRenderer]) -> str:
    return _render_with(markdown, renderer)[0]


def to_mrkdwn(markdown: str) -> str:
    """Convert a complete Markdown answer to Slack mrkdwn.

    Bold, italics, strike-through, links (``<url|text>``), lists, code and headings (as bold
    lines) are converted; ``& < >`` are escaped everywhere, code included, so no Slack mention
    or control sequence written by the model survives. Tables stay as their text rows: mrkdwn
    has no tables. Links other than http(s) and mailto keep only their text.
    """
    return _render(markdown, _MrkdwnRenderer)


# --- streaming repair -----------------------------------------------------------------


def _close_open_fence(markdown: str) -> tuple[str, bool]:
    """Close a code block the text ends in; True when the text ended inside one."""
    fences = _fences(markdown)
    if not fences or fences[-1].closed:
        return markdown, False
    fence = fences[-1]
    content = markdown[fence.content_start :]
    if not content.strip():
        # Only the opening line has arrived: an empty block would show as stray backticks.
        return markdown[: fence.start].rstrip(), True
    lines = content.split("\n")
    if len(lines) > 1 and lines[-1].strip() and not lines[-1].strip().strip(fence.marker[0]):
        content = "\n".join(lines[:-1])  # the closing line is half written
    closing = fence.indent + fence.marker
    return markdown[: fence.content_start] + content.rstrip() + "\n" + closing, True


_BLOCK_START = re.compile(r"\n(?:[ \t]*\n)+|\n(?=[ \t]*(?:[-*+][ \t]|\d+[.)][ \t]|#{1,6}[ \t]|>))")


def _is_punct(char: str) -> bool:
    return not char.isalnum() and not char.isspace()


@dataclass
class _Unfinished:
    """What the end of a paragraph still leaves open, by offsets into it."""

    code: tuple[int, int] | None = None  # unclosed code span: position, backtick count
    link: tuple[int, int] | None = None  # "[text](partial" or "[text]" at the end
    bracket: int | None = None  # "[" never closed
    trailing: int | None = None  # delimiter run at the very end that closes nothing
    emphasis: list[tuple[int, str]] = field(default_factory=list)  # openers: position, run


def _matching_paren(text: str, start: int) -> int | None:
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "\\":
            continue
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index
    return None


_SCANNED = "\\`*_~[]"
_SCANNED_CHAR = re.compile(r"[\\`*_~\[\]]")


def _scan(text: str) -> _Unfinished:
    """Find the inline markup left open at the end of `text` (one paragraph or list item).

    A small subset of CommonMark's delimiter rules: enough to tell an opening ``**`` from a
    closing one, and to skip code spans and link destinations (URLs hold ``_`` and ``*``).
    """
    found = _Unfinished()
    openers: list[tuple[int, str]] = []
    brackets: list[int] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char not in _SCANNED:
            # Nothing to do between the characters below: find the next one in one call.
            stop = _SCANNED_CHAR.search(text, index)
            if stop is None:
                break
            index = stop.start()
            char = text[index]
        if char == "\\":
            index += 2
            continue
        if char in "`*_~":
            run_end = index
            while run_end < len(text) and text[run_end] == char:
                run_end += 1
            run = text[index:run_end]
            if char == "`":
                closer = re.compile(rf"(?<!`){run}(?!`)").search(text, run_end)
                if closer is None:
                    found.code = (index, len(run))
                    break
                index = closer.end()
                continue
            if char == "~" and len(run) != 2:
                index = run_end
                continue
            at_end = run_end == len(text)
            before = text[index - 1] if index else " "
            after = " " if at_end else text[run_end]
            left = not after.isspace() and (
                not _is_punct(after) or before.isspace() or _is_punct(before)
            )
            right = not before.isspace() and (
                not _is_punct(before) or after.isspace() or _is_punct(after)
            )
            can_open, can_close = left, right
            if char == "_":
                can_open = left and (not right or _is_punct(before))
                can_close = right and (not left or _is_punct(after))
            matched = next(
                (n for n in range(len(openers) - 1, -1, -1) if openers[n][1] == run), None
            )
            if can_close and matched is not None:
                del openers[matched:]
            elif at_end:
                found.trailing = index
            elif can_open:
                openers.append((index, run))
            index = run_end
            continue
        if char == "[":
            brackets.append(index)
        elif char == "]" and brackets:
            opening = brackets.pop()
            if index + 1 == len(text):
                found.link = (opening, index)
                break
            if text[index + 1] == "(":
                close = _matching_paren(text, index + 1)
                if close is None:
                    found.link = (opening, index)
                    break
                index = close
        index += 1
    if found.link is None and found.code is None and brackets:
        found.bracket = brackets[-1]
    found.emphasis = openers
    return found


def _repair_inline(text: str) -> str:
    """Make the tail of one paragraph well formed: close or drop what is left open."""
    for _ in range(50):
        state = _scan(text)
        if state.code is not None:
            position, count = state.code
            if text[position + count :].strip():
                return _repair_inline(text[:position]) + text[position:] + "`" * count
            text = text[:position].rstrip()
        elif state.link is not None:
            opening, closing = state.link
            start = opening - 1 if opening and text[opening - 1] == "!" else opening
            text = text[:start] + text[opening + 1 : closing]
        elif state.bracket is not None:
            start = state.bracket
            start -= 1 if start and text[start - 1] == "!" else 0
            text = text[:start] + text[state.bracket + 1 :]
        elif state.trailing is not None:
            text = text[: state.trailing].rstrip()
        elif state.emphasis:
            position, run = state.emphasis[-1]
            if not text[position + len(run) :].strip():
                text = text[:position] + text[position + len(run) :]
                continue
            closers = "".join(run for _, run in reversed(state.emphasis))
            return text.rstrip() + closers
        else:
            return text
    return text


def _last_block_start(markdown: str, fences: list[_Fence]) -> int:
    """Where the paragraph, list item or heading that ends the text begins."""
    floor = fences[-1].end if fences else 0
    return max([floor, *(m.end() for m in _BLOCK_START.finditer(markdown, floor))])


def _repair(markdown: str) -> str:
    """Markdown cut at an arbitrary point, made to render without stray markup."""
    repaired, in_code = _close_open_fence(markdown)
    if in_code:
        return repaired
    last_line = repaired[repaired.rfind("\n") + 1 :]
    opener = _mid_line_opener(last_line)
    if opener is not None:
        # A code block opened mid-line whose code has not arrived: show the text before it.
        repaired = repaired[: len(repaired) - len(last_line) + opener.start()].rstrip()
    start = _last_block_start(repaired, _fences(repaired))
    return repaired[:start] + _repair_inline(repaired[start:])


def to_mrkdwn_partial(markdown: str) -> str:
    """Convert an answer that is still arriving, without showing half-written markup.

    An unclosed code block is closed (or dropped while only its opening line exists), a
    half-received link shows only its text, and an unclosed ``**``, ``_``, ``~~`` or backtick
    at the tail is closed, or dropped when nothing follows it yet. The result is
    ``to_mrkdwn`` of that repaired text.
    """
    return to_mrkdwn(_repair(markdown))


def plain_text(markdown: str, limit: int = PLAIN_TEXT_LIMIT) -> str:
    """The answer as plain words for the message's ``text`` (notifications, screen readers).

    No Markdown marks are left: links read ``text (url)``, code loses its backticks,
    headings their ``#``. ``& < >`` are still escaped, because Slack parses this field for
    mentions too. Longer text ends in "…" within `limit` characters.
    """
    return _shorten(_render(_repair(markdown), _PlainRenderer), limit)


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    # Never leave half an escape such as "&am" at the end.
    cut = re.sub(r"&[a-z]{0,4}$", "", cut)
    return cut.rstrip() + "…"


# --- splitting ------------------------------------------------------------------------

_PARAGRAPH_BREAK = re.compile(r"\n(?:[ \t]*\n)+")
_LINE_BREAK = re.compile(r"\n")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*[ \t]+")
_SPACE = re.compile(r"[ \t]+")
_TIERS = (_PARAGRAPH_BREAK, _LINE_BREAK, _SENTENCE_END, _SPACE)
_UNSPLITTABLE = (
    re.compile(r"(?<!`)(`+)(?!`)(?:(?!\n[ \t]*\n).)+?(?<!`)\1(?!`)", re.DOTALL),
    re.compile(r"!?\[[^\[\]\n]*\]\((?:[^()\n]|\([^()\n]*\))*\)"),
    re.compile(r"<(?:https?|mailto):[^<>\s]*>"),
    re.compile(r"\*\*[^*\n]+?\*\*|__[^_\n]+?__|~~[^~\n]+?~~"),
)


def _unsplittable(text: str, fences: list[_Fence]) -> list[tuple[int, int]]:
    """Spans that a cut must not enter: code spans, links, short emphasis.

    While an answer streams, its end may hold a link, code span or bold phrase that is not
    finished yet; that stretch is kept whole too, or the sealed head would show it broken.
    """
    spans: list[tuple[int, int]] = []
    previous = 0
    for start, end in [*((f.start, f.end) for f in fences), (len(text), len(text))]:
        for pattern in _UNSPLITTABLE:
            spans.extend(m.span() for m in pattern.finditer(text, previous, start))
        previous = end
    if not fences or fences[-1].closed:
        block = _last_block_start(text, fences)
        state = _scan(text[block:])
        opened = [position for position, _ in state.emphasis]
        opened += [p for p in (state.bracket, state.code and state.code[0]) if p is not None]
        opened += [state.link[0]] if state.link else []
        if opened:
            spans.append((block + min(opened), len(text) + 1))
    return spans


def _makes_a_fence(text: str, position: int, fences: list[_Fence]) -> bool:
    """Whether a cut at `position` would start the tail with a fence that was not one.

    A run of backticks inside a line is text; at the start of a message it opens a code
    block, and the rest of its line reads as a language tag, which is not shown.
    """
    if text[position - 1] == "\n" or any(fence.start == position for fence in fences):
        return False
    match = _FENCE_LINE.match(text, position)
    return match is not None and _opens(match)


def _ends_in_a_fence(text: str, position: int) -> bool:
    """Whether a cut at `position` would end the head with a fence that was not one.

    "```00 0```" is an inline code span (a backtick run's info string holds no backtick);
    cut after "```00 ", the head's last line opens a code block whose tag "00" is not shown.
    """
    line_start = text.rfind("\n", 0, position) + 1
    line_end = text.find("\n", position)
    whole = _FENCE_LINE.fullmatch(text[line_start : None if line_end < 0 else line_end])
    if whole is not None and _opens(whole):
        return False  # a fence already: the splitter's fence rules apply
    head = _FENCE_LINE.fullmatch(text[line_start:position].rstrip("\r"))
    return head is not None and _opens(head)


def _forges_a_fence(text: str, position: int, fences: list[_Fence]) -> bool:
    """Whether a cut at `position` would make backticks that were text a fence, at the start
    of the tail or at the end of the head: no cut the splitter makes may do either."""
    return _makes_a_fence(text, position, fences) or _ends_in_a_fence(text, position)


def _opening_prose(text: str, fence: _Fence) -> bool:
    """Whether the block's opening line has prose after its run (shown before the block)."""
    line = text[fence.start : fence.content_start].rstrip("\r\n")
    return _is_prose(line.lstrip(" \t").lstrip(fence.marker[0]))


def _cut(text: str, position: int, fences: list[_Fence]) -> tuple[str, str]:
    """Split at `position`; inside a code block, close it in head and reopen it in tail.

    The tail reopens with the block's opening run and language tag; prose written after the
    run (shown once, before the block) is not repeated.
    """
    for fence in fences:
        if fence.content_start <= position < fence.close_start:
            closing = fence.indent + fence.marker
            if text[position - 1] != "\n":
                closing = "\n" + closing
            opening = text[fence.start : fence.content_start]
            if _opening_prose(text, fence):
                opening = fence.indent + fence.marker + "\n"
            return text[:position] + closing, opening + text[position:]
    return text[:position], text[position:]


def mrkdwn_bound(markdown: str) -> int | None:
    """An upper bound on ``len(to_mrkdwn(markdown))``, computed in one pass, so a message that
    surely fits needs no conversion to say so (a streaming answer asks after every chunk).
    None when no cheap bound exists: a reference link repeats its URL at every use."""
    if "][" in markdown or "]:" in markdown:
        return None
    escaped = sum(markdown.count(c) for c in "&<>")
    marks = sum(markdown.count(c) for c in '*_~`@|"{}\\^')
    links = markdown.count("http") + markdown.count("mailto:") + markdown.count("](")
    bound = len(markdown) + 4 * escaped + 2 * marks + 4 * links + markdown.count("\n") + 16
    if links:
        # A link's address is percent-encoded: a character of b UTF-8 bytes becomes 3b
        # characters, at most 5 more per byte beyond the first.
        bound += 5 * (len(markdown.encode()) - len(markdown))
    return bound


def split_for_slack(markdown: str, max_chars: int = 3000, min_head: int = 0) -> tuple[str, str]:
    """Split an answer into what fits one message now and what continues in the next.

    ``to_mrkdwn(head)`` is at most `max_chars` long. The cut is at a paragraph break when
    one lies in the last half of what fits, else a line break, a sentence end or a space
    there, else the latest of those anywhere; never inside a code span, a link or a code
    block. With none of those, the cut is next to a link or code span, else between a word
    and punctuation; inside a word only when that word alone is too long for a message, so
    no word shows broken over two messages. A code block that alone is too long for a
    message is cut between its lines: the head closes it and the tail reopens it with the
    same opening run and language tag. Apart from that repair, ``head + tail == markdown``.
    ``tail`` is empty when everything fits.

    `min_head` asks for a head of at least that many characters when one fits: a message
    being streamed has already shown that much, and its final text must not shrink. The
    usual boundaries are tried first, then a cut right at `min_head`.
    """
    if max_chars < _MIN_SPLIT:
        raise ValueError(f"max_chars must be at least {_MIN_SPLIT}")

    def fits(head: str) -> bool:
        return len(to_mrkdwn(head)) <= max_chars

    bound = mrkdwn_bound(markdown)
    if (bound is not None and bound <= max_chars) or fits(markdown):
        return markdown, ""  # a text that surely fits needs no conversion to say so

    # How much raw text fits at most; the cut is looked for below that. Growing the bound
    # first keeps the conversions short when the text is much longer than one message.
    low, high = 0, min(len(markdown), max_chars)
    while high < len(markdown) and fits(markdown[:high]):
        low, high = high, min(len(markdown), high * 2)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(markdown[:middle]) else (low, middle)
    limit = max(low, 1)

    fences = _fences(markdown)
    spans = _unsplittable(markdown, fences)
    oversized = {f.start for f in fences if f.start < limit and not fits(markdown[f.start : f.end])}

    def allowed(position: int) -> bool:
        if not 0 < position < len(markdown) or not markdown[:position].strip():
            return False
        if _forges_a_fence(markdown, position, fences):
            return False
        if not markdown[position:].strip():
            return False
        if any(start < position < end for start, end in spans):
            return False
        for fence in fences:
            if fence.start < position < fence.end:
                return (
                    fence.start in oversized
                    and fence.content_start < position < fence.close_start
                    and markdown[position - 1] == "\n"
                )
        return True

    tiers = [
        sorted({m.end() for m in pattern.finditer(markdown, 0, limit + 1)}, reverse=True)
        for pattern in _TIERS
    ]
    # Right before or after a link or code span, when there is no space to cut at.
    tiers.append(sorted({edge for span in spans for edge in span if edge <= limit}, reverse=True))
    window = limit // 2
    ordered = [p for tier in tiers for p in tier if p >= window]
    ordered += sorted({p for tier in tiers for p in tier if p < window}, reverse=True)
    for position in ordered:
        if min_head <= position <= limit and allowed(position):
            head, tail = _cut(markdown, position, fences)
            if fits(head):
                return head, tail
    if 0 < min_head < len(markdown):
        head, tail = _cut(markdown, min_head, fences)
        if fits(head):
            return head, tail

    # No boundary at all (a huge link or code line): cut where the text stops fitting. Outside
    # code blocks, links, code spans and words if possible, inside a word only when it alone
    # is too long; never in a fence's opening or closing line, which would no longer read as
    # one.
    in_span = {p for start, end in spans for p in range(start + 1, min(end, limit + 1))}

    def fallback(position: int, level: int) -> bool:
        if _forges_a_fence(markdown, position, fences):
            return False
        if level < 2 and position in in_span:
            return False
        for fence in fences:
            # Right after an opening line with prose, the prose can go alone.
            in_fence_line = fence.start < position < fence.content_start or (
                fence.close_start <= position < fence.end
            )
            if position == fence.content_start and not _opening_prose(markdown, fence):
                return False
            if in_fence_line or (level == 0 and fence.start < position < fence.end):
                return False
        in_word = markdown[position - 1].isalnum() and markdown[position : position + 1].isalnum()
        return level == 3 or not in_word

    for level in range(4):
        for position in range(limit, 1, -1):
            if fallback(position, level):
                head, tail = _cut(markdown, position, fences)
                if fits(head):
                    return head, tail
    return _cut(markdown, 1, fences)


def split_all(markdown: str, max_chars: int = 3000) -> list[str]:
    """The whole answer as consecutive pieces, each fitting one message (see split_for_slack)."""
    pieces: list[str] = []
    rest = markdown
    while rest.strip():
        head, rest = split_for_slack(rest, max_chars)
        pieces.append(head)
    return pieces


# --- blocks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A citation behind an answer; CustomGPT may leave either field empty."""

    title: str | None
    url: str | None


def _source_text(source: Source) -> str | None:
    title = " ".join((source.title or "").split())
    if len(title) > _SOURCE_TITLE_LIMIT:
        title = title[: _SOURCE_TITLE_LIMIT - 1].rstrip() + "…"
    raw_url = (source.url or "").strip()
    url = _link_target(raw_url) if len(raw_url) <= _SOURCE_URL_LIMIT else None
    if url is None:
        return _escape_prose(title) if title else None
    if not title:
        parts = urlsplit(raw_url)
        title = (parts.netloc + parts.path).rstrip("/") or raw_url
    return f"<{url}|{_escape_prose(title)}>"


def sources_block(sources: Sequence[Source], shown: int = 5) -> dict[str, Any] | None:
    """A context block listing the answer's sources as links, or None when there are none.

    Sources repeat in CustomGPT's citations (one page, several chunks): they are merged by
    URL, and those without a URL by title. At most `shown` are listed, then "+N more".
    Everything is one mrkdwn element, kept within Slack's 3,000 characters.
    """
    seen_urls: set[str] = set()
    seen_titles: set[str] = set()
    texts: list[str] = []
    for source in sources:
        url = (source.url or "").strip().rstrip("/")
        title = " ".join((source.title or "").split()).casefold()
        if (url and url in seen_urls) or (not url and title in seen_titles):
            continue
        text = _source_text(source)
        if text is None:
            continue
        seen_urls.add(url)
        seen_titles.add(title)
        texts.append(text)
    if not texts:
        return None

    line = "*Sources:*"
    listed = 0
    for text in texts[: max(shown, 0)]:
        more = len(texts) - listed - 1
        reserve = len(f" · +{more} more") if more else 0
        if len(line) + 3 + len(text) + reserve > SECTION_LIMIT:
            break
        line += (" " if listed == 0 else " · ") + text
        listed += 1
    if listed < len(texts):
        line += (" " if listed == 0 else " · ") + f"+{len(texts) - listed} more"
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": line}]}


def feedback_block(value: str, selected: str | None = None) -> dict[str, Any]:
    """The 👍/👎 buttons under an answer.

    `value` comes back in the button's action payload (at most 2,000 characters: Slack's
    limit). `selected` ("liked" or "disliked") highlights the button already recorded, so
    the message shows the user's choice; None or "neutral" highlights neither.
    """
    # Ordinary buttons, not Slack's native `feedback_buttons` (a `context_actions` block):
    # those carry only a text, a value and an accessibility label per button, with no field
    # that marks one as chosen, so the message cannot show everyone the recorded verdict
    # (the highlight Slack's client shows after a click is the clicker's own), and a click
    # on the recorded verdict could not take it back. Their click payload (the button's
    # value and the clicker) would keep the asker-only rule; the first failing is enough.
    if len(value) > BUTTON_VALUE_LIMIT:
        raise ValueError(f"button value longer than {BUTTON_VALUE_LIMIT} characters")
    if selected not in (None, "neutral", "liked", "disliked"):
        raise ValueError(f"unknown feedback selection: {selected!r}")
    buttons: list[dict[str, Any]] = []
    for reaction, emoji in (("liked", "👍"), ("disliked", "👎")):
        button: dict[str, Any] = {
            "type": "button",
            "action_id": f"feedback_{reaction}",
            "text": {"type": "plain_text", "text": emoji, "emoji": True},
            "value": value,
        }
        if selected == reaction:
            button["style"] = "primary"
        buttons.append(button)
    return {"type": "actions", "block_id": "feedback", "elements": buttons}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def answer_blocks(
    markdown: str,
    *,
    sources: Sequence[Source] = (),
    feedback_value: str | None = None,
    selected: str | None = None,
    typing: bool = False,
) -> tuple[str, list[dict[str, Any]]]:
    """The ``text`` and ``blocks`` of one answer message.

    While `typing`, the text is converted with ``to_mrkdwn_partial`` and ends with the
    typing marker, and sources and feedback are left out. Callers split long answers first
    (``split_for_slack``); text that still exceeds a section's 3,000 characters is spread over
    several sections rather than rejected by Slack. An empty answer shows a placeholder,
    since Slack refuses an empty section.
    """
    # The body and the plain text come from one parse when they convert the same text (while
    # typing, and for a final text the streaming repair leaves alone): an edit renders once.
    repaired = _repair(markdown)
    if typing or repaired == markdown:
        body, plain = _render_with(repaired, _MrkdwnRenderer, _PlainRenderer)
    else:
        body, plain = to_mrkdwn(markdown), _render(repaired, _PlainRenderer)
    return _answer_message(markdown, body, plain, sources, feedback_value, selected, typing)


def _answer_message(
    markdown: str,
    body: str,
    plain: str,
    sources: Sequence[Source],
    feedback_value: str | None,
    selected: str | None,
    typing: bool,
) -> tuple[str, list[dict[str, Any]]]:
    """`answer_blocks` once `markdown` is converted to `body` and `plain`."""
    convert = to_mrkdwn_partial if typing else to_mrkdwn
    suffix = f" {TYPING_MARKER}" if typing else ""
    placeholder = THINKING_TEXT if typing else EMPTY_ANSWER_TEXT
    if len(body) + len(suffix) <= SECTION_LIMIT:
        sections = [body] if body.strip() else []
    else:
        # Room for the marker and for what the partial repair may add.
        pieces = split_all(markdown, SECTION_LIMIT - len(suffix) - 16)
        sections = [text for text in map(convert, pieces) if text.strip()]
    if not sections:
        sections = [f"_{placeholder}_"]
    sections[-1] = (sections[-1] + suffix)[:SECTION_LIMIT]

    blocks = [_section(text) for text in sections]
    if not typing:
        source_list = sources_block(sources)
        if source_list is not None:
            blocks.append(source_list)
        if feedback_value is not None:
            blocks.append(feedback_block(feedback_value, selected))
    text = _shorten(plain, PLAIN_TEXT_LIMIT) or placeholder
    return text, blocks


# A blank line, then a line starting with a letter: a new paragraph, whatever came before
# (CommonMark: nothing continues across a blank line into an unindented line of text).
_PARAGRAPH_AFTER_BLANK = re.compile(r"\n\n(?=[A-Za-z])")
_FENCE_RUN_LINE = re.compile(r"^.*`{3}.*$", re.MULTILINE)  # a line holding three backticks


class TypingRender:
    """``answer_blocks(markdown, typing=True)`` for the text of one message while it grows,
    rendering each finished paragraph once: a long message edited every second otherwise
    converts all of its text again at every edit.

    The text is cut after a blank line followed by a letter outside code blocks: there one
    paragraph ends and another begins, the parse of the text is the parse of the two sides
    joined, and so is its raw rendering (``_raw_renders``). Only the text after the last
    such cut is repaired (``_repair`` only touches the last paragraph and an open code
    block) and rendered again. A text with a reference-style link definition (``]:``) is
    rendered whole: the definition changes links in paragraphs before it. Any text that is
    not a continuation of the last one starts the cache afresh.
    """

    def __init__(self) -> None:
        self._done = ""  # the finished paragraphs' markdown
        self._raw = ("", "")  # their raw renderings: mrkdwn, plain text

    def blocks(self, markdown: str) -> tuple[str, list[dict[str, Any]]]:
        if "]:" in markdown:
            return answer_blocks(markdown, typing=True)
        if not markdown.startswith(self._done):
            self._done, self._raw = "", ("", "")
        rest = markdown[len(self._done) :]
        cut = _last_paragraph_start(rest)
        if cut:
            body, plain = _raw_renders(rest[:cut], _MrkdwnRenderer, _PlainRenderer)
            self._raw = (self._raw[0] + body, self._raw[1] + plain)
            self._done += rest[:cut]
            rest = rest[cut:]
        body, plain = _raw_renders(_repair(rest), _MrkdwnRenderer, _PlainRenderer)
        return _answer_message(
            markdown,
            _finish(self._raw[0] + body),
            _finish(self._raw[1] + plain),
            (),
            None,
            None,
            typing=True,
        )


def _last_paragraph_start(text: str) -> int:
    """Where the last paragraph that starts after a blank line, outside code blocks, begins
    (0: none). Never after a code block opened at the end of a line of prose, nor after one
    closed by a line with prose after its run: how those read depends on the text after them
    (see `_fences`), or gets new lines of its own (`_normalise_fences`)."""
    if "```" not in text and "~~~" not in text:
        fences: list[_Fence] = []
        stop = len(text)
    else:
        fences = _fences(text)
        stop = min(
            [
                *(m.start() for m in _FENCE_RUN_LINE.finditer(text) if _mid_line_opener(m[0])),
                *(f.start for f in fences if f.closed and text[f.end - 1] != "\n"),
                len(text),
            ]
        )
    for match in reversed(list(_PARAGRAPH_AFTER_BLANK.finditer(text, 0, stop))):
        cut = match.end()
        if not any(fence.start < cut < fence.end for fence in fences):
            return cut
    return 0


# --- Markdown sent as is (native streams) ---------------------------------------------

# `<!channel>`, `<!here>`, `<!everyone>`, `<!subteam^…>`, `<@U…>`, and a link whose target is
# one of them (`[x](!here)`): a word joiner after the `<` or `(` keeps Slack from reading a
# mention there. Bare `@here` gets one after the `@`, as in mrkdwn.
_MENTION_OPENING = re.compile(r"(<|\]\()(?=[!@])")
# The end of a text that more text could still turn into a mention: held back until it can't.
_UNDECIDED_TAIL = re.compile(r"(?:<|\]\(?|(?<![\w@])@[A-Za-z]{0,8})\Z")


def safe_markdown(markdown: str, *, final: bool) -> tuple[str, int]:
    """Markdown as it may be sent to Slack as `markdown_text`, which no mrkdwn converter
    sees: every mention form is neutralised. Returns the safe text and how many characters
    of `markdown` it covers.

    Built for text that grows: unless `final`, a tail that the next characters could turn
    into a mention is held back, so the safe text of a prefix is always a prefix of the safe
    text of the whole, and a stream can send the difference as it goes."""
    covered = len(markdown)
    if not final:
        tail = _UNDECIDED_TAIL.search(markdown)
        if tail is not None:
            covered = tail.start()
    text = _MENTION_OPENING.sub(lambda m: m.group(1) + _WORD_JOINER, markdown[:covered])
    return _BROADCAST.sub(lambda m: f"@{_WORD_JOINER}{m.group(1)}", text), covered
