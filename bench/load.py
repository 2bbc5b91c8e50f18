"""Load test of the production profile: many citizens at once, for a bounded time, on loopback.

    PYTHONPATH=. .venv/bin/python bench/load.py                       # 50 citizens, 5 minutes
    PYTHONPATH=. .venv/bin/python bench/load.py --users 20 --duration 20 --json /tmp/load.json

Every simulated citizen runs short conversations one after another (a question, often one or
two follow-ups that need the context, sometimes chitchat, an out-of-scope question or a request
for a person — always the last message of its conversation, because a handed-off conversation
is paused for staff). Each conversation has a new sender id ``load-<run>-<user>-<n>``; the
citizen waits for each reply before sending the next message (plus ``--think`` seconds).

Reported:
  * sent / answered / failed — answered = HTTP 200 with at least one text and exactly one
    answer card; throughput (answered per second) and client-side p50/p95/p99/max latency;
  * stored — the citizens' messages ("user" events) found in PostgreSQL for this run's
    senders (needs --db-url or ZWZX_DB_URL / ZWZX_PG_*);
  * server side, from every Rasa server's /metrics (before/after difference): messages by
    outcome, messages stored, replies by answer-card kind (fallbacks, handoffs), action-server
    errors, p50/p95/p99 from the latency histogram.

Exit code 0 when sent == stored == answered and nothing failed, 1 otherwise.
Only loopback addresses are accepted (this is a test against our own servers).
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import os
import platform
import random
import re
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlparse

import aiohttp

MAX_USERS = 500
MAX_DURATION = 3600.0
REQUEST_TIMEOUT = 60.0

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


@dataclass
class Report:
    run_id: str
    url: str
    users: int
    duration_s: float
    think_s: float
    wall_s: float = 0.0
    sent: int = 0
    answered: int = 0
    failed: int = 0
    stored: Optional[int] = None
    busy_replies: int = 0
    conversations: int = 0
    throughput_per_s: float = 0.0
    latency_ms: Dict[str, float] = field(default_factory=dict)
    kinds: Dict[str, int] = field(default_factory=dict)
    statuses: Dict[str, int] = field(default_factory=dict)
    errors: Dict[str, int] = field(default_factory=dict)
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
        async with session.get(base.rstrip("/") + "/metrics", timeout=aiohttp.ClientTimeout(total=10)) as r:
            for k, v in parse_metrics(await r.text()).items():
                total[k] = total.get(k, 0.0) + v
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


# ----------------------------------------------------------------------------- load
async def send(session: aiohttp.ClientSession, url: str, sender: str, text: str) -> Result:
    started = time.time()
    t0 = time.perf_counter()
    status, answered, kind, busy, error = 0, False, None, False, None
    try:
        async with session.post(url, json={"sender": sender, "message": text},
                                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as r:
            status = r.status
            body = await r.read()
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
    except asyncio.TimeoutError:
        error = "timeout"
    except (aiohttp.ClientError, OSError, ValueError) as e:
        error = type(e).__name__
    return Result(sender, text, started, time.perf_counter() - t0, status, answered, kind, busy, error)


async def citizen(session: aiohttp.ClientSession, url: str, run_id: str, user: int, deadline: float,
                  think: float, rng: random.Random, results: List[Result], conversations: List[int]) -> None:
    n = 0
    while time.time() < deadline:
        script = rng.choice(CONVERSATIONS)
        sender = f"load-{run_id}-{user}-{n}"
        n += 1
        conversations[0] += 1
        for text in script:
            if time.time() >= deadline:
                break
            res = await send(session, url, sender, text)
            results.append(res)
            if think > 0:
                await asyncio.sleep(rng.uniform(0, 2 * think))
            if not res.answered or res.kind == "handoff":
                break  # retry later / wait for 12345 staff: this citizen starts a new conversation


async def run_load(url: str, users: int, duration: float, think: float = 0.0, metrics_urls: Sequence[str] = (),
                   db_url: Optional[str] = None, run_id: Optional[str] = None, seed: int = 7,
                   ramp_s: float = 2.0, action_metrics_urls: Sequence[str] = ()) -> Report:
    require_loopback(url)
    for m in list(metrics_urls) + list(action_metrics_urls):
        require_loopback(m)
    users = max(1, min(MAX_USERS, users))
    duration = max(1.0, min(MAX_DURATION, duration))
    run_id = run_id or uuid.uuid4().hex[:8]
    webhook = url.rstrip("/") + "/webhooks/rest/webhook"
    report = Report(run_id=run_id, url=webhook, users=users, duration_s=duration, think_s=think)
    results: List[Result] = []
    conversations = [0]
    load_before = os.getloadavg()
    connector = aiohttp.TCPConnector(limit=users + 10)
    async with aiohttp.ClientSession(connector=connector) as session:
        before = await scrape(session, metrics_urls) if metrics_urls else {}
        actions_before = await scrape(session, action_metrics_urls) if action_metrics_urls else {}
        t0 = time.time()
        deadline = t0 + duration
        rng = random.Random(seed)

        async def start(user: int) -> None:
            await asyncio.sleep(ramp_s * user / users)
            await citizen(session, webhook, run_id, user, deadline, think,
                          random.Random(rng.random() + user), results, conversations)

        await asyncio.gather(*(start(u) for u in range(users)))
        report.wall_s = round(time.time() - t0, 2)
        after = await scrape(session, metrics_urls) if metrics_urls else {}
        actions_after = await scrape(session, action_metrics_urls) if action_metrics_urls else {}
    if metrics_urls:
        report.server = server_summary(before, after)
    if action_metrics_urls:
        cpu, rss = cpu_and_rss(actions_before, actions_after)
        calls = {labels: v - actions_before.get((n, labels), 0.0) for (n, labels), v in actions_after.items()
                 if n == "zwzx_action_calls_total"}
        report.server["action_servers"] = {"cpu_s": round(cpu, 1), "rss_mb": round(rss),
                                           "calls": int(sum(calls.values())),
                                           "errors": int(sum(v for k, v in calls.items() if 'outcome="error"' in k))}
    report.sent = len(results)
    report.answered = sum(r.answered for r in results)
    report.failed = report.sent - report.answered
    report.busy_replies = sum(r.busy for r in results)
    report.conversations = conversations[0]
    lat = [r.latency * 1000 for r in results if r.answered]
    report.latency_ms = {"p50": round(percentile(lat, 50), 1), "p95": round(percentile(lat, 95), 1),
                         "p99": round(percentile(lat, 99), 1), "max": round(max(lat), 1) if lat else float("nan"),
                         "mean": round(statistics.fmean(lat), 1) if lat else float("nan")}
    report.throughput_per_s = round(report.answered / report.wall_s, 2) if report.wall_s else 0.0
    if report.server and report.sent:
        cpu = float(report.server.get("cpu_s", 0.0)) + float(
            (report.server.get("action_servers") or {}).get("cpu_s", 0.0))
        report.server["cpu_ms_per_message"] = round(1000 * cpu / report.sent, 1)
    for r in results:
        report.statuses[str(r.status)] = report.statuses.get(str(r.status), 0) + 1
        if r.kind:
            report.kinds[r.kind] = report.kinds.get(r.kind, 0) + 1
        if r.error:
            report.errors[r.error] = report.errors.get(r.error, 0) + 1
    if db_url:
        report.stored = count_stored(db_url, f"load-{run_id}-")
    report.machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                      "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    report.ok = (report.failed == 0 and report.sent > 0
                 and (report.stored is None or report.stored == report.sent == report.answered))
    report._results = results  # type: ignore[attr-defined]  (for tests; not serialised)
    return report


def print_report(r: Report) -> None:
    print(f"run {r.run_id}: {r.users} citizens × {r.duration_s:.0f} s against {r.url} (think {r.think_s} s)")
    print(f"  conversations {r.conversations}, messages sent {r.sent}, answered {r.answered}, "
          f"stored {r.stored if r.stored is not None else '?'}, failed {r.failed}, 系统繁忙 replies {r.busy_replies}")
    print(f"  throughput {r.throughput_per_s} answered/s over {r.wall_s} s")
    print(f"  latency ms (client): p50 {r.latency_ms['p50']}  p95 {r.latency_ms['p95']}  "
          f"p99 {r.latency_ms['p99']}  max {r.latency_ms['max']}")
    print(f"  answer cards: {json.dumps(r.kinds, ensure_ascii=False)}  HTTP: {r.statuses}")
    if r.errors:
        print(f"  errors: {r.errors}")
    if r.server:
        print(f"  server metrics (sum over Rasa servers): {json.dumps(r.server, ensure_ascii=False)}")
    print("  OK: sent == stored == answered" if r.ok else "  NOT OK")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("ZWZX_LOAD_URL", f"http://127.0.0.1:{os.environ.get('ZWZX_HTTP_PORT', '5705')}"),
                        help="public side (nginx) of the profile")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds")
    parser.add_argument("--think", type=float, default=0.0, help="mean pause between a citizen's messages (s)")
    parser.add_argument("--metrics", default=None,
                        help="comma-separated Rasa server base URLs to read /metrics from "
                             "(default: the profile's Rasa ports)")
    parser.add_argument("--action-metrics", default=None,
                        help="comma-separated action server base URLs to read /metrics from "
                             "(default: the profile's action-server ports)")
    parser.add_argument("--db-url", default=None, help="PostgreSQL URL to count stored messages (default: profile's)")
    parser.add_argument("--json", default=None, help="write the report as JSON here")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    from bot.ops.settings import Topology

    topology = Topology.from_env()
    metrics_urls = ([f"http://127.0.0.1:{p}" for p in topology.rasa_ports] if args.metrics is None
                    else [u for u in args.metrics.split(",") if u])
    action_urls = ([f"http://127.0.0.1:{p}" for p in topology.action_ports] if args.action_metrics is None
                   else [u for u in args.action_metrics.split(",") if u])
    report = asyncio.run(run_load(args.url, args.users, args.duration, args.think, metrics_urls,
                                  args.db_url or default_db_url(), seed=args.seed, action_metrics_urls=action_urls))
    print_report(report)
    if args.json:
        data = asdict(report)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=2)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
