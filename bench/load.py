"""Load test of the production profile: many citizens at once, for a bounded time, on loopback.

    PYTHONPATH=. .venv/bin/python bench/load.py                       # 50 REST citizens, 5 minutes
    PYTHONPATH=. .venv/bin/python bench/load.py --users 20 --duration 20 --json /tmp/load.json
    # the production profile started by the benchmark itself (bot.ops.cluster, as make run-prod),
    # mixed channels, 2 s between a citizen's messages; then the same with a Rasa server killed:
    PYTHONPATH=. .venv/bin/python bench/load.py --start-cluster --mix rest=40,widget=40,wechat=20 \\
        --users 50 --duration 300 --pause 2 --json build/load-mixed.json
    PYTHONPATH=. .venv/bin/python bench/load.py --start-cluster --mix rest=40,widget=40,wechat=20 \\
        --users 50 --duration 300 --pause 2 --kill rasa-1 --kill-at 60 --restart-at 120 \\
        --json build/load-failover.json

Every simulated citizen runs short conversations one after another (a question, often one or
two follow-ups that need the context, sometimes chitchat, an out-of-scope question or a request
for a person — always the last message of its conversation, because a handed-off conversation
is paused for staff), each with a new conversation, waiting for each reply before the next
message (plus the pause). Each citizen uses one channel (``--mix``, percent):

* **rest** — ``POST /webhooks/rest/webhook`` with a ``message_id`` of its own (a UUID); on a 5xx,
  a timeout or a dropped connection the client sends the message again with the same id after
  ``Retry-After`` (at most 5 s), for up to ``--give-up`` seconds; the server answers an id once
  (bot/ops/idempotency.py). Sender ids ``load-<run>-<user>-<n>``.
* **widget** — socket.io through nginx's ``/socket.io/`` (websocket transport), one socket and one
  widget session per conversation, as web/widget.js does it: a message id per message, and after
  a reconnect the message whose ``turn_done`` has not come is sent again with the same id. Each
  widget citizen connects from its own loopback address (127.0.0.2, .3, …), because nginx routes
  sockets by client address. Answers that arrived on a socket that then dropped are discarded
  (the widget redraws the conversation from its history after such a turn).
* **wechat** — signed plaintext XML to ``/webhooks/wechat/webhook``, as WeChat's servers send it:
  each attempt times out after 5 s, then the same MsgId is sent again, at most 3 times. The
  answer is the passive reply or the customer-service messages that reach a fake WeChat API
  (tests/fake_wechat_api.py) started by the benchmark (``--start-cluster`` points the profile at
  it; against a running profile start it with ``WECHAT_API_BASE=http://127.0.0.1:<--wechat-api-port>``
  and the same ``WECHAT_TOKEN``/``WECHAT_APP_ID``/``WECHAT_APP_SECRET``).

Reported, per channel and in total:
  * sent (distinct messages) / answered / failed — answered = REST: HTTP 200 with text and exactly
    one answer card; widget: ``turn_done`` after text and exactly one card; WeChat: a passive reply
    or customer-service messages; client-side latency (first attempt → answer) p50/p95/p99/max,
    throughput, retries and what the clients saw on the way (5xx, timeouts, reconnects);
  * stored — the citizens' messages ("user" events) found in PostgreSQL for the run's
    conversations; **duplicates**: a message stored more than once, more answer cards stored than
    messages, a second answer reaching a client; **lost**: sent but not stored;
  * server side, from every Rasa server's /metrics (before/after difference, when no server was
    restarted during the run): messages by outcome, replies by card kind, latency histogram,
    CPU; the machine (cores, memory, load average, busiest processes).

``--kill NAME --kill-at S [--restart-at S]`` (with ``--start-cluster``) SIGKILLs that process
group of the profile at S seconds into the run and starts it again later; the report shows when
it was ready again.

Exit code 0 when sent == stored == answered with no duplicates and nothing failed, 1 otherwise.
Only loopback addresses are accepted (this is a test against our own servers).
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import ipaddress
import itertools
import json
import math
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlparse

import aiohttp

MAX_USERS = 500
MAX_DURATION = 3600.0
REQUEST_TIMEOUT = 60.0        # one REST attempt (nginx gives a Rasa server 75 s)
GIVE_UP_SECONDS = 120.0       # a REST message is retried for this long
WIDGET_TURN_TIMEOUT = 120.0   # a widget message: turn_done within this (reconnects included)
WECHAT_ATTEMPT_SECONDS = 5.0  # WeChat's servers wait 5 s for an answer, then send the message again
WECHAT_RETRIES = 3
WECHAT_API_WAIT = 60.0        # an answer announced as "success" arrives through the API within this
WECHAT_SETTLE = 1.5           # further customer-service messages of one answer arrive within this
CHANNELS = ("rest", "widget", "wechat")

# Conversations written for this load test (not taken from the evaluation set or training data).
# Follow-ups ("那…呢", "有时间要求吗") only make sense with the previous turn's context.
CONVERSATIONS: List[List[str]] = [
    ["市里的国土空间规划会不会对外公布", "这件事哪个单位牵头"],
    ["民生方面哪些信息必须公开", "有没有时间上的要求"],
    ["预算和决算要公开到什么程度", "那由哪个部门负责？"],
    ["疫情防控的信息谁来发布", "具体要公开哪些内容"],
    ["重大政策出台后怎么做解读", "查看全文"],
    ["一件事一次办改革的政策在哪里解读", "牵头部门是哪个"],
    ["群众关心的热点问题政府怎么回应", "谁负责这项工作"],
    ["行政规范性文件是不是集中公开", "由哪个部门负责"],
    ["政府门户网站要怎么集约化", "那由哪个部门负责？", "查看全文"],
    ["基层政务公开标准化是什么意思", "完成时限是什么时候"],
    ["主动公开的内容有什么规范", "谁来牵头"],
    ["依申请公开的答复质量怎么保证", "具体哪个部门管"],
    ["供水供电这些公共企业的信息公开吗", "由谁来监督"],
    ["政务公开的培训由谁组织", "多久培训一次"],
    ["政务公开工作怎么考核评估", "牵头单位是哪个"],
    ["市场监管的执法信息会公开吗", "那市司法局呢"],
    ["三高四新战略的信息公开有什么安排"],
    ["市发改局在政务公开方面要做哪些事"],
    ["数据资源中心负责哪些政务公开工作", "那市卫生健康局呢"],
    ["行政审批服务局承担哪些任务"],
    ["这份文件是哪个单位印发的", "文号是多少"],
    ["工作要点是什么时候发布的"],
    ["你好", "你能做什么"],
    ["谢谢你的解答", "再见"],
    ["你是真人还是机器人"],
    ["明天会下雨吗"],
    ["帮我订一张去长沙的火车票"],
    ["推荐一家好吃的湘菜馆"],
    ["医保信息在疫情期间公开吗", "转人工"],
    ["我要投诉办事窗口态度不好"],
    ["我想找人工客服"],
    ["政策解读材料要和文件同步发布吗", "谁负责审核"],
    ["财政资金直达基层的情况能查到吗", "有什么时间要求吗"],
    ["乡镇街道的政务公开专区怎么建设"],
    ["政府信息公开年报什么时候公布"],
    ["政务新媒体要怎么管理", "哪个部门牵头"],
    ["政策问答库是什么", "查看全文"],
    ["规划实施情况的评估结果公开吗", "那由哪个部门负责？"],
    ["优化营商环境的政策会公开解读吗", "谁来负责"],
    ["专项检查发现问题怎么处理"],
]


@dataclass
class Result:
    sender: str
    text: str
    started: float
    latency: float
    status: int
    answered: bool
    kind: Optional[str]
    busy: bool
    error: Optional[str] = None
    channel: str = "rest"
    attempts: int = 1
    replayed: bool = False
    seen: List[str] = field(default_factory=list)   # what the client saw before the answer (HTTP 503, …)
    duplicate: int = 0                              # extra answers that reached the client


@dataclass
class Conversation:
    channel: str
    sender: str                      # the sender id in the tracker store
    texts: List[str] = field(default_factory=list)


@dataclass
class Report:
    run_id: str
    url: str
    users: int
    duration_s: float
    think_s: float
    pause_s: Optional[float] = None
    mix: Dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    sent: int = 0
    answered: int = 0
    failed: int = 0
    stored: Optional[int] = None
    lost: Optional[int] = None
    duplicates: Dict[str, int] = field(default_factory=dict)
    busy_replies: int = 0
    conversations: int = 0
    throughput_per_s: float = 0.0
    latency_ms: Dict[str, float] = field(default_factory=dict)
    channels: Dict[str, Dict[str, object]] = field(default_factory=dict)
    kinds: Dict[str, int] = field(default_factory=dict)
    statuses: Dict[str, int] = field(default_factory=dict)
    errors: Dict[str, int] = field(default_factory=dict)
    seen_on_the_way: Dict[str, int] = field(default_factory=dict)
    faults: List[Dict[str, object]] = field(default_factory=list)
    around_fault: Dict[str, object] = field(default_factory=dict)
    server: Dict[str, object] = field(default_factory=dict)
    machine: Dict[str, object] = field(default_factory=dict)
    ok: bool = False


def require_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"refusing to load {url}: only loopback addresses (127.0.0.1, ::1, localhost)")


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
    return s[k]


# ----------------------------------------------------------------------------- metrics
METRIC_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$')


def parse_metrics(text: str) -> Dict[Tuple[str, str], float]:
    out: Dict[Tuple[str, str], float] = {}
    for line in text.splitlines():
        m = METRIC_RE.match(line.strip())
        if m and not line.startswith("#"):
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


async def scrape(session: aiohttp.ClientSession, urls: Sequence[str]) -> Dict[Tuple[str, str], float]:
    total: Dict[Tuple[str, str], float] = {}
    for base in urls:
        try:
            async with session.get(base.rstrip("/") + "/metrics", timeout=aiohttp.ClientTimeout(total=10)) as r:
                for k, v in parse_metrics(await r.text()).items():
                    total[k] = total.get(k, 0.0) + v
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            print(f"  (no metrics from {base}: not reachable)", file=sys.stderr)
    return total


def histogram_quantile(buckets: List[Tuple[float, float]], q: float) -> float:
    """Prometheus-style quantile from cumulative (upper bound, count) pairs."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return float("nan")
    rank = q * buckets[-1][1]
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            width = count - prev_count
            return prev_bound + (bound - prev_bound) * ((rank - prev_count) / width if width else 1.0)
        prev_bound, prev_count = bound, count
    return prev_bound


def cpu_and_rss(before: Dict[Tuple[str, str], float], after: Dict[Tuple[str, str], float]) -> Tuple[float, float]:
    """(CPU seconds used during the run, resident memory at the end in MB), summed over processes."""
    cpu = after.get(("process_cpu_seconds_total", ""), 0.0) - before.get(("process_cpu_seconds_total", ""), 0.0)
    return cpu, after.get(("process_resident_memory_bytes", ""), 0.0) / 2 ** 20


def server_summary(before: Dict[Tuple[str, str], float], after: Dict[Tuple[str, str], float]) -> Dict[str, object]:
    def delta(name: str, label_filter: str = "") -> float:
        return sum(v - before.get(k, 0.0) for k, v in after.items() if k[0] == name and label_filter in k[1])

    def by_label(name: str, label: str) -> Dict[str, float]:
        out: Dict[str, float] = {}
        for (n, labels), v in after.items():
            if n == name:
                m = re.search(label + r'="([^"]*)"', labels)
                if m:
                    d = v - before.get((n, labels), 0.0)
                    if d:
                        out[m.group(1)] = out.get(m.group(1), 0.0) + d
        return out

    buckets: Dict[float, float] = {}
    for (n, labels), v in after.items():
        if n == "zwzx_message_latency_seconds_bucket":
            le = re.search(r'le="([^"]*)"', labels).group(1)
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + v - before.get((n, labels), 0.0)
    pairs = list(buckets.items())
    cpu, rss = cpu_and_rss(before, after)
    return {
        "cpu_s": round(cpu, 1),
        "rss_mb": round(rss),
        "messages_by_outcome": by_label("zwzx_messages_total", "outcome"),
        "user_messages_stored": delta("zwzx_user_messages_stored_total"),
        "replies_by_kind": by_label("zwzx_replies_total", "kind"),
        "fallbacks": delta("zwzx_fallbacks_total"),
        "handoffs": delta("zwzx_handoffs_total"),
        "action_server_errors": delta("zwzx_action_server_errors_total"),
        "store_errors": delta("zwzx_store_errors_total"),
        "latency_ms_from_histogram": {f"p{int(q * 100)}": round(histogram_quantile(pairs, q) * 1000, 1)
                                      for q in (0.5, 0.95, 0.99)},
    }


# ----------------------------------------------------------------------------- database
def count_stored(db_url: str, prefix: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(
                "SELECT count(*) FROM events WHERE type_name = 'user' AND sender_id LIKE :p"),
                {"p": prefix + "%"}).scalar())
    finally:
        engine.dispose()


def default_db_url() -> Optional[str]:
    if os.environ.get("ZWZX_DB_URL"):
        return os.environ["ZWZX_DB_URL"]
    try:
        from bot.ops.settings import db_url
    except ImportError:
        return None
    return db_url()


def stored_events(db_url: str, senders: Sequence[str]) -> Dict[str, Dict[str, object]]:
    """Per conversation: the user texts stored (in order) and the number of answer cards."""
    import sqlalchemy as sa

    out: Dict[str, Dict[str, object]] = {s: {"users": [], "cards": 0} for s in senders}
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            senders = list(senders)
            for i in range(0, len(senders), 500):
                rows = conn.execute(sa.text(
                    "SELECT sender_id, type_name, data FROM events WHERE sender_id IN :s "
                    "AND type_name IN ('user', 'bot') ORDER BY id").bindparams(
                        sa.bindparam("s", expanding=True)), {"s": senders[i:i + 500]})
                for sender, kind, data in rows:
                    d = json.loads(data)
                    if kind == "user":
                        out[sender]["users"].append(d.get("text"))
                    elif isinstance((d.get("data") or {}).get("custom"), dict) and d["data"]["custom"].get("kind") \
                            and (d.get("metadata") or {}).get("from") != "staff":
                        out[sender]["cards"] += 1
    finally:
        engine.dispose()
    return out


def machine_info() -> Dict[str, object]:
    info: Dict[str, object] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                               "python": platform.python_version(), "loadavg": os.getloadavg()}
    try:
        with open("/proc/meminfo") as f:
            mem = {line.split(":")[0]: line.split()[1] for line in f}
        info["mem_total_gb"] = round(int(mem["MemTotal"]) / 2 ** 20, 1)
        info["mem_available_gb"] = round(int(mem["MemAvailable"]) / 2 ** 20, 1)
    except (OSError, KeyError, ValueError):
        pass
    try:
        ps = subprocess.run(["ps", "-eo", "pcpu,rss,etimes,args", "--sort=-pcpu"], capture_output=True, text=True,
                            timeout=10).stdout.splitlines()
        info["busiest_processes"] = [re.sub(r"\s+", " ", line.strip())[:160] for line in ps[1:9]]
    except (OSError, subprocess.SubprocessError):
        pass
    return info


# ----------------------------------------------------------------------------- channels
async def send_rest(session: aiohttp.ClientSession, url: str, sender: str, text: str, retry: bool = True,
                    give_up: float = GIVE_UP_SECONDS) -> Result:
    """One REST message; on a 5xx, 429, timeout or dropped connection sent again with the same
    message_id (after Retry-After, at most 5 s) until answered or `give_up` seconds passed."""
    message_id = uuid.uuid4().hex
    started = time.time()
    t0 = time.perf_counter()
    seen: List[str] = []
    attempts = 0
    while True:
        attempts += 1
        status, answered, kind, busy, error, replayed, wait = 0, False, None, False, None, False, 1.0
        try:
            async with session.post(url, json={"sender": sender, "message": text, "message_id": message_id},
                                    timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as r:
                status = r.status
                body = await r.read()
                replayed = r.headers.get("X-Zwzx-Replayed") == "1"
                if status == 200:
                    messages = json.loads(body)
                    cards = [m["custom"] for m in messages
                             if isinstance(m, dict) and isinstance(m.get("custom"), dict) and "kind" in m["custom"]]
                    texts = [m["text"] for m in messages if isinstance(m, dict) and m.get("text")]
                    answered = bool(texts) and len(cards) == 1
                    kind = cards[0]["kind"] if len(cards) == 1 else None
                    busy = any("系统繁忙" in t for t in texts)
                    if not answered:
                        error = f"unanswered ({len(texts)} texts, {len(cards)} cards)"
                else:
                    error = f"HTTP {status}"
                    try:
                        wait = min(5.0, max(0.2, float(r.headers.get("Retry-After") or 1)))
                    except ValueError:
                        wait = 1.0
        except asyncio.TimeoutError:
            error = "timeout"
        except (aiohttp.ClientError, OSError, ValueError) as e:
            error = type(e).__name__
        retryable = error is not None and (status == 0 or status >= 500 or status == 429)
        if not (retry and retryable) or time.perf_counter() - t0 + wait > give_up:
            break
        seen.append(error)
        await asyncio.sleep(wait)
    return Result(sender, text, started, time.perf_counter() - t0, status, answered, kind, busy, error,
                  channel="rest", attempts=attempts, replayed=replayed, seen=seen)


class WidgetCitizen:
    """One widget session on one socket.io connection (through nginx), as web/widget.js behaves."""

    def __init__(self, base_url: str, local_ip: Optional[str]):
        self.base_url, self.local_ip = base_url, local_ip
        self.session_id: Optional[str] = None
        self.token: Optional[str] = None
        self.pending: Optional[Dict[str, Any]] = None
        self.payloads: List[Dict[str, Any]] = []
        self.error_text: Optional[str] = None
        self.done_ids: set = set()
        self.duplicates = 0
        self.seen: List[str] = []
        self.attempts = 0
        self.reconnects = 0
        self.connected_once = False
        self._session_ready = asyncio.Event()
        self._turn: Optional[asyncio.Future] = None

    async def open(self) -> None:
        import socketio

        if not hasattr(aiohttp, "ClientWSTimeout"):
            # python-engineio 4.15's asyncio client builds aiohttp.ClientWSTimeout (aiohttp >= 3.10);
            # Rasa 3.6 pins aiohttp 3.9, whose ws_connect takes the close timeout as a float
            aiohttp.ClientWSTimeout = lambda ws_close=None, ws_receive=None: ws_close  # type: ignore[attr-defined]

        connector = aiohttp.TCPConnector(local_addr=(self.local_ip, 0)) if self.local_ip else aiohttp.TCPConnector()
        self.http = aiohttp.ClientSession(connector=connector)
        self.sio = socketio.AsyncClient(reconnection=True, reconnection_delay=1, reconnection_delay_max=5,
                                        handle_sigint=False, http_session=self.http)
        sio = self.sio
        sio.on("connect", self._on_connect)
        sio.on("disconnect", self._on_disconnect)
        sio.on("session_token", self._on_token)
        sio.on("bot_uttered", self._on_bot)
        sio.on("turn_done", self._on_turn_done)
        sio.on("widget_error", self._on_error)
        await sio.connect(self.base_url, transports=["websocket"], socketio_path="socket.io", wait_timeout=30)
        await asyncio.wait_for(self._session_ready.wait(), 30)

    async def _on_connect(self) -> None:
        await self.sio.emit("session_request", {"session_id": self.session_id, "session_token": self.token})
        if self.connected_once:
            self.reconnects += 1
            self.seen.append("reconnected")
            if self.pending is not None:     # no turn_done for it: send it again, same id
                self.attempts += 1
                self.payloads = []
                await self.sio.emit("user_uttered", self.pending)
        self.connected_once = True

    async def _on_disconnect(self, *args: Any) -> None:
        if self.pending is not None:
            self.seen.append("disconnected" + (" (after a partial answer)" if self.payloads else ""))
        self.payloads = []                   # the widget redraws from the history after such a turn

    async def _on_token(self, data: Any) -> None:
        if isinstance(data, dict) and data.get("session_id"):
            self.session_id, self.token = data["session_id"], data.get("token")
            self._session_ready.set()

    async def _on_bot(self, data: Any) -> None:
        if isinstance(data, dict) and (data.get("metadata") or {}).get("from") != "staff":
            self.payloads.append(data)

    async def _on_error(self, data: Any) -> None:
        if isinstance(data, dict):
            self.error_text = str(data.get("text"))

    async def _on_turn_done(self, data: Any) -> None:
        mid = data.get("message_id") if isinstance(data, dict) else None
        if self.pending is not None and mid == self.pending["message_id"]:
            if self._turn is not None and not self._turn.done():
                self._turn.set_result(dict(data))
        elif mid in self.done_ids:
            self.duplicates += 1             # a second answer to a message already answered

    async def ask(self, text: str) -> Result:
        mid = uuid.uuid4().hex
        started, t0 = time.time(), time.perf_counter()
        self.pending = {"message": text, "session_id": self.session_id, "session_token": self.token,
                        "metadata": {}, "message_id": mid}
        self.payloads, self.error_text, self.seen, self.attempts = [], None, [], 1
        self._turn = asyncio.get_running_loop().create_future()
        status, error = 0, None
        try:
            if self.sio.connected:
                await self.sio.emit("user_uttered", self.pending)
            # else: the reconnect handler sends it
            done = await asyncio.wait_for(asyncio.shield(self._turn), WIDGET_TURN_TIMEOUT)
            status = 200
        except asyncio.TimeoutError:
            done, error = {}, "no turn_done"
        except Exception as e:  # noqa: BLE001
            done, error = {}, type(e).__name__
        payloads = list(self.payloads)
        cards = [p["custom"] for p in payloads if isinstance(p.get("custom"), dict) and "kind" in p["custom"]]
        texts = [p["text"] for p in payloads if p.get("text")]
        answered = error is None and not done.get("error") and bool(texts) and len(cards) == 1
        if error is None and not answered:
            error = f"unanswered ({len(texts)} texts, {len(cards)} cards" + \
                    (f", widget_error {self.error_text}" if self.error_text else "") + ")"
        self.pending = None
        self.done_ids.add(mid)
        return Result(self.session_id or "?", text, started, time.perf_counter() - t0, status, answered,
                      cards[0]["kind"] if len(cards) == 1 else None, any("系统繁忙" in t for t in texts), error,
                      channel="widget", attempts=self.attempts, replayed=bool(done.get("replayed")),
                      seen=list(self.seen))

    async def close(self) -> None:
        try:
            await self.sio.disconnect()
        except Exception:  # noqa: BLE001
            pass
        await self.http.close()


class WeChat:
    """Sends messages as WeChat's servers do and reads answers from the fake WeChat API."""

    def __init__(self, url: str, token: str, api: Any, gh_id: str = "gh_zwzx_load"):
        self.url, self.token, self.api, self.gh_id = url, token, api, gh_id
        self._ids = itertools.count(int(time.time() * 1000) * 100)
        self.consumed: Dict[str, int] = {}   # openid → API messages already attributed to a message

    def _api_texts(self, openid: str) -> List[str]:
        return self.api.messages_to(openid)

    def _params(self) -> Dict[str, str]:
        timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
        signature = hashlib.sha1("".join(sorted([self.token, timestamp, nonce])).encode()).hexdigest()
        return {"signature": signature, "timestamp": timestamp, "nonce": nonce}

    async def ask(self, session: aiohttp.ClientSession, openid: str, text: str) -> Result:
        import xmltodict

        msg_id = next(self._ids)
        body = (f"<xml><ToUserName><![CDATA[{self.gh_id}]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
                f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>").encode("utf-8")
        started, t0 = time.time(), time.perf_counter()
        seen: List[str] = []
        passive: List[str] = []
        status, valid, attempts, answer_at = 0, False, 0, None
        for attempt in range(1 + WECHAT_RETRIES):
            attempts += 1
            t_attempt = time.perf_counter()
            try:
                async with session.post(self.url, params=self._params(), data=body,
                                        headers={"Content-Type": "text/xml"},
                                        timeout=aiohttp.ClientTimeout(total=WECHAT_ATTEMPT_SECONDS)) as r:
                    status = r.status
                    reply = await r.text()
                    if status == 200:
                        valid = True
                        if reply.strip() and reply.strip() != "success":
                            passive.append(xmltodict.parse(reply)["xml"]["Content"])
                            answer_at = answer_at or time.perf_counter()
                        break
                    seen.append(f"HTTP {status}")
            except asyncio.TimeoutError:
                seen.append("no answer within 5 s")
            except (aiohttp.ClientError, OSError) as e:
                seen.append(type(e).__name__)
            rest = WECHAT_ATTEMPT_SECONDS - (time.perf_counter() - t_attempt)
            if rest > 0 and attempt < WECHAT_RETRIES:
                await asyncio.sleep(rest)
        # customer-service messages: the answer when the reply was "success" (or nothing came back)
        before = self.consumed.get(openid, 0)
        if not passive:
            deadline = time.perf_counter() + (WECHAT_API_WAIT if valid else 30.0)
            while time.perf_counter() < deadline and len(self._api_texts(openid)) <= before:
                await asyncio.sleep(0.1)
            last = len(self._api_texts(openid))
            if last > before:
                answer_at = answer_at or time.perf_counter()
                while True:  # one answer may be several messages: until none arrived for WECHAT_SETTLE
                    await asyncio.sleep(WECHAT_SETTLE)
                    n = len(self._api_texts(openid))
                    if n == last:
                        break
                    last = n
        texts = self._api_texts(openid)
        api_new = texts[self.consumed.get(openid, 0):]
        self.consumed[openid] = len(texts)
        answered = bool(passive) or bool(api_new)
        duplicate = max(0, len(set(passive)) - 1) + (1 if passive and api_new else 0) + \
            (len(api_new) - len(set(api_new)))
        error = None
        if not answered:
            error = "no answer" + ("" if valid else " (WeChat gave up: 该公众号暂时无法提供服务)")
        elif duplicate:
            error = "duplicate answer"
        all_text = " ".join(passive + api_new)
        latency = (answer_at or time.perf_counter()) - t0
        return Result("wechat:" + openid, text, started, latency, status, answered and not duplicate,
                      "text" if answered else None, "系统繁忙" in all_text, error, channel="wechat",
                      attempts=attempts, seen=seen, duplicate=duplicate)


# ----------------------------------------------------------------------------- citizens
def parse_mix(text: Optional[str]) -> Dict[str, int]:
    if not text:
        return {"rest": 100}
    mix: Dict[str, int] = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in CHANNELS:
            raise SystemExit(f"--mix: unknown channel {name!r} (one of {', '.join(CHANNELS)})")
        mix[name] = int(weight or 1)
    if sum(mix.values()) <= 0:
        raise SystemExit("--mix: the weights must add up to more than 0")
    return mix


def assign_channels(users: int, mix: Dict[str, int]) -> List[str]:
    """Citizen u's channel: the mix's shares over the citizens, interleaved (largest remainder)."""
    total = sum(mix.values())
    counts = {c: users * w // total for c, w in mix.items()}
    for c, _ in sorted(mix.items(), key=lambda kv: -(users * kv[1] / total - users * kv[1] // total)):
        if sum(counts.values()) >= users:
            break
        counts[c] += 1
    order: List[str] = []
    pools = {c: n for c, n in counts.items()}
    while len(order) < users:
        for c in mix:
            if pools[c] > 0:
                order.append(c)
                pools[c] -= 1
    return order[:users]


async def citizen(ctx: "LoadContext", user: int, channel: str, rng: random.Random) -> None:
    n = 0
    while time.time() < ctx.deadline:
        script = rng.choice(CONVERSATIONS)
        n += 1
        ctx.conversation_count += 1
        widget: Optional[WidgetCitizen] = None
        if channel == "rest":
            conv = Conversation("rest", f"load-{ctx.run_id}-{user}-{n - 1}")
        elif channel == "wechat":
            openid = "o" + uuid.uuid4().hex[:27]
            conv = Conversation("wechat", "wechat:" + openid)
        else:
            widget = WidgetCitizen(ctx.url, f"127.0.0.{2 + user % 250}" if ctx.spread_addresses else None)
            try:
                await widget.open()
            except Exception as e:  # noqa: BLE001 — could not even connect: counts as a failed message
                ctx.results.append(Result("?", script[0], time.time(), 0.0, 0, False, None, False,
                                          f"widget connect: {type(e).__name__}", channel="widget"))
                await widget.close()
                await asyncio.sleep(1.0)
                continue
            conv = Conversation("widget", widget.session_id or "?")
        ctx.conversations.append(conv)
        try:
            for text in script:
                if time.time() >= ctx.deadline:
                    break
                conv.texts.append(text)
                if channel == "rest":
                    res = await send_rest(ctx.session, ctx.rest_url, conv.sender, text, retry=ctx.retry,
                                          give_up=ctx.give_up)
                elif channel == "wechat":
                    res = await ctx.wechat.ask(ctx.session, conv.sender[len("wechat:"):], text)
                else:
                    res = await widget.ask(text)
                ctx.results.append(res)
                if ctx.pause is not None:
                    await asyncio.sleep(ctx.pause)
                elif ctx.think > 0:
                    await asyncio.sleep(rng.uniform(0, 2 * ctx.think))
                if not res.answered or res.kind == "handoff":
                    break  # retry later / wait for 12345 staff: this citizen starts a new conversation
        finally:
            if widget is not None:
                ctx.widget_duplicates += widget.duplicates
                ctx.widget_reconnects += widget.reconnects
                await widget.close()


@dataclass
class LoadContext:
    url: str
    rest_url: str
    run_id: str
    deadline: float
    session: aiohttp.ClientSession
    think: float = 0.0
    pause: Optional[float] = None
    retry: bool = True
    give_up: float = GIVE_UP_SECONDS
    wechat: Optional[WeChat] = None
    spread_addresses: bool = True
    results: List[Result] = field(default_factory=list)
    conversations: List[Conversation] = field(default_factory=list)
    conversation_count: int = 0
    widget_duplicates: int = 0
    widget_reconnects: int = 0


def _count(items) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out


def summarise(results: Sequence[Result], wall: float) -> Dict[str, object]:
    lat = [r.latency * 1000 for r in results if r.answered]
    return {"sent": len(results), "answered": sum(r.answered for r in results),
            "failed": sum(not r.answered for r in results),
            "retried": sum(r.attempts > 1 for r in results), "replayed": sum(r.replayed for r in results),
            "throughput_per_s": round(sum(r.answered for r in results) / wall, 2) if wall else 0.0,
            "latency_ms": {"p50": round(percentile(lat, 50), 1), "p95": round(percentile(lat, 95), 1),
                           "p99": round(percentile(lat, 99), 1),
                           "max": round(max(lat), 1) if lat else float("nan"),
                           "mean": round(statistics.fmean(lat), 1) if lat else float("nan")}}


async def run_load(url: str, users: int, duration: float, think: float = 0.0, metrics_urls: Sequence[str] = (),
                   db_url: Optional[str] = None, run_id: Optional[str] = None, seed: int = 7,
                   ramp_s: float = 2.0, action_metrics_urls: Sequence[str] = (), mix: Optional[Dict[str, int]] = None,
                   pause: Optional[float] = None, retry: bool = True, give_up: float = GIVE_UP_SECONDS,
                   wechat: Optional[WeChat] = None, faults: Sequence[Tuple[float, str, Any]] = (),
                   spread_addresses: bool = True) -> Report:
    """`faults`: (seconds into the run, label, callable run in a thread) — e.g. kill a server."""
    require_loopback(url)
    for m in list(metrics_urls) + list(action_metrics_urls):
        require_loopback(m)
    mix = mix or {"rest": 100}
    if mix.get("wechat") and wechat is None:
        raise SystemExit("WeChat citizens need the fake WeChat API and the profile's WECHAT_TOKEN "
                         "(--start-cluster, or --wechat-token with --wechat-api-port)")
    users = max(1, min(MAX_USERS, users))
    duration = max(1.0, min(MAX_DURATION, duration))
    run_id = run_id or uuid.uuid4().hex[:8]
    webhook = url.rstrip("/") + "/webhooks/rest/webhook"
    report = Report(run_id=run_id, url=url, users=users, duration_s=duration, think_s=think, pause_s=pause, mix=mix)
    report.machine = {"before": machine_info()}
    connector = aiohttp.TCPConnector(limit=users + 10)
    async with aiohttp.ClientSession(connector=connector) as session:
        before = await scrape(session, metrics_urls) if metrics_urls else {}
        actions_before = await scrape(session, action_metrics_urls) if action_metrics_urls else {}
        t0 = time.time()
        ctx = LoadContext(url=url, rest_url=webhook, run_id=run_id, deadline=t0 + duration, session=session,
                          think=think, pause=pause, retry=retry, give_up=give_up, wechat=wechat,
                          spread_addresses=spread_addresses)
        rng = random.Random(seed)
        channels = assign_channels(users, mix)

        async def start(user: int) -> None:
            await asyncio.sleep(ramp_s * user / users)
            await citizen(ctx, user, channels[user], random.Random(rng.random() + user))

        async def fault(at: float, label: str, fn: Any) -> None:
            await asyncio.sleep(max(0.0, t0 + at - time.time()))
            t = time.time() - t0
            try:
                detail = await asyncio.to_thread(fn)
                report.faults.append({"at_s": round(t, 1), "what": label, "done_s": round(time.time() - t0, 1),
                                      **(detail or {})})
            except Exception as e:  # noqa: BLE001
                report.faults.append({"at_s": round(t, 1), "what": label, "error": f"{type(e).__name__}: {e}"})

        fault_tasks = [asyncio.ensure_future(fault(at, label, fn)) for at, label, fn in faults]
        await asyncio.gather(*(start(u) for u in range(users)))
        report.wall_s = round(time.time() - t0, 2)
        for task in fault_tasks:
            if not task.done():
                await task
        restarted = any(str(f["what"]).startswith(("kill", "restart")) for f in report.faults)
        after = await scrape(session, metrics_urls) if metrics_urls else {}
        actions_after = await scrape(session, action_metrics_urls) if action_metrics_urls else {}
        if wechat is not None:
            await asyncio.sleep(3.0)  # late customer-service messages (a second answer) would arrive now
    results = ctx.results
    report._results = results  # type: ignore[attr-defined]  (for tests; not serialised)
    report.machine["after"] = machine_info()
    if metrics_urls and not restarted:
        report.server = server_summary(before, after)
    elif metrics_urls:
        report.server = {"note": "a Rasa server was restarted during the run: its counters started again; "
                                 "server-side sums left out"}
    if action_metrics_urls:
        cpu, rss = cpu_and_rss(actions_before, actions_after)
        calls = {labels: v - actions_before.get((n, labels), 0.0) for (n, labels), v in actions_after.items()
                 if n == "zwzx_action_calls_total"}
        report.server["action_servers"] = {"cpu_s": round(cpu, 1), "rss_mb": round(rss),
                                           "calls": int(sum(calls.values())),
                                           "errors": int(sum(v for k, v in calls.items() if 'outcome="error"' in k))}
    total = summarise(results, report.wall_s)
    report.sent, report.answered, report.failed = total["sent"], total["answered"], total["failed"]
    report.latency_ms, report.throughput_per_s = total["latency_ms"], total["throughput_per_s"]
    report.busy_replies = sum(r.busy for r in results)
    report.conversations = ctx.conversation_count
    for ch in CHANNELS:
        rs = [r for r in results if r.channel == ch]
        if rs:
            report.channels[ch] = summarise(rs, report.wall_s)
    if "widget" in report.channels:
        report.channels["widget"]["socket_reconnects"] = ctx.widget_reconnects
    if report.server.get("cpu_s") is not None and report.sent:
        cpu = float(report.server.get("cpu_s", 0.0)) + float(
            (report.server.get("action_servers") or {}).get("cpu_s", 0.0))
        report.server["cpu_ms_per_message"] = round(1000 * cpu / report.sent, 1)
    for r in results:
        report.statuses[str(r.status)] = report.statuses.get(str(r.status), 0) + 1
        if r.kind:
            report.kinds[r.kind] = report.kinds.get(r.kind, 0) + 1
        if r.error:
            key = f"{r.channel}: {r.error}"
            report.errors[key] = report.errors.get(key, 0) + 1
        for s in r.seen:
            key = f"{r.channel}: {s}"
            report.seen_on_the_way[key] = report.seen_on_the_way.get(key, 0) + 1
    # messages around a fault: what the clients saw, how long they waited
    kills = [f for f in report.faults if str(f["what"]).startswith("kill")]
    if kills:
        frozen = float(kills[0].get("frozen_s") or 0.0)
        k = t0 + float(kills[0]["at_s"]) + frozen
        near = [r for r in results if r.started <= k <= r.started + r.latency]
        later = [r for r in results if k < r.started <= k + 10.0]
        report.around_fault["first_10_s_after_kill"] = summarise(later, 10.0) if later else {}
        restarts = [f for f in report.faults if str(f["what"]).startswith("restart") and "done_s" in f]
        back = t0 + float(restarts[0]["done_s"]) if restarts else t0 + report.wall_s
        for label, lo, hi in (("before_the_kill", t0, k), ("one_server_down", k, back),
                              ("after_the_restart_was_ready", back, t0 + report.wall_s)):
            rs = [r for r in results if lo <= r.started < hi]
            if rs and hi > lo:
                report.around_fault.setdefault("phases", {})[label] = dict(
                    summarise(rs, hi - lo), from_s=round(lo - t0, 1), to_s=round(hi - t0, 1))
        report.around_fault.update({
            "in_flight_at_kill": len(near),
            "in_flight_by_channel": {ch: sum(r.channel == ch for r in near) for ch in CHANNELS},
            "in_flight_answered": sum(r.answered for r in near),
            "in_flight_replayed": sum(r.replayed for r in near),
            "in_flight_max_latency_ms": round(max((r.latency for r in near), default=0) * 1000, 1),
            "what_they_saw": {k_: v for k_, v in sorted(_count(
                f"{r.channel}: {' → '.join(r.seen) or 'nothing unusual'}"
                f"{' → replayed' if r.replayed else ''} → {'answered' if r.answered else r.error}"
                for r in near).items())},
        })
    # duplicates reaching clients
    report.duplicates = {"client_wechat": sum(r.duplicate for r in results if r.channel == "wechat"),
                         "client_widget": ctx.widget_duplicates}
    if wechat is not None:
        late = sum(max(0, len(wechat.api.messages_to(c.sender[len("wechat:"):])) -
                       wechat.consumed.get(c.sender[len("wechat:"):], 0))
                   for c in ctx.conversations if c.channel == "wechat")
        report.duplicates["client_wechat_late_api_messages"] = late
    # what PostgreSQL holds for the run's conversations
    if db_url:
        convs = [c for c in ctx.conversations if c.sender and c.sender != "?"]
        stored = stored_events(db_url, [c.sender for c in convs])
        n_stored = dup_users = lost = extra_cards = 0
        per_channel: Dict[str, Dict[str, int]] = {}
        for c in convs:
            users_stored = stored[c.sender]["users"]
            n_stored += len(users_stored)
            d = sum(max(0, users_stored.count(t) - 1) for t in set(users_stored))
            missing = sum(1 for t in c.texts if t not in users_stored)
            extra = max(0, int(stored[c.sender]["cards"]) - len(users_stored))
            dup_users, lost, extra_cards = dup_users + d, lost + missing, extra_cards + extra
            pc = per_channel.setdefault(c.channel, {"stored": 0, "duplicates": 0, "lost": 0})
            pc["stored"] += len(users_stored)
            pc["duplicates"] += d
            pc["lost"] += missing
        report.stored, report.lost = n_stored, lost
        report.duplicates.update(stored_user_messages=dup_users, stored_extra_answer_cards=extra_cards)
        for ch, pc in per_channel.items():
            report.channels.setdefault(ch, {}).update(pc)
    report.ok = (report.failed == 0 and report.sent > 0 and not any(report.duplicates.values())
                 and (report.stored is None or report.stored == report.sent == report.answered))
    return report


def print_report(r: Report) -> None:
    how = f"pause {r.pause_s} s" if r.pause_s is not None else f"think {r.think_s} s"
    print(f"run {r.run_id}: {r.users} citizens × {r.duration_s:.0f} s against {r.url} ({how}; mix {r.mix})")
    print(f"  conversations {r.conversations}, messages sent {r.sent}, answered {r.answered}, "
          f"stored {r.stored if r.stored is not None else '?'}, lost {r.lost if r.lost is not None else '?'}, "
          f"failed {r.failed}, 系统繁忙 replies {r.busy_replies}")
    print(f"  duplicates: {r.duplicates}")
    print(f"  throughput {r.throughput_per_s} answered/s over {r.wall_s} s")
    print(f"  latency ms (client): p50 {r.latency_ms['p50']}  p95 {r.latency_ms['p95']}  "
          f"p99 {r.latency_ms['p99']}  max {r.latency_ms['max']}")
    for ch, s in r.channels.items():
        print(f"  {ch}: {json.dumps(s, ensure_ascii=False)}")
    print(f"  answer cards: {json.dumps(r.kinds, ensure_ascii=False)}  HTTP: {r.statuses}")
    if r.errors:
        print(f"  errors: {json.dumps(r.errors, ensure_ascii=False)}")
    if r.seen_on_the_way:
        print(f"  seen by clients before their answer: {json.dumps(r.seen_on_the_way, ensure_ascii=False)}")
    if r.faults:
        print(f"  faults: {json.dumps(r.faults, ensure_ascii=False)}")
    if r.around_fault:
        print(f"  around the kill: {json.dumps(r.around_fault, ensure_ascii=False)}")
    if r.server:
        print(f"  server metrics (sum over Rasa servers): {json.dumps(r.server, ensure_ascii=False)}")
    print("  OK: sent == stored == answered, no duplicates" if r.ok else "  NOT OK")


# ----------------------------------------------------------------------------- the profile, started here
WECHAT_LOAD = {"WECHAT_TOKEN": "zwzx-load-token", "WECHAT_APP_ID": "wxzwzxload000001",
               "WECHAT_APP_SECRET": "zwzx-load-secret", "WECHAT_ENCODING_AES_KEY": ""}


def start_cluster(args: argparse.Namespace, api_port: int) -> Tuple[Any, Any, Dict[str, str]]:
    """The production profile as deploy/run-prod.sh starts it (bot.ops.cluster), its WeChat
    channel pointed at a fake WeChat API started here; database and Redis prefix of their own."""
    from bot.ops.cluster import Cluster
    from tests.fake_wechat_api import FakeWeChatAPI

    env = dict(os.environ)
    env.update(WECHAT_LOAD)
    env["WECHAT_API_BASE"] = f"http://127.0.0.1:{api_port}"
    env.setdefault("ZWZX_PG_DB", args.pg_db)
    env.setdefault("ZWZX_REDIS_PREFIX", "zwzxload")
    env.setdefault("ZWZX_WIDGET_SECRET", "zwzx-load-widget-secret-" + uuid.uuid4().hex)
    env.setdefault("ZWZX_RUN_DIR", "build/prod-load")
    fake = FakeWeChatAPI(WECHAT_LOAD["WECHAT_APP_ID"], WECHAT_LOAD["WECHAT_APP_SECRET"], port=api_port).start()
    cluster = Cluster(environ=env, log=lambda m: print(f"[cluster] {m}", file=sys.stderr, flush=True))
    t = time.time()
    cluster.start_all(timeout=600)
    print(f"[cluster] profile ready in {time.time() - t:.0f} s", file=sys.stderr, flush=True)
    return cluster, fake, cluster.env


def kill_fn(cluster: Any, name: str, freeze: float = 0.0):
    def run() -> Dict[str, object]:
        import signal

        pid = cluster.procs[name].pid
        if freeze > 0:  # requests keep arriving at a frozen server: certainly some in flight at the kill
            cluster.send_signal(name, signal.SIGSTOP)
            time.sleep(freeze)
        cluster.kill(name)
        return {"pid": pid, "frozen_s": freeze}
    return run


def restart_fn(cluster: Any, name: str):
    def run() -> Dict[str, object]:
        t = time.time()
        cluster.start(name)
        cluster.wait_ready([name], timeout=900)
        return {"ready_after_s": round(time.time() - t, 1), "pid": cluster.procs[name].pid}
    return run


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None, help="public side (nginx) of the profile (default: its port)")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds")
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean pause between a citizen's messages (s), uniform 0..2×think")
    parser.add_argument("--pause", type=float, default=None, help="fixed pause between a citizen's messages (s)")
    parser.add_argument("--mix", default="rest=100", help="channels in percent, e.g. rest=40,widget=40,wechat=20")
    parser.add_argument("--no-retry", action="store_true", help="REST: do not send a failed message again")
    parser.add_argument("--give-up", type=float, default=GIVE_UP_SECONDS, help="REST: retry a message this long (s)")
    parser.add_argument("--metrics", default=None,
                        help="comma-separated Rasa server base URLs to read /metrics from "
                             "(default: the profile's Rasa ports)")
    parser.add_argument("--action-metrics", default=None,
                        help="comma-separated action server base URLs to read /metrics from "
                             "(default: the profile's action-server ports)")
    parser.add_argument("--db-url", default=None, help="PostgreSQL URL to count stored messages (default: profile's)")
    parser.add_argument("--json", default=None, help="write the report as JSON here")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start-cluster", action="store_true",
                        help="start the production profile here (bot.ops.cluster, as deploy/run-prod.sh) "
                             "with a fake WeChat API, and stop it afterwards")
    parser.add_argument("--pg-db", default="zwzx_load", help="--start-cluster: database (default zwzx_load)")
    parser.add_argument("--wechat-token", default=os.environ.get("WECHAT_TOKEN"),
                        help="without --start-cluster: the profile's WECHAT_TOKEN")
    parser.add_argument("--wechat-api-port", type=int, default=5770, help="port of the fake WeChat API")
    parser.add_argument("--kill", default=None, help="--start-cluster: process to SIGKILL, e.g. rasa-1")
    parser.add_argument("--kill-at", type=float, default=60.0)
    parser.add_argument("--restart-at", type=float, default=None, help="start the killed process again (s)")
    parser.add_argument("--freeze", type=float, default=0.0,
                        help="SIGSTOP the process this many seconds before the kill (messages pile up in flight)")
    args = parser.parse_args(argv)
    from bot.ops.settings import Topology

    mix = parse_mix(args.mix)
    cluster = fake = None
    env: Dict[str, str] = dict(os.environ)
    if args.kill and not args.start_cluster:
        parser.error("--kill needs --start-cluster")
    if args.start_cluster:
        cluster, fake, env = start_cluster(args, args.wechat_api_port)
    try:
        topology = Topology.from_env(env)
        url = args.url or f"http://127.0.0.1:{topology.http_port}"
        metrics_urls = ([f"http://127.0.0.1:{p}" for p in topology.rasa_ports] if args.metrics is None
                        else [u for u in args.metrics.split(",") if u])
        action_urls = ([f"http://127.0.0.1:{p}" for p in topology.action_ports] if args.action_metrics is None
                       else [u for u in args.action_metrics.split(",") if u])
        wechat = None
        if mix.get("wechat"):
            if fake is None:
                from tests.fake_wechat_api import FakeWeChatAPI

                if not (args.wechat_token and os.environ.get("WECHAT_APP_ID") and os.environ.get("WECHAT_APP_SECRET")):
                    parser.error("WeChat citizens against a running profile: set WECHAT_TOKEN, WECHAT_APP_ID, "
                                 "WECHAT_APP_SECRET as the profile has them (and its WECHAT_API_BASE to the fake)")
                fake = FakeWeChatAPI(os.environ["WECHAT_APP_ID"], os.environ["WECHAT_APP_SECRET"],
                                     port=args.wechat_api_port).start()
            wechat = WeChat(url.rstrip("/") + "/webhooks/wechat/webhook",
                            env.get("WECHAT_TOKEN") or args.wechat_token, fake)
        faults: List[Tuple[float, str, Any]] = []
        if args.kill:
            label = f"kill {args.kill} (SIGKILL" + (f" after SIGSTOP {args.freeze:g} s)" if args.freeze else ")")
            faults.append((args.kill_at - args.freeze, label, kill_fn(cluster, args.kill, args.freeze)))
            if args.restart_at is not None:
                faults.append((args.restart_at, f"restart {args.kill}", restart_fn(cluster, args.kill)))
        db_url = args.db_url or (env.get("ZWZX_DB_URL") if args.start_cluster else default_db_url())
        report = asyncio.run(run_load(url, args.users, args.duration, args.think, metrics_urls, db_url,
                                      seed=args.seed, action_metrics_urls=action_urls, mix=mix, pause=args.pause,
                                      retry=not args.no_retry, give_up=args.give_up, wechat=wechat, faults=faults))
        if cluster is not None:
            report.machine["profile"] = {"processes": {n: {"pid": p.pid, "restarts": p.restarts}
                                                       for n, p in cluster.procs.items()},
                                         "database": env.get("ZWZX_PG_DB")}
    finally:
        if cluster is not None:
            cluster.stop_all()
        if fake is not None:
            fake.stop()
    print_report(report)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(asdict(report), f, ensure_ascii=False, indent=2)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
