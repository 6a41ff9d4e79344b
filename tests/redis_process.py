"""A Redis server of the test's own, on a spare port, that the test can stop and start again
(the shared one on 6379 must stay up for every other test)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from redis.exceptions import RedisError

from tests.polling import until


def spare_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisProcess:
    """`redis-server` without persistence: a restart comes back empty, as a replaced
    managed Redis would."""

    def __init__(self, binary: str, port: int) -> None:
        self._binary = binary
        self.port = port
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            self._binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        try:
            await until(lambda: self._answers(client))
        finally:
            await client.aclose()

    def pause(self) -> None:
        """Freeze the server: connections stay open and nothing answers (a hung Redis)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGCONT)  # a paused server acts on SIGTERM only then
            self._process.terminate()
            await self._process.wait()
        self._process = None

    @staticmethod
    async def _answers(client: redis.Redis) -> bool:
        try:
            return bool(await client.ping())
        except (RedisError, OSError):
            return False


async def own_redis_server() -> AsyncIterator[RedisProcess]:
    """Body of a fixture: a started server, stopped after the test."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: the outage tests start and stop their own")
    server = RedisProcess(binary, spare_port())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
