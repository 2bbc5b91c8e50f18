"""Async client for the two WeChat server APIs the channel uses:

* ``GET  {base}/cgi-bin/token?grant_type=client_credential&appid=..&secret=..`` — access token,
  cached and refreshed ``refresh_margin`` seconds before it expires, and at once when WeChat
  answers 40001 (invalid token), 40014 (invalid token format) or 42001 (token expired).
  The token lives in a :class:`bot.ops.shared_state.SharedState` (Redis in the production
  profile), refreshed under a cluster-wide lock: one refresh for all servers, not one per
  process (WeChat limits token requests per day, and each refresh retires the previous token);
* ``POST {base}/cgi-bin/message/custom/send?access_token=..`` — customer-service text message.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Optional

import aiohttp

from bot.ops.shared_state import LockTimeout, MemoryState, SharedState

logger = logging.getLogger(__name__)

TOKEN_ERRORS = {40001, 40014, 42001}
ERROR_HINTS = {
    45015: "用户超过48小时未与公众号互动，无法发送客服消息",
    45047: "客服消息下行条数超过上限",
    45002: "消息内容超过长度限制",
    40003: "OpenID 无效",
    48001: "公众号没有该接口权限",
    40164: "调用接口的 IP 不在白名单中",
}


class WeChatAPIError(Exception):
    def __init__(self, errcode: int, errmsg: str):
        super().__init__(f"{errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


@dataclass
class SendResult:
    ok: bool
    errcode: int = 0
    errmsg: str = ""

    @property
    def reason(self) -> str:
        if self.ok:
            return ""
        hint = ERROR_HINTS.get(self.errcode)
        return f"{self.errcode} {self.errmsg}" + (f"（{hint}）" if hint else "")


class WeChatAPIClient:
    def __init__(self, api_base: str, app_id: str, app_secret: str, refresh_margin: float = 300.0,
                 timeout: float = 10.0, state: Optional[SharedState] = None):
        self.api_base = api_base.rstrip("/")
        self.app_id = app_id
        self.app_secret = app_secret
        self.refresh_margin = refresh_margin
        self.timeout = timeout
        # without a shared store the token is this client's own (as one process)
        self.state: SharedState = state if state is not None else MemoryState()
        ident = hashlib.sha256(f"{self.api_base}|{app_id}|{app_secret}".encode()).hexdigest()[:16]
        self._key = f"wechat:token:{app_id}:{ident}"
        self._session: Optional[aiohttp.ClientSession] = None
        self.refreshes = 0  # token requests made by this client (tests, logs)

    @property
    def configured(self) -> bool:
        return bool(self.app_id and self.app_secret)

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def _cached(self) -> Optional[str]:
        raw = await self.state.get(self._key)
        if not raw:
            return None
        try:
            value = json.loads(raw)
            if time.time() < float(value["expires_at"]) - self.refresh_margin:
                return str(value["token"])
        except (ValueError, KeyError, TypeError):
            pass
        return None

    async def invalidate(self, token: Optional[str] = None) -> None:
        """Forget the cached token (only if it is still `token`, when given: another server
        may have stored a fresh one already)."""
        raw = await self.state.get(self._key)
        if raw is None:
            return
        if token is not None:
            try:
                if json.loads(raw).get("token") != token:
                    return
            except ValueError:
                pass
        await self.state.compare_and_delete(self._key, raw)

    async def access_token(self) -> str:
        token = await self._cached()
        if token:
            return token
        # one refresh for the cluster: whoever holds the lock fetches; the others wait for it
        # and then find the new token in the store
        async with self.state.lock(self._key, ttl=self.timeout + 5, timeout=self.timeout + 10):
            token = await self._cached()
            if token:
                return token
            session = await self._http()
            params = {"grant_type": "client_credential", "appid": self.app_id, "secret": self.app_secret}
            self.refreshes += 1
            async with session.get(f"{self.api_base}/cgi-bin/token", params=params) as resp:
                data = await resp.json(content_type=None)
            if not isinstance(data, dict) or not data.get("access_token"):
                errcode = int((data or {}).get("errcode") or -1) if isinstance(data, dict) else -1
                raise WeChatAPIError(errcode, str((data or {}).get("errmsg", "no access_token")))
            token = str(data["access_token"])
            expires_in = float(data.get("expires_in") or 7200)
            await self.state.set(self._key, json.dumps({"token": token, "expires_at": time.time() + expires_in}),
                                 ttl=expires_in)
            logger.info("WeChat access token refreshed, expires in %s s", data.get("expires_in"))
            return token

    async def send_text(self, openid: str, content: str) -> SendResult:
        """Send one customer-service text message; refreshes the token once if WeChat says so."""
        body = json.dumps({"touser": openid, "msgtype": "text", "text": {"content": content}},
                          ensure_ascii=False).encode("utf-8")
        last = SendResult(False, -1, "not sent")
        for attempt in range(2):
            try:
                token = await self.access_token()
                session = await self._http()
                async with session.post(f"{self.api_base}/cgi-bin/message/custom/send",
                                        params={"access_token": token}, data=body,
                                        headers={"Content-Type": "application/json; charset=utf-8"}) as resp:
                    data = await resp.json(content_type=None)
            except WeChatAPIError as e:
                return SendResult(False, e.errcode, e.errmsg)
            except LockTimeout as e:
                return SendResult(False, -1, str(e))
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
                return SendResult(False, -1, f"{type(e).__name__}: {e}")
            errcode = int(data.get("errcode") or 0) if isinstance(data, dict) else -1
            if errcode == 0:
                return SendResult(True)
            last = SendResult(False, errcode, str(data.get("errmsg", "")) if isinstance(data, dict) else "")
            if errcode in TOKEN_ERRORS and attempt == 0:
                logger.info("WeChat says the access token is invalid (%s): fetching a new one", errcode)
                await self.invalidate(token)
                continue
            break
        return last
