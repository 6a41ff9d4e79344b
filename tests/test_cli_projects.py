"""`python -m bot projects create|list|status`: the slash command's project operations from a
terminal, needing only the CustomGPT settings."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import PROJECT_ID
from tests.fakes.customgpt import FIRST_CREATED_PROJECT_ID, FakeCustomGPT
from tests.test_cli import run_cli

SITEMAP = "https://acme.example/sitemap.xml"


async def test_create_and_wait_prints_progress_until_ready(
    customgpt: FakeCustomGPT, tmp_path: Path
) -> None:
    # One step: ready at the first poll, so the terminal never sleeps in a test.
    customgpt.default_index_steps = [(10, 10, 9)]
    code, out, err = await run_cli(
        customgpt, tmp_path, "projects", "create", "Acme", SITEMAP, "--wait"
    )
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"Created project {FIRST_CREATED_PROJECT_ID} (Acme).",
        "10 pages found, 9 indexed",
        f"Ready: project {FIRST_CREATED_PROJECT_ID} answers questions.",
    ]
    created = [r.body for r in customgpt.requests if (r.method, r.path) == ("POST", "/projects")]
    assert created == [{"project_name": "Acme", "sitemap_path": SITEMAP}]


async def test_create_refuses_a_bad_url_before_calling_customgpt(
    customgpt: FakeCustomGPT, tmp_path: Path
) -> None:
    code, _, err = await run_cli(customgpt, tmp_path, "projects", "create", "Acme", "ftp://x/y")
    assert code == 2 and "http://" in err
    assert customgpt.requests == []


async def test_list_and_status(customgpt: FakeCustomGPT, tmp_path: Path) -> None:
    customgpt.add_project(7, "Half done", active=False)
    customgpt.set_stats(7, 12, 8, 5)
    code, out, _ = await run_cli(customgpt, tmp_path, "projects", "list")
    assert code == 0
    assert out.splitlines() == [
        f"{'7':>10}  indexing  Half done",
        f"{PROJECT_ID:>10}  ready     Acme Docs",
        "Page 1 of 1.",
    ]
    code, out, _ = await run_cli(customgpt, tmp_path, "projects", "status", "7")
    assert code == 0
    assert out.splitlines() == [
        "Project 7: Half done",
        "Answers questions: not yet (indexing)",
        "Pages: 12 found, 5 indexed",
    ]


async def test_status_of_an_unknown_project_and_a_bad_key(
    customgpt: FakeCustomGPT, tmp_path: Path
) -> None:
    code, _, err = await run_cli(customgpt, tmp_path, "projects", "status", "999")
    assert code == 1 and "no project `999`" in err
    code, _, err = await run_cli(customgpt, tmp_path, "projects", "list", key="wrong-key")
    assert code == 1 and "rejected the API key" in err and "wrong-key" not in err
