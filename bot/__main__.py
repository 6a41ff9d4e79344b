"""Command line: `python -m bot` runs the app; `ask` checks keys and projects from a terminal;
`projects create|list|status` manages knowledge bases without the CustomGPT dashboard;
`doctor` checks every setting against the services it names.

Argument parsing only; the work lives in the modules it calls.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dotenv import find_dotenv, load_dotenv

from bot import doctor, event_loop, log_setup, terminal
from bot.config import ConfigError, Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="run the Slack app (the default)")
    commands.add_parser(
        "doctor", help="check tokens, keys, the default project and Redis; exit 0 if all pass"
    )
    ask = commands.add_parser("ask", help="ask CustomGPT a question from the terminal")
    ask.add_argument("question")
    ask.add_argument("--project", help="project id (default: CUSTOMGPT_PROJECT_ID)")
    ask.add_argument("--no-stream", action="store_true", help="wait for the whole answer")
    projects = commands.add_parser("projects", help="create, list and inspect projects")
    actions = projects.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a project from a sitemap")
    create.add_argument("name")
    create.add_argument("sitemap_url")
    create.add_argument("--wait", action="store_true", help="print progress until it is ready")
    listing = actions.add_parser("list", help="the account's projects, 20 a page")
    listing.add_argument("--page", type=int, default=1)
    status = actions.add_parser("status", help="whether a project answers, its page counts")
    status.add_argument("project_id", nargs="?", help="default: CUSTOMGPT_PROJECT_ID")
    return parser


async def _projects(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "create":
        return await terminal.create(settings, args.name, args.sitemap_url, wait=args.wait)
    if args.action == "list":
        return await terminal.list_projects(settings, max(1, args.page))
    return await terminal.status(settings, args.project_id)


def main(argv: Sequence[str] | None = None) -> int:
    load_dotenv(find_dotenv(usecwd=True), override=False)  # the .env where the bot is run
    args = _parser().parse_args(argv)
    command = args.command or "run"
    try:
        settings = Settings.from_env(need_slack=command == "run")
    except ConfigError as error:
        if command == "doctor":
            return doctor.report_config_error(error)
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2
    log_setup.configure(settings.log_level, settings.secrets, settings.log_format)
    if command == "doctor":
        return event_loop.run(doctor.run(settings))
    if command in ("ask", "projects") and not settings.customgpt_api_key:
        # Workspaces bring their own keys (CUSTOMGPT_SHARED_KEY=false): the terminal has none.
        print(
            "Configuration error: CUSTOMGPT_API_KEY is not set (see .env.example)", file=sys.stderr
        )
        return 2
    if command == "ask":
        return event_loop.run(
            terminal.ask(settings, args.question, args.project, stream=not args.no_stream)
        )
    if command == "projects":
        return event_loop.run(_projects(settings, args))
    from bot.server import serve

    event_loop.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
