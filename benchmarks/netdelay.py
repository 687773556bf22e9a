"""A TCP proxy that makes the loopback look like the internet to AWS.

Every byte from the client to the server waits ``rtt_ms / 2`` before it is
forwarded, and every byte back waits as long, so each round trip costs
``rtt_ms`` more than on the loopback, as it does between a pharmacy and RDS;
bandwidth is not limited (bytes are read at once and sent when due, in order).

The proxy also counts **round trips**: the times a client sends again after it
has heard from the server (a "turn"). A statement, or a pipeline of them, sent
in one go is one round trip however many bytes it takes; a transaction of five
statements each waiting for its answer is five. ``turns`` is the total over all
connections, so the round trips of an action are the difference before and after
it, whatever the network delay (also at ``rtt_ms=0``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator


class DelayProxy:
    """``with DelayProxy(host, port, rtt_ms=40) as proxy:`` then connect to
    ``proxy.host, proxy.port``."""

    def __init__(self, target_host: str, target_port: int, *, rtt_ms: float = 0.0,
                 port: int = 0) -> None:
        self.target_host, self.target_port = target_host, target_port
        self.one_way = max(rtt_ms, 0.0) / 2000.0
        self.rtt_ms = rtt_ms
        self.host = "127.0.0.1"
        self.port = port  # 0: any free port; another proxy's: the same address again
        self._turns = 0
        self._open = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    # ------------------------------------------------------------- counting

    @property
    def turns(self) -> int:
        with self._lock:
            return self._turns

    @property
    def open_connections(self) -> int:
        """Client connections not yet closed on both sides."""
        with self._lock:
            return self._open

    def wait_connections(self, n: int, timeout: float = 10.0) -> None:
        """Wait until at most ``n`` client connections are open (their last
        bytes, a goodbye included, then counted)."""
        end = time.monotonic() + timeout
        while self.open_connections > n:
            if time.monotonic() > end:
                raise TimeoutError("the proxy's connections did not close")
            time.sleep(0.005)

    @contextlib.contextmanager
    def counting(self) -> Iterator[list[int]]:
        """``with proxy.counting() as n:`` ... then ``n[0]`` is the round trips taken."""
        box = [0]
        before = self.turns
        try:
            yield box
        finally:
            box[0] = self.turns - before

    # ------------------------------------------------------------- running

    def __enter__(self) -> DelayProxy:
        self._thread = threading.Thread(target=self._run, name="delay-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the delay proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _shutdown(self) -> None:
        """Close the listening socket and every connection, and wait for them."""
        if self._server is not None:
            self._server.close()
        writers = list(self._writers)
        for w in writers:
            w.close()
        for w in writers:
            with contextlib.suppress(Exception):
                await w.wait_closed()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(
            asyncio.start_server(self._client, self.host, self.port, reuse_address=True))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _client(self, c_reader: asyncio.StreamReader,
                      c_writer: asyncio.StreamWriter) -> None:
        self._writers.add(c_writer)
        with self._lock:
            self._open += 1
        try:
            try:
                s_reader, s_writer = await asyncio.open_connection(self.target_host,
                                                                   self.target_port)
            except OSError:
                c_writer.close()
                return
            self._writers.add(s_writer)
            state = {"last": "server"}  # a new connection's first bytes are a turn
            await asyncio.gather(self._pipe(c_reader, s_writer, state, "client"),
                                 self._pipe(s_reader, c_writer, state, "server"),
                                 return_exceptions=True)
        except asyncio.CancelledError:
            pass  # the proxy closes with this connection open (a failover drill)
        finally:
            with self._lock:
                self._open -= 1

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    state: dict[str, str], side: str) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            with contextlib.suppress(Exception):
                writer.close()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if side == "client" and state["last"] == "server":
                    with self._lock:
                        self._turns += 1
                state["last"] = side
                await queue.put((time.perf_counter() + self.one_way, data))
        except (ConnectionError, OSError):
            pass
        finally:
            await queue.put((0.0, b""))
            with contextlib.suppress(Exception):
                await sender


def through(url: str, proxy: DelayProxy) -> str:
    """``url`` with its host and port replaced by the proxy's (PostgreSQL URLs)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(host=proxy.host, port=proxy.port).render_as_string(
        hide_password=False)
