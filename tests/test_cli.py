"""`python -m bot ask`: a terminal check of keys and projects, against the fake CustomGPT."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.conftest import PROJECT_ID
from tests.fakes.customgpt import FakeCustomGPT


async def run_cli(
    customgpt: FakeCustomGPT | None, tmp_path: Path, *args: str, key: str = "test-key"
) -> tuple[int, str, str]:
    """`python -m bot …` in `tmp_path`, with CustomGPT settings pointing at the fake (none at
    all when `customgpt` is None: they must then come from a `.env` there)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CUSTOMGPT_"))}
    env["PYTHONPATH"] = os.getcwd()
    if customgpt is not None:
        env |= {"CUSTOMGPT_API_KEY": key, "CUSTOMGPT_API_URL": customgpt.api_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=str(tmp_path),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_ask_streams_the_answer_to_the_terminal(
    customgpt: FakeCustomGPT, tmp_path: Path
) -> None:
    customgpt.queue_answer(["Tom Brady ", "is a quarterback."])
    code, out, err = await run_cli(
        customgpt, tmp_path, "ask", "Who is Tom Brady?", "--project", str(PROJECT_ID)
    )
    assert (code, out, err) == (0, "Tom Brady is a quarterback.\n", "")
    (request,) = [r for r in customgpt.requests if r.path.endswith("/messages")]
    assert request.query["stream"] == "1"
    assert customgpt.prompts() == ["Who is Tom Brady?"]


async def test_ask_without_streaming(customgpt: FakeCustomGPT, tmp_path: Path) -> None:
    customgpt.queue_answer(["Whole ", "answer."])
    code, out, _ = await run_cli(
        customgpt, tmp_path, "ask", "q", "--project", str(PROJECT_ID), "--no-stream"
    )
    assert (code, out) == (0, "Whole answer.\n")
    (request,) = [r for r in customgpt.requests if r.path.endswith("/messages")]
    assert request.query["stream"] == "0"


async def test_ask_with_a_bad_key_explains_without_showing_it(
    customgpt: FakeCustomGPT, tmp_path: Path
) -> None:
    code, _, err = await run_cli(
        customgpt, tmp_path, "ask", "q", "--project", str(PROJECT_ID), key="wrong-key"
    )
    assert code == 1
    assert "CustomGPT key is invalid" in err
    assert "wrong-key" not in err and "Traceback" not in err


async def test_ask_without_a_project_says_how_to_give_one(
    customgpt: FakeCustomGPT, tmp_path: Path
) -> None:
    code, _, err = await run_cli(customgpt, tmp_path, "ask", "q")
    assert code == 2
    assert "--project" in err


async def test_settings_come_from_a_dotenv_file_where_the_bot_is_run(
    customgpt: FakeCustomGPT, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        f"CUSTOMGPT_API_KEY=test-key\nCUSTOMGPT_API_URL={customgpt.api_url}\n"
        f"CUSTOMGPT_PROJECT_ID={PROJECT_ID}\n"
    )
    customgpt.queue_answer(["From ", "dotenv."])
    assert await run_cli(None, tmp_path, "ask", "q") == (0, "From dotenv.\n", "")
