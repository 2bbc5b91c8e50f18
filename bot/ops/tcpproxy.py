"""A small TCP proxy for fault drills: point the profile's ZWZX_PG_PORT (or Redis) at it,
then ``down()`` to make the database unreachable (listener closed, open connections reset)
and ``up()`` to bring it back — without touching the shared database server.

    proxy = TCPProxy(5790, "127.0.0.1", 5432).start()
    proxy.down(); ...; proxy.up(); proxy.close()

    python -m bot.ops.tcpproxy 5790 127.0.0.1 5432   # run until Ctrl-C
"""
from __future__ import annotations

import asyncio
import sys
import threading
from typing import Optional, Set


class TCPProxy:
    def __init__(self, listen_port: int, target_host: str, target_port: int, listen_host: str = "127.0.0.1"):
        self.listen_host, self.listen_port = listen_host, listen_port
        self.target_host, self.target_port = target_host, target_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcpproxy", daemon=True)
        self._server: Optional[asyncio.base_events.Server] = None
        self._writers: Set[asyncio.StreamWriter] = set()
        self.connections = 0

    # -- public, thread-safe -------------------------------------------------------------
    def start(self) -> "TCPProxy":
        self._thread.start()
        self.up()
        return self

    def up(self) -> None:
        self._call(self._up())

    def down(self) -> None:
        self._call(self._down())

    def close(self) -> None:
        if self._thread.is_alive():
            self._call(self._down())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    @property
    def is_up(self) -> bool:
        return self._server is not None

    # -- internals -----------------------------------------------------------------------
    def _call(self, coro) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _up(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, self.listen_host, self.listen_port)

    async def _down(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort() if writer.transport else None

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            client_w.transport.abort()
            return
        self.connections += 1
        pair = {client_w, server_w}
        self._writers |= pair
        try:
            await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))
        finally:
            self._writers -= pair


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        print("usage: python -m bot.ops.tcpproxy LISTEN_PORT TARGET_HOST TARGET_PORT", file=sys.stderr)
        return 2
    proxy = TCPProxy(int(args[0]), args[1], int(args[2])).start()
    print(f"proxy 127.0.0.1:{args[0]} -> {args[1]}:{args[2]} (Ctrl-C stops)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    proxy.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
