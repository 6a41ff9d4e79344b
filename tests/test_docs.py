"""The README and .env.example keep up with the code: every environment variable the settings
read is listed in both, and every kind of Redis key the bot writes is in the README's table of
what is stored about a workspace (and for how long)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from bot import keys
from bot.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")


class RecordingEnv(dict[str, str]):
    """An environment that remembers every variable the settings looked up."""

    def __init__(self, values: dict[str, str], asked: set[str]) -> None:
        super().__init__(values)
        self.asked = asked

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return super().__getitem__(name)

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.add(name)
        return super().get(name, default)

    def __contains__(self, name: object) -> bool:
        self.asked.add(str(name))
        return super().__contains__(name)


def variables_read() -> set[str]:
    """Every variable bot/config.py asks for, in single-token mode and with OAuth (whose
    settings are read only when it is on)."""
    asked: set[str] = set()
    single = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "CUSTOMGPT_API_KEY": "k"}
    oauth = {
        **single,
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "SLACK_CLIENT_ID": "1.2",
        "SLACK_CLIENT_SECRET": "secret",
        "SLACK_SCOPES": "chat:write",
        "CUSTOMGPT_KEY_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    for env in (single, oauth):
        Settings.from_env(RecordingEnv(env, asked))
    return asked


def readme_table_rows(heading: str) -> list[str]:
    """The rows of the first table after `heading` (a line of the README)."""
    after = README.split(heading, 1)[1]
    rows: list[str] = []
    for line in after.splitlines():
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    return rows


def test_every_variable_the_settings_read_is_in_the_readme_and_env_example() -> None:
    read = variables_read()
    assert {"SLACK_BOT_TOKEN", "SLACK_INSTALL_PATH", "CUSTOMGPT_KEY_ENCRYPTION_KEY"} <= read
    in_readme = {
        m[1] for row in readme_table_rows("## Configuration") if (m := re.match(r"\| `(\w+)`", row))
    }
    in_example = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE, re.MULTILINE))

    assert read - in_readme == set(), "list them in README.md's Configuration table"
    assert read - in_example == set(), "list them in .env.example"


def key_names() -> dict[str, str]:
    """Each key builder of bot/keys.py → the name its keys carry after the team (or after
    `cgpt:` for the keys of no workspace), e.g. `binding` → `bind`."""
    names: dict[str, str] = {}
    for name, builder in vars(keys).items():
        if not inspect.isfunction(builder) or builder.__module__ != keys.__name__:
            continue
        parameters = inspect.signature(builder).parameters
        if name.startswith("_") or parameters.get("key") is not None:
            continue  # helpers that read a key, not build one
        team_first = next(iter(parameters), None) in ("team", "owner", "enterprise")
        built = str(
            builder(*["TTEAM" if team_first and i == 0 else "x" for i in range(len(parameters))])
        )
        if built.endswith(":"):
            continue  # a prefix (`workspace`): every key of the team, not a key
        rest = built.removeprefix(f"{keys.PREFIX}:")
        parts = rest.split(":")
        if team_first:
            parts = parts[1:]
        if parts and parts[0].startswith("{"):
            parts = parts[1:]  # a Cluster hash tag
        names[name] = parts[0] if parts and parts[0] else rest
    return names


def test_every_kind_of_key_is_in_the_readmes_table_of_what_is_stored() -> None:
    rows = readme_table_rows("Redis keys (all named in `bot/keys.py`")
    listed = " ".join(row.split("|")[1] for row in rows)
    names = key_names()
    assert {"conversation", "installation", "customgpt_key", "oauth_state"} <= set(names)

    missing = {
        builder: name
        for builder, name in names.items()
        if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", listed)
    }
    assert missing == {}, "say in README.md what these keys hold and for how long"
