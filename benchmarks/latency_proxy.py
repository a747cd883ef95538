"""A network's round trip on loopback: a TCP proxy that delays every byte it forwards.

Students reach a class database over Wi-Fi and the internet (20-80 ms round trips), while the
benchmarks run on one machine (0.1 ms). :class:`DelayProxy` listens on 127.0.0.1 and forwards to
the server's Unix socket, holding each chunk ``one_way`` seconds in each direction: latency
without a bandwidth limit (chunks are pipelined, never serialised behind each other's delay).
It counts the bytes it forwards each way (``sent``: ``up`` to the server, ``down`` from it), so
with ``one_way=0`` it measures what a worker's connections carry.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path

CHUNK = 1 << 16


class DelayProxy:
    """Forward 127.0.0.1:<port> to a Unix socket, ``one_way`` seconds late in each direction."""

    def __init__(self, unix_socket: Path, one_way: float) -> None:
        self.unix_socket, self.one_way = unix_socket, one_way
        self.port = 0
        self.sent = {"up": 0, "down": 0}  # bytes forwarded, written by the proxy's thread only
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="delay-proxy")

    def __enter__(self) -> DelayProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._connect, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        # Connections still open when the benchmark ends: cancel their pipes before closing.
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.close()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_r, upstream_w = await asyncio.open_unix_connection(str(self.unix_socket))
        try:
            await asyncio.gather(
                self._pipe(reader, upstream_w, "up"), self._pipe(upstream_r, writer, "down")
            )
        except asyncio.CancelledError:  # the proxy is closing with this connection still open
            writer.close()
            upstream_w.close()

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, direction: str
    ) -> None:
        """Copy ``source`` to ``sink``, each chunk written ``one_way`` seconds after it arrived."""
        pending: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def deliver() -> None:
            while True:
                due, chunk = await pending.get()
                if not chunk:
                    break
                await asyncio.sleep(max(0.0, due - loop.time()))
                sink.write(chunk)
                await sink.drain()

        delivering = asyncio.create_task(deliver())
        with contextlib.suppress(ConnectionError):
            while chunk := await source.read(CHUNK):
                self.sent[direction] += len(chunk)
                pending.put_nowait((loop.time() + self.one_way, chunk))
        pending.put_nowait((0.0, b""))
        with contextlib.suppress(ConnectionError):
            await delivering
            sink.close()
