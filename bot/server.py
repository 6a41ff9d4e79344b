"""Serving the app: HTTP (Events API on `/slack/events`) or Socket Mode, and in both modes
`/healthz` (liveness), `/readyz` (readiness, bot/health.py) and `/metrics` on `PORT`
(`/metrics` on `METRICS_PORT` instead when that is set, off the public port). With OAuth
(bot/oauth.py), also the install page and Slack's redirect (`SLACK_INSTALL_PATH`,
`SLACK_REDIRECT_URI_PATH`), handed to Bolt's OAuth flow.

Our own aiohttp application (rather than Bolt's built-in server) so the process owns its
start-up and shutdown: the shared session, the store and answers in flight close cleanly.

It also checks each request before Bolt sees it, in the order that keeps strangers cheap:
the signature first (Bolt would parse the body before checking it, so any unsigned garbage
cost a traceback), then whether the body parses at all.
"""

from __future__ import annotations

import asyncio
import gc
import html
import logging
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from aiohttp import web, web_log
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.app import build_app
from bot.background import start_background
from bot.config import Settings
from bot.log_throttle import ThrottledLog
from bot.metrics import CONTENT_TYPE
from bot.runtime import Runtime
from bot.slack_calls import NETWORK_ERRORS
from bot.store import StoreUnavailable

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTHZ_PATH, READYZ_PATH, METRICS_PATH = "/healthz", "/readyz", "/metrics"
PROBE_PATHS = frozenset({HEALTHZ_PATH, READYZ_PATH, METRICS_PATH})
#: Refusals of the events path that `web_app` logs itself (no access line needed).
EXPLAINED_REFUSALS = frozenset({400, 401})
UNSIGNED_WARNING_EVERY = 60.0  # seconds between two log lines about unsigned requests


def web_app(bolt: AsyncApp, runtime: Runtime) -> web.Application:
    verifier = SignatureVerifier(runtime.settings.slack_signing_secret)
    unsigned = ThrottledLog(log, UNSIGNED_WARNING_EVERY, runtime.clock)

    async def events(request: web.Request) -> web.Response:
        raw = await request.read()
        if not _signed_by_slack(verifier, raw, request):
            # Its address, as no access line is written for it (ProbesUnlogged): the
            # source of a flood, in the one line the flood costs a minute.
            unsigned.warning(
                "refused a request without a valid Slack signature (HTTP 401, from %s)",
                request.remote,
            )
            return web.Response(status=401, text="invalid signature")
        bolt_request = _bolt_request(raw, request)
        if bolt_request is None:
            log.warning(
                "refused a signed request whose body does not parse (%d bytes, %s; HTTP 400)",
                len(raw),
                request.content_type,
            )
            return web.Response(status=400, text="body does not parse")
        return await to_aiohttp_response(await bolt.async_dispatch(bolt_request))

    application = probes_app(runtime)
    application.router.add_post(EVENTS_PATH, events)
    flow = bolt.oauth_flow
    if flow is not None:
        # A person's browser, not Slack, asks these: nothing is signed. Bolt checks the
        # install link's state (its cookie and the state store) at the redirect.
        async def install(request: web.Request) -> web.Response:
            try:
                response = await flow.handle_installation(_browser(request))
            except INSTALL_OUTAGES as error:
                log.error("the install page is unavailable: the store is unreachable (%s)", error)
                return _install_unavailable(flow.install_path)
            return await to_aiohttp_response(response)

        async def redirect(request: web.Request) -> web.Response:
            try:
                response = await flow.handle_callback(_browser(request))
            except INSTALL_OUTAGES as error:
                log.error(
                    "an install could not be finished: Slack or the store did not answer (%s)",
                    type(error).__name__,
                )
                return _install_unavailable(flow.install_path)
            return await to_aiohttp_response(response)

        application.router.add_get(flow.install_path, install)
        application.router.add_get(flow.redirect_uri_path, redirect)
    return application


#: What Bolt's OAuth flow lets through (it turns Slack's refusals and a failed save into its
#: own pages): the store unreachable when the install link's state is issued, Slack
#: unreachable when the code is exchanged.
INSTALL_OUTAGES = (StoreUnavailable, *NETWORK_ERRORS)


def _install_unavailable(install_path: str) -> web.Response:
    """The page a person installing the app sees when it cannot be done just now (instead
    of a bare 500): nothing was installed, and the install page starts it again."""
    page = (
        "<html><body><h2>The app can't be installed just now</h2>"
        "<p>Slack or the app's storage did not answer. Nothing was installed: please try again "
        f'in a minute from <a href="{html.escape(install_path)}">the install page</a>.</p>'
        "</body></html>"
    )
    return web.Response(status=503, text=page, content_type="text/html")


def _browser(request: web.Request) -> AsyncBoltRequest:
    return AsyncBoltRequest(body="", query=request.query_string, headers=dict(request.headers))


def probes_app(runtime: Runtime) -> web.Application:
    """The endpoints an orchestrator and a scraper ask: liveness, readiness and, unless it
    has a port of its own, `/metrics`."""

    async def healthz(_: web.Request) -> web.Response:
        # Answering at all proves the process and its event loop work; nothing else is asked,
        # so a dependency's outage never gets the process restarted.
        return web.json_response({"ok": True})

    async def readyz(_: web.Request) -> web.Response:
        status, body = await runtime.health.readiness()
        return web.json_response(body, status=status)

    application = web.Application()
    application.router.add_get(HEALTHZ_PATH, healthz)
    application.router.add_get(READYZ_PATH, readyz)
    if runtime.settings.metrics_port is None:
        application.router.add_get(METRICS_PATH, metrics_handler(runtime))
    return application


def metrics_handler(runtime: Runtime) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=runtime.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE}
        )

    return metrics


def metrics_app(runtime: Runtime) -> web.Application:
    """`/metrics` alone, for `METRICS_PORT`."""
    application = web.Application()
    application.router.add_get(METRICS_PATH, metrics_handler(runtime))
    return application


def _signed_by_slack(verifier: SignatureVerifier, raw: bytes, request: web.Request) -> bool:
    """Whether Slack signed this body within the last five minutes.

    The verifier raises on a body that is not UTF-8 or a timestamp that is not a number;
    neither comes from Slack, so both count as unsigned."""
    try:
        return verifier.is_valid_request(raw, dict(request.headers))
    except ValueError:  # UnicodeDecodeError included
        return False


def _bolt_request(raw: bytes, request: web.Request) -> AsyncBoltRequest | None:
    """The request as Bolt reads it, or None when the body is not a Slack payload (JSON or
    form data holding an object). Bolt parses the body and reads the ids in it while the
    request is built, so anything that fails there means the body is not one of Slack's."""
    try:
        bolt_request = AsyncBoltRequest(
            body=raw.decode(),
            query=request.query_string,
            headers=dict(request.headers),
        )
    except (ValueError, TypeError, AttributeError, KeyError, IndexError):
        return None
    return bolt_request if isinstance(bolt_request.body, dict) else None


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
    configured (the probes and metrics still on `PORT`), else HTTP on `PORT`."""
    settings = runtime.settings
    bolt = build_app(runtime)
    # Everything loaded so far (modules, classes, the app) lives as long as the process: out
    # of the collector's sight, a full collection walks only what answers create, a few
    # milliseconds instead of 30 that every request and answer would wait behind. What is
    # garbage already is collected first, or it would be kept for good.
    gc.collect()
    gc.freeze()
    await start_background(runtime)
    async with AsyncExitStack() as serving:
        # Metrics first: once "listening" is logged, every port answers.
        if settings.metrics_port is not None:
            await _serve(serving, metrics_app(runtime), settings.metrics_port)
            log.info("metrics on port %d (/metrics)", settings.metrics_port)
        if settings.slack_app_token:
            handler = AsyncSocketModeHandler(bolt, settings.slack_app_token)
            await handler.connect_async()  # type: ignore[no-untyped-call]
            serving.push_async_callback(handler.close_async)
            log.info("connected to Slack in Socket Mode")
            await _serve(serving, probes_app(runtime), settings.port)
            log.info("listening on port %d (/healthz, /readyz)", settings.port)
        else:
            await _serve(serving, web_app(bolt, runtime), settings.port)
            log.info("listening on port %d (%s)", settings.port, EVENTS_PATH)
        await stop.wait()


class ProbesUnlogged(web_log.AccessLogger):
    """Access lines for Slack's requests, the install pages and every refused probe, not for
    probes answered: a load balancer's and Prometheus's arrive every few seconds, would bury
    the lines worth reading, and cost the process a formatted line each. Nor for a request
    to the events path refused as unsigned (401) or unreadable (400): `web_app` says so in a
    line of its own, throttled for the unsigned ones, so that a flood of garbage costs one
    line, not one each."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if request.path in PROBE_PATHS and response.status < 400:
            return
        if request.path == EVENTS_PATH and response.status in EXPLAINED_REFUSALS:
            return
        super().log(request, response, time)


def app_runner(application: web.Application) -> web.AppRunner:
    """The runner serving `application`, with its access lines (`ProbesUnlogged`)."""
    return web.AppRunner(application, access_log_class=ProbesUnlogged)


async def _serve(serving: AsyncExitStack, application: web.Application, port: int) -> None:
    """Listen on `port` until `serving` closes."""
    runner = app_runner(application)
    await runner.setup()
    serving.push_async_callback(runner.cleanup)
    await web.TCPSite(runner, "0.0.0.0", port).start()
