"""REST channel (`POST /webhooks/rest/webhook`, unchanged contract) plus the outbox a REST
client polls for messages that arrive outside its own request/response turns — staff replies
during a handoff and the bot's "人工服务已结束" notice:

    GET /webhooks/rest/outbox/<sender_id>?since=<unix timestamp>
      → {"messages": [{"text", "from": "staff", "staff": NAME, "time"},
                      {"text", "from": "bot", "time", "buttons"?}]}

Pass the `time` of the last message received as `since` on the next poll. The messages are
read from the tracker store, so nothing is lost if the client is offline for a while.

Enabled in credentials.yml as `bot.channels.rest.RestInput:` (replaces `rest:`); name() is
still "rest", so the URLs stay the same. Malformed requests get a 400 JSON error in Chinese
instead of Rasa's 500.

Retries: a client may give a message its own id, ``{"sender", "message", "message_id": "<uuid>"}``
(8–64 characters ``A–Z a–z 0–9 _ - . :``). Sending it again with the same id — after a 502/503, a
timeout or a dropped connection — never processes it twice: the reply of the first attempt comes
back (header ``X-Zwzx-Replayed: 1``), or the retry waits for the attempt still being answered, on
any server (bot/ops/idempotency.py). Without a message_id every request is a new message.
"""
from __future__ import annotations

import copy
import inspect
import logging
import math
from asyncio import CancelledError
from typing import Any, Awaitable, Callable, Dict, Optional, Text, Union

from sanic import Blueprint, response
from sanic.exceptions import SanicException
from sanic.request import Request
from sanic.response import HTTPResponse, ResponseStream

import rasa.utils.endpoints
from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from rasa.core.channels.rest import RestInput as RasaRestInput

from bot.handoff import delivery, takeover
from bot.handoff.conversation import outbox
from bot.ops import idempotency, limits

logger = logging.getLogger(__name__)


BUSY_RETRY_TEXT = "您的这条消息仍在处理中，请稍后用同一 message_id 重新发送。"


def error(status: int, message: str) -> HTTPResponse:
    return response.json({"error": message}, status=status)


async def deliver_to_outbox(sender_id: str, text: str, staff_name: Optional[str]) -> bool:
    """REST citizens pick staff messages up from the outbox (they are already in the tracker)."""
    return True


class RestInput(RasaRestInput):
    @classmethod
    def name(cls) -> Text:
        return "rest"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        return cls(db_url=(credentials or {}).get("db_url"))

    def __init__(self, db_url: Optional[str] = None) -> None:
        if db_url:
            takeover.configure(db_url)
        takeover.install()
        delivery.register(self.name(), deliver_to_outbox)
        self.message_ids = idempotency.MessageIds(self.name())

    async def _handle(self, request: Request, on_new_message: Callable[[UserMessage], Awaitable[None]],
                      sender_id: str, text: str, input_channel: str,
                      metadata: Optional[Dict[str, Any]],
                      message_id: Optional[str] = None) -> Union[ResponseStream, HTTPResponse]:
        if message_id is None and rasa.utils.endpoints.bool_arg(request, "stream", default=False):
            if not limits.is_too_long(text):
                return response.stream(
                    self.stream_response(on_new_message, text, sender_id, input_channel, metadata),
                    content_type="text/event-stream")
        agent = getattr(request.app.ctx, "agent", None)
        collector = CollectingOutputChannel()

        async def process() -> Optional[list]:
            if limits.is_too_long(text):
                await limits.refuse_too_long(agent, sender_id, text, collector, input_channel, metadata)
                return collector.messages
            try:
                await on_new_message(UserMessage(text, collector, sender_id, input_channel=input_channel,
                                                 metadata=metadata, message_id=message_id))
            except CancelledError:
                logger.error("rest message timed out: %s", copy.deepcopy(text)[:100])
                return None
            except Exception:
                logger.exception("rest message failed: %s", copy.deepcopy(text)[:100])
                return None
            from bot.ops.rasa_app import message_failed

            return None if message_failed() else collector.messages

        if message_id is None:
            await process()
            return response.json(collector.messages)

        async def stored() -> Optional[list]:
            return await idempotency.stored_reply(getattr(agent, "tracker_store", None), sender_id, message_id,
                                                  CollectingOutputChannel, lambda out: out.messages)

        outcome = await self.message_ids.handle(sender_id, message_id, process, stored)
        if outcome.status == "busy":
            return limits.json_error(503, BUSY_RETRY_TEXT, {"Retry-After": "2"})
        if outcome.status == "replayed":
            return response.json(outcome.messages, headers={"X-Zwzx-Replayed": "1"})
        # processed, or failed (the production profile turns a failure into 503: bot/ops/rasa_app.py)
        return response.json(collector.messages)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[None]]) -> Blueprint:
        module = inspect.getmodule(self)
        # registering it installs the edge limits on the app (bot/ops/limits.py): body size,
        # per-address rate limit and body pace (408 for a trickle) before the handlers below run
        webhook = limits.blueprint_installing_edge()("custom_webhook_{}".format(type(self).__name__),
                                                    module.__name__ if module else None)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> Union[ResponseStream, HTTPResponse]:
            try:
                body = request.json
            except SanicException:
                return error(400, "请求体不是合法的 JSON")
            if not isinstance(body, dict):
                return error(400, "请求体必须是 JSON 对象：{\"sender\": \"会话编号\", \"message\": \"问题\"}")
            sender_id = body.get("sender")
            if isinstance(sender_id, int) and not isinstance(sender_id, bool):
                sender_id = str(sender_id)
            if not isinstance(sender_id, str) or not sender_id.strip() or len(sender_id) > 255:
                return error(400, "缺少会话编号 sender（不超过255个字符的字符串）")
            text = body.get("message")
            if text is None:
                text = ""  # a blank message: the NLU routes it to nlu_fallback, which asks for a question
            if not isinstance(text, str):
                return error(400, "message 必须是字符串")
            metadata = body.get("metadata")
            if metadata is not None and not isinstance(metadata, dict):
                return error(400, "metadata 必须是 JSON 对象")
            input_channel = body.get("input_channel") or self.name()
            if not isinstance(input_channel, str):
                return error(400, "input_channel 必须是字符串")
            message_id = body.get("message_id")
            if message_id is not None and not idempotency.valid(message_id):
                return error(400, idempotency.INVALID_TEXT)

            # bounded work before any NLU: per-sender rate limit, messages of this conversation
            # already in flight, then the message length
            client = limits.request_client(request)
            verdict = await limits.check_sender(self.name(), sender_id, client)
            if not verdict.allowed:
                return limits.json_error(429, limits.too_many_text(verdict),
                                         {"Retry-After": verdict.retry_after_header})
            if not limits.enter_conversation(self.name(), sender_id, client):
                return limits.json_error(429, limits.BUSY_CONVERSATION_TEXT, {"Retry-After": "1"})
            try:
                return await self._handle(request, on_new_message, sender_id, text, input_channel, metadata,
                                          message_id)
            finally:
                limits.leave_conversation(self.name(), sender_id)

        @webhook.route("/outbox/<sender_id>", methods=["GET"])
        async def poll_outbox(request: Request, sender_id: str) -> HTTPResponse:
            raw = request.args.get("since", "0")
            try:
                since = float(raw)
            except ValueError:
                return error(400, "since 必须是 Unix 时间戳（秒，可带小数）")
            if math.isnan(since) or math.isinf(since):
                return error(400, "since 必须是有限的 Unix 时间戳")
            agent = getattr(request.app.ctx, "agent", None)
            if agent is None or not agent.is_ready():
                return error(503, "机器人模型尚未加载完成，请稍后重试")
            tracker = await agent.tracker_store.retrieve_full_tracker(sender_id)
            events = [e.as_dict() for e in tracker.events] if tracker else []
            return response.json({"messages": outbox(events, since)})

        return webhook
