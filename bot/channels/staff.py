"""Staff API for 12345 hotline staff, served by the Rasa server itself as an input channel.

credentials.yml::

    bot.channels.staff.StaffInput:
      # db_url: postgresql://…        (default: env ZWZX_DB_URL, else sqlite:///build/tracker.db)
      # max_message_chars: 2000       (default: handoff.yml staff.max_message_chars)

Routes (prefix /webhooks/staff), all with `Authorization: Bearer <token>`:

    GET  /tickets?status=waiting|active|callback|closed|cancelled   → {"tickets": [...]}
    GET  /tickets/<id>                                              → {"ticket": ...}
    POST /tickets/<id>/accept                                       → {"ticket": ...}   (409 unless waiting)
    GET  /tickets/<id>/transcript                                   → {"ticket": ..., "events": [...]}
    POST /tickets/<id>/messages  {"text": "..."}                    → {"delivered": bool, "detail"?}
    POST /tickets/<id>/close                                        → {"ticket": ..., "delivered"?: bool, "detail"?}
    GET  /me                                                        → {"name": ..., "role": ...}

Errors are {"error": "<中文说明>"} with 400/401/403/404/409/413 (503 while the model loads).
Accounts: `python -m bot.handoff add-staff NAME --role agent|supervisor`.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Text

from sanic import Blueprint, response
from sanic.exceptions import SanicException
from sanic.request import Request
from sanic.response import HTTPResponse

from rasa.core.channels.channel import InputChannel, UserMessage

from bot.handoff import takeover
from bot.handoff.config import load_config
from bot.handoff.conversation import transcript
from bot.handoff.store import STATUSES
from bot.ops import limits

logger = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def error(status: int, message: str) -> HTTPResponse:
    return response.json({"error": message}, status=status)


def _ticket_id(raw: str) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ApiError(404, f"工单 {raw} 不存在") from None
    if value <= 0:
        raise ApiError(404, f"工单 {raw} 不存在")
    return value


def _bearer(request: Request) -> Optional[str]:
    header = request.headers.get("Authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _json_body(request: Request) -> Dict[str, Any]:
    try:
        body = request.json
    except SanicException:
        raise ApiError(400, "请求体不是合法的 JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "请求体必须是 JSON 对象，例如 {\"text\": \"您好\"}")
    return body


class StaffInput(InputChannel):
    """Authenticated HTTP API for hotline staff (not a chat channel: it never calls the bot)."""

    @classmethod
    def name(cls) -> Text:
        return "staff"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        credentials = credentials or {}
        return cls(db_url=credentials.get("db_url"), max_message_chars=credentials.get("max_message_chars"))

    def __init__(self, db_url: Optional[str] = None, max_message_chars: Optional[int] = None) -> None:
        self.max_message_chars = int(max_message_chars) if max_message_chars else None
        if db_url:
            takeover.configure(db_url)
        takeover.install()

    def message_limit(self) -> int:
        return self.max_message_chars or load_config().max_message_chars

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        staff_api = limits.blueprint_installing_edge()("staff_api", __name__)  # body limits (bot/ops/limits.py)
        run = asyncio.to_thread

        def endpoint(handler):
            """Authenticate, map ApiError to JSON errors, never leak a stack trace."""
            @functools.wraps(handler)
            async def wrapped(request: Request, *args, **kwargs) -> HTTPResponse:
                try:
                    me = await run(takeover.store().authenticate, _bearer(request))
                    if me is None:
                        return error(401, "未登录或令牌无效，请在请求头中提供 Authorization: Bearer <令牌>")
                    return await handler(request, me, *args, **kwargs)
                except ApiError as e:
                    return error(e.status, e.message)
                except Exception:
                    logger.exception("staff API error")
                    return error(500, "服务器内部错误，请稍后重试")
            return wrapped

        def agent_of(request: Request):
            agent = getattr(request.app.ctx, "agent", None)
            if agent is None or not agent.is_ready():
                raise ApiError(503, "机器人模型尚未加载完成，请稍后重试")
            return agent

        async def load_ticket(raw_id: str) -> Dict[str, Any]:
            ticket = await run(takeover.store().get_ticket, _ticket_id(raw_id))
            if ticket is None:
                raise ApiError(404, f"工单 {raw_id} 不存在")
            return ticket

        def may_act(me: Dict[str, Any], ticket: Dict[str, Any]) -> bool:
            return me["role"] == "supervisor" or ticket.get("assignee") == me["name"]

        @staff_api.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @staff_api.route("/me", methods=["GET"])
        @endpoint
        async def whoami(request: Request, me) -> HTTPResponse:
            return response.json(me)

        @staff_api.route("/tickets", methods=["GET"])
        @endpoint
        async def list_tickets(request: Request, me) -> HTTPResponse:
            raw = request.args.get("status")
            statuses = None
            if raw:
                statuses = [s.strip() for s in raw.split(",") if s.strip()]
                bad = [s for s in statuses if s not in STATUSES]
                if bad or not statuses:
                    raise ApiError(400, f"未知的工单状态：{'、'.join(bad) or raw}；可选：{'、'.join(STATUSES)}")
            return response.json({"tickets": await run(takeover.store().list_tickets, statuses)})

        @staff_api.route("/tickets/<ticket_id>", methods=["GET"])
        @endpoint
        async def get_ticket(request: Request, me, ticket_id: str) -> HTTPResponse:
            return response.json({"ticket": await load_ticket(ticket_id)})

        @staff_api.route("/tickets/<ticket_id>/accept", methods=["POST"])
        @endpoint
        async def accept(request: Request, me, ticket_id: str) -> HTTPResponse:
            ticket = await load_ticket(ticket_id)
            if ticket["status"] != "waiting":
                raise ApiError(409, f"工单 {ticket['id']} 当前状态为“{ticket['status']}”，只能接等待中的工单")
            if not await run(takeover.store().accept, ticket["id"], me["name"]):
                raise ApiError(409, f"工单 {ticket['id']} 已被其他工作人员接单")
            return response.json({"ticket": await load_ticket(ticket_id)})

        @staff_api.route("/tickets/<ticket_id>/transcript", methods=["GET"])
        @endpoint
        async def read_transcript(request: Request, me, ticket_id: str) -> HTTPResponse:
            ticket = await load_ticket(ticket_id)
            agent = agent_of(request)
            tracker = await agent.tracker_store.retrieve_full_tracker(ticket["sender_id"])
            events = [e.as_dict() for e in tracker.events] if tracker else []
            return response.json({"ticket": ticket, "events": transcript(events)})

        @staff_api.route("/tickets/<ticket_id>/messages", methods=["POST"])
        @endpoint
        async def send_message(request: Request, me, ticket_id: str) -> HTTPResponse:
            ticket = await load_ticket(ticket_id)
            if ticket["status"] != "active":
                raise ApiError(409, f"工单 {ticket['id']} 当前状态为“{ticket['status']}”，只能在处理中的工单里发消息")
            if not may_act(me, ticket):
                raise ApiError(403, f"工单 {ticket['id']} 由{ticket.get('assignee')}处理，您无权在其中发消息")
            body = _json_body(request)
            text = body.get("text")
            if not isinstance(text, str) or not text.strip():
                raise ApiError(400, "请提供要发送的消息内容 text（非空字符串）")
            limit = self.message_limit()
            if len(text) > limit:
                raise ApiError(413, f"消息有 {len(text)} 个字，超过了 {limit} 字的上限，请分条发送")
            agent = agent_of(request)
            current = await load_ticket(ticket_id)  # closed meanwhile?
            if current["status"] != "active":
                raise ApiError(409, f"工单 {ticket['id']} 已不在处理中")
            delivered, detail = await takeover.post_staff_message(agent, current, text, me["name"])
            out: Dict[str, Any] = {"delivered": delivered}
            if detail:
                out["detail"] = detail
            return response.json(out)

        @staff_api.route("/tickets/<ticket_id>/close", methods=["POST"])
        @endpoint
        async def close(request: Request, me, ticket_id: str) -> HTTPResponse:
            ticket = await load_ticket(ticket_id)
            status = ticket["status"]
            if status in ("closed", "cancelled"):
                raise ApiError(409, f"工单 {ticket['id']} 已经{'关闭' if status == 'closed' else '被市民取消'}")
            if status == "active" and not may_act(me, ticket):
                raise ApiError(403, f"工单 {ticket['id']} 由{ticket.get('assignee')}处理，您无权关闭")
            if status == "waiting" and me["role"] != "supervisor":
                raise ApiError(403, f"工单 {ticket['id']} 尚未接单；请先接单，或由班长（supervisor）关闭")
            agent = agent_of(request) if status in ("waiting", "active") else None
            if not await run(takeover.store().close, ticket["id"], status, me["name"]):
                raise ApiError(409, f"工单 {ticket['id']} 的状态刚刚发生了变化，请刷新后重试")
            out: Dict[str, Any] = {"ticket": await load_ticket(ticket_id)}
            if agent is not None:  # the conversation was paused: the bot takes it back
                delivered, detail = await takeover.resume_after_close(agent, ticket)
                out["delivered"] = delivered  # the "智能助手回来了，请打分" notice
                if detail:
                    out["detail"] = detail
            return response.json(out)

        return staff_api
