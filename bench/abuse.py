"""Abuse benchmark (issue 16): honest citizens while an attacker tries to make the bot do
unbounded work. Loopback only, bounded (at most 300 s, fixed concurrency per attack).

    PYTHONPATH=. .venv/bin/python bench/abuse.py                     # 60 s attack, own servers
    PYTHONPATH=. .venv/bin/python bench/abuse.py --duration 20 --json build/abuse.json

Starts its own action server and Rasa server (``python -m bot.ops.serve run``: the production
hooks, for /metrics with the event-loop lag, on the embedded endpoints — SQLite in a temp dir,
in-process rate-limit counters, every limit at its default) on ports 6430/6431, then for
``--duration`` seconds:

* 10 honest senders, each asking one question every 2 s (questions from bench/load.py), each
  from its own address (``X-Forwarded-For: 10.0.0.<i>``; the bench connects from 127.0.0.1, the
  default trusted proxy — the way nginx forwards clients in the production profile);
* the attacker, each attack from its own forwarded address and with bounded concurrency:
  2 MB JSON bodies, 200 000-character messages and 20 000-character messages that fit the body
  limit (60 KB UTF-8, a new sender each) at 5 requests/s each, a one-sender flood at 50 msg/s,
  and 20 slow-body connections (headers, then one byte per second; reopened when cut off, at most
  once a second, each from its own address so that only the body pace rule can refuse them).

First ``--baseline`` seconds (default 15) of honest traffic alone, for comparison.

Reported: honest p50/p95/max and errors (not HTTP 200 with exactly one answer card), for each
attack the outcomes (status codes / connection closed) and latency, the database growth from
the attacker's senders (bytes of their stored events) and of the file, the Rasa server's RSS
growth, NLU runs, refusals by reason and the event-loop lag (histogram quantiles and maximum)
from /metrics.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import aiohttp
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.load import CONVERSATIONS, histogram_quantile, parse_metrics, percentile  # noqa: E402

MAX_DURATION = 300.0
HONEST = 10
ATTACK_RATE = 5.0  # requests per second of each body/message attack (the flood: 50 per second)
QUESTIONS = [c[0] for c in CONVERSATIONS]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_servers(tmp: Path, rasa_port: int, action_port: int) -> Tuple[List[subprocess.Popen], str]:
    db = tmp / "tracker.db"
    endpoints = tmp / "endpoints.yml"
    endpoints.write_text(f'action_endpoint:\n  url: "http://127.0.0.1:{action_port}/webhook"\n'
                         f'tracker_store:\n  type: bot.ops.tracker_cache.CachedSQLTrackerStore\n'
                         f'  dialect: "sqlite"\n  db: "{db}"\n', encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", ZWZX_DB_URL=f"sqlite:///{db}",
               SQLALCHEMY_SILENCE_UBER_WARNING="1", RASA_TELEMETRY_ENABLED="false",
               ZWZX_SHARED_STATE="memory")
    for k in [k for k in env if k.startswith("WECHAT_")]:
        env.pop(k)
    py = sys.executable
    procs = [
        subprocess.Popen([py, "-m", "rasa", "run", "actions", "--port", str(action_port), "--actions", "actions"],
                         cwd=ROOT, env=env, stdout=open(tmp / "actions.log", "w"), stderr=subprocess.STDOUT,
                         start_new_session=True),
        subprocess.Popen([py, "-m", "bot.ops.serve", "run", "--enable-api", "-i", "127.0.0.1", "--port",
                          str(rasa_port), "--model", str(ROOT / "models" / "zhengwu.tar.gz"),
                          "--endpoints", str(endpoints), "--credentials", str(ROOT / "credentials.yml")],
                         cwd=ROOT, env=env, stdout=open(tmp / "rasa.log", "w"), stderr=subprocess.STDOUT,
                         start_new_session=True),
    ]
    url = f"http://127.0.0.1:{rasa_port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        if any(p.poll() is not None for p in procs):
            stop(procs)
            raise SystemExit("a server exited:\n" + (tmp / "rasa.log").read_text(errors="replace")[-3000:])
        try:
            if requests.get(url + "/status", timeout=2).ok and \
                    requests.get(f"http://127.0.0.1:{action_port}/health", timeout=2).ok:
                return procs, str(db)
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop(procs)
    raise SystemExit("servers did not start")


def stop(procs: List[subprocess.Popen]) -> None:
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


async def metrics(session: aiohttp.ClientSession, url: str) -> Dict[Tuple[str, str], float]:
    async with session.get(url + "/metrics") as r:
        return parse_metrics(await r.text())


class Stats:
    def __init__(self) -> None:
        self.latency: List[float] = []
        self.outcomes: Dict[str, int] = {}
        self.errors: List[str] = []

    def add(self, outcome: str, dt: float) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self.latency.append(dt)

    def summary(self) -> Dict[str, object]:
        lat = self.latency
        return {"requests": len(lat), "outcomes": self.outcomes,
                "p50_ms": round(percentile(lat, 50) * 1000, 1) if lat else None,
                "p95_ms": round(percentile(lat, 95) * 1000, 1) if lat else None,
                "max_ms": round(max(lat) * 1000, 1) if lat else None,
                "errors": self.errors[:5]}


async def post(session: aiohttp.ClientSession, url: str, body: bytes, addr: str, stats: Stats,
               check_card: bool = False) -> None:
    t0 = time.perf_counter()
    try:
        async with session.post(url + "/webhooks/rest/webhook", data=body,
                                headers={"Content-Type": "application/json", "X-Forwarded-For": addr},
                                timeout=aiohttp.ClientTimeout(total=60)) as r:
            data = await r.read()
            outcome = str(r.status)
            if check_card:
                cards = [m for m in json.loads(data or b"[]") if isinstance(m, dict) and m.get("custom")] \
                    if r.status == 200 else []
                if r.status != 200 or len(cards) != 1:
                    outcome = f"error-{r.status}"
                    stats.errors.append(data[:200].decode("utf-8", "replace"))
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
        outcome = "closed" if not check_card else "error-" + type(e).__name__
    stats.add(outcome, time.perf_counter() - t0)


async def honest(session, url, i: int, deadline: float, stats: Stats) -> None:
    rnd = random.Random(i)
    sender = f"honest-{i}-{uuid.uuid4().hex[:6]}"
    await asyncio.sleep(rnd.random() * 2)
    while time.time() < deadline:
        t = time.time()
        body = json.dumps({"sender": sender, "message": rnd.choice(QUESTIONS)}, ensure_ascii=False).encode()
        await post(session, url, body, f"10.0.0.{i + 1}", stats, check_card=True)
        await asyncio.sleep(max(0.0, 2.0 - (time.time() - t)))


async def paced(deadline: float, rate: float, make, max_in_flight: int = 20) -> None:
    """Start `make()` `rate` times per second (at most `max_in_flight` unanswered at once)."""
    tasks = set()
    while time.time() < deadline:
        if len(tasks) < max_in_flight:
            t = asyncio.ensure_future(make())
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        await asyncio.sleep(1.0 / rate)
    if tasks:
        await asyncio.gather(*tasks)


async def flood(session, url, deadline: float, stats: Stats, sender: str, rate: float = 50.0) -> None:
    tasks = set()
    body = json.dumps({"sender": sender, "message": "政府债务信息会公开吗？"}, ensure_ascii=False).encode()
    while time.time() < deadline:
        if len(tasks) < 200:
            t = asyncio.ensure_future(post(session, url, body, "10.66.0.3", stats))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        await asyncio.sleep(1.0 / rate)
    if tasks:
        await asyncio.gather(*tasks)


async def slow_body(port: int, i: int, deadline: float, stats: Stats) -> None:
    """One slowloris connection after another (each from its own address, 10.66.1.<i+1>, so the
    per-address rate limit never answers it before its body is read; at most one a second)."""
    while time.time() < deadline:
        t0 = time.perf_counter()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /webhooks/rest/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"X-Forwarded-For: 10.66.1.%d\r\nContent-Length: 1000\r\n\r\n{" % (i + 1))
            await writer.drain()
            status = "closed"
            while time.time() < deadline + 15:
                try:
                    line = await asyncio.wait_for(reader.readline(), 1.0)
                    if line.startswith(b"HTTP/"):
                        status = line.split()[1].decode()
                    break
                except asyncio.TimeoutError:
                    writer.write(b" ")
                    await writer.drain()
            writer.close()
        except (OSError, ConnectionError):
            status = "closed"
        elapsed = time.perf_counter() - t0
        stats.add(status, elapsed)
        await asyncio.sleep(max(0.0, 1.0 - elapsed))


def attacker_db_bytes(db: str, prefix: str = "attack-") -> Tuple[int, int]:
    import sqlite3

    con = sqlite3.connect(db)
    try:
        row = con.execute("SELECT count(*), coalesce(sum(length(data)), 0) FROM events "
                          "WHERE sender_id LIKE ?", (prefix + "%",)).fetchone()
        return int(row[0]), int(row[1])
    finally:
        con.close()


def lag_summary(before, after) -> Dict[str, object]:
    buckets = []
    for (name, labels), v in after.items():
        if name == "zwzx_event_loop_lag_seconds_bucket":
            le = labels.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), v - before.get((name, labels), 0.0)))
    n = after.get(("zwzx_event_loop_lag_seconds_count", ""), 0) - before.get(("zwzx_event_loop_lag_seconds_count", ""), 0)
    over = sum(c for b, c in buckets if b == 0.05)
    return {"samples": int(n), "p50_ms": round(histogram_quantile(buckets, 0.5) * 1000, 1),
            "p99_ms": round(histogram_quantile(buckets, 0.99) * 1000, 1),
            "share_over_50ms": round(1 - over / n, 4) if n else None,
            "max_last_60s_ms": round(after.get(("zwzx_event_loop_lag_max_seconds", ""), 0) * 1000, 1)}


def deltas(before, after, name: str) -> Dict[str, float]:
    return {labels or "-": v - before.get((n, labels), 0.0) for (n, labels), v in after.items()
            if n == name and v - before.get((n, labels), 0.0)}


async def phase(url: str, port: int, duration: float, attack: bool, db: str, pid: int) -> Dict[str, object]:
    connector = aiohttp.TCPConnector(limit=400)
    async with aiohttp.ClientSession(connector=connector) as session:
        m0 = await metrics(session, url)
        rss0, db0, (rows0, bytes0) = rss_mb(pid), os.path.getsize(db), attacker_db_bytes(db)
        deadline = time.time() + duration
        st = {k: Stats() for k in ("honest", "2MB body", "200k-char message", "20k-char message",
                                    "flood 50 msg/s (one sender)", "slow body")}
        jobs = [honest(session, url, i, deadline, st["honest"]) for i in range(HONEST)]
        if attack:
            big = json.dumps({"sender": "attack-big", "message": "政" * 700_000}).encode()  # 4.2 MB escaped
            big = big[:2 * 2 ** 20 - 2] + b'"}'
            huge = json.dumps({"sender": "attack-200k", "message": "政" * 200_000}, ensure_ascii=False).encode()

            def long_msg():
                return json.dumps({"sender": f"attack-20k-{uuid.uuid4().hex[:8]}", "message": "政务" * 10_000},
                                  ensure_ascii=False).encode()
            jobs += [
                paced(deadline, ATTACK_RATE, lambda: post(session, url, big, "10.66.0.1", st["2MB body"])),
                paced(deadline, ATTACK_RATE, lambda: post(session, url, huge, "10.66.0.2", st["200k-char message"])),
                paced(deadline, ATTACK_RATE, lambda: post(session, url, long_msg(), "10.66.0.4",
                                                          st["20k-char message"])),
                flood(session, url, deadline, st["flood 50 msg/s (one sender)"], "attack-flood"),
            ] + [slow_body(port, i, deadline, st["slow body"]) for i in range(20)]
        await asyncio.gather(*jobs)
        await asyncio.sleep(1.0)
        m1 = await metrics(session, url)
        rows1, bytes1 = attacker_db_bytes(db)
        by_attack = {name: dict(zip(("rows", "bytes"), attacker_db_bytes(db, prefix)))
                     for name, prefix in (("20k-char message", "attack-20k"), ("flood", "attack-flood"),
                                          ("2MB body", "attack-big"), ("200k-char message", "attack-200k"))}
        return {
            "duration_s": duration, "attack": attack,
            "clients": {k: v.summary() for k, v in st.items() if v.latency},
            "attacker_db": {"rows": rows1 - rows0, "bytes": bytes1 - bytes0, "by_attack": by_attack},
            "db_file_growth_bytes": os.path.getsize(db) - db0,
            "rss_mb": {"before": round(rss0, 1), "after": round(rss_mb(pid), 1),
                       "growth": round(rss_mb(pid) - rss0, 1)},
            "nlu_parses": deltas(m0, m1, "zwzx_nlu_parses_total"),
            "refused": deltas(m0, m1, "zwzx_refused_total"),
            "event_loop_lag": lag_summary(m0, m1),
            "cpu_s": round(m1.get(("process_cpu_seconds_total", ""), 0) - m0.get(("process_cpu_seconds_total", ""), 0), 1),
        }


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--baseline", type=float, default=15.0)
    p.add_argument("--rasa-port", type=int, default=6430)
    p.add_argument("--action-port", type=int, default=6431)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if not (0 < args.duration <= MAX_DURATION and 0 <= args.baseline <= MAX_DURATION):
        raise SystemExit(f"durations must be within (0, {MAX_DURATION:.0f}] s")
    with tempfile.TemporaryDirectory(prefix="zwzx-abuse-") as tmp:
        procs, db = start_servers(Path(tmp), args.rasa_port, args.action_port)
        url = f"http://127.0.0.1:{args.rasa_port}"
        try:
            for q in QUESTIONS[:3]:  # warm up
                requests.post(url + "/webhooks/rest/webhook", json={"sender": "warm", "message": q}, timeout=60)
            report = {"machine": f"{os.cpu_count()} cores, {platform.platform()}", "started": time.strftime("%F %T")}
            if args.baseline:
                report["baseline"] = asyncio.run(phase(url, args.rasa_port, args.baseline, False, db, procs[1].pid))
            report["attack"] = asyncio.run(phase(url, args.rasa_port, args.duration, True, db, procs[1].pid))
        finally:
            stop(procs)
    print(json.dumps(report, ensure_ascii=False, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    a = report["attack"]
    h = a["clients"]["honest"]
    attacks = [v for k, v in a["clients"].items() if k != "honest"]
    ok = (h["p95_ms"] <= 200 and not [k for k in h["outcomes"] if k != "200"]
          and all(v["max_ms"] <= 1000 for v in attacks)  # every attacker request answered/refused ≤ 1 s
          and a["attacker_db"]["bytes"] <= 2 ** 20 and a["rss_mb"]["growth"] <= 50)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
