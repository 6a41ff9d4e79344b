"""Serving the app: HTTP (Events API on `/slack/events`, plus `/healthz`) or Socket Mode.

Our own aiohttp application (rather than Bolt's built-in server) so the process owns its
start-up and shutdown: the shared session, the store and answers in flight close cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.app import build_app
from bot.config import Settings
from bot.indexing import start_background
from bot.runtime import Runtime

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


def web_app(bolt: AsyncApp, runtime: Runtime) -> web.Application:
    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    async def healthz(_: web.Request) -> web.Response:
        try:
            await runtime.store.ping()
        except Exception as error:  # any store failure means "not healthy", whatever its type
            log.warning("health check: store unreachable (%s)", type(error).__name__)
            return web.json_response({"ok": False, "store": "unreachable"}, status=503)
        return web.json_response({"ok": True})

    application = web.Application()
    application.router.add_post(EVENTS_PATH, events)
    application.router.add_get("/healthz", healthz)
    return application


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM, then let answers in flight say so and close everything."""
    runtime = await Runtime.open(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run(runtime, stop)
    finally:
        await runtime.close()


async def run(runtime: Runtime, stop: asyncio.Event) -> None:
    """Serve Slack with an open runtime until `stop` is set: Socket Mode when an app token is
    configured, else HTTP on `PORT`."""
    settings = runtime.settings
    bolt = build_app(runtime)
    await start_background(runtime)
    if settings.slack_app_token:
        handler = AsyncSocketModeHandler(bolt, settings.slack_app_token)
        await handler.connect_async()  # type: ignore[no-untyped-call]
        log.info("connected to Slack in Socket Mode")
        try:
            await stop.wait()
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]
    else:
        runner = web.AppRunner(web_app(bolt, runtime))
        await runner.setup()
        try:
            await web.TCPSite(runner, "0.0.0.0", settings.port).start()
            log.info("listening on port %d (%s)", settings.port, EVENTS_PATH)
            await stop.wait()
        finally:
            await runner.cleanup()
