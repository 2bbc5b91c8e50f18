"""Web chat widget channel: socket.io for the conversation, plus a few HTTP routes for the
widget itself, all served by the Rasa server under ``/webhooks/widget/``.

Enable it in ``credentials.yml``::

    bot.channels.widget.WidgetInput:
      session_persistence: true
      cors_allowed_origins: []      # same origin only; list portal origins to embed elsewhere

Routes (prefix ``/webhooks/widget``):

* socket.io on ``/socket.io`` (path configurable with ``socketio_path``) — events
  ``session_request`` / ``session_confirm``, ``user_uttered`` (citizen → bot),
  ``bot_uttered`` (bot/staff → citizen), ``turn_done`` (the bot finished a turn) and
  ``widget_error`` (a message was refused, e.g. too long).
* ``GET /``                        health check
* ``GET /demo``                    demo portal page with the widget
* ``GET /static/<file>``           widget files (``web/``): widget.js, widget.css, vendor/…
* ``GET /history/<session_id>``    the conversation so far (text, buttons, answer cards,
                                   staff messages, feedback) for redrawing after a reload
* ``GET /item/<doc>/<n>``          one knowledge-base item with its departments
* ``GET /doc/<doc>``               a document's title, number, issuer and date

Bot messages are emitted as ``bot_uttered`` with ``{"text", "quick_replies": [{"title",
"payload"}], "custom": <answer card>, "timestamp"}`` (any subset); staff messages during a
handoff as ``{"text", "from": "staff", "staff": <name>, "timestamp"}``.
"""
from __future__ import annotations

import json
import logging
import re
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Text

import rasa.core.channels.channel
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncServer

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = ROOT / "web"
SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
DOC_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
STATIC_TYPES = {
    ".js": "application/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
    ".map": "application/json; charset=utf-8",
}
# Keys of the answer card the widget may see (the card is built by bot.answering.cards).
CARD_KEYS = ("kind", "citations", "departments", "candidates", "ticket")
CHANNEL_NAME = "widget"
STAFF_LABEL = "工作人员"


def _error(status: int, message: str) -> HTTPResponse:
    return response.json({"error": message}, status=status,
                         dumps=lambda o: json.dumps(o, ensure_ascii=False))


def _clean_buttons(buttons: Optional[Iterable[Dict[Text, Any]]]) -> List[Dict[Text, Text]]:
    out = []
    for b in buttons or []:
        if isinstance(b, dict) and b.get("title"):
            out.append({"title": str(b["title"]), "payload": str(b.get("payload") or b["title"])})
    return out


def _clean_card(card: Any) -> Optional[Dict[Text, Any]]:
    if not isinstance(card, dict):
        return None
    if "from" in card and card.get("from") == "staff":
        return None
    return {k: card[k] for k in CARD_KEYS if k in card}


class WidgetOutput(OutputChannel):
    """Emits every bot message as one ``bot_uttered`` event to the session's room."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    def __init__(self, sio: AsyncServer, bot_message_evt: Text, namespace: Optional[Text] = None):
        self.sio = sio
        self.bot_message_evt = bot_message_evt
        self.namespace = namespace

    async def _emit(self, recipient_id: Text, payload: Dict[Text, Any]) -> None:
        payload.setdefault("timestamp", time.time())
        await self.sio.emit(self.bot_message_evt, payload, room=recipient_id, namespace=self.namespace)

    async def send_response(self, recipient_id: Text, message: Dict[Text, Any]) -> None:
        payload: Dict[Text, Any] = {}
        if message.get("text"):
            payload["text"] = str(message["text"])
        buttons = _clean_buttons(message.get("quick_replies") or message.get("buttons"))
        if buttons:
            payload["quick_replies"] = buttons
        card = _clean_card(message.get("custom"))
        if card is not None:
            payload["custom"] = card
        if message.get("image"):
            # no HTML rendering of bot-supplied URLs: offer it as a plain link text
            payload["text"] = (payload.get("text", "") + "\n" + str(message["image"])).strip()
        if payload:
            await self._emit(recipient_id, payload)

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        await self._emit(recipient_id, {"text": text})

    async def send_text_with_buttons(self, recipient_id: Text, text: Text,
                                     buttons: List[Dict[Text, Any]], **kwargs: Any) -> None:
        await self._emit(recipient_id, {"text": text, "quick_replies": _clean_buttons(buttons)})

    async def send_quick_replies(self, recipient_id: Text, text: Text,
                                 quick_replies: List[Dict[Text, Any]], **kwargs: Any) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies)

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any],
                               **kwargs: Any) -> None:
        card = _clean_card(json_message)
        if card is not None:
            await self._emit(recipient_id, {"custom": card})

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        await self._emit(recipient_id, {"text": str(image)})

    async def send_attachment(self, recipient_id: Text, attachment: Any, **kwargs: Any) -> None:
        await self._emit(recipient_id, {"text": str(attachment)})


def turns_from_events(events: Iterable[Dict[Text, Any]], limit: int = 300) -> List[Dict[Text, Any]]:
    """The citizen-visible part of a tracker: user, bot and staff turns plus feedback."""
    turns: List[Dict[Text, Any]] = []
    for ev in events:
        kind = ev.get("event")
        ts = ev.get("timestamp")
        meta = ev.get("metadata") or {}
        if kind == "user":
            text = ev.get("text") or ""
            intent = ((ev.get("parse_data") or {}).get("intent") or {}).get("name")
            if intent == "feedback" or text.startswith("/feedback"):
                value = None
                for ent in (ev.get("parse_data") or {}).get("entities") or []:
                    if ent.get("entity") == "feedback":
                        value = ent.get("value")
                if value is None:
                    m = re.search(r'"feedback"\s*:\s*"(\w+)"', text)
                    value = m.group(1) if m else None
                turns.append({"role": "feedback", "value": value, "timestamp": ts})
                continue
            if meta.get("hidden"):
                continue
            display = meta.get("display")
            if text.startswith("/") and not display:
                continue  # a bare payload with nothing readable to show
            turns.append({"role": "user", "text": str(display or text), "timestamp": ts})
        elif kind == "bot":
            data = ev.get("data") or {}
            staff = meta.get("staff") or data.get("staff") or \
                ((data.get("custom") or {}).get("staff") if isinstance(data.get("custom"), dict) else None)
            is_staff = bool(staff) or meta.get("from") == "staff" or \
                (isinstance(data.get("custom"), dict) and data["custom"].get("from") == "staff")
            if is_staff:
                if ev.get("text"):
                    turns.append({"role": "staff", "text": ev["text"], "staff": str(staff or STAFF_LABEL),
                                  "timestamp": ts})
                continue
            turn: Dict[Text, Any] = {"role": "bot", "timestamp": ts}
            if ev.get("text"):
                turn["text"] = ev["text"]
            buttons = _clean_buttons(data.get("buttons") or data.get("quick_replies"))
            if buttons:
                turn["quick_replies"] = buttons
            card = _clean_card(data.get("custom"))
            if card is not None:
                turn["custom"] = card
            if len(turn) > 2:
                turns.append(turn)
    return turns[-limit:]


class WidgetInput(SocketIOInput):
    """socket.io channel for the web chat widget (see module docstring)."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        credentials = credentials or {}
        return cls(
            credentials.get("user_message_evt", "user_uttered"),
            credentials.get("bot_message_evt", "bot_uttered"),
            credentials.get("namespace"),
            credentials.get("session_persistence", True),
            credentials.get("socketio_path", "/socket.io"),
            credentials.get("jwt_key"),
            credentials.get("jwt_method", "HS256"),
            credentials.get("metadata_key", "metadata"),
            cors_allowed_origins=credentials.get("cors_allowed_origins"),
            max_message_length=int(credentials.get("max_message_length", 500)),
            web_dir=credentials.get("web_dir"),
        )

    def __init__(self, *args: Any, cors_allowed_origins: Any = None, max_message_length: int = 500,
                 web_dir: Optional[Text] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # None or [] → only the server's own origin; "*" → any; list → those origins.
        if cors_allowed_origins in (None, [], ""):
            self.cors_allowed_origins: Any = None
        elif isinstance(cors_allowed_origins, str):
            self.cors_allowed_origins = cors_allowed_origins if cors_allowed_origins == "*" \
                else [cors_allowed_origins]
        else:
            self.cors_allowed_origins = [str(o).rstrip("/") for o in cors_allowed_origins]
        self.max_message_length = max_message_length
        self.web_dir = Path(web_dir).resolve() if web_dir else WEB_DIR.resolve()

    def get_output_channel(self) -> Optional[OutputChannel]:
        if self.sio is None:
            return super().get_output_channel()
        return WidgetOutput(self.sio, self.bot_message_evt, self.namespace)

    # ------------------------------------------------------------------ helpers
    def _cors_headers(self, request: Request) -> Dict[Text, Text]:
        origin = request.headers.get("origin")
        if not origin:
            return {}
        if self.cors_allowed_origins == "*" or (
                isinstance(self.cors_allowed_origins, list) and origin.rstrip("/") in self.cors_allowed_origins):
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        return {}

    def _json(self, request: Request, body: Any, status: int = 200) -> HTTPResponse:
        headers = self._cors_headers(request)
        headers["Cache-Control"] = "no-store"
        return response.json(body, status=status, headers=headers,
                             dumps=lambda o: json.dumps(o, ensure_ascii=False))

    def _room_has_clients(self, room: Text) -> bool:
        try:
            return any(True for _ in self.sio.manager.get_participants(self.namespace or "/", room))
        except Exception:  # pragma: no cover - internal API changed
            return True

    async def deliver_staff_message(self, sender_id: Text, text: Text, staff_name: Optional[Text]) -> bool:
        """Handoff delivery (bot.handoff.delivery): push a staff member's message — or, with
        ``staff_name`` None, the bot's own notice when staff close the ticket — to the
        citizen's widget. True when at least one widget of that session is connected (the
        message is in the tracker anyway and shows in the history after a reload)."""
        if self.sio is None:
            return False
        if staff_name:
            payload = {"text": str(text), "from": "staff", "staff": str(staff_name)}
        else:
            # The tracker has the full message (e.g. rating buttons): the widget re-reads its history.
            payload = {"text": str(text), "from": "bot", "push": True}
        payload["timestamp"] = time.time()
        await self.sio.emit(self.bot_message_evt, payload, room=sender_id, namespace=self.namespace)
        return self._room_has_clients(sender_id)

    def _install_handoff(self) -> None:
        try:
            from bot.handoff import delivery, takeover  # issue 3 (handoff); optional
        except ImportError:
            logger.info("bot.handoff 不可用：网页组件不支持人工转接消息推送。")
            return
        try:
            takeover.install()  # pause the bot while staff handle the conversation
            delivery.register(CHANNEL_NAME, self.deliver_staff_message)
        except Exception:  # pragma: no cover
            logger.exception("网页组件接入人工转接失败")

    def _static(self, rel: Text, extra_headers: Optional[Dict[Text, Text]] = None) -> HTTPResponse:
        try:
            path = (self.web_dir / rel).resolve()
            path.relative_to(self.web_dir)
        except (ValueError, OSError):
            return _error(404, "文件不存在")
        if not path.is_file() or path.suffix not in STATIC_TYPES:
            return _error(404, "文件不存在")
        headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        headers.update(extra_headers or {})
        return response.raw(path.read_bytes(), content_type=STATIC_TYPES[path.suffix], headers=headers)

    @staticmethod
    def _clean_metadata(metadata: Any) -> Dict[Text, Any]:
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except ValueError:
                metadata = {}
        if not isinstance(metadata, dict):
            return {}
        out: Dict[Text, Any] = {}
        if isinstance(metadata.get("display"), str) and metadata["display"].strip():
            out["display"] = metadata["display"][:100]
        if metadata.get("hidden") is True:
            out["hidden"] = True
        return out

    # ---------------------------------------------------------------- blueprint
    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        sio = AsyncServer(async_mode="sanic", cors_allowed_origins=self.cors_allowed_origins)
        bp = SocketBlueprint(sio, self.socketio_path, "widget_webhook", __name__)
        self.sio = sio
        self._install_handoff()
        ns = self.namespace

        @bp.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return self._json(request, {"status": "ok"})

        @bp.route("/demo", methods=["GET"])
        async def demo(_: Request) -> HTTPResponse:
            csp = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                   "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'self'")
            return self._static("demo.html", {"Content-Security-Policy": csp})

        @bp.route("/static/<filename:path>", methods=["GET"])
        async def static(_: Request, filename: Text) -> HTTPResponse:
            return self._static(filename)

        @bp.route("/history/<session_id>", methods=["GET"])
        async def history(request: Request, session_id: Text) -> HTTPResponse:
            if not SESSION_ID_RE.match(session_id):
                return self._json(request, {"error": "会话编号格式不正确"}, 400)
            agent = getattr(request.app.ctx, "agent", None)
            if agent is None or agent.tracker_store is None:
                return self._json(request, {"error": "服务尚未就绪，请稍后再试"}, 503)
            tracker = await agent.tracker_store.retrieve_full_tracker(session_id)
            events = [e.as_dict() for e in tracker.events] if tracker else []
            return self._json(request, {"session_id": session_id, "turns": turns_from_events(events)})

        @bp.route("/item/<doc>/<number>", methods=["GET"])
        async def item(request: Request, doc: Text, number: Text) -> HTTPResponse:
            if not DOC_ID_RE.match(doc) or not number.isdigit():
                return self._json(request, {"error": "条目编号格式不正确"}, 400)
            try:
                from bot.kb.store import load_kb
                kb = load_kb()
            except (FileNotFoundError, ValueError):
                return self._json(request, {"error": "知识库尚未构建，请稍后再试"}, 503)
            document = kb.document(doc)
            it = kb.item(doc, int(number)) if document else None
            if it is None:
                return self._json(request, {"error": "未找到该条目"}, 404)
            return self._json(request, {
                "doc": doc, "item": it.number, "label": it.label, "title": it.title, "body": it.body,
                "doc_title": document.title, "doc_number": document.doc_number,
                "lead_units": list(it.lead_units), "responsible_units": list(it.responsible_units),
            })

        @bp.route("/doc/<doc>", methods=["GET"])
        async def doc_info(request: Request, doc: Text) -> HTTPResponse:
            if not DOC_ID_RE.match(doc):
                return self._json(request, {"error": "文件编号格式不正确"}, 400)
            try:
                from bot.kb.store import load_kb
                kb = load_kb()
            except (FileNotFoundError, ValueError):
                return self._json(request, {"error": "知识库尚未构建，请稍后再试"}, 503)
            document = kb.document(doc)
            if document is None:
                return self._json(request, {"error": "未找到该文件"}, 404)
            return self._json(request, {
                "doc": doc, "title": document.title, "doc_number": document.doc_number,
                "issuer": document.issuer, "date": document.date, "items": len(document.items),
            })

        # -------------------------------------------------------------- socket.io
        @sio.on("connect", namespace=ns)
        async def connect(sid: Text, environ: Dict, auth: Optional[Dict] = None) -> bool:
            if self.jwt_key:
                payload = None
                if auth and auth.get("token"):
                    payload = rasa.core.channels.channel.decode_bearer_token(
                        auth.get("token"), self.jwt_key, self.jwt_algorithm)
                return bool(payload)
            return True

        async def join(sid: Text, session_id: Text) -> None:
            await sio.save_session(sid, {"session_id": session_id}, namespace=ns)
            entered = sio.enter_room(sid, session_id, namespace=ns)
            if hasattr(entered, "__await__"):
                await entered

        @sio.on("session_request", namespace=ns)
        async def session_request(sid: Text, data: Optional[Dict] = None) -> None:
            requested = (data or {}).get("session_id") if isinstance(data, dict) else None
            session_id = requested if isinstance(requested, str) and SESSION_ID_RE.match(requested) \
                else uuid.uuid4().hex
            await join(sid, session_id)
            await sio.emit("session_confirm", session_id, room=sid, namespace=ns)

        @sio.on(self.user_message_evt, namespace=ns)
        async def handle_message(sid: Text, data: Any) -> None:
            if not isinstance(data, dict):
                return
            session = await sio.get_session(sid, namespace=ns) or {}
            session_id = session.get("session_id")
            if not session_id:
                requested = data.get("session_id")
                if not (isinstance(requested, str) and SESSION_ID_RE.match(requested)):
                    await sio.emit("widget_error", {"text": "会话尚未建立，请刷新页面后重试。"},
                                   room=sid, namespace=ns)
                    return
                session_id = requested
                await join(sid, session_id)
            text = data.get("message")
            if not isinstance(text, str) or not text.strip():
                return
            text = text.strip()
            if len(text) > self.max_message_length:
                await sio.emit("widget_error", {
                    "text": f"您的消息超过了{self.max_message_length}字的长度限制，请精简后重新发送。"},
                    room=sid, namespace=ns)
                return
            output = WidgetOutput(sio, self.bot_message_evt, ns)
            message = UserMessage(text, output, session_id, input_channel=self.name(),
                                  metadata=self._clean_metadata(data.get(self.metadata_key)))
            try:
                await on_new_message(message)
            except Exception:
                logger.exception("处理网页组件消息失败")
                await sio.emit(self.bot_message_evt, {
                    "text": "抱歉，系统暂时无法处理您的消息，请稍后再试，或拨打12345政务服务便民热线。",
                    "timestamp": time.time()}, room=session_id, namespace=ns)
            finally:
                await sio.emit("turn_done", {"timestamp": time.time()}, room=session_id, namespace=ns)

        return bp
