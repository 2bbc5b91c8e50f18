"""Benchmark: our TF-free configuration (config.yml) against Rasa's stock Chinese pipeline
(bench/config_stock.yml), trained on the same domain and data, served the same way.

    PYTHONPATH=. .venv/bin/python bench/run.py            # or: make bench
    PYTHONPATH=. .venv/bin/python bench/run.py --rounds 2 # run the load parts twice

For each configuration it
  * trains a model into a temp dir with a fresh Rasa cache (training wall time),
  * starts its own action server and Rasa server (temp endpoints file, own SQLite tracker db),
  * measures time from process start to the first successful answer to a policy question,
  * runs the dev set (bot.eval.run on ../shared/eval/dev.jsonl) for accuracy,
  * measures REST latency with 1 sequential sender over bench/questions.txt,
    and NLU-only latency (POST /model/parse) over the same questions,
  * measures latency with 20 senders pausing 2 s between messages for 60 s,
  * measures saturation throughput with 20 senders without pause for 30 s
    (plus server CPU time per message, which is less sensitive to noisy neighbours),
  * reads the RSS of both server process trees after the load,
and in addition measures the tokenizer cost of pkuseg vs jieba (bench/seg_cost.py).
Load rounds are interleaved (ours, stock, ours, stock...) so that background load from
other work on the machine hits both configurations alike.

It also records whether TensorFlow is mapped into each server process (/proc/PID/maps), the
start-up of a Rasa server of ours step by step in one process (bench/tf_import_chain.py
--steps: RSS, anonymous and file-backed memory and time per import/load step), and ends with
the issue-14 targets: RSS of Rasa + actions <= 1.0 GB, start -> first answer <= 10 s,
saturation throughput >= 3x the stock pipeline on unmodified Rasa (stock_plain), dev accuracy.

Configurations: ``ours`` (as `make run` serves it), ``ours_before`` (the same model with
TensorFlow imported eagerly and stock pkuseg: ZWZX_EAGER_TF=1 ZWZX_PKUSEG=stock, i.e. the
serving footprint before issue 14), ``stock`` (Rasa's Chinese pipeline served with our channels
and Rasa-core speed-ups), ``stock_cached`` and ``stock_plain`` (the stock pipeline on unmodified
Rasa: Rasa's REST channel, and the Rasa process started without the repository on PYTHONPATH,
so nothing of ours — not even sitecustomize.py — is imported into it).

Results: a table on stdout and bench/results.json. Servers use ports 6300-6399 only and
are always stopped at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
VENV_BIN = ROOT / ".venv" / "bin"
RASA = str(VENV_BIN / "rasa")
PYTHON = str(VENV_BIN / "python")
sys.path.insert(0, str(ROOT))
from bot.ops.settings import served_tracker_store_type  # noqa: E402

DEV_SET = "../shared/eval/dev.jsonl"  # relative to the project root; only for measuring
PROBE = "财政预决算信息会公开吗"  # policy question used to detect "first successful answer"
ALLOWED_PORTS = range(6300, 6400)
TARGETS = {"rss_total_mb": 1000.0, "first_answer_s": 10.0, "throughput_x_stock_plain": 3.0}

# ours is served as `make run` serves it; stock with Rasa's own SQLTrackerStore (both on SQLite).
CONFIGS = {
    "ours": {"config": ROOT / "config.yml", "label": "ours (pkuseg + LogReg, Rule/Memo)",
             "rasa_port": 6301, "action_port": 6351, "tracker_store": served_tracker_store_type()},
    "stock": {"config": BENCH / "config_stock.yml", "label": "stock (jieba + DIET + TED)",
              "rasa_port": 6302, "action_port": 6352, "tracker_store": "SQL"},
    # what-if (not in the default run): the stock pipeline served with our tracker store
    "stock_cached": {"config": BENCH / "config_stock.yml", "label": "stock + our tracker store",
                     "rasa_port": 6303, "action_port": 6353, "tracker_store": served_tracker_store_type()},
    # the stock pipeline on unmodified Rasa: Rasa's REST channel, no bot/rasa_speedups.py, and
    # the Rasa process without the repository on PYTHONPATH (no sitecustomize.py either)
    "stock_plain": {"config": BENCH / "config_stock.yml", "label": "stock on unmodified Rasa",
                    "rasa_port": 6304, "action_port": 6354, "tracker_store": "SQL",
                    "credentials": BENCH / "credentials_stock.yml", "rasa_plain": True},
    # our model served as before issue 14: TensorFlow imported eagerly, stock pkuseg objects
    # (same model file as ours; --reuse-models looks for ours_before/models/ours_before.tar.gz
    # and falls back to ours/models/ours.tar.gz)
    "ours_before": {"config": ROOT / "config.yml", "label": "ours, eager TF + stock pkuseg",
                    "rasa_port": 6305, "action_port": 6355, "tracker_store": served_tracker_store_type(),
                    "env": {"ZWZX_EAGER_TF": "1", "ZWZX_PKUSEG": "stock"}, "model_of": "ours"},
}


# ----------------------------------------------------------------------------- helpers

def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values: List[float], q: float) -> Optional[float]:
    """Nearest-rank percentile."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def lat_summary(lat_s: List[float]) -> dict:
    ms = [x * 1000 for x in lat_s]
    return {"n": len(ms), "p50_ms": pct(ms, 0.50), "p95_ms": pct(ms, 0.95), "p99_ms": pct(ms, 0.99),
            "mean_ms": statistics.mean(ms) if ms else None, "max_ms": max(ms) if ms else None}


def loadavg() -> List[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def descendants(pid: int) -> List[int]:
    """pid and all its descendants (from /proc/*/stat parent links)."""
    children: Dict[int, List[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_tree_mb(pid: int) -> float:
    total_kb = 0
    for p in descendants(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            pass
    return total_kb / 1024.0


def tensorflow_mapped(pid: int) -> Optional[bool]:
    """Whether any process of the tree has TensorFlow's shared libraries mapped."""
    seen = False
    for p in descendants(pid):
        try:
            maps = Path(f"/proc/{p}/maps").read_text()
        except OSError:
            continue
        seen = True
        if "/tensorflow/" in maps:
            return True
    return False if seen else None


def cpu_tree_s(pid: int) -> float:
    """utime+stime (seconds) of pid and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in descendants(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return total / tick


def load_questions() -> List[tuple]:
    out = []
    for line in (BENCH / "questions.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or "|" not in line:
            continue
        cat, text = line.split("|", 1)
        out.append((cat.strip(), text.strip()))
    return out


def base_env(tmp: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def card_of(messages: list) -> Optional[dict]:
    cards = [m["custom"] for m in messages if isinstance(m.get("custom"), dict) and "kind" in m["custom"]]
    return cards[0] if len(cards) == 1 else None


# ----------------------------------------------------------------------------- training

def train(name: str, cfg: dict, tmp: Path, timeout: float) -> dict:
    out_dir = tmp / name / "models"
    out_dir.mkdir(parents=True, exist_ok=True)
    env = base_env(tmp)
    env["RASA_CACHE_DIRECTORY"] = str(tmp / name / "cache")  # cold cache: real training time
    cmd = [RASA, "train", "--config", str(cfg["config"]), "--domain", "domain.yml", "--data", "data",
           "--out", str(out_dir), "--fixed-model-name", name]
    logf = open(tmp / name / "train.log", "wb")
    log(f"training {name}: {' '.join(cmd[1:])}")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise RuntimeError(f"training {name} exceeded {timeout:.0f} s (log: {logf.name})")
    finally:
        logf.close()
    dt = time.perf_counter() - t0
    model = out_dir / f"{name}.tar.gz"
    if rc != 0 or not model.exists():
        raise RuntimeError(f"training {name} failed (rc={rc}); see {tmp / name / 'train.log'}")
    log(f"trained {name} in {dt:.1f} s -> {model} ({model.stat().st_size / 1e6:.1f} MB)")
    return {"train_s": dt, "model": str(model), "model_mb": model.stat().st_size / 1e6}


# ----------------------------------------------------------------------------- servers

class Servers:
    """One configuration's action server + Rasa server, started and stopped by us."""

    def __init__(self, name: str, cfg: dict, model: str, tmp: Path):
        self.name, self.cfg, self.model = name, cfg, model
        self.dir = tmp / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rasa_port, self.action_port = cfg["rasa_port"], cfg["action_port"]
        self.url = f"http://127.0.0.1:{self.rasa_port}"
        self.actions: Optional[subprocess.Popen] = None
        self.rasa: Optional[subprocess.Popen] = None
        self.t_start: Optional[float] = None
        self._logs = []

    def endpoints(self) -> Path:
        path = self.dir / "endpoints.yml"
        path.write_text(
            f'action_endpoint:\n  url: "http://127.0.0.1:{self.action_port}/webhook"\n'
            f'tracker_store:\n  type: {self.cfg["tracker_store"]}\n  dialect: "sqlite"\n'
            f'  db: "{self.dir / "tracker.db"}"\n',
            encoding="utf-8")
        return path

    def start(self) -> None:
        for port in (self.rasa_port, self.action_port):
            if port not in ALLOWED_PORTS:
                raise RuntimeError(f"port {port} outside the benchmark's range 6300-6399")
            if not port_free(port):
                raise RuntimeError(f"port {port} is already in use")
        env = base_env(self.dir)
        env.update(self.cfg.get("env", {}))
        rasa_env = dict(env)
        if self.cfg.get("rasa_plain"):
            # unmodified Rasa: nothing of the repository importable (sitecustomize.py included),
            # nor the OpenBLAS thread default our sitecustomize.py put into this process's environment
            rasa_env.pop("PYTHONPATH", None)
            if rasa_env.pop("ZWZX_OPENBLAS_DEFAULTED", None):
                rasa_env.pop("OPENBLAS_NUM_THREADS", None)
        endpoints = self.endpoints()
        alog = open(self.dir / "actions.log", "wb")
        rlog = open(self.dir / "rasa.log", "wb")
        self._logs = [alog, rlog]
        self.t_start = time.perf_counter()
        self.actions = subprocess.Popen(
            [PYTHON, "-m", "rasa_sdk", "--port", str(self.action_port), "--actions", "actions"],
            cwd=ROOT, env=env, stdout=alog, stderr=subprocess.STDOUT, start_new_session=True)
        self.rasa = subprocess.Popen(
            [RASA, "run", "--enable-api", "-i", "127.0.0.1", "--port", str(self.rasa_port),
             "--model", self.model, "--endpoints", str(endpoints),
             "--credentials", str(self.cfg.get("credentials", ROOT / "credentials.yml"))],
            cwd=ROOT, env=rasa_env, stdout=rlog, stderr=subprocess.STDOUT, start_new_session=True)
        log(f"{self.name}: started action server pid {self.actions.pid} (:{self.action_port}), "
            f"rasa pid {self.rasa.pid} (:{self.rasa_port})")

    def alive(self) -> bool:
        return all(p is not None and p.poll() is None for p in (self.actions, self.rasa))

    def stop(self) -> None:
        for proc in (self.rasa, self.actions):
            if proc is None or proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # the process group we created for it
            except ProcessLookupError:
                continue
        for proc in (self.rasa, self.actions):
            if proc is None:
                continue
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        for fh in self._logs:
            fh.close()
        self._logs = []

    def rss(self) -> dict:
        r = rss_tree_mb(self.rasa.pid)
        a = rss_tree_mb(self.actions.pid)
        return {"rasa_mb": r, "actions_mb": a, "total_mb": r + a,
                "tensorflow_in_rasa": tensorflow_mapped(self.rasa.pid),
                "tensorflow_in_actions": tensorflow_mapped(self.actions.pid)}

    def cpu(self) -> dict:
        return {"rasa_s": cpu_tree_s(self.rasa.pid), "actions_s": cpu_tree_s(self.actions.pid)}


# ----------------------------------------------------------------------------- HTTP client

async def post_message(session: aiohttp.ClientSession, url: str, sender: str, text: str,
                       timeout: float = 30.0):
    t0 = time.perf_counter()
    async with session.post(f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": text},
                            timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
        body = await resp.json(content_type=None)
        status = resp.status
    return status, body, time.perf_counter() - t0


async def wait_first_answer(srv: Servers, limit_s: float) -> dict:
    """Poll until a policy question gets an answer card; time from process start."""
    sender = f"bench-probe-{uuid.uuid4().hex[:8]}"
    first_http = first_card = None
    attempts = 0
    async with aiohttp.ClientSession() as session:
        while time.perf_counter() - srv.t_start < limit_s:
            if not srv.alive():
                raise RuntimeError(f"{srv.name}: a server exited during start-up; see {srv.dir}/*.log")
            attempts += 1
            try:
                status, body, _ = await post_message(session, srv.url, sender, PROBE, timeout=60)
                if status == 200 and first_http is None:
                    first_http = time.perf_counter() - srv.t_start
                card = card_of(body) if status == 200 and isinstance(body, list) else None
                now = time.perf_counter() - srv.t_start
                if card and first_card is None:
                    first_card = now
                # an answer card ends the wait; a different card (the NLU of this configuration
                # misreads the probe) is accepted after 30 more seconds of polling
                if card and (card.get("kind") == "answer" or now - first_card > 30):
                    return {"first_answer_s": now if card.get("kind") == "answer" else first_card,
                            "first_http_200_s": first_http, "first_card_s": first_card, "attempts": attempts,
                            "card_kind": card.get("kind"),
                            "citations": [c.get("item") for c in card.get("citations", [])]}
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                pass
            await asyncio.sleep(0.25)
    raise RuntimeError(f"{srv.name}: no answer within {limit_s:.0f} s of start; see {srv.dir}/*.log")


async def sequential(url: str, questions: List[tuple], turns_per_sender: int) -> dict:
    lat, errors, kinds = [], 0, {}
    async with aiohttp.ClientSession() as session:
        sender = None
        for i, (cat, text) in enumerate(questions):
            if i % turns_per_sender == 0:
                sender = f"bench-seq-{uuid.uuid4().hex[:8]}"
            try:
                status, body, dt = await post_message(session, url, sender, text)
                if status != 200:
                    errors += 1
                    continue
                lat.append(dt)
                card = card_of(body)
                key = f"{cat}->{card['kind'] if card else 'NO_CARD'}"
                kinds[key] = kinds.get(key, 0) + 1
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                errors += 1
    return {**lat_summary(lat), "errors": errors, "card_kinds": dict(sorted(kinds.items()))}


async def nlu_parse(url: str, questions: List[tuple]) -> dict:
    lat, errors = [], 0
    async with aiohttp.ClientSession() as session:
        for _, text in questions:
            t0 = time.perf_counter()
            try:
                async with session.post(f"{url}/model/parse", json={"text": text},
                                        timeout=aiohttp.ClientTimeout(total=30)) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                        continue
                lat.append(time.perf_counter() - t0)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                errors += 1
    return {**lat_summary(lat), "errors": errors}


async def load(srv: Servers, questions: List[tuple], senders: int, duration: float, pause: float,
               turns_per_sender: int) -> dict:
    """`senders` concurrent users, each sending a message, waiting for the reply, then pausing."""
    lat: List[float] = []
    errors = [0]
    deadline_box = {}
    cpu0 = srv.cpu()
    la0 = loadavg()

    async def user(idx: int, session: aiohttp.ClientSession):
        rnd = random.Random(1000 + idx)
        sender, turns = None, 0
        if pause:
            await asyncio.sleep(rnd.uniform(0, pause))  # spread the first messages
        while time.perf_counter() < deadline_box["t"]:
            if turns % turns_per_sender == 0:
                sender = f"bench-load-{idx}-{uuid.uuid4().hex[:8]}"
            turns += 1
            cat, text = rnd.choice(questions)
            try:
                status, _, dt = await post_message(session, srv.url, sender, text)
                if status == 200 and time.perf_counter() <= deadline_box["t"] + 30:
                    lat.append(dt)
                else:
                    errors[0] += 1
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                errors[0] += 1
            if pause:
                await asyncio.sleep(pause)

    connector = aiohttp.TCPConnector(limit=senders + 5)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.perf_counter()
        deadline_box["t"] = t0 + duration
        await asyncio.wait_for(asyncio.gather(*(user(i, session) for i in range(senders))),
                               timeout=duration + pause + 90)
        elapsed = time.perf_counter() - t0
    cpu1 = srv.cpu()
    n = len(lat)
    cpu_rasa = cpu1["rasa_s"] - cpu0["rasa_s"]
    cpu_act = cpu1["actions_s"] - cpu0["actions_s"]
    return {**lat_summary(lat), "errors": errors[0], "elapsed_s": elapsed, "throughput_msg_s": n / elapsed,
            "senders": senders, "pause_s": pause, "duration_s": duration,
            "server_cpu_s": {"rasa": cpu_rasa, "actions": cpu_act},
            "server_cpu_ms_per_msg": (cpu_rasa + cpu_act) * 1000 / n if n else None,
            "loadavg_before": la0, "loadavg_after": loadavg()}


# ----------------------------------------------------------------------------- extras

def seg_cost(n: int) -> dict:
    out = {}
    for which in ("pkuseg", "pkuseg_stock", "jieba"):
        try:
            r = subprocess.run([PYTHON, str(BENCH / "seg_cost.py"), which, "--n", str(n)], cwd=ROOT,
                               env=base_env(ROOT), capture_output=True, text=True, timeout=300)
            out[which] = json.loads(r.stdout.strip().splitlines()[-1])
        except Exception as exc:  # report, don't abort the benchmark
            out[which] = {"error": str(exc)}
    return out


def startup_steps(model: str) -> dict:
    """bench/tf_import_chain.py --steps, as served now and as before issue 14."""
    out = {}
    for name, extra in (("now", {}), ("before", {"ZWZX_EAGER_TF": "1", "ZWZX_PKUSEG": "stock"})):
        env = {**base_env(ROOT), **extra}
        try:
            t0 = time.perf_counter()
            r = subprocess.run([PYTHON, str(BENCH / "tf_import_chain.py"), "--steps", "--model", model],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
            res = json.loads(r.stdout.strip().splitlines()[-1])
            res["process_wall_s"] = time.perf_counter() - t0  # including interpreter start-up
            out[name] = res
        except Exception as exc:
            out[name] = {"error": str(exc)}
    return out


def _mean_throughput(c: dict) -> Optional[float]:
    vals = [r["saturation"]["throughput_msg_s"] for r in c.get("rounds", []) if "saturation" in r]
    return statistics.mean(vals) if vals else None


def targets(res: dict) -> dict:
    """The issue-14 targets for every configuration but the stock ones."""
    confs = res["configs"]
    ref = _mean_throughput(confs.get("stock_plain", {})) if "error" not in confs.get("stock_plain", {"error": 1}) else None
    out = {}
    for n, c in confs.items():
        if n.startswith("stock") or "error" in c:
            continue
        t = {}
        rss = c.get("rss", {}).get("total_mb")
        first = c.get("startup", {}).get("first_answer_s")
        thr = _mean_throughput(c)
        if rss is not None:
            t["rss_total_mb"] = round(rss)
            t["rss_ok"] = rss <= TARGETS["rss_total_mb"]
        if first is not None:
            t["first_answer_s"] = round(first, 1)
            t["first_answer_ok"] = first <= TARGETS["first_answer_s"]
        if thr is not None and ref:
            t["throughput_x_stock_plain"] = round(thr / ref, 2)
            t["throughput_ok"] = thr / ref >= TARGETS["throughput_x_stock_plain"]
        if "dev" in c:
            t["dev"] = "{correct}/{total}".format(**c["dev"]["overall"])
        out[n] = t
    return out


def machine() -> dict:
    cpu = Path("/proc/cpuinfo").read_text()
    models = [l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("model name")]
    mem_kb = next(int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines()
                  if l.startswith("MemTotal:"))
    os_name = ""
    try:
        os_name = next(l.split("=", 1)[1].strip('"') for l in Path("/etc/os-release").read_text().splitlines()
                       if l.startswith("PRETTY_NAME="))
    except (OSError, StopIteration):
        pass
    vers = subprocess.run([PYTHON, "-c", "import rasa, rasa_sdk, tensorflow, sklearn, pkuseg, jieba;"
                           "print(rasa.__version__, rasa_sdk.__version__, tensorflow.__version__,"
                           " sklearn.__version__, jieba.__version__)"],
                          capture_output=True, text=True, env=base_env(ROOT), timeout=120).stdout.split()
    names = ["rasa", "rasa_sdk", "tensorflow", "scikit_learn", "jieba"]
    return {"cpu_model": models[0] if models else "?", "cpus": os.cpu_count(), "mem_gb": mem_kb / 1024 / 1024,
            "os": os_name, "kernel": platform.release(), "python": platform.python_version(),
            **dict(zip(names, vers))}


# ----------------------------------------------------------------------------- report

def fmt(v, spec=".0f", unit=""):
    if v is None:
        return "-"
    return f"{v:{spec}}{unit}"


def print_table(res: dict) -> None:
    names = [n for n in res["configs"] if "error" not in res["configs"][n]]
    if not names:
        return
    rows = []

    def row(label, fn):
        vals = []
        for n in names:
            try:
                vals.append(fn(res["configs"][n]))
            except (KeyError, TypeError, IndexError):
                vals.append("-")
        rows.append((label, vals))

    row("training wall time", lambda c: fmt(c["train"]["train_s"], ".1f", " s"))
    row("model size", lambda c: fmt(c["train"]["model_mb"], ".1f", " MB"))
    row("start -> first answer", lambda c: fmt(c["startup"]["first_answer_s"], ".1f", " s"))
    for cat in sorted({k for n in names for k in res["configs"][n].get("dev", {}).get("categories", {})}):
        row(f"dev accuracy: {cat}", lambda c, cat=cat: "{correct}/{total} ({accuracy:.0%})".format(
            **c["dev"]["categories"][cat]))
    row("dev accuracy: overall", lambda c: "{correct}/{total} ({accuracy:.0%})".format(**c["dev"]["overall"]))
    row("NLU /model/parse p50/p95", lambda c: f"{fmt(c['nlu_parse']['p50_ms'])}/{fmt(c['nlu_parse']['p95_ms'])} ms")
    row("1 sender p50/p95", lambda c: f"{fmt(c['sequential']['p50_ms'])}/{fmt(c['sequential']['p95_ms'])} ms")
    rounds = max(len(res["configs"][n].get("rounds", [])) for n in names)
    for i in range(rounds):
        tag = f" (round {i + 1})" if rounds > 1 else ""
        row(f"20 pausing p50/p95{tag}", lambda c, i=i: "{}/{} ms, {} err".format(
            fmt(c["rounds"][i]["paced"]["p50_ms"]), fmt(c["rounds"][i]["paced"]["p95_ms"]),
            c["rounds"][i]["paced"]["errors"]))
        row(f"saturation msg/s{tag}", lambda c, i=i: "{} msg/s, {} err".format(
            fmt(c["rounds"][i]["saturation"]["throughput_msg_s"], ".1f"), c["rounds"][i]["saturation"]["errors"]))
        row(f"saturation p50/p95{tag}", lambda c, i=i: "{}/{} ms".format(
            fmt(c["rounds"][i]["saturation"]["p50_ms"]), fmt(c["rounds"][i]["saturation"]["p95_ms"])))
        row(f"server CPU per msg{tag}", lambda c, i=i: fmt(c["rounds"][i]["saturation"]["server_cpu_ms_per_msg"],
                                                           ".1f", " ms"))
    row("RSS rasa server", lambda c: fmt(c["rss"]["rasa_mb"], ".0f", " MB"))
    row("RSS action server", lambda c: fmt(c["rss"]["actions_mb"], ".0f", " MB"))
    row("RSS total", lambda c: fmt(c["rss"]["total_mb"], ".0f", " MB"))
    row("RSS total before load (idle)", lambda c: fmt(c["rss_idle"]["total_mb"], ".0f", " MB"))
    row("TensorFlow mapped (rasa/actions)", lambda c: "{}/{}".format(
        {True: "yes", False: "no", None: "?"}[c["rss"]["tensorflow_in_rasa"]],
        {True: "yes", False: "no", None: "?"}[c["rss"]["tensorflow_in_actions"]]))

    w0 = max(len(r[0]) for r in rows) + 2
    widths = [max(len(n), *(len(r[1][j]) for r in rows)) + 2 for j, n in enumerate(names)]
    print()
    print("".ljust(w0) + "".join(n.ljust(w) for n, w in zip(names, widths)))
    for label, vals in rows:
        print(label.ljust(w0) + "".join(v.ljust(w) for v, w in zip(vals, widths)))
    steps = res.get("startup_steps") or {}
    for name, st in steps.items():
        if "error" in st:
            print(f"start-up steps ({name}): error {st['error']}")
            continue
        print(f"\nstart-up of a Rasa server of ours, step by step in one process ({name}: "
              f"TF {'eager' if st.get('eager_tf') else 'lazy'}, pkuseg {st.get('pkuseg')}), "
              f"{st['process_wall_s']:.1f} s with interpreter start-up:")
        prev = 0.0
        for r in st["steps"]:
            print(f"  {r['step']:58s} {r['s']:6.2f} s  RSS {r['rss_mb']:6.0f} MB ({r['rss_mb'] - prev:+5.0f})"
                  f"  anon {r['anon_mb']:5.0f}  file {r['file_mb']:5.0f}  TF {'yes' if r['tensorflow'] else 'no'}")
            prev = r["rss_mb"]
    tg = res.get("targets") or {}
    if tg:
        print("\nissue 14 targets (RSS <= {rss_total_mb:.0f} MB, first answer <= {first_answer_s:.0f} s, "
              "throughput >= {throughput_x_stock_plain:.0f}x stock_plain):".format(**TARGETS))
        for n, t in tg.items():
            print(f"  {n}: " + ", ".join(f"{k} {v if not isinstance(v, float) else round(v, 2)}"
                                          for k, v in t.items()))
    seg = res.get("segmenters") or {}
    if seg:
        print()
        for k, v in seg.items():
            if "error" in v:
                print(f"{k}: error {v['error']}")
                continue
            print(f"{k:7s} load {v['load_s']:.2f} s, RSS after load {v['rss_loaded_mb']:.0f} MB, "
                  f"{v['n']} questions in {v['segment_s_best'] * 1000:.0f} ms ({v['per_question_ms']:.2f} ms each)")
    print()


# ----------------------------------------------------------------------------- main

async def measure_basic(srv: Servers, args, questions) -> dict:
    out = {}
    out["startup"] = await wait_first_answer(srv, args.startup_limit)
    log(f"{srv.name}: first answer {out['startup']['first_answer_s']:.1f} s after start")
    if Path(ROOT / DEV_SET).exists():
        from bot.eval import run as eval_run

        rep = await asyncio.wait_for(asyncio.to_thread(eval_run, DEV_SET, srv.url), timeout=600)
        out["dev"] = {k: rep[k] for k in ("categories", "overall", "latency_ms")}
        out["dev"]["failures"] = rep["failures"]
        log(f"{srv.name}: dev accuracy {rep['overall']['correct']}/{rep['overall']['total']}")
    else:
        log(f"dev set {DEV_SET} not found; skipping accuracy")
    seq_q = [questions[i % len(questions)] for i in range(args.seq_n)]
    out["nlu_parse"] = await nlu_parse(srv.url, seq_q)
    out["sequential"] = await sequential(srv.url, seq_q, args.turns_per_sender)
    log(f"{srv.name}: 1 sender p50 {out['sequential']['p50_ms']:.0f} ms p95 {out['sequential']['p95_ms']:.0f} ms")
    return out


async def main_async(args) -> dict:
    questions = load_questions()
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    res = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(),
           "params": {k: v for k, v in vars(args).items()}, "configs": {n: {} for n in names},
           "n_questions": len(questions)}
    tmp = Path(tempfile.mkdtemp(prefix="zwzx-bench-"))
    res["tmp_dir"] = str(tmp)
    servers: Dict[str, Servers] = {}
    try:
        # 1. train each configuration (sequentially, cold cache)
        for n in names:
            try:
                if args.reuse_models:
                    model = Path(args.reuse_models) / n / "models" / f"{n}.tar.gz"
                    base = CONFIGS[n].get("model_of")
                    if not model.exists() and base:
                        model = Path(args.reuse_models) / base / "models" / f"{base}.tar.gz"
                    if not model.exists():
                        raise RuntimeError(f"--reuse-models: {model} not found")
                    res["configs"][n]["train"] = {"train_s": None, "model": str(model),
                                                  "model_mb": model.stat().st_size / 1e6, "reused": True}
                    log(f"{n}: reusing {model} (no training)")
                    continue
                base = CONFIGS[n].get("model_of")
                if base and base in names and "train" in res["configs"].get(base, {}):
                    res["configs"][n]["train"] = dict(res["configs"][base]["train"], shared_with=base)
                    continue
                res["configs"][n]["train"] = train(n, CONFIGS[n], tmp, args.train_timeout)
            except Exception as exc:
                res["configs"][n] = {"error": str(exc)}
                log(f"ERROR {exc}")
        names = [n for n in names if "error" not in res["configs"][n]]

        # 2. start each configuration alone, then accuracy and single-sender latency
        for n in names:
            srv = Servers(n, CONFIGS[n], res["configs"][n]["train"]["model"], tmp)
            servers[n] = srv
            try:
                srv.start()
                res["configs"][n].update(await measure_basic(srv, args, questions))
                res["configs"][n]["rss_idle"] = srv.rss()
            except Exception as exc:
                res["configs"][n]["error"] = str(exc)
                log(f"ERROR {n}: {exc}")
                srv.stop()
        names = [n for n in names if "error" not in res["configs"][n]]

        # 3. load rounds, interleaved between configurations
        for r in range(args.rounds):
            for n in names:
                srv = servers[n]
                rnd = {}
                log(f"{n} round {r + 1}: {args.senders} senders, {args.pause:g} s pause, {args.paced_duration:g} s")
                rnd["paced"] = await load(srv, questions, args.senders, args.paced_duration, args.pause,
                                          args.turns_per_sender)
                log(f"{n} round {r + 1}: p50 {fmt(rnd['paced']['p50_ms'])} ms p95 {fmt(rnd['paced']['p95_ms'])} ms")
                await asyncio.sleep(2)
                log(f"{n} round {r + 1}: saturation, {args.senders} senders, no pause, {args.sat_duration:g} s")
                rnd["saturation"] = await load(srv, questions, args.senders, args.sat_duration, 0.0,
                                               args.turns_per_sender)
                log(f"{n} round {r + 1}: {rnd['saturation']['throughput_msg_s']:.1f} msg/s")
                res["configs"][n].setdefault("rounds", []).append(rnd)
                await asyncio.sleep(2)

        # 4. memory after the load
        for n in names:
            res["configs"][n]["rss"] = servers[n].rss()
    finally:
        for srv in servers.values():
            srv.stop()
        log("servers stopped")
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")

    # 5. tokenizer cost, with the servers down
    if not args.skip_seg:
        res["segmenters"] = seg_cost(args.seg_n)
    ours_model = next((res["configs"][n]["train"]["model"] for n in ("ours", "ours_before")
                       if "train" in res["configs"].get(n, {})), None)
    if not args.skip_steps and ours_model and Path(ours_model).exists():
        res["startup_steps"] = startup_steps(ours_model)
    res["targets"] = targets(res)
    res["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    p.add_argument("--configs", default="ours,stock_plain", help="comma list from: " + ",".join(CONFIGS))
    p.add_argument("--rounds", type=int, default=1, help="repeat the two load phases (interleaved)")
    p.add_argument("--senders", type=int, default=20)
    p.add_argument("--pause", type=float, default=2.0, help="pause between messages in the paced phase")
    p.add_argument("--paced-duration", type=float, default=60.0)
    p.add_argument("--sat-duration", type=float, default=30.0)
    p.add_argument("--seq-n", type=int, default=100, help="messages in the single-sender phase")
    p.add_argument("--turns-per-sender", type=int, default=10,
                   help="a simulated citizen sends this many messages, then a new sender id starts")
    p.add_argument("--startup-limit", type=float, default=300.0)
    p.add_argument("--train-timeout", type=float, default=1800.0)
    p.add_argument("--seg-n", type=int, default=1000)
    p.add_argument("--skip-seg", action="store_true")
    p.add_argument("--skip-steps", action="store_true", help="skip the in-process start-up breakdown")
    p.add_argument("--reuse-models", metavar="DIR",
                   help="skip training: use DIR/<config>/models/<config>.tar.gz from a --keep-tmp run")
    p.add_argument("--keep-tmp", action="store_true", help="keep models and server logs")
    p.add_argument("--out", default=str(BENCH / "results.json"))
    args = p.parse_args(argv)
    for n in args.configs.split(","):
        if n.strip() and n.strip() not in CONFIGS:
            p.error(f"unknown config {n}")
    os.chdir(ROOT)
    res = asyncio.run(main_async(args))
    Path(args.out).write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")
    print_table(res)
    log(f"results written to {args.out}")
    return 0 if all("error" not in c for c in res["configs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
