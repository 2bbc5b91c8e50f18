"""The handoff queue, through the staff HTTP API that the Rasa server serves under
/webhooks/staff/ (bot/channels/staff.py). The console adds no second implementation of
accepting, replying or closing: it forwards each request with the logged-in staff member's
own staff token, so the API's rules (409 when someone else accepted first, only the assignee
or a supervisor may reply/close, the citizen's conversation resumes on close) apply as-is and
the tracker records the staff member's real name."""
from __future__ import annotations

import asyncio
import json
import os
from typing import Any, Dict, Optional, Tuple

import aiohttp

DEFAULT_RASA_URL = "http://127.0.0.1:5005"
QUEUE_STATUSES = ("waiting", "active", "callback")


def rasa_url() -> str:
    return (os.environ.get("ZWZX_RASA_URL") or DEFAULT_RASA_URL).rstrip("/")


async def call(method: str, path: str, token: Optional[str], body: Optional[Dict[str, Any]] = None,
               base_url: Optional[str] = None, timeout: float = 15.0) -> Tuple[int, Dict[str, Any]]:
    """(status, JSON body) of a staff-API call; connection problems become 502/504 with a
    Chinese message."""
    if not token:
        return 403, {"error": "您的控制台账号没有关联人工转接系统的工作人员令牌，请联系管理员重新创建账号"}
    url = f"{(base_url or rasa_url())}/webhooks/staff{path}"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.request(method, url, headers=headers,
                                       json=body if body is not None else None) as resp:
                raw = await resp.text()
                try:
                    data = json.loads(raw) if raw else {}
                except ValueError:
                    data = {}
                if not isinstance(data, dict):
                    data = {"data": data}
                if resp.status == 404 and "error" not in data:
                    data = {"error": "机器人服务没有开放人工转接接口（/webhooks/staff/），请在 credentials.yml 中启用 "
                                     "bot.channels.staff.StaffInput"}
                elif resp.status >= 400 and "error" not in data:
                    data = {"error": f"人工转接接口返回错误（HTTP {resp.status}）"}
                return resp.status, data
    except asyncio.TimeoutError:
        return 504, {"error": "机器人服务响应超时，请稍后重试"}
    except aiohttp.ClientError:
        return 502, {"error": f"无法连接机器人服务（{base_url or rasa_url()}），请确认 Rasa 服务已启动"}
