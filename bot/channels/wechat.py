"""WeChat Official Account (公众号) input channel for Rasa.

Enable it in credentials.yml under the class path ``bot.channels.wechat.WeChatInput``; Rasa then
serves it at ``/webhooks/wechat/webhook`` (GET: URL verification, POST: messages and events).

Settings (credentials.yml key → environment variable used when the value is empty, or when it is
written as ``"${VAR}"`` / ``"${VAR:-default}"`` — quote it, so Rasa leaves it to the channel and
an unset variable means "empty" instead of a start-up error):

  token               WECHAT_TOKEN              Token set in the Official Account console
  app_id              WECHAT_APP_ID             AppID
  app_secret          WECHAT_APP_SECRET         AppSecret (customer-service API)
  encoding_aes_key    WECHAT_ENCODING_AES_KEY   EncodingAESKey; empty means plaintext mode
  encrypt_mode        WECHAT_ENCRYPT_MODE       plain | compatible | safe (default: safe if a key
                                                is set, else plain)
  api_base            WECHAT_API_BASE           default https://api.weixin.qq.com
  passive_reply_seconds  WECHAT_PASSIVE_REPLY_SECONDS  default 4: answer in the HTTP reply if
                                                ready by then, else reply "success" and send
                                                through the customer-service API
  timestamp_window    WECHAT_TIMESTAMP_WINDOW   seconds, default 300
  max_body_bytes      WECHAT_MAX_BODY_BYTES     default 65536
  max_text_bytes      WECHAT_MAX_TEXT_BYTES     default 2048 (WeChat's limit; never above it)
  cs_window_hours     WECHAT_CS_WINDOW_HOURS    default 48 (customer-service message window)
  db_url              ZWZX_DB_URL               default sqlite:///build/tracker.db
  menu                (mapping)                 menu CLICK EventKey → question asked to the bot
  welcome             (text)                    greeting sent on subscribe
  examples            (list)                    example questions in the greeting (numbered)
"""
from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text, Tuple
from xml.parsers.expat import ExpatError

import xmltodict
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import TextReply
from wechatpy.utils import check_signature

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage

from bot.channels.wechat_api import WeChatAPIClient
from bot.channels.wechat_render import WECHAT_TEXT_LIMIT, parse_choice, render_messages, split_utf8
from bot.channels.wechat_store import API, PASSIVE, PROCESSING, MessageClaims, ReplayGuard, UserStore
from bot.ops import limits
from bot.ops.shared_state import MemoryState, SharedState

logger = logging.getLogger(__name__)

CHANNEL_NAME = "wechat"
SENDER_PREFIX = "wechat:"
# The message being processed in this task: its id for the tracker ("wx-<MsgId>") and whether this
# server took it over from one that died (then a turn already stored is answered from the tracker).
_TURN: contextvars.ContextVar[Dict[str, Any]] = contextvars.ContextVar("zwzx_wechat_turn", default={})
DEFAULT_API_BASE = "https://api.weixin.qq.com"

MSG_PROMPT_TYPE = "您好，目前仅支持文字咨询。请您直接输入想咨询的问题，例如：“财政预决算信息会公开吗？”"
MSG_PROMPT_VOICE = "抱歉，没能识别您的语音内容。请您用文字输入想咨询的问题。"
MSG_PROMPT_EMPTY = "您好，请直接输入您想咨询的政务公开问题。"
MSG_BUSY = "抱歉，系统暂时繁忙，请稍后再试，或拨打12345政务服务便民热线咨询。"
DEFAULT_WELCOME = ("您好！欢迎关注。我是宁乡市政务咨询助手，可以为您解答《宁乡市2021年政务公开工作要点》"
                   "等政务公开政策问题。")
DEFAULT_EXAMPLES = ["财政预决算信息会公开吗？", "“一件事一次办”由哪个部门牵头？", "市发改局负责哪些政务公开工作？"]

_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?\}$")
_DANGEROUS_XML = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)

SETTINGS: Dict[str, Tuple[str, str]] = {
    "token": ("WECHAT_TOKEN", ""),
    "app_id": ("WECHAT_APP_ID", ""),
    "app_secret": ("WECHAT_APP_SECRET", ""),
    "encoding_aes_key": ("WECHAT_ENCODING_AES_KEY", ""),
    "encrypt_mode": ("WECHAT_ENCRYPT_MODE", ""),
    "api_base": ("WECHAT_API_BASE", DEFAULT_API_BASE),
    "passive_reply_seconds": ("WECHAT_PASSIVE_REPLY_SECONDS", "4.0"),
    "timestamp_window": ("WECHAT_TIMESTAMP_WINDOW", "300"),
    "max_body_bytes": ("WECHAT_MAX_BODY_BYTES", "65536"),
    "max_text_bytes": ("WECHAT_MAX_TEXT_BYTES", str(WECHAT_TEXT_LIMIT)),
    "cs_window_hours": ("WECHAT_CS_WINDOW_HOURS", "48"),
    "token_refresh_margin": ("WECHAT_TOKEN_REFRESH_MARGIN", "300"),
    "db_url": ("ZWZX_DB_URL", "sqlite:///build/tracker.db"),
}


def resolve_setting(value: Any, env_name: str, default: str) -> str:
    """credentials value → string: "${VAR}" / "${VAR:-x}" / empty are read from the environment."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return os.environ.get(env_name) or default
    if isinstance(value, str):
        m = _ENV_REF.match(value.strip())
        if m:
            return os.environ.get(m.group(1)) or (m.group(2) if m.group(2) is not None else default)
        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda mm: os.environ.get(mm.group(1), ""), value)
    return str(value)


@dataclass
class WeChatConfig:
    token: str = ""
    app_id: str = ""
    app_secret: str = ""
    encoding_aes_key: str = ""
    encrypt_mode: str = "plain"
    api_base: str = DEFAULT_API_BASE
    passive_reply_seconds: float = 4.0
    timestamp_window: float = 300.0
    max_body_bytes: int = 65536
    max_text_bytes: int = WECHAT_TEXT_LIMIT
    cs_window_hours: float = 48.0
    token_refresh_margin: float = 300.0
    db_url: str = "sqlite:///build/tracker.db"
    menu: Dict[str, str] = field(default_factory=dict)
    welcome: str = DEFAULT_WELCOME
    examples: List[str] = field(default_factory=lambda: list(DEFAULT_EXAMPLES))

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> "WeChatConfig":
        credentials = credentials or {}
        raw = {k: resolve_setting(credentials.get(k), env, default) for k, (env, default) in SETTINGS.items()}
        mode = (raw["encrypt_mode"] or "").strip().lower()
        if mode not in ("plain", "compatible", "safe"):
            if mode:
                logger.warning("WeChat encrypt_mode %r unknown: using the default", mode)
            mode = "safe" if raw["encoding_aes_key"] else "plain"
        if mode != "plain" and not raw["encoding_aes_key"]:
            logger.warning("WeChat encrypt_mode %s needs an EncodingAESKey: using plain", mode)
            mode = "plain"
        menu = credentials.get("menu") or {}
        examples = credentials.get("examples")
        return cls(
            token=raw["token"], app_id=raw["app_id"], app_secret=raw["app_secret"],
            encoding_aes_key=raw["encoding_aes_key"], encrypt_mode=mode,
            api_base=raw["api_base"] or DEFAULT_API_BASE,
            passive_reply_seconds=max(0.0, float(raw["passive_reply_seconds"])),
            timestamp_window=float(raw["timestamp_window"]),
            max_body_bytes=int(raw["max_body_bytes"]),
            max_text_bytes=max(16, min(WECHAT_TEXT_LIMIT, int(raw["max_text_bytes"]))),
            cs_window_hours=float(raw["cs_window_hours"]),
            token_refresh_margin=float(raw["token_refresh_margin"]),
            db_url=raw["db_url"],
            menu={str(k): str(v) for k, v in menu.items()} if isinstance(menu, dict) else {},
            welcome=str(credentials.get("welcome") or DEFAULT_WELCOME),
            examples=[str(e) for e in examples] if isinstance(examples, list) else list(DEFAULT_EXAMPLES),
        )


@dataclass
class Reply:
    """What the HTTP layer sends back: a JSON error, or a text/XML body."""
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"
    error: bool = False

    @classmethod
    def fail(cls, status: int, message: str) -> "Reply":
        return cls(status, message, error=True)


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


AskBot = Callable[[str, str, Dict[str, Any]], Awaitable[List[Dict[str, Any]]]]


def safe_parse_xml(data: bytes, limit: int) -> Dict[str, Any]:
    """Parse an XML document from WeChat into a dict, refusing anything but plain elements."""
    if len(data) > limit:
        raise BadRequest(400, f"请求体过大（超过 {limit} 字节）")
    if _DANGEROUS_XML.search(data):
        raise BadRequest(400, "不接受含 DOCTYPE/实体声明的 XML")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, "XML 必须是 UTF-8 编码")
    try:
        doc = xmltodict.parse(text, disable_entities=True)
    except (ExpatError, ValueError) as e:
        raise BadRequest(400, f"XML 格式错误：{e}")
    root = doc.get("xml") if isinstance(doc, dict) else None
    if not isinstance(root, dict):
        raise BadRequest(400, "XML 根元素必须是 <xml>")
    return root


def cdata_safe(text: str) -> str:
    # wechatpy writes text into <![CDATA[...]]>: split any "]]>" so it can't close the section
    return text.replace("]]>", "]]]]><![CDATA[>")


class WeChatEndpoint:
    """The channel's request handling, independent of Sanic (the blueprint only adapts it)."""

    def __init__(self, config: WeChatConfig, ask_bot: AskBot, users: Optional[UserStore] = None,
                 api: Optional[WeChatAPIClient] = None, state: Optional[SharedState] = None):
        self.config = config
        self.ask_bot = ask_bot
        self.users = users or UserStore(config.db_url)
        # nonces, de-duplication and the access token: shared by every server when `state` is
        # Redis (production profile); this endpoint's own memory when none is given
        self.state: SharedState = state if state is not None else MemoryState()
        self.api = api or WeChatAPIClient(config.api_base, config.app_id, config.app_secret,
                                          refresh_margin=config.token_refresh_margin, state=self.state)
        self.crypto: Optional[WeChatCrypto] = None
        if config.encrypt_mode != "plain":
            self.crypto = WeChatCrypto(config.token, config.encoding_aes_key, config.app_id)
        namespace = f"wechat:{config.app_id or '-'}"
        self.nonces = ReplayGuard(self.state, namespace, ttl=2 * config.timestamp_window + 60)
        self.claims = MessageClaims(self.state, namespace, ttl=max(600.0, 2 * config.timestamp_window))
        self.duplicates = 0
        self._background: set = set()
        self.last_delivery_error = ""

    # ---------------------------------------------------------------- checks
    def _check_signature(self, args: Dict[str, str]) -> Optional[Reply]:
        if not self.config.token:
            return Reply.fail(403, "公众号接入未配置 Token（WECHAT_TOKEN），拒绝请求")
        signature, timestamp, nonce = args.get("signature"), args.get("timestamp"), args.get("nonce")
        if not (signature and timestamp and nonce):
            return Reply.fail(403, "缺少签名参数（signature/timestamp/nonce）")
        try:
            check_signature(self.config.token, signature, timestamp, nonce)
        except InvalidSignatureException:
            logger.warning("WeChat request with a bad signature refused")
            return Reply.fail(403, "签名校验失败")
        return None

    def _check_timestamp(self, timestamp: str) -> Optional[Reply]:
        try:
            ts = int(timestamp)
        except (TypeError, ValueError):
            return Reply.fail(403, "时间戳无效")
        if abs(time.time() - ts) > self.config.timestamp_window:
            logger.warning("WeChat request with a stale timestamp refused (%s s off)", int(time.time() - ts))
            return Reply.fail(403, "请求时间戳已过期")
        return None

    # ---------------------------------------------------------------- GET
    async def verify(self, args: Dict[str, str]) -> Reply:
        bad = self._check_signature(args)
        if bad:
            return bad
        return Reply(200, args.get("echostr") or "")

    # ---------------------------------------------------------------- POST
    async def receive(self, args: Dict[str, str], body: bytes) -> Reply:
        if len(body) > self.config.max_body_bytes:
            return Reply.fail(413, f"请求体过大（超过 {self.config.max_body_bytes} 字节）")
        bad = self._check_signature(args)
        if bad:
            return bad
        timestamp, nonce = args["timestamp"], args["nonce"]
        bad = self._check_timestamp(timestamp)
        if bad:
            return bad
        encrypted = (args.get("encrypt_type") or "").lower() == "aes"
        try:
            outer = safe_parse_xml(body, self.config.max_body_bytes)
            if encrypted:
                if self.crypto is None:
                    return Reply.fail(400, "收到加密消息，但未配置 EncodingAESKey")
                msg_signature = args.get("msg_signature")
                if not msg_signature:
                    return Reply.fail(403, "缺少 msg_signature")
                if not isinstance(outer.get("Encrypt"), str):
                    return Reply.fail(400, "加密消息缺少 Encrypt 字段")
                try:
                    inner = self.crypto.decrypt_message(outer, msg_signature, timestamp, nonce)
                except InvalidSignatureException:
                    logger.warning("WeChat request with a bad msg_signature refused")
                    return Reply.fail(403, "消息签名校验失败")
                except InvalidAppIdException:
                    return Reply.fail(403, "消息不属于本公众号（AppID 不符）")
                except Exception as e:  # bad base64 / padding / UTF-8 inside the envelope
                    return Reply.fail(400, f"无法解密消息：{type(e).__name__}")
                inner_bytes = inner.encode("utf-8") if isinstance(inner, str) else bytes(inner)
                safe_parse_xml(inner_bytes, self.config.max_body_bytes)
                xml_text = inner_bytes.decode("utf-8")
            else:
                if self.config.encrypt_mode == "safe":
                    return Reply.fail(403, "安全模式下只接受加密消息")
                xml_text = body.decode("utf-8")
            try:
                msg = parse_message(xml_text)
            except (ExpatError, KeyError, TypeError, AttributeError, ValueError) as e:
                return Reply.fail(400, f"无法解析消息：{type(e).__name__}")
        except BadRequest as e:
            return Reply.fail(e.status, e.message)
        if msg is None or not msg.source:
            return Reply.fail(400, "消息缺少 FromUserName")

        key = self.dedup_key(msg)
        if not await self.nonces.check_and_add(nonce, key):
            logger.warning("WeChat request with a replayed nonce refused")
            return Reply.fail(403, "重复的 nonce（疑似重放请求）")

        claimed, value = await self.claims.claim(key)
        if claimed:
            reply = await self._answer(key, value, msg)
        else:
            self.duplicates += 1
            logger.info("WeChat retry of %s (#%d here): not processed again", key, self.duplicates)
            reply = await self._await_outcome(key, value, msg)
        if reply:
            return self._passive_reply(reply, nonce, encrypted)
        return Reply(200, "success")

    @staticmethod
    def dedup_key(msg) -> str:
        if msg.id:
            return f"msg:{msg.id}"
        raw = getattr(msg, "_data", {}) or {}
        return f"evt:{msg.source}:{raw.get('CreateTime')}:{raw.get('Event', '')}:{raw.get('EventKey', '')}"

    async def _answer(self, key: str, claim: str, msg, taken_over: bool = False) -> Optional[str]:
        """The first request of a message (this server claimed it, or took it over from a server
        that died): process it, and decide how the answer goes out — in this HTTP reply
        (returned XML), or via the API (None)."""
        task = asyncio.ensure_future(self._process(msg, taken_over))
        self._spawn(self._keep_claim_alive(claim, task))
        try:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=self.config.passive_reply_seconds)
            except asyncio.TimeoutError:
                pass
            if task.done():
                chunks = task.result()
                if len(chunks) <= 1:
                    reply = ""
                    if chunks:
                        reply = TextReply(source=msg.target, target=msg.source,
                                          content=cdata_safe(chunks[0])).render()
                    if await self.claims.decide(key, claim, PASSIVE + reply):
                        return reply or None
            await self._to_api(key, claim, task, msg.source)
            return None
        except asyncio.CancelledError:  # WeChat hung up: the answer still has to reach the citizen
            self._spawn(self._to_api(key, claim, task, msg.source))
            raise

    async def _to_api(self, key: str, claim: str, task: "asyncio.Future", openid: str) -> None:
        # decided "api" by us now, or by a retry (on any server) before us: we hold the answer
        if await self.claims.decide(key, claim, API) or await self.claims.current(key) == API:
            self._spawn(self._deliver_via_api(task, openid))

    async def _keep_claim_alive(self, claim: str, task: "asyncio.Future") -> None:
        # renewed while processing; then it lapses by itself (lease), by which time the outcome
        # is decided — releasing it at once could let a retry take over a finished message
        try:
            while not task.done():
                await asyncio.wait([task], timeout=self.claims.lease / 3)
                if not task.done():
                    await self.claims.renew(claim)
        except Exception:  # noqa: BLE001 — the store is down: the claim lapses, nothing worse
            logger.exception("WeChat: could not renew the claim of a message being answered")

    async def _await_outcome(self, key: str, value: str, msg) -> Optional[str]:
        """A retry (or replay) of a message claimed before, maybe on another server: wait for its
        outcome; the same passive reply, else "success" (None).

        While the claiming server is alive, its own passive deadline decides (passive reply or
        API) within `passive_reply_seconds` of its start, so this waits for that decision rather
        than deciding for it: a server that was killed cannot send an answer someone else
        promised in its name. Its lease lapses `lease` seconds after it died; then this request
        (or, if WeChat hung up meanwhile, its next retry) takes the message over."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.passive_reply_seconds + 2 * self.claims.lease
        while value is not None and value.startswith(PROCESSING):
            if not await self.claims.owner_alive(value):
                taken = await self.claims.take_over(key, value)
                if taken:
                    logger.warning("WeChat message %s: the server answering it is gone; answering here", key)
                    return await self._answer(key, taken, msg, taken_over=True)
            elif loop.time() >= deadline:
                # alive but undecided for this long (should not happen): the owner answers via the API
                logger.warning("WeChat message %s: still undecided by a live server; answering success", key)
                if await self.claims.decide(key, value, API):
                    return None
            else:
                await asyncio.sleep(0.05)
            value = await self.claims.current(key)
        if value is not None and value.startswith(PASSIVE):
            return value[len(PASSIVE):] or None
        return None

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _deliver_via_api(self, task: "asyncio.Future", openid: str) -> None:
        chunks = await asyncio.shield(task)
        for i, chunk in enumerate(chunks):
            result = await self.api.send_text(openid, chunk)
            if not result.ok:
                logger.error("WeChat customer-service message %d/%d to %s failed: %s",
                             i + 1, len(chunks), openid[-6:], result.reason)
                return
        if chunks:
            logger.info("answer for %s delivered through the customer-service API (%d message(s))",
                        openid[-6:], len(chunks))

    def _passive_reply(self, xml: str, nonce: str, encrypted: bool) -> Reply:
        if encrypted and self.crypto is not None:
            xml = self.crypto.encrypt_message(xml, nonce, str(int(time.time())))
        return Reply(200, xml, content_type="application/xml; charset=utf-8")

    # ---------------------------------------------------------------- processing
    async def _process(self, msg, taken_over: bool = False) -> List[str]:
        """Everything a message leads to, as the list of texts to send (never raises)."""
        _TURN.set({"message_id": f"wx-{msg.id}" if getattr(msg, "id", None) else None, "taken_over": taken_over})
        try:
            return await self._process_inner(msg)
        except Exception:
            logger.exception("WeChat message handling failed")
            return [MSG_BUSY]

    def _db(self, fn, *args, default=None):
        try:
            return fn(*args)
        except Exception:
            logger.exception("wechat_users table not available")
            return default

    async def _process_inner(self, msg) -> List[str]:
        openid = msg.source
        kind = msg.type
        event = (getattr(msg, "event", "") or "").lower() if kind == "event" else ""
        if event != "unsubscribe":
            self._db(self.users.touch, openid)
        if kind == "text":
            return await self._ask_text(openid, (msg.content or "").strip(), kind)
        if kind == "voice":
            text = (getattr(msg, "recognition", None) or "").strip()
            if not text:
                return [MSG_PROMPT_VOICE]
            return await self._ask_text(openid, text, kind)
        if kind == "event":
            if event in ("subscribe", "subscribe_scan"):
                return self._welcome(openid)
            if event == "click":
                question = self.config.menu.get(getattr(msg, "key", "") or "")
                if not question:
                    logger.warning("WeChat menu key %r has no question configured", getattr(msg, "key", ""))
                    return [MSG_PROMPT_EMPTY]
                return await self._ask(openid, question, kind)
            return []  # unsubscribe, VIEW, scan, template/job notices …: nothing to say
        return [MSG_PROMPT_TYPE]  # image, location, link, video, shortvideo, file, unknown

    def _welcome(self, openid: str) -> List[str]:
        lines = [self.config.welcome.strip()]
        if self.config.examples:
            lines.append("您可以这样问（回复序号即可提问）：")
            lines += [f"{i}. {q}" for i, q in enumerate(self.config.examples, 1)]
        self._db(self.users.set_choices, openid, [{"title": q, "payload": q} for q in self.config.examples])
        return split_utf8("\n".join(lines), self.config.max_text_bytes)

    async def _ask_text(self, openid: str, text: str, kind: str) -> List[str]:
        if not text:
            return [MSG_PROMPT_EMPTY]
        choices = self._db(self.users.choices, openid, default=[]) or []
        n = parse_choice(text, len(choices))
        if n is not None:
            if 1 <= n <= len(choices):
                return await self._ask(openid, choices[n - 1]["payload"], kind)
            return [f"请回复 1～{len(choices)} 之间的序号，或直接输入您的问题。"]
        return await self._ask(openid, text, kind)

    async def _ask(self, openid: str, text: str, kind: str) -> List[str]:
        metadata: Dict[str, Any] = {"wechat": {"openid": openid, "msg_type": kind}}
        turn = _TURN.get()
        if turn.get("message_id"):
            metadata["_zwzx"] = dict(turn)  # taken off again by ask_bot (WeChatInput); not stored
        messages = await self.ask_bot(SENDER_PREFIX + openid, text, metadata)
        rendered = render_messages(messages)
        self._db(self.users.set_choices, openid, rendered.choices)
        return split_utf8(rendered.text, self.config.max_text_bytes)

    # ---------------------------------------------------------------- handoff
    async def deliver_staff_message(self, sender_id: str, text: str, staff_name: Optional[str] = None) -> bool:
        """Send a hotline staff member's message to the citizen (handoff delivery registry).

        False (and a logged reason) when it can't be delivered: the citizen's last message is
        older than the customer-service window (48 h), the API is not configured, or WeChat
        refused the message."""
        openid = sender_id[len(SENDER_PREFIX):] if sender_id.startswith(SENDER_PREFIX) else sender_id
        self.last_delivery_error = ""
        if not self.api.configured:
            return self._undeliverable(openid, "未配置 AppID/AppSecret，无法调用客服消息接口")
        last = self._db(self.users.last_message_at, openid)
        if last is None:
            return self._undeliverable(openid, "该用户没有通过公众号发过消息")
        hours = (time.time() - last) / 3600
        if hours > self.config.cs_window_hours:
            return self._undeliverable(
                openid, f"用户最后一条消息在 {hours:.0f} 小时前，超过 {self.config.cs_window_hours:g} 小时客服消息时限")
        # staff_name None: the handoff's own notices (e.g. "人工服务已结束…"), sent as they are
        prefix = f"【人工客服 {staff_name}】" if staff_name else ""
        for chunk in split_utf8(prefix + text, self.config.max_text_bytes):
            result = await self.api.send_text(openid, chunk)
            if not result.ok:
                return self._undeliverable(openid, f"客服消息接口返回 {result.reason}")
        return True

    def _undeliverable(self, openid: str, reason: str) -> bool:
        self.last_delivery_error = reason
        logger.warning("staff message to WeChat user …%s not delivered: %s", openid[-6:], reason)
        return False


def _register_handoff_deliverer(fn: Callable[..., Awaitable[bool]]) -> bool:
    try:
        from bot.handoff import delivery  # issue 3; optional until it lands
    except ImportError:
        logger.info("bot.handoff.delivery not available: WeChat staff delivery not registered")
        return False
    delivery.register(CHANNEL_NAME, fn)
    return True


def _json_error(status: int, message: str) -> HTTPResponse:
    return response.json({"error": message}, status=status, dumps=partial(json.dumps, ensure_ascii=False))


class WeChatInput(InputChannel):
    """Rasa input channel for a WeChat Official Account: ``/webhooks/wechat/webhook``."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        return cls(WeChatConfig.from_credentials(credentials))

    def __init__(self, config: Optional[WeChatConfig] = None) -> None:
        self.config = config or WeChatConfig.from_credentials({})
        self.endpoint: Optional[WeChatEndpoint] = None
        if not self.config.token:
            logger.warning("WeChat channel has no token (WECHAT_TOKEN): every request to "
                           "/webhooks/wechat/webhook will be refused")
        else:
            logger.info("WeChat channel enabled (%s mode)", self.config.encrypt_mode)

    def make_endpoint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> WeChatEndpoint:
        async def ask_bot(sender_id: str, text: str, metadata: Dict[str, Any]) -> List[Dict[str, Any]]:
            collector = CollectingOutputChannel()
            turn = metadata.pop("_zwzx", None) or {}
            message_id = turn.get("message_id")
            app = getattr(getattr(getattr(self, "_bp", None), "ctx", None), "zwzx_app", None)
            agent = getattr(getattr(app, "ctx", None), "agent", None)
            if turn.get("taken_over") and message_id:
                # the server that died may have stored this turn already: its answer, not a second turn
                from bot.ops.idempotency import stored_reply

                stored = await stored_reply(getattr(agent, "tracker_store", None), sender_id, message_id,
                                            CollectingOutputChannel, lambda out: out.messages)
                if stored is not None:
                    logger.warning("WeChat message %s was stored by the server that died: answering from it",
                                   message_id)
                    return stored
            # bounded work before any NLU (bot/ops/limits.py): a limited user gets a short text
            # at once (within WeChat's 5 s), an over-long message the 请精简 reply
            verdict = await limits.check_sender(self.name(), sender_id, limits.current_client())
            if not verdict.allowed:
                return [{"text": limits.too_many_text(verdict)}]
            if limits.is_too_long(text):
                await limits.refuse_too_long(agent, sender_id, text, collector, self.name(), metadata)
                return collector.messages
            await on_new_message(UserMessage(text, collector, sender_id, input_channel=self.name(),
                                             metadata=metadata, message_id=message_id))
            return collector.messages

        from bot.ops.shared_state import shared_state

        return WeChatEndpoint(self.config, ask_bot, state=shared_state())

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        endpoint = self.endpoint = self.make_endpoint(on_new_message)
        _register_handoff_deliverer(endpoint.deliver_staff_message)
        bp = self._bp = limits.blueprint_installing_edge()("wechat_webhook", __name__)

        def to_http(reply: Reply) -> HTTPResponse:
            if reply.error:
                return _json_error(reply.status, reply.body)
            return response.text(reply.body, status=reply.status, content_type=reply.content_type)

        def args_of(request: Request) -> Dict[str, str]:
            return {k: request.args.get(k) for k in request.args}

        @bp.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok", "mode": self.config.encrypt_mode,
                                  "configured": bool(self.config.token)})

        @bp.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            return to_http(await endpoint.verify(args_of(request)))

        @bp.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            return to_http(await endpoint.receive(args_of(request), request.body or b""))

        return bp
