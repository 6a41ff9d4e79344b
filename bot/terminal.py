"""`python -m bot ask …` and `python -m bot projects …`: a question and the `/customgpt`
project operations from a terminal, for checking keys and setting up before Slack is
involved. Needs only the CustomGPT settings; prints plain lines.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager

import aiohttp

from bot import messages
from bot.clock import SystemClock
from bot.config import Settings
from bot.customgpt import Chunk, CustomGPTClient, CustomGPTError
from bot.indexing import InvalidNewProject, check_new_project, poll_until_ready
from bot.runtime import HTTP_TIMEOUT, customgpt_client


@asynccontextmanager
async def _client(settings: Settings) -> AsyncIterator[CustomGPTClient]:
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        yield customgpt_client(session, settings)


async def _same(client: CustomGPTClient) -> CustomGPTClient:
    """The terminal's one key, for every poll."""
    return client


def _fail(text: str, code: int = 1) -> int:
    print(text, file=sys.stderr)
    return code


async def create(settings: Settings, name: str, sitemap_url: str, *, wait: bool) -> int:
    """Create a project; with `wait`, print its progress until it answers (exit 0) or
    CUSTOMGPT_INDEX_TIMEOUT passes (exit 1)."""
    try:
        check_new_project(name, sitemap_url)
    except InvalidNewProject as error:
        return _fail(str(error), 2)
    clock = SystemClock()
    async with _client(settings) as client:
        try:
            project = await client.create_project(name, sitemap_url)
            print(f"Created project {project.id} ({project.name}).")
            if not wait:
                print(f"Follow it with: python -m bot projects status {project.id}")
                return 0
            deadline = clock.wall() + settings.customgpt_index_timeout
            polls = poll_until_ready(lambda: _same(client), project.id, clock, deadline)
            async with aclosing(polls):
                async for poll in polls:
                    if poll.error is not None:
                        print(f"CustomGPT: {poll.error.message}; trying again", file=sys.stderr)
                    elif poll.stats is not None:
                        stats = poll.stats
                        print(f"{stats.pages_found} pages found, {stats.pages_indexed} indexed")
                    if poll.ready:
                        print(f"Ready: project {project.id} answers questions.")
                        return 0
        except CustomGPTError as error:
            return _fail(messages.for_command_error(error))
    minutes = round(settings.customgpt_index_timeout / 60)
    return _fail(f"Project {project.id} is not ready after {minutes} minutes; it may still finish.")


async def list_projects(settings: Settings, page: int) -> int:
    async with _client(settings) as client:
        try:
            result = await client.list_projects(page)
        except CustomGPTError as error:
            return _fail(messages.for_command_error(error))
    if not result.projects:
        print(f"No projects on page {page} (pages: {result.last_page}).")
        return 0
    for project in result.projects:
        state = "ready" if project.is_chat_active else "indexing"
        print(f"{project.id:>10}  {state:<8}  {project.name}")
    more = f"; --page {result.page + 1} for more" if result.page < result.last_page else ""
    print(f"Page {result.page} of {result.last_page}{more}.")
    return 0


async def status(settings: Settings, project_id: str | None) -> int:
    project_id = project_id or settings.customgpt_project_id
    if not project_id:
        return _fail("No project: pass a project id or set CUSTOMGPT_PROJECT_ID.", 2)
    async with _client(settings) as client:
        try:
            project = await client.get_project(project_id)
            stats = await client.project_stats(project_id)
        except CustomGPTError as error:
            return _fail(messages.for_command_error(error, project_id=project_id))
    print(f"Project {project_id}: {project.name}")
    print(f"Answers questions: {'yes' if project.is_chat_active else 'not yet (indexing)'}")
    print(f"Pages: {stats.pages_found} found, {stats.pages_indexed} indexed")
    return 0


async def ask(settings: Settings, question: str, project: str | None, *, stream: bool) -> int:
    """Print CustomGPT's answer as it arrives (or whole, without `stream`)."""
    project_id = project or settings.customgpt_project_id
    if not project_id:
        return _fail("No project: pass --project ID or set CUSTOMGPT_PROJECT_ID.", 2)
    lang = settings.customgpt_lang
    async with _client(settings) as client:
        try:
            session_id = await client.create_conversation(project_id, "Terminal check")
            if stream:
                async with aclosing(
                    client.stream_message(project_id, session_id, question, lang=lang)
                ) as events:
                    async for event in events:
                        if isinstance(event, Chunk):
                            print(event.text, end="", flush=True)
                print()
            else:
                answer = await client.send_message(project_id, session_id, question, lang=lang)
                print(answer.text)
        except CustomGPTError as error:
            print()
            return _fail(messages.for_error(error, project_id=project_id, partial=False))
    return 0
