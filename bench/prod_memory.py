"""Issue 14: memory of the production profile per process — the processes `deploy/run-prod.sh`
starts (it execs `python -m bot.ops.cluster`; this drives the same Cluster class, as
tests/test_prod_profile.py does): N Rasa servers + M action servers behind nginx, PostgreSQL
tracker store, Redis lock store and shared state, no console. After the start it sends
--questions questions from bench/questions.txt through nginx (20 senders, one at a time), then
reads /proc/PID/smaps_rollup (RSS, PSS, private, shared) of every Rasa and action server, and
/proc/PID/smaps for the part that is build/pkuseg/ (the compact pkuseg files, memory-mapped:
page-cache pages shared by every process on the host, so PSS divides them between the
processes that touched them).

    PYTHONPATH=. .venv/bin/python bench/prod_memory.py [--base-port 6540] [--questions 600] [--rasa 2]

Needs PostgreSQL (ZWZX_PG_*, default 127.0.0.1:5432 postgres), Redis (127.0.0.1:6379) and nginx;
uses ports base..base+3+M+N, its own database zwzx_mem_<random> (dropped afterwards) and its own
Redis key prefix (deleted afterwards). Prints a JSON report.
"""
import argparse
import json
import os
import random
import re
import sys
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bot.ops.cluster import Cluster  # noqa: E402

def rollup(pid: int) -> dict:
    """/proc/PID/smaps_rollup in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        out[key] = int(value.split()[0]) / 1024
    return out


def mapped(pid: int, needle: str) -> tuple:
    """RSS and PSS (MB) of the mappings whose file path contains ``needle``."""
    rss = pss = 0.0
    path = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            fields = line.split()
            path = fields[5] if len(fields) >= 6 else ""
        elif path and needle in path:
            if line.startswith("Rss:"):
                rss += int(line.split()[1]) / 1024
            elif line.startswith("Pss:"):
                pss += int(line.split()[1]) / 1024
    return rss, pss


def children(pid: int) -> list:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-port", type=int, default=6540)
    ap.add_argument("--questions", type=int, default=600)
    ap.add_argument("--rasa", type=int, default=2)
    ap.add_argument("--actions", type=int, default=2)
    args = ap.parse_args()
    base, n_questions = args.base_port, args.questions
    suffix = uuid.uuid4().hex[:8]
    dbname, prefix = f"zwzx_mem_{suffix}", f"zwzxm{suffix}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZWZX_")}
    env.update(ZWZX_PG_DB=dbname, ZWZX_PG_SSLMODE="disable", ZWZX_REDIS_PREFIX=prefix,
               ZWZX_HTTP_PORT=str(base), ZWZX_ACTIONS_LB_PORT=str(base + 1), ZWZX_RASA_BASE_PORT=str(base + 2),
               ZWZX_ACTION_BASE_PORT=str(base + 2 + args.rasa), ZWZX_RASA_SERVERS=str(args.rasa),
               ZWZX_ACTION_SERVERS=str(args.actions), ZWZX_CONSOLE_SERVERS="0",
               ZWZX_RUN_DIR=str(ROOT / "build" / f"prod-mem-{suffix}"), ZWZX_RATE_LIMITS="0",
               ZWZX_WIDGET_SECRET="mem-" + uuid.uuid4().hex)
    c = Cluster(environ=env, log=lambda m: print(f"[cluster] {m}", file=sys.stderr, flush=True))
    report = {"questions": n_questions, "rasa_servers": args.rasa, "action_servers": args.actions,
              "load_average_before": os.getloadavg()}
    try:
        t0 = time.time()
        c.start_all(timeout=600)
        report["start_all_s"] = round(time.time() - t0, 1)
        before = {n: rollup(c.procs[n].pid) for n in c.rasa_names + c.action_names}
        qs = [l.split("|", 1)[1].strip() for l in (ROOT / "bench" / "questions.txt").read_text(encoding="utf-8").splitlines()
              if "|" in l and not l.startswith("#")]
        random.seed(14)
        lat = []
        for k in range(n_questions):
            t = time.time()
            r = requests.post(f"{c.public_url}/webhooks/rest/webhook",
                              json={"sender": f"mem-{k % 20}", "message": random.choice(qs)}, timeout=60)
            lat.append(time.time() - t)
            assert r.status_code == 200, r.text[:200]
        report["answered"] = n_questions
        report["p50_ms"] = round(sorted(lat)[len(lat) // 2] * 1000)
        procs = {}
        for n in c.rasa_names + c.action_names:
            pid = c.procs[n].pid
            r = rollup(pid)
            kids = children(pid)
            pk_rss, pk_pss = mapped(pid, "/pkuseg/")
            procs[n] = {"pid": pid, "children": kids, "rss": round(r["Rss"], 1), "pss": round(r["Pss"], 1),
                        "private": round(r["Private_Clean"] + r["Private_Dirty"], 1),
                        "shared": round(r["Shared_Clean"] + r["Shared_Dirty"], 1),
                        "anonymous": round(r["Anonymous"], 1),
                        "pkuseg_files_rss": round(pk_rss, 1), "pkuseg_files_pss": round(pk_pss, 1),
                        "rss_before_load": round(before[n]["Rss"], 1), "pss_before_load": round(before[n]["Pss"], 1)}
            for kid in kids:
                procs[n].setdefault("children_rss", []).append(round(rollup(kid)["Rss"], 1))
        report["procs"] = procs
        report["total_pss_mb"] = round(sum(v["pss"] for v in procs.values()), 1)
        report["total_rss_mb"] = round(sum(v["rss"] for v in procs.values()), 1)
        report["load_average_after"] = os.getloadavg()
        print(json.dumps(report, ensure_ascii=False, indent=1), flush=True)
    finally:
        c.stop_all()
        import shutil

        shutil.rmtree(c.run_dir, ignore_errors=True)
        import redis
        import sqlalchemy as sa

        from bot.ops.settings import db_url
        eng = sa.create_engine(db_url(dict(env, ZWZX_PG_DB="postgres")), isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        eng.dispose()
        cl = redis.StrictRedis(host=env.get("ZWZX_REDIS_HOST", "127.0.0.1"), port=int(env.get("ZWZX_REDIS_PORT", "6379")))
        for key in cl.scan_iter(f"{prefix}:*"):
            cl.delete(key)


if __name__ == "__main__":
    main()
