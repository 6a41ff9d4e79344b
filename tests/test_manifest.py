"""The Slack app manifest shows people what `/customgpt` takes, as the help text does."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bot import messages

MANIFEST = Path(__file__).resolve().parent.parent / "manifest.yml"
USAGE_HINT_LIMIT = 1000  # Slack's maximum for a slash command's usage_hint


def usage_hint() -> str:
    """The hint as Slack reads it: one double-quoted YAML scalar (JSON-compatible here)."""
    (line,) = [ln for ln in MANIFEST.read_text().splitlines() if "usage_hint:" in ln]
    value = line.split("usage_hint:", 1)[1].strip()
    assert value.startswith('"') and value.endswith('"'), "keep the hint one quoted line"
    return str(json.loads(value))


def test_the_usage_hint_names_every_verb_with_its_arguments() -> None:
    hint = usage_hint()
    # Each help line starts with "• `verb <arguments>`": the hint must show the same.
    forms = re.findall(r"^• `([^`]+)`", messages.HELP, flags=re.MULTILINE)
    assert len(forms) >= 6
    for form in forms:
        assert form in hint
    assert "--no-bind" in hint and "default" in hint
    assert len(hint) <= USAGE_HINT_LIMIT and "\n" not in hint
