"""Bounded work per request on the public routes (issue 16).

Installed on the Rasa server's Sanic app by the project's input channels (``install_edge``,
idempotent; every profile) and on the staff console's app. Each request, right after routing
and *before its body is read*:

1. **Body limit by route** (``Content-Length`` checked at once, chunked bodies counted while
   read): ``/webhooks/…`` (REST, outbox, WeChat, staff API, widget HTTP routes)
   ``ZWZX_MAX_BODY_BYTES`` (64 KB), ``/socket.io/`` ``ZWZX_SOCKETIO_MAX_BODY_BYTES`` (8 MiB:
   the widget answers frames above its own frame limit with ``widget_error``, see
   bot/channels/widget.py), console ``/login`` 16 KB and the rest of the console 2 MiB. Too large →
   ``413 {"error": "请求内容过大…"}`` without reading the body.
2. **Per-address rate limit** on the citizen routes (REST webhook: scope ``msg``; REST outbox and
   widget history polls: scope ``poll``), token buckets (bot.ops.ratelimit, counters in
   bot.ops.shared_state: process memory or Redis) keyed by the client
   address — the socket peer, or the address in ``X-Forwarded-For`` / ``X-Real-IP`` when the
   peer is a trusted proxy (``ZWZX_TRUSTED_PROXIES``). Refused → ``429`` + ``Retry-After``.
3. **Body pace** (:func:`body_due`, read by :func:`read_body`), measured from the end of the
   headers: a body may lag at most ``ZWZX_BODY_GRACE_SECONDS`` (0.8 s) behind a minimum rate of
   ``ZWZX_BODY_MIN_RATE`` bytes/s (16 KB/s) — the *n*-th byte must have arrived by
   ``grace + n / rate`` — with no pause longer than ``ZWZX_BODY_MAX_GAP_SECONDS`` (2 s) between
   arrivals, and no body takes longer than ``ZWZX_BODY_TIMEOUT`` (300 s) whatever its size.
   Otherwise → ``408`` Chinese JSON and the connection is closed. A chat message (≤ 64 KB, usually
   ≤ 2 KB, which arrives with its headers) therefore has ~1 s; a slowloris client trickling one byte
   per second is refused 0.8 s after its headers; a large body has time in proportion to its size
   (a 1 MB console upload ~65 s at the minimum rate; a 20 MB one would have ~21 minutes, so the
   300 s cap applies: ≥ 70 KB/s on average) and any pause under 2 s. Sanic's own
   ``REQUEST_TIMEOUT`` is an *idle* timeout, reset by every byte, so it would never catch a trickle.

The channels then check, before any NLU: the message length (``ZWZX_MAX_MESSAGE_CHARS``, 500 →
the polite 请精简 reply from :func:`refuse_too_long`, which stores only the first
``ZWZX_REFUSED_KEEP_CHARS`` characters and the original length) and the per-sender rate limit
(:func:`check_sender`).

Stored events are kept lean by :func:`lean_event_data` (used by the tracker stores'
``event_record``): a user event above ``ZWZX_MAX_EVENT_BYTES`` loses the tokenizer's lists and
long rankings, then its text is cut.
"""
from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

from bot.ops.ratelimit import Rate, Verdict, buckets

logger = logging.getLogger(__name__)

# Variable → default (embedded profile; the production profile's overrides are in
# bot/ops/settings.py). docs/production.md ("Limits per request") lists them.
DEFAULTS: Dict[str, str] = {
    "ZWZX_MAX_BODY_BYTES": "65536",              # /webhooks/… request bodies
    "ZWZX_SOCKETIO_MAX_BODY_BYTES": "8388608",   # /socket.io/ long-polling bodies
    "ZWZX_APP_MAX_BODY_BYTES": "16777216",       # any other route (Sanic REQUEST_MAX_SIZE)
    "ZWZX_MAX_MESSAGE_CHARS": "500",             # longer messages: 请精简, no NLU
    "ZWZX_REFUSED_KEEP_CHARS": "200",            # characters of a refused message kept in the tracker
    "ZWZX_MAX_EVENT_BYTES": "8192",              # user events above this are stored lean
    "ZWZX_BODY_GRACE_SECONDS": "0.8",            # a body may lag this far behind the minimum rate...
    "ZWZX_BODY_MIN_RATE": "16384",               # ... of this many bytes/s (from the end of the headers)
    "ZWZX_BODY_MAX_GAP_SECONDS": "2",            # longest pause between two arrivals of a body
    "ZWZX_BODY_TIMEOUT": "300",                  # seconds for any whole body, whatever its size
    "ZWZX_REQUEST_TIMEOUT": "10",                # Sanic REQUEST_TIMEOUT (idle, headers/body)
    "ZWZX_KEEP_ALIVE_TIMEOUT": "5",              # Sanic KEEP_ALIVE_TIMEOUT
    "ZWZX_RATE_LIMITS": "1",                     # 0: no rate limits at all
    "ZWZX_RATE_SENDER_PER_SECOND": "0.5",        # per conversation (sender / session / openid)
    "ZWZX_RATE_SENDER_BURST": "10",
    "ZWZX_RATE_ADDRESS_PER_SECOND": "2",         # messages per client address
    "ZWZX_RATE_ADDRESS_BURST": "60",
    "ZWZX_RATE_POLL_PER_SECOND": "5",            # outbox / history polls per client address
    "ZWZX_RATE_POLL_BURST": "100",
    "ZWZX_MAX_IN_FLIGHT_PER_SENDER": "3",        # REST: messages of one conversation at once (per process)
    "ZWZX_RATE_EXEMPT_LOOPBACK": "1",            # 127.0.0.0/8 and ::1 clients are not limited
    "ZWZX_TRUSTED_PROXIES": "127.0.0.1,::1",     # peers whose X-Forwarded-For / X-Real-IP count
}
# The buckets live in bot.ops.shared_state (ZWZX_SHARED_STATE: memory here, redis in the
# production profile).

TOO_LARGE_TEXT = "请求内容过大（超过 {limit} 字节），未予处理。请精简后重新发送。"
TOO_MANY_TEXT = "您发送消息过于频繁，请稍后再试（约 {seconds} 秒后）。"
TOO_SLOW_TEXT = "请求发送超时，未予处理，请重新发送。"
TOO_LONG_TEXT = ("您的消息有 {n} 个字，超过了 {limit} 字的上限。"
                 "请精简后分条发送，或回复“转人工”由工作人员处理。")
HUMAN_BUTTON = {"title": "转人工", "payload": "/request_human"}

_TRUE = ("1", "true", "yes", "on")


def _env(name: str, environ: Optional[Dict[str, str]] = None) -> str:
    env = os.environ if environ is None else environ
    value = env.get(name)
    return DEFAULTS[name] if value is None or value.strip() == "" else value.strip()


def _networks(spec: str) -> Tuple[Any, ...]:
    nets = []
    for part in spec.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            logger.warning("ZWZX_TRUSTED_PROXIES: %r is not an address or network, ignored", part)
    return tuple(nets)


@dataclass
class Limits:
    max_body_bytes: int = 65536
    socketio_max_body_bytes: int = 8 * 2 ** 20
    app_max_body_bytes: int = 16 * 2 ** 20
    max_message_chars: int = 500
    refused_keep_chars: int = 200
    max_event_bytes: int = 8192
    body_grace: float = 0.8
    body_min_rate: float = 16384.0
    body_max_gap: float = 2.0
    body_timeout: float = 300.0
    request_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    rate_limits: bool = True
    sender: Rate = Rate(0.5, 10)
    address: Rate = Rate(2, 60)
    poll: Rate = Rate(5, 100)
    max_in_flight_per_sender: int = 3
    exempt_loopback: bool = True
    trusted_proxies: Tuple[Any, ...] = field(default_factory=lambda: _networks("127.0.0.1,::1"))

    @classmethod
    def from_env(cls, environ: Optional[Dict[str, str]] = None) -> "Limits":
        e = lambda n: _env(n, environ)  # noqa: E731
        return cls(
            max_body_bytes=int(e("ZWZX_MAX_BODY_BYTES")),
            socketio_max_body_bytes=int(e("ZWZX_SOCKETIO_MAX_BODY_BYTES")),
            app_max_body_bytes=int(e("ZWZX_APP_MAX_BODY_BYTES")),
            max_message_chars=int(e("ZWZX_MAX_MESSAGE_CHARS")),
            refused_keep_chars=int(e("ZWZX_REFUSED_KEEP_CHARS")),
            max_event_bytes=int(e("ZWZX_MAX_EVENT_BYTES")),
            body_grace=float(e("ZWZX_BODY_GRACE_SECONDS")),
            body_min_rate=float(e("ZWZX_BODY_MIN_RATE")),
            body_max_gap=float(e("ZWZX_BODY_MAX_GAP_SECONDS")),
            body_timeout=float(e("ZWZX_BODY_TIMEOUT")),
            request_timeout=float(e("ZWZX_REQUEST_TIMEOUT")),
            keep_alive_timeout=float(e("ZWZX_KEEP_ALIVE_TIMEOUT")),
            rate_limits=e("ZWZX_RATE_LIMITS").lower() in _TRUE,
            sender=Rate(float(e("ZWZX_RATE_SENDER_PER_SECOND")), float(e("ZWZX_RATE_SENDER_BURST"))),
            address=Rate(float(e("ZWZX_RATE_ADDRESS_PER_SECOND")), float(e("ZWZX_RATE_ADDRESS_BURST"))),
            poll=Rate(float(e("ZWZX_RATE_POLL_PER_SECOND")), float(e("ZWZX_RATE_POLL_BURST"))),
            max_in_flight_per_sender=int(e("ZWZX_MAX_IN_FLIGHT_PER_SENDER")),
            exempt_loopback=e("ZWZX_RATE_EXEMPT_LOOPBACK").lower() in _TRUE,
            trusted_proxies=_networks(e("ZWZX_TRUSTED_PROXIES")),
        )


_limits: Optional[Limits] = None


def limits() -> Limits:
    global _limits
    if _limits is None:
        _limits = Limits.from_env()
    return _limits


# --------------------------------------------------------------------------- client address
def _ip(value: Optional[str]) -> Optional[Any]:
    if not value:
        return None
    value = value.strip().strip('"')
    if value.startswith("[") and "]" in value:        # [v6]:port
        value = value[1:value.index("]")]
    elif value.count(":") == 1 and "." in value:       # v4:port
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _trusted(addr: Any, nets: Iterable[Any]) -> bool:
    return addr is not None and any(addr in n for n in nets if n.version == addr.version)


def client_address(peer: Optional[str], headers: Any, trusted: Iterable[Any]) -> str:
    """The client's address: the socket peer, unless the peer is a trusted proxy — then the
    right-most address of ``X-Forwarded-For`` that is not itself a trusted proxy (proxies
    append the address they saw), else ``X-Real-IP``. Headers from any other peer are ignored."""
    trusted = tuple(trusted)
    peer_ip = _ip(peer)
    if peer_ip is None:
        return peer or "-"
    if not _trusted(peer_ip, trusted):
        return str(peer_ip)
    get = headers.get if hasattr(headers, "get") else (lambda k, d=None: d)
    forwarded = get("x-forwarded-for") or get("X-Forwarded-For")
    if forwarded:
        hops = [h for h in (s.strip() for s in str(forwarded).split(",")) if h]
        for hop in reversed(hops):
            ip = _ip(hop)
            if ip is None:
                break  # garbage: trust nothing left of it
            if not _trusted(ip, trusted):
                return str(ip)
    real = _ip(get("x-real-ip") or get("X-Real-IP"))
    if real is not None:
        return str(real)
    return str(peer_ip)


def is_loopback(addr: str) -> bool:
    ip = _ip(addr)
    return bool(ip is not None and ip.is_loopback)


# The client address of the request being handled (set by the edge for every request; a task
# started while handling it, e.g. WeChat's processing task, inherits it).
CLIENT: "contextvars.ContextVar[Optional[str]]" = contextvars.ContextVar("zwzx_client", default=None)


def current_client() -> Optional[str]:
    return CLIENT.get()


def request_client(request: Any) -> str:
    """Client address of a Sanic request (cached on request.ctx)."""
    cached = getattr(request.ctx, "zwzx_client", None)
    if cached:
        return cached
    try:
        peer = request.conn_info.client_ip if request.conn_info else request.ip
    except Exception:
        peer = getattr(request, "ip", None)
    addr = client_address(peer, request.headers, limits().trusted_proxies)
    request.ctx.zwzx_client = addr
    return addr


# --------------------------------------------------------------------------- rate checks
def count_refusal(kind: str, channel: str) -> None:
    try:
        from bot.ops import metrics

        metrics.REFUSED.labels(reason=kind, channel=channel).inc()
    except Exception:  # pragma: no cover
        pass


async def check_rate(scope: str, subject: str, rate: Rate, client: Optional[str]) -> Verdict:
    cfg = limits()
    if not cfg.rate_limits or rate.unlimited:
        return Verdict(True)
    if client and cfg.exempt_loopback and is_loopback(client):
        return Verdict(True)
    return await buckets().take(f"{scope}:{subject}", rate)


async def check_sender(channel: str, sender_id: str, client: Optional[str]) -> Verdict:
    """Per-conversation bucket (scope ``msg:sender``); ``client`` decides the loopback exemption."""
    verdict = await check_rate("msg:sender", f"{channel}:{sender_id}", limits().sender, client)
    if not verdict.allowed:
        count_refusal("rate_sender", channel)
    return verdict


async def check_address(client: str, channel: str, poll: bool = False) -> Verdict:
    cfg = limits()
    scope = "poll:addr" if poll else "msg:addr"
    verdict = await check_rate(scope, client, cfg.poll if poll else cfg.address, client)
    if not verdict.allowed:
        count_refusal("rate_address", channel)
    return verdict


BUSY_CONVERSATION_TEXT = "您的上一条消息还在处理中，请收到答复后再发送。"
_in_flight: Dict[str, int] = {}


def enter_conversation(channel: str, sender_id: str, client: Optional[str]) -> bool:
    """Count a message of this conversation as in flight; False (refuse it) when
    ZWZX_MAX_IN_FLIGHT_PER_SENDER of its messages are already being processed or waiting for the
    conversation lock in this process — a flood of one conversation would otherwise queue behind
    the lock for seconds. Every True must be paired with :func:`leave_conversation`."""
    cfg = limits()
    key = f"{channel}:{sender_id}"
    exempt = not cfg.rate_limits or cfg.max_in_flight_per_sender <= 0 or (
        client and cfg.exempt_loopback and is_loopback(client))
    if not exempt and _in_flight.get(key, 0) >= cfg.max_in_flight_per_sender:
        count_refusal("in_flight", channel)
        return False
    _in_flight[key] = _in_flight.get(key, 0) + 1
    return True


def leave_conversation(channel: str, sender_id: str) -> None:
    key = f"{channel}:{sender_id}"
    n = _in_flight.get(key, 0) - 1
    if n > 0:
        _in_flight[key] = n
    else:
        _in_flight.pop(key, None)


def too_many_text(verdict: Verdict) -> str:
    return TOO_MANY_TEXT.format(seconds=verdict.retry_after_header)


# --------------------------------------------------------------------------- body pace
def body_due(start: float, last: float, arrived: int, cfg: Limits) -> Tuple[float, str]:
    """When more of a body must have arrived, and the refusal reason if it has not.

    ``start``: end of the headers; ``last``: the latest arrival of body bytes (``start`` before
    the first); ``arrived``: body bytes so far. The rules (each off when its setting is 0):
    ``body_slow`` — the body lags more than ``body_grace`` seconds behind ``body_min_rate``
    bytes/s, i.e. ``arrived`` bytes buy time until ``start + grace + arrived / rate``;
    ``body_stalled`` — nothing for ``body_max_gap`` seconds; ``body_timeout`` — ``body_timeout``
    seconds after the headers, whatever the rate. The earliest applies."""
    due: List[Tuple[float, str]] = []
    if cfg.body_min_rate > 0:
        due.append((start + cfg.body_grace + arrived / cfg.body_min_rate, "body_slow"))
    if cfg.body_max_gap > 0:
        due.append((last + cfg.body_max_gap, "body_stalled"))
    if cfg.body_timeout > 0:
        due.append((start + cfg.body_timeout, "body_timeout"))
    return min(due) if due else (math.inf, "")


class BodyTooSlow(Exception):
    def __init__(self, reason: str, arrived: int, elapsed: float):
        super().__init__(f"{reason}: {arrived} bytes in {elapsed:.2f} s")
        self.reason = reason


async def read_body(request: Any, cfg: Limits, start: Optional[float] = None) -> None:
    """``request.receive_body()`` under the body pace rule (:func:`body_due`): reads the body
    chunk by chunk (Sanic's ``Http.read``, as ``receive_body`` does) into ``request.body``; raises
    :class:`BodyTooSlow` when a rule is broken. Bytes already received by the connection but not
    yet read (the event loop was busy) count as arrived, with the connection's own time of the
    latest arrival, so a late loop never refuses a client that was in time."""
    stream = request.stream
    clock = time.monotonic  # the clock of Sanic's protocol (`_time`) and of asyncio's loop
    start = clock() if start is None else start
    last, received = start, 0
    chunks: List[bytes] = []
    protocol = getattr(stream, "protocol", None)
    while stream.request_body:
        pending = len(getattr(stream, "recv_buffer", b"") or b"")
        if pending:
            last = max(last, getattr(protocol, "_time", last) or last)
        due, reason = body_due(start, last, received + pending, cfg)
        now = clock()
        if now >= due:
            raise BodyTooSlow(reason, received + pending, now - start)
        try:
            # a timed-out read is cancelled where it waits for the socket (Http._receive_more),
            # before it takes anything from the buffer; the loop then re-checks with what arrived
            data = await asyncio.wait_for(stream.read(), due - now)
        except asyncio.TimeoutError:
            continue
        if data:
            chunks.append(data)
            received += len(data)
            last = max(clock(), last)
    request.body = b"".join(chunks)


# --------------------------------------------------------------------------- edge (Sanic)
class TooManyRequests(Exception):
    def __init__(self, verdict: Verdict):
        super().__init__("rate limited")
        self.verdict = verdict


@dataclass
class Refusal:
    """A request the edge refused before its body was read (``request.ctx.zwzx_refusal``). An app
    may render it itself: ``app.ctx.zwzx_refusal_page(request, refusal)`` returning a response
    (or None for the default ``{"error": message}`` JSON), e.g. the console's upload form."""
    status: int
    message: str
    headers: Dict[str, str] = field(default_factory=dict)


@dataclass
class Rule:
    prefix: str
    max_body: int
    methods: Tuple[str, ...] = ()
    rate_scope: Optional[str] = None   # "msg" | "poll": per-address bucket before the body
    channel: str = "-"


def rasa_rules(cfg: Limits) -> List[Rule]:
    """Route rules of the Rasa server (first match wins)."""
    return [
        Rule("/webhooks/rest/webhook", cfg.max_body_bytes, ("POST",), "msg", "rest"),
        Rule("/webhooks/rest/outbox/", cfg.max_body_bytes, ("GET",), "poll", "rest"),
        Rule("/webhooks/widget/history/", cfg.max_body_bytes, ("GET",), "poll", "widget"),
        Rule("/webhooks/", cfg.max_body_bytes),
        Rule("/socket.io", cfg.socketio_max_body_bytes),
    ]


CONSOLE_LOGIN_MAX_BODY = 16 * 1024
CONSOLE_MAX_BODY = 2 * 2 ** 20


def console_rules() -> List[Rule]:
    """The staff console (bot/console/app.py): the login form is small, the rest 2 MiB."""
    return [Rule("/login", CONSOLE_LOGIN_MAX_BODY), Rule("/", CONSOLE_MAX_BODY)]


def json_error(status: int, message: str, headers: Optional[Dict[str, str]] = None) -> Any:
    """``{"error": message}`` with the Chinese unescaped."""
    from sanic import response

    return response.json({"error": message}, status=status, headers=headers or {},
                         dumps=lambda o: json.dumps(o, ensure_ascii=False))


def _match(rules: List[Rule], path: str, method: str) -> Optional[Rule]:
    for rule in rules:
        if path.startswith(rule.prefix) and (not rule.methods or method in rule.methods):
            return rule
    return None


def install_edge(app: Any, rules: Optional[List[Rule]] = None, start_monitor: bool = True,
                 default_max: Optional[int] = None) -> bool:
    """Body limits, per-address rate limits, body pace and Sanic timeouts on ``app``
    (once per app). Returns False if it was already installed."""
    if getattr(app.ctx, "zwzx_edge", False):
        return False
    app.ctx.zwzx_edge = True
    from sanic.exceptions import PayloadTooLarge, RequestTimeout

    if start_monitor:  # i.e. a Rasa server (the console passes False)
        install_nlu_counter()
        install_fast_memory_lock()

    cfg = limits()
    rules = rules if rules is not None else rasa_rules(cfg)
    default_max = default_max or cfg.app_max_body_bytes
    largest = max([default_max] + [r.max_body for r in rules])
    app.config.REQUEST_MAX_SIZE = largest
    app.config.REQUEST_TIMEOUT = cfg.request_timeout
    app.config.KEEP_ALIVE_TIMEOUT = cfg.keep_alive_timeout

    def refuse(request: Any, status: int, message: str, headers: Optional[Dict[str, str]] = None) -> None:
        # Read by `answer_refusal`, the app's first request middleware: Sanic runs the request
        # middleware for an exception raised before them (handle_exception), so without it the
        # console's session/CSRF middleware would answer a refused body with its CSRF 403.
        request.ctx.zwzx_refusal = Refusal(status, message, dict(headers or {}))

    async def edge(request: Any, route: Any = None, kwargs: Any = None, handler: Any = None,
                   **_: Any) -> None:
        headers_done = time.monotonic()  # the body pace is measured from here
        CLIENT.set(request_client(request))
        rule = _match(rules, request.path, request.method)
        limit = rule.max_body if rule else default_max
        stream = request.stream
        length = request.headers.get("content-length")
        request.ctx.zwzx_limit = limit
        if length is not None:
            try:
                too_large = int(length) > limit
            except ValueError:
                too_large = False
            if too_large:
                if stream is not None:
                    stream.keep_alive = False
                count_refusal("too_large", rule.channel if rule else "-")
                refuse(request, 413, TOO_LARGE_TEXT.format(limit=limit))
                raise PayloadTooLarge(f"body {length} > {limit}")
        if stream is not None:
            stream.request_max_size = limit
        if rule is not None and rule.rate_scope:
            client = request_client(request)
            verdict = await check_address(client, rule.channel, poll=rule.rate_scope == "poll")
            if not verdict.allowed:
                refuse(request, 429, too_many_text(verdict), {"Retry-After": verdict.retry_after_header})
                raise TooManyRequests(verdict)
        if stream is not None and stream.request_body and handler is not None \
                and not getattr(getattr(route, "ctx", None), "ignore_body", False) \
                and not hasattr(handler, "is_stream"):
            try:
                await read_body(request, cfg, headers_done)
            except BodyTooSlow as slow:
                stream.request_body = None  # do not try to drain the rest of a slow body
                stream.keep_alive = False
                count_refusal(slow.reason, rule.channel if rule else "-")
                refuse(request, 408, TOO_SLOW_TEXT, {"Connection": "close"})
                raise RequestTimeout(str(slow))
            except PayloadTooLarge:  # a chunked body (no Content-Length) went over the limit
                stream.keep_alive = False
                count_refusal("too_large", rule.channel if rule else "-")
                refuse(request, 413, TOO_LARGE_TEXT.format(limit=limit))
                raise

    app.signal("http.routing.after")(edge)

    async def answer_refusal(request: Any) -> Any:
        refusal = getattr(request.ctx, "zwzx_refusal", None)
        if refusal is None:
            return None
        page = getattr(app.ctx, "zwzx_refusal_page", None)
        if page is not None:
            resp = page(request, refusal)
            if asyncio.iscoroutine(resp):
                resp = await resp
            if resp is not None:
                return resp
        return json_error(refusal.status, refusal.message, refusal.headers)

    # first of the request middleware, so that nothing else (sessions, CSRF) looks at a body
    # that was refused and never read
    app.register_middleware(answer_refusal, "request")
    try:
        app.request_middleware.remove(answer_refusal)
        app.request_middleware.appendleft(answer_refusal)
    except (AttributeError, ValueError):  # pragma: no cover - other Sanic versions
        pass

    async def too_large(request: Any, exception: Exception) -> Any:
        limit = getattr(request.ctx, "zwzx_limit", None) if request is not None else None
        return json_error(413, TOO_LARGE_TEXT.format(limit=limit or largest))

    async def too_many(request: Any, exception: TooManyRequests) -> Any:
        v = exception.verdict
        return json_error(429, too_many_text(v), {"Retry-After": v.retry_after_header})

    async def too_slow(request: Any, exception: Exception) -> Any:
        return json_error(408, TOO_SLOW_TEXT, {"Connection": "close"})

    app.error_handler.add(PayloadTooLarge, too_large)
    app.error_handler.add(TooManyRequests, too_many)
    app.error_handler.add(RequestTimeout, too_slow)

    if start_monitor:
        from bot.ops import looplag

        async def start_lag_monitor(app_: Any, _loop: Any) -> None:
            looplag.start()

        app.register_listener(start_lag_monitor, "after_server_start")
    return True


def blueprint_installing_edge(bp_cls: Any = None) -> Any:
    """A Blueprint class whose registration installs the edge limits on the app."""
    from sanic import Blueprint

    base = bp_cls or Blueprint

    class EdgeBlueprint(base):  # type: ignore[misc, valid-type]
        def register(self, app: Any, options: Dict[str, Any]) -> None:
            install_edge(app)
            self.ctx.zwzx_app = app
            super().register(app, options)

    return EdgeBlueprint


# --------------------------------------------------------------------------- refusals
def too_long_text(n: int, limit: Optional[int] = None) -> str:
    return TOO_LONG_TEXT.format(n=n, limit=limit or limits().max_message_chars)


def is_too_long(text: str) -> bool:
    return len(text.strip()) > limits().max_message_chars


async def refuse_too_long(agent: Any, sender_id: str, text: str, output: Any,
                          input_channel: str, metadata: Optional[Dict[str, Any]] = None) -> None:
    """Answer an over-long message with the polite 请精简 reply, without NLU or policies.

    The conversation records the refusal like a turn: the user event with the first
    ``ZWZX_REFUSED_KEEP_CHARS`` characters, intent ``nlu_fallback`` and
    ``metadata.zwzx_refused = {"reason": "too_long", "original_length": n}``, the reply, and
    ``action_listen`` — under the conversation lock, so it never interleaves with a turn."""
    from rasa.shared.core.constants import ACTION_LISTEN_NAME
    from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered

    from bot.answering.cards import make_card

    cfg = limits()
    n = len(text.strip())
    reply = too_long_text(n)
    card = make_card("fallback", reason="too_long")
    count_refusal("too_long", input_channel)
    kept = text.strip()[:cfg.refused_keep_chars]
    meta = {k: v for k, v in (metadata or {}).items() if k in ("wechat", "hidden")}
    meta["zwzx_refused"] = {"reason": "too_long", "original_length": n, "kept_chars": len(kept)}
    intent = {"name": "nlu_fallback", "confidence": 1.0}
    parse_data = {"text": kept, "intent": intent, "entities": [], "intent_ranking": [intent]}
    if agent is not None and agent.is_ready():
        processor = agent.processor
        async with agent.lock_store.lock(sender_id):
            tracker = await processor.fetch_tracker_and_update_session(sender_id, output, metadata)
            tracker.update(UserUttered(kept, intent, [], parse_data, input_channel=input_channel,
                                       metadata=meta))
            tracker.update(BotUttered(reply, {"buttons": [HUMAN_BUTTON]}))
            tracker.update(BotUttered(None, {"custom": card}))
            tracker.update(ActionExecuted(ACTION_LISTEN_NAME))
            await processor.save_tracker(tracker)
    await output.send_text_with_buttons(sender_id, reply, [HUMAN_BUTTON])
    await output.send_custom_json(sender_id, card)


# --------------------------------------------------------------------------- lean storage
# (the items' dense scores: the action server's input for this turn, a few hundred bytes)
BULKY_PARSE_KEYS = ("tokens_zh", "text_scoring", "text_tokens", "response_selector", "dense", "dense_wanted",
                    "near_words")


def lean_event_data(data: Dict[str, Any], max_bytes: Optional[int] = None) -> Tuple[Dict[str, Any], bool]:
    """An event dict as stored: user events above ``max_bytes`` (JSON) lose the tokenizer's
    lists and long rankings, then their metadata and text are cut. Returns (data, changed)."""
    if data.get("event") != "user":
        return data, False
    limit = max_bytes or limits().max_event_bytes
    pd = data.get("parse_data") or {}
    changed = False
    if "text_tokens" in pd:
        pd = dict(pd)
        pd.pop("text_tokens", None)
        data = dict(data, parse_data=pd)
        changed = True
    size = len(json.dumps(data))
    if size <= limit:
        return data, changed
    pd = {k: v for k, v in pd.items() if k not in BULKY_PARSE_KEYS}
    if isinstance(pd.get("intent_ranking"), list):
        pd["intent_ranking"] = pd["intent_ranking"][:3]
    if isinstance(pd.get("entities"), list) and len(pd["entities"]) > 10:
        pd["entities"] = pd["entities"][:10]
    data = dict(data, parse_data=pd)
    meta = data.get("metadata")
    if meta and len(json.dumps(meta)) > limit // 4:
        data["metadata"] = {"zwzx_metadata_dropped_bytes": len(json.dumps(meta))}
    if len(json.dumps(data)) > limit:
        text = data.get("text") or ""
        keep = limits().refused_keep_chars
        data["text"] = text[:keep]
        pd["text"] = (pd.get("text") or "")[:keep]
        pd["entities"] = [e for e in pd.get("entities") or [] if (e.get("end") or 0) <= keep][:10]
        meta = dict(data.get("metadata") or {})
        meta["zwzx_truncated"] = {"original_length": len(text)}
        data["metadata"] = meta
    return data, True


# --------------------------------------------------------------------------- NLU counter
def install_nlu_counter() -> None:
    """Count every NLU run (``zwzx_nlu_parses_total``); with ``ZWZX_NLU_SPY_FILE`` set, also
    append one line per run (sender, length) to that file — the tests' spy on a server process."""
    from rasa.core.processor import MessageProcessor

    original = MessageProcessor._parse_message_with_graph
    if getattr(original, "_zwzx_counted", False):
        return

    def parse(self: Any, message: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            from bot.ops import metrics

            metrics.NLU_PARSES.inc()
            spy = os.environ.get("ZWZX_NLU_SPY_FILE")
            if spy:
                with open(spy, "a", encoding="utf-8") as f:
                    f.write(f"{getattr(message, 'sender_id', '')}\t{len(getattr(message, 'text', '') or '')}\n")
        except Exception:  # pragma: no cover - counting never breaks a turn
            logger.exception("NLU counter failed")
        return original(self, message, *args, **kwargs)

    parse._zwzx_counted = True  # type: ignore[attr-defined]
    MessageProcessor._parse_message_with_graph = parse  # type: ignore[assignment]


def install_fast_memory_lock() -> None:
    """Rasa's in-process lock store (embedded profile) re-checks a queued message's ticket every
    second, so the n-th queued message of a conversation waits whole seconds; check every
    ``ZWZX_LOCK_POLL_SECONDS`` (0.05 s) as the production profile's Redis lock store does."""
    from rasa.core.lock_store import InMemoryLockStore

    original = InMemoryLockStore._acquire_lock
    if getattr(original, "_zwzx_fast", False):
        return

    async def _acquire_lock(self: Any, conversation_id: str, ticket: int, wait_time_in_seconds: float) -> Any:
        if wait_time_in_seconds == 1:
            wait_time_in_seconds = max(0.005, float(os.environ.get("ZWZX_LOCK_POLL_SECONDS") or 0.05))
        return await original(self, conversation_id, ticket, wait_time_in_seconds)

    _acquire_lock._zwzx_fast = True  # type: ignore[attr-defined]
    InMemoryLockStore._acquire_lock = _acquire_lock  # type: ignore[assignment]
