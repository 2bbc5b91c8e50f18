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
* ``GET /history/<session_id>?token=<session token>``  the conversation so far (text, buttons,
                                   answer cards, staff messages, feedback) for redrawing after a
                                   reload — only with the session's signed token
* ``GET /item/<doc>/<n>``          one knowledge-base item with its departments
* ``GET /doc/<doc>``               a document's title, number, issuer and date

Sessions are signed (bot/ops/widget_session.py): with ``session_confirm`` the server emits
``session_token`` ``{"session_id", "token"}``; a client resumes a session (``session_request``
``{"session_id", "session_token"}``), sends on a socket that has not joined one
(``user_uttered`` with ``session_id`` + ``session_token``) and reads its history only with a
valid token — otherwise it gets a new session (or 403 for the history). Staff messages go to the
session's room, which only sockets with a valid token join.

Bot messages are emitted as ``bot_uttered`` with ``{"text", "quick_replies": [{"title",
"payload"}], "custom": <answer card>}`` (any subset) and ``"metadata": {"timestamp"}``; staff
messages during a handoff as ``{"text", "metadata": {"from": "staff", "staff": <name>,
"timestamp"}}``. Only Rasa's own message keys are at the top level, as in Rasa's socket.io
channel, so that rasa-webchat (which classifies a message by its exact top-level keys) shows
the text and the quick replies too.

A ``user_uttered`` may carry the client's own ``message_id`` (8–64 characters ``A–Z a–z 0–9 _ - . :``):
the widget gives every message one and, after a reconnect, sends a message again whose
``turn_done`` it never got (its server died mid-turn). A message id is processed once on any
server (bot/ops/idempotency.py): sent again, the socket gets the recorded reply and
``turn_done`` ``{"message_id", "replayed": true}``; ``turn_done`` and ``widget_error`` of a
message with an id carry that id.

A user message shows as what the server decides (bot.user_display), not as the client's
``metadata.display``; every ``user_uttered`` ends with the bot's replies then ``turn_done``, or
``widget_error`` then ``turn_done``, also for frames above engine.io's limit.
"""
from __future__ import annotations

import asyncio
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
import engineio
from socketio import AsyncServer

from bot.ops.widget_session import SessionSigner
from bot.user_display import MAX_TITLE, OfferedButtons
from bot.ops import idempotency, limits

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
BUSY_TEXT = "抱歉，系统暂时无法处理您的消息，请稍后再试，或拨打12345政务服务便民热线。"
STAFF_LABEL = "工作人员"
# A frame above the engine.io limit reaches the socket.io layer as this event instead (see
# _WidgetEngineServer); the channel answers it with widget_error (+ turn_done).
OVERSIZED_EVT = "widget_oversized_frame"
# Largest websocket frame read at all (then answered with widget_error); beyond it the websockets
# library closes the connection (code 1009) and the client reconnects.
DEFAULT_WEBSOCKET_MAX_SIZE = 16 * 2 ** 20
_SIO_EVENT_HEAD = re.compile(r'4[2]((?:/[^,\[\]"]{0,200},)?)(\d{0,18})\["((?:[^"\\]|\\.){1,100})"')


def frame_limit(max_message_length: int) -> int:
    """Engine.io `max_http_buffer_size` just above the largest allowed `user_uttered` frame:
    the message and a button title (`display`) at 12 characters per code point (JSON's
    \\uXXXX escape of a surrogate pair — python-socketio escapes every non-ASCII character; in
    UTF-8 a code point is at most 4 bytes) plus 1 KB for the session id, the other metadata and
    the JSON around them."""
    return 12 * (max_message_length + MAX_TITLE) + 1024


def _oversized_replacement(data: str) -> str:
    """The engine.io packet that stands in for an oversized text frame: a socket.io event
    OVERSIZED_EVT in the same namespace (with the same ack id) naming the event that was sent."""
    m = _SIO_EVENT_HEAD.match(data, 0, 400)
    namespace, ack, event = (m.group(1), m.group(2), m.group(3)) if m else ("", "", None)
    if event is not None:
        try:
            event = json.loads(f'"{event}"')
        except ValueError:
            event = None
    return "42" + namespace + ack + json.dumps([OVERSIZED_EVT, {"event": event, "size": len(data)}])


def _shrink_polling_body(body: Text, limit: int) -> Text:
    """Replace the largest packets of a long-polling POST body (packets separated by \\x1e) by
    their stand-ins until the body fits the limit."""
    packets = body.split("\x1e")
    sizes = sorted(((len(p.encode("utf-8")), i) for i, p in enumerate(packets)), reverse=True)
    total = len(body.encode("utf-8"))
    for size, i in sizes:
        if total <= limit:
            break
        packets[i] = _oversized_replacement(packets[i])
        total += len(packets[i].encode("utf-8")) - size
    return "\x1e".join(packets)


class _Payload:
    """`wsgi.input` of a rewritten long-polling body (as engineio's sanic driver has it)."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    async def read(self, length: Optional[int] = None) -> bytes:
        if length is None:
            out, self.payload = self.payload, b""
        else:
            out, self.payload = self.payload[:length], self.payload[length:]
        return out


class _WidgetEngineServer(engineio.AsyncServer):
    """engine.io server that answers frames above `max_http_buffer_size` instead of dropping the
    connection. python-engineio 4.x closes the websocket on such a frame (`ValueError('packet is
    too large')` in AsyncSocket._websocket_handler) and disconnects a long-polling client whose
    POST is too long (ContentTooLongError). Here an oversized text frame / polling packet is
    replaced, before engine.io sees it, by a short socket.io event OVERSIZED_EVT, so the socket
    stays connected and the channel can answer. Binary frames keep engine.io's behaviour."""

    def __init__(self, *args: Any, websocket_max_size: int = DEFAULT_WEBSOCKET_MAX_SIZE,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        base_ws = self._async.get("websocket")
        base_translate = self._async.get("translate_request")
        server = self

        if base_ws is not None:
            class LimitedWebSocket(base_ws):  # type: ignore[misc, valid-type]
                async def __call__(self, environ: Dict) -> Any:
                    request = environ.get("sanic.request")
                    protocol = request.transport.get_protocol() if request is not None else None
                    if protocol is not None and hasattr(protocol, "websocket_max_size"):
                        # read frames up to this size (Sanic's default is 1 MiB), to answer them
                        protocol.websocket_max_size = max(protocol.websocket_max_size or 0,
                                                          websocket_max_size)
                    return await super().__call__(environ)

                async def wait(self) -> Any:
                    data = await super().wait()
                    if isinstance(data, str) and len(data) > server.max_http_buffer_size:
                        return _oversized_replacement(data)
                    return data

        def translate(*a: Any, **kw: Any) -> Dict:
            environ = base_translate(*a, **kw)
            if environ.get("REQUEST_METHOD") == "POST" and \
                    int(environ.get("CONTENT_LENGTH") or 0) > server.max_http_buffer_size:
                request = environ.get("sanic.request")
                body = (request.body or b"").decode("utf-8", "replace") if request is not None else ""
                new = _shrink_polling_body(body, server.max_http_buffer_size).encode("utf-8")
                environ["wsgi.input"] = _Payload(new)
                environ["CONTENT_LENGTH"] = str(len(new))
            return environ

        replaced = dict(self._async)
        if base_ws is not None:
            replaced["websocket"] = LimitedWebSocket
        if base_translate is not None and not asyncio.iscoroutinefunction(base_translate):
            replaced["translate_request"] = translate
        self._async = replaced


class _WidgetSocketServer(AsyncServer):
    def __init__(self, *args: Any, websocket_max_size: int = DEFAULT_WEBSOCKET_MAX_SIZE,
                 **kwargs: Any) -> None:
        self._websocket_max_size = websocket_max_size
        super().__init__(*args, **kwargs)

    def _engineio_server_class(self) -> Any:
        size = self._websocket_max_size

        def make(**options: Any) -> _WidgetEngineServer:
            return _WidgetEngineServer(websocket_max_size=size, **options)
        return make


PRESENCE_TTL = 3600.0  # seconds a joined session counts as connected for other servers


def cross_server_manager() -> Any:
    """python-socketio's Redis manager when the profile shares state in Redis
    (ZWZX_SHARED_STATE=redis, production): an emit to a session's room on any server reaches the
    socket on whichever server holds it (Redis pub/sub channel <prefix>:socketio). None (the
    in-process manager) otherwise."""
    import os

    if (os.environ.get("ZWZX_SHARED_STATE") or "memory").strip().lower() != "redis":
        return None
    from socketio import AsyncRedisManager
    from urllib.parse import quote

    password = os.environ.get("ZWZX_REDIS_PASSWORD") or ""
    auth = f":{quote(password, safe='')}@" if password else ""
    url = (f"redis://{auth}{os.environ.get('ZWZX_REDIS_HOST') or '127.0.0.1'}:"
           f"{os.environ.get('ZWZX_REDIS_PORT') or 6379}/{os.environ.get('ZWZX_REDIS_DB') or 0}")
    return AsyncRedisManager(url, channel=f"{os.environ.get('ZWZX_REDIS_PREFIX') or 'zwzx'}:socketio")


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
        # Rasa's message keys at the top (text, quick_replies, custom), everything else under
        # `metadata`: clients written for Rasa's socket.io channel (rasa-webchat) tell a message's
        # kind by its exact set of top-level keys.
        payload.setdefault("metadata", {}).setdefault("timestamp", time.time())
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


class RecordingWidgetOutput(WidgetOutput):
    """WidgetOutput that also records every payload (emitting it too unless ``emit`` is False):
    the reply of a message is kept for a client that sends the same message_id again
    (bot/ops/idempotency.py), and re-rendered from a stored turn the same way."""

    def __init__(self, sio: Optional[AsyncServer], bot_message_evt: Text, namespace: Optional[Text] = None,
                 emit: bool = True):
        super().__init__(sio, bot_message_evt, namespace)
        self.emit = emit
        self.payloads: List[Dict[Text, Any]] = []

    async def _emit(self, recipient_id: Text, payload: Dict[Text, Any]) -> None:
        payload.setdefault("metadata", {}).setdefault("timestamp", time.time())
        self.payloads.append(payload)
        if self.emit:
            await self.sio.emit(self.bot_message_evt, payload, room=recipient_id, namespace=self.namespace)


def turns_from_events(events: Iterable[Dict[Text, Any]], limit: int = 300) -> List[Dict[Text, Any]]:
    """The citizen-visible part of a tracker: user, bot and staff turns plus feedback."""
    turns: List[Dict[Text, Any]] = []
    offered = OfferedButtons()
    for ev in events:
        kind = ev.get("event")
        ts = ev.get("timestamp")
        meta = ev.get("metadata") or {}
        offered.add_event(ev)
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
            # what the server offered decides, not the metadata: events stored before the
            # server derived `display` may carry a client's words there
            turns.append({"role": "user", "text": offered.display(text, meta.get("display")),
                          "timestamp": ts})
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
            websocket_max_size=int(credentials.get("websocket_max_size", DEFAULT_WEBSOCKET_MAX_SIZE)),
        )

    def __init__(self, *args: Any, cors_allowed_origins: Any = None, max_message_length: int = 500,
                 web_dir: Optional[Text] = None, websocket_max_size: int = DEFAULT_WEBSOCKET_MAX_SIZE,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.websocket_max_size = websocket_max_size
        self._app: Any = None  # the Sanic app (for the agent's tracker store), set on registration
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
        self._signer: Optional[SessionSigner] = None
        self.message_ids = idempotency.MessageIds(CHANNEL_NAME)

    @property
    def signer(self) -> SessionSigner:
        """Session-token signer (secret from ZWZX_WIDGET_SECRET; see widget_session.py)."""
        if self._signer is None:
            self._signer = SessionSigner.from_environment()
        return self._signer

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

    async def _session_connected(self, session_id: Text) -> bool:
        """A widget of this session is connected here, or (several servers) joined on some
        server within the last PRESENCE_TTL seconds (approximate: see docs/production.md)."""
        if self._room_has_clients(session_id):
            return True
        if getattr(self.sio, "manager", None) is None or not hasattr(self.sio.manager, "redis_url"):
            return False
        from bot.ops.shared_state import shared_state

        try:
            return await shared_state().exists(f"widget:present:{session_id}")
        except Exception:  # noqa: BLE001
            return True

    async def deliver_staff_message(self, sender_id: Text, text: Text, staff_name: Optional[Text]) -> bool:
        """Handoff delivery (bot.handoff.delivery): push a staff member's message — or, with
        ``staff_name`` None, the bot's own notice when staff close the ticket — to the
        citizen's widget. True when at least one widget of that session is connected (the
        message is in the tracker anyway and shows in the history after a reload)."""
        if self.sio is None:
            return False
        if staff_name:
            meta: Dict[Text, Any] = {"from": "staff", "staff": str(staff_name)}
        else:
            # The tracker has the full message (e.g. rating buttons): the widget re-reads its history.
            meta = {"from": "bot", "push": True}
        meta["timestamp"] = time.time()
        payload = {"text": str(text), "metadata": meta}
        await self.sio.emit(self.bot_message_evt, payload, room=sender_id, namespace=self.namespace)
        return await self._session_connected(sender_id)

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
            out["display"] = metadata["display"][:MAX_TITLE]  # a claim only: see _display()
        if metadata.get("hidden") is True:
            out["hidden"] = True
        return out

    def _client_address(self, sid: Text) -> Text:
        """The client address of a socket.io connection (its first HTTP request; the real
        address behind a trusted proxy, see bot.ops.limits.client_address)."""
        try:
            environ = self.sio.get_environ(sid, namespace=self.namespace or "/") or {}
        except Exception:  # pragma: no cover
            environ = {}
        request = environ.get("sanic.request")
        if request is not None:
            return limits.request_client(request)
        return environ.get("REMOTE_ADDR") or "-"

    @property
    def frame_limit(self) -> int:
        return frame_limit(self.max_message_length)

    def _too_long(self) -> Text:
        return f"您的消息超过了{self.max_message_length}字的长度限制，请精简后重新发送。"

    async def _offered_buttons(self, session_id: Text) -> OfferedButtons:
        agent = getattr(getattr(self._app, "ctx", None), "agent", None)
        store = getattr(agent, "tracker_store", None)
        offered = OfferedButtons()
        if store is not None:
            tracker = await store.retrieve_full_tracker(session_id)
            if tracker is not None:
                offered.add_events(e.as_dict() for e in tracker.events if e.type_name == "bot")
        return offered

    async def _display(self, session_id: Text, text: Text, claimed: Any) -> Text:
        """What the message shows as, decided here (bot.user_display): a button payload shows
        the title of a button offered in this conversation, free text itself; the client's
        `display` only picks between titles offered for that payload."""
        if not text.startswith("/") and not claimed:
            return text  # free text: no need to read the tracker
        return (await self._offered_buttons(session_id)).display(text, claimed)

    # ---------------------------------------------------------------- blueprint
    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        sio = _WidgetSocketServer(async_mode="sanic", cors_allowed_origins=self.cors_allowed_origins,
                                  max_http_buffer_size=self.frame_limit,
                                  websocket_max_size=self.websocket_max_size,
                                  client_manager=cross_server_manager())
        channel = self

        class Blueprint_(SocketBlueprint):
            def register(self, app: Any, options: Dict[Text, Any]) -> None:
                channel._app = app
                limits.install_edge(app)  # body limits etc. on the app (bot/ops/limits.py)
                super().register(app, options)

        signer = self.signer  # at start-up: the production profile refuses to start without a secret
        bp = Blueprint_(sio, self.socketio_path, "widget_webhook", __name__)
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
            token = request.args.get("token") or request.headers.get("x-zwzx-session-token")
            if not signer.valid(session_id, token):
                return self._json(request, {"error": "会话凭证无效，请刷新页面开始新的会话"}, 403)
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
            if hasattr(sio.manager, "redis_url"):  # several servers: tell the others it is here
                from bot.ops.shared_state import shared_state

                try:
                    await shared_state().set(f"widget:present:{session_id}", "1", PRESENCE_TTL)
                except Exception:  # noqa: BLE001
                    logger.warning("网页组件：无法记录会话在线状态（Redis）")

        @sio.on("session_request", namespace=ns)
        async def session_request(sid: Text, data: Optional[Dict] = None) -> None:
            data = data if isinstance(data, dict) else {}
            requested = data.get("session_id")
            # an existing session only with its token; anything else starts a new one
            session_id = requested if isinstance(requested, str) and SESSION_ID_RE.match(requested) \
                and signer.valid(requested, data.get("session_token")) else uuid.uuid4().hex
            await join(sid, session_id)
            await sio.emit("session_token", {"session_id": session_id, "token": signer.token(session_id)},
                           room=sid, namespace=ns)
            await sio.emit("session_confirm", session_id, room=sid, namespace=ns)

        async def refuse(sid: Text, text: Text, room: Optional[Text] = None) -> None:
            """The one outcome of a message that is not processed: widget_error, then turn_done."""
            await sio.emit("widget_error", {"text": text}, room=sid, namespace=ns)
            await sio.emit("turn_done", {"timestamp": time.time(), "error": True}, room=room or sid,
                           namespace=ns)

        @sio.on(OVERSIZED_EVT, namespace=ns)
        async def oversized(sid: Text, data: Any = None) -> None:
            event = data.get("event") if isinstance(data, dict) else None
            logger.info("网页组件收到超长数据帧（%s，%s 字符），已拒收",
                        event, data.get("size") if isinstance(data, dict) else "?")
            if event == self.user_message_evt:
                await refuse(sid, self._too_long())
            else:
                await sio.emit("widget_error", {"text": "您发送的数据过长，未能处理，请刷新页面后重试。"},
                               room=sid, namespace=ns)

        @sio.on(self.user_message_evt, namespace=ns)
        async def handle_message(sid: Text, data: Any = None) -> None:
            # Every user_uttered ends with exactly one outcome: the bot's replies then turn_done,
            # or widget_error then turn_done.
            if not isinstance(data, dict):
                await refuse(sid, "您发送的消息格式不正确，请刷新页面后重试。")
                return
            session = await sio.get_session(sid, namespace=ns) or {}
            session_id = session.get("session_id")
            if not session_id:
                requested = data.get("session_id")
                if not (isinstance(requested, str) and SESSION_ID_RE.match(requested)):
                    await refuse(sid, "会话尚未建立，请您刷新页面后重试。")
                    return
                if not signer.valid(requested, data.get("session_token")):
                    await refuse(sid, "会话凭证无效，请您刷新页面后重试。")
                    return
                session_id = requested
                await join(sid, session_id)
            text = data.get("message")
            if not isinstance(text, str) or not text.strip():
                await refuse(sid, "您发送的消息是空的，请输入您要咨询的问题。")
                return
            text = text.strip()
            if len(text) > self.max_message_length:
                await refuse(sid, self._too_long())
                return
            # rate limits (bot/ops/limits.py): per client address, then per session
            client = self._client_address(sid)
            verdict = await limits.check_address(client, CHANNEL_NAME)
            if verdict.allowed:
                verdict = await limits.check_sender(CHANNEL_NAME, session_id, client)
            if not verdict.allowed:
                await refuse(sid, limits.too_many_text(verdict))
                return
            metadata = self._clean_metadata(data.get(self.metadata_key))
            try:
                display = await self._display(session_id, text, metadata.pop("display", None))
            except Exception:
                logger.exception("网页组件读取会话失败")
                await refuse(sid, "抱歉，系统暂时无法处理您的消息，请稍后再试，或拨打12345政务服务便民热线。")
                return
            if display != text:
                metadata["display"] = display  # server-derived; the tracker keeps the real text
            message_id = data.get("message_id")
            if message_id is not None and not idempotency.valid(message_id):
                await refuse(sid, "消息编号（message_id）格式不正确，请刷新页面后重试。")
                return
            if message_id is None:
                output = WidgetOutput(sio, self.bot_message_evt, ns)
                message = UserMessage(text, output, session_id, input_channel=self.name(), metadata=metadata)
                try:
                    await on_new_message(message)
                except Exception:
                    logger.exception("处理网页组件消息失败")
                    await sio.emit("widget_error", {"text": BUSY_TEXT}, room=sid, namespace=ns)
                finally:
                    await sio.emit("turn_done", {"timestamp": time.time()}, room=session_id, namespace=ns)
                return
            await self._handle_with_id(sid, session_id, text, metadata, message_id, on_new_message)

        return bp

    async def _handle_with_id(self, sid: Text, session_id: Text, text: Text, metadata: Dict[Text, Any],
                              message_id: Text, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        """A message with the client's own id: processed once however often it is sent (a widget
        re-sends a message whose turn_done it never got, e.g. after its server died). A message
        sent again gets the recorded reply, on this socket only, then turn_done with replayed."""
        sio, ns = self.sio, self.namespace
        output = RecordingWidgetOutput(sio, self.bot_message_evt, ns)
        agent = getattr(getattr(self._app, "ctx", None), "agent", None)

        async def process() -> Optional[List[Dict[Text, Any]]]:
            message = UserMessage(text, output, session_id, input_channel=self.name(), metadata=metadata,
                                  message_id=message_id)
            try:
                await on_new_message(message)
            except Exception:
                logger.exception("处理网页组件消息失败")
                return None
            from bot.ops.rasa_app import message_failed

            return None if message_failed() else output.payloads

        async def stored() -> Optional[List[Dict[Text, Any]]]:
            return await idempotency.stored_reply(
                getattr(agent, "tracker_store", None), session_id, message_id,
                lambda: RecordingWidgetOutput(sio, self.bot_message_evt, ns, emit=False), lambda o: o.payloads)

        try:
            outcome = await self.message_ids.handle(session_id, message_id, process, stored)
        except Exception:
            logger.exception("处理网页组件消息失败")
            outcome = idempotency.Outcome("failed")
        if outcome.status == "processed":
            await sio.emit("turn_done", {"timestamp": time.time(), "message_id": message_id},
                           room=session_id, namespace=ns)
        elif outcome.status == "replayed":
            for payload in outcome.messages:
                await sio.emit(self.bot_message_evt, payload, room=sid, namespace=ns)
            await sio.emit("turn_done", {"timestamp": time.time(), "message_id": message_id, "replayed": True},
                           room=sid, namespace=ns)
        elif outcome.status == "busy":
            await sio.emit("widget_error", {"text": "您的上一条消息还在处理中，请稍候。", "message_id": message_id},
                           room=sid, namespace=ns)
            await sio.emit("turn_done", {"timestamp": time.time(), "error": True, "message_id": message_id},
                           room=sid, namespace=ns)
        else:
            await sio.emit("widget_error", {"text": BUSY_TEXT, "message_id": message_id}, room=sid, namespace=ns)
            await sio.emit("turn_done", {"timestamp": time.time(), "error": True, "message_id": message_id},
                           room=session_id, namespace=ns)
