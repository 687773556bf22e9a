"""A TCP proxy that makes the loopback look like the internet to AWS.

Every byte from the client to the server waits ``rtt_ms / 2`` before it is
forwarded, and every byte back waits as long, so each round trip costs
``rtt_ms`` more than on the loopback, as it does between a pharmacy and RDS;
bandwidth is not limited (bytes are read at once and sent when due, in order).

The proxy runs in a process of its own, with a thread per direction of each
connection that sleeps until a chunk is due (``time.sleep`` wakes within about
0.1 ms of it on Linux). A real network costs the workstation no CPU, so
neither may the proxy: in the measured process, its threads would wait for the
interpreter lock while the client's code runs, and an event loop's timers wake
up to a millisecond late (its poll timeout is in whole milliseconds), which
together added 1 to 5 ms to each 40 ms round trip measured here.

A new connection's first bytes wait one round trip more: the TCP handshake,
which a real link costs before the client can send anything.

The proxy also counts **round trips**: the times a client sends again after it
has heard from the server (a "turn"). A statement, or a pipeline of them, sent
in one go is one round trip however many bytes it takes; a transaction of five
statements each waiting for its answer is five. ``turns`` is the total over all
connections, so the round trips of an action are the difference before and after
it, whatever the network delay (also at ``rtt_ms=0``).
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any


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
        self._process: subprocess.Popen[bytes] | None = None
        self._counters: shared_memory.SharedMemory | None = None

    # ------------------------------------------------------------- counting

    def _read(self, index: int) -> int:
        if self._counters is None:
            return 0
        return int(struct.unpack_from("q", self._counters.buf, index * 8)[0])

    @property
    def turns(self) -> int:
        return self._read(0)

    @property
    def open_connections(self) -> int:
        """Client connections not yet closed on both sides."""
        return self._read(1)

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
        self._counters = shared_memory.SharedMemory(create=True, size=16)
        self._counters.buf[:16] = bytes(16)
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [root, *filter(None, [os.environ.get("PYTHONPATH")])]))
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from benchmarks.netdelay import _main; _main()",
             self.host, str(self.port), self.target_host, str(self.target_port),
             repr(self.one_way), self._counters.name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert self._process.stdout is not None
        line = self._process.stdout.readline().decode().strip()
        if not line.isdigit():
            self.__exit__()
            raise OSError(line or "the delay proxy did not start")
        self.port = int(line)
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the listening socket and every connection at once (a client
        still connected sees its connection drop, as in a failover drill)."""
        if self._process is not None:
            with contextlib.suppress(OSError):
                assert self._process.stdin is not None
                self._process.stdin.close()  # the proxy's signal to stop
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None
        if self._counters is not None:
            self._counters.close()
            self._counters.unlink()
            self._counters = None


# ----------------------------------------------------------------- the proxy process

class _Counters:
    """The turns and open connections, in memory the measuring process reads;
    this process is their only writer."""

    def __init__(self, name: str) -> None:
        self._memory = shared_memory.SharedMemory(name=name)
        # WORKAROUND for https://github.com/python/cpython/issues/82300: attaching
        # registers the memory for removal when this process ends (the measuring
        # process owns and removes it); Python 3.13 has track=False for this
        from multiprocessing import resource_tracker

        resource_tracker.unregister(self._memory._name, "shared_memory")  # type: ignore[attr-defined]
        self._lock = threading.Lock()

    def add(self, index: int, n: int) -> None:
        with self._lock:
            value = struct.unpack_from("q", self._memory.buf, index * 8)[0]
            struct.pack_into("q", self._memory.buf, index * 8, value + n)

    def close(self) -> None:
        self._memory.close()


def _main() -> None:
    host, port, target_host, target_port, one_way, name = sys.argv[1:7]
    try:
        listener = socket.create_server((host, int(port)))
    except OSError as exc:
        print(f"the delay proxy cannot listen on {host}:{port}: {exc}", flush=True)
        return
    counters = _Counters(name)
    sockets: set[socket.socket] = set()
    lock = threading.Lock()

    def add(*socks: socket.socket) -> None:
        with lock:
            sockets.update(socks)

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_connection, daemon=True,
                             args=(client, target_host, int(target_port), float(one_way),
                                   counters, add)).start()

    threading.Thread(target=serve, daemon=True).start()
    print(listener.getsockname()[1], flush=True)
    sys.stdin.buffer.read()  # until the measuring process closes it (or ends)
    listener.close()
    with lock:
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
    counters.close()
    os._exit(0)  # connection threads may still be inside a recv


def _connection(client: socket.socket, target_host: str, target_port: int, one_way: float,
                counters: _Counters, add: Any) -> None:
    counters.add(1, 1)
    try:
        try:
            server = socket.create_connection((target_host, target_port))
        except OSError:
            client.close()
            return
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        add(client, server)
        last = ["server"]  # a new connection's first bytes are a turn
        # the client's first bytes also wait for the TCP handshake a real link
        # costs (SYN, SYN-ACK: one round trip), which the loopback does at once
        ways = [threading.Thread(target=_direction, daemon=True,
                                 args=(client, server, "client", last, one_way, counters,
                                       2 * one_way)),
                threading.Thread(target=_direction, daemon=True,
                                 args=(server, client, "server", last, one_way, counters))]
        for t in ways:
            t.start()
        for t in ways:
            t.join()
        for s in (client, server):
            with contextlib.suppress(OSError):
                s.close()
    finally:
        counters.add(1, -1)


def _direction(src: socket.socket, dst: socket.socket, side: str, last: list[str],
               one_way: float, counters: _Counters, first_extra: float = 0.0) -> None:
    """Read from ``src`` at once; write each chunk to ``dst`` when it is due
    (the first one ``first_extra`` seconds later still)."""
    due: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()

    def deliver() -> None:
        try:
            while True:
                at, data = due.get()
                if not data:
                    break
                wait = at - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            with contextlib.suppress(OSError):
                src.shutdown(socket.SHUT_RDWR)

    sender = threading.Thread(target=deliver, daemon=True)
    sender.start()
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if side == "client" and last[0] == "server":
                counters.add(0, 1)
            last[0] = side
            due.put((time.perf_counter() + one_way + first_extra, data))
            first_extra = 0.0
    except OSError:
        pass
    finally:
        due.put((0.0, b""))
        sender.join()


def through(url: str, proxy: DelayProxy) -> str:
    """``url`` with its host and port replaced by the proxy's (PostgreSQL URLs)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(host=proxy.host, port=proxy.port).render_as_string(
        hide_password=False)
