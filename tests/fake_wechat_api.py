"""A local stand-in for the WeChat server API (api.weixin.qq.com), for tests and manual runs.

* ``GET /cgi-bin/token?grant_type=client_credential&appid=..&secret=..`` issues access tokens
  (``expires_in`` configurable); a wrong AppID/AppSecret gets errcode 40013/40125.
* ``POST /cgi-bin/message/custom/send?access_token=..`` records text messages. It checks the
  token (40001 if unknown, 42001 if expired), the 2048-byte text limit (45002) and the 48-hour
  window for users listed in ``expired_users`` (45015). ``fail_next(40001)`` makes the next send
  fail once with that code and forgets all tokens, like a token revoked by another client.

Run it alone: ``python tests/fake_wechat_api.py --port 5507 --appid wx123 --secret s3cret``.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import threading
import time
from typing import Any, Dict, List, Optional

from aiohttp import web


class _ThreadedServer:
    """Serves ``_app()`` on host:port from a daemon thread with its own event loop."""

    thread_name = "aiohttp-server"

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._started = threading.Event()
        self._error: Optional[BaseException] = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _app(self) -> web.Application:
        raise NotImplementedError

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self._app())
        try:
            self._loop.run_until_complete(runner.setup())
            self._loop.run_until_complete(web.TCPSite(runner, self.host, self.port).start())
        except BaseException as e:  # e.g. the port is taken: start() reports it
            self._error = e
            self._started.set()
            self._loop.close()
            return
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    def start(self):
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        if not self._started.wait(10) or self._error is not None:
            raise RuntimeError(f"{self.thread_name} did not start on {self.base_url}: "
                               f"{self._error or 'timeout'}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._error is None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)


class FakeWeChatAPI(_ThreadedServer):
    thread_name = "fake WeChat API"

    def __init__(self, app_id: str, app_secret: str, host: str = "127.0.0.1", port: int = 5507,
                 expires_in: int = 7200):
        super().__init__(host, port)
        self.app_id, self.app_secret = app_id, app_secret
        self.expires_in = expires_in
        self.lock = threading.Lock()
        self.messages: List[Dict[str, Any]] = []     # accepted customer-service messages
        self.rejected: List[Dict[str, Any]] = []     # refused sends with their errcode
        self.token_requests = 0
        self.tokens: Dict[str, float] = {}           # token -> expiry time
        self.expired_users: set = set()
        self._fail_next: List[int] = []
        self._counter = itertools.count(1)

    # ---------------------------------------------------------------- control (test side)
    def fail_next(self, errcode: int) -> None:
        with self.lock:
            self._fail_next.append(errcode)

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()
            self.rejected.clear()
            self._fail_next.clear()
            self.expired_users.clear()
            self.token_requests = 0

    def messages_to(self, openid: str) -> List[str]:
        with self.lock:
            return [m["text"]["content"] for m in self.messages if m.get("touser") == openid]

    def wait_for(self, openid: str, count: int = 1, timeout: float = 30.0) -> List[str]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.messages_to(openid)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        return self.messages_to(openid)

    # ---------------------------------------------------------------- handlers
    async def token(self, request: web.Request) -> web.Response:
        q = request.query
        with self.lock:
            self.token_requests += 1
            if q.get("grant_type") != "client_credential":
                return web.json_response({"errcode": 40002, "errmsg": "invalid grant_type"})
            if q.get("appid") != self.app_id:
                return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
            if q.get("secret") != self.app_secret:
                return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
            token = f"FAKE-TOKEN-{next(self._counter)}"
            self.tokens[token] = time.time() + self.expires_in
            return web.json_response({"access_token": token, "expires_in": self.expires_in})

    async def custom_send(self, request: web.Request) -> web.Response:
        token = request.query.get("access_token", "")
        raw = await request.read()
        with self.lock:
            try:
                body = json.loads(raw.decode("utf-8"))
            except ValueError:
                return web.json_response({"errcode": 47001, "errmsg": "data format error"})
            record = {"token": token, "body": body}
            if self._fail_next:
                code = self._fail_next.pop(0)
                if code in (40001, 42001):
                    self.tokens.clear()
                self.rejected.append(dict(record, errcode=code))
                return web.json_response({"errcode": code, "errmsg": "fake failure"})
            expiry = self.tokens.get(token)
            if expiry is None:
                self.rejected.append(dict(record, errcode=40001))
                return web.json_response({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"})
            if expiry < time.time():
                self.rejected.append(dict(record, errcode=42001))
                return web.json_response({"errcode": 42001, "errmsg": "access_token expired"})
            if body.get("msgtype") != "text" or not isinstance(body.get("text"), dict):
                return web.json_response({"errcode": 40008, "errmsg": "invalid message type"})
            content = body["text"].get("content", "")
            if len(content.encode("utf-8")) > 2048:
                self.rejected.append(dict(record, errcode=45002))
                return web.json_response({"errcode": 45002, "errmsg": "content size out of limit"})
            if body.get("touser") in self.expired_users:
                self.rejected.append(dict(record, errcode=45015))
                return web.json_response({"errcode": 45015, "errmsg": "response out of time limit"})
            self.messages.append(dict(body, received_at=time.time()))
            return web.json_response({"errcode": 0, "errmsg": "ok"})

    # ---------------------------------------------------------------- lifecycle
    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self.token)
        app.router.add_post("/cgi-bin/message/custom/send", self.custom_send)
        return app


class DelayProxy(_ThreadedServer):
    """HTTP proxy in front of the action server that can hold every request for ``delay``
    seconds: makes the bot genuinely slow for the 5-second-rule tests without touching the bot."""

    thread_name = "delay proxy"

    def __init__(self, target: str, host: str = "127.0.0.1", port: int = 5508):
        super().__init__(host, port)
        self.target = target.rstrip("/")
        self.delay = 0.0

    async def forward(self, request: web.Request) -> web.Response:
        import aiohttp
        body = await request.read()
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        async with aiohttp.ClientSession() as session:
            async with session.request(request.method, self.target + request.path_qs, data=body,
                                       headers={"Content-Type": request.headers.get("Content-Type",
                                                                                    "application/json")}) as resp:
                data = await resp.read()
                return web.Response(body=data, status=resp.status,
                                    content_type=resp.content_type or "application/json")

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.forward)
        return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5507)
    ap.add_argument("--appid", default="wx0000000000000000")
    ap.add_argument("--secret", default="test-secret")
    a = ap.parse_args()
    fake = FakeWeChatAPI(a.appid, a.secret, a.host, a.port).start()
    print(f"fake WeChat API on {fake.base_url} (Ctrl-C stops)")
    try:
        while True:
            time.sleep(2)
            with fake.lock:
                for m in fake.messages:
                    if not m.get("_printed"):
                        m["_printed"] = True
                        print(json.dumps({"touser": m["touser"], "text": m["text"]["content"]}, ensure_ascii=False))
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
