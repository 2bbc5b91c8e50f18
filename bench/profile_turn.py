"""Where does a REST turn spend its CPU?  cProfile of the Rasa side of N messages, in-process.

    PYTHONPATH=. .venv/bin/python bench/profile_turn.py [--model models/zhengwu.tar.gz]
        [--tracker sql|cached|memory] [--n 200] [--action-port 5271] [--top 30]
        [--no-profile] [--fast-validate] [--speedups]

Loads the model with rasa.core.agent, uses the same SQLite tracker store as production
(in a temp dir) or the in-memory one, starts its own action server on --action-port
(5105-5299) and sends bench/questions.txt through Agent.handle_message, profiling only
that. Prints wall ms per message and the top functions by cumulative and own time.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def wait_port(port: int, limit: float) -> None:
    t0 = time.time()
    while time.time() - t0 < limit:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise RuntimeError(f"action server on {port} did not start")


def patch_validation() -> None:
    """What-if: validate action-server responses with a cached validator.

    rasa.core.actions.action.RemoteAction._validate_action_result calls jsonschema.validate(),
    which re-checks the (large) response schema against the 2020-12 metaschema on every call.
    This experiment builds the validator once; it is NOT applied to the served bot."""
    from jsonschema import validators
    from rasa.core.actions.action import RemoteAction

    cache = {}
    original = RemoteAction._validate_action_result

    def fast(self, result):
        schema = self.action_response_format_spec()
        v = cache.get(id(type(self)))
        if v is None:
            cls = validators.validator_for(schema)
            cls.check_schema(schema)
            v = cache[id(type(self))] = cls(schema)
        try:
            v.validate(result)
            return True
        except Exception:
            return original(self, result)  # same error message as Rasa's

    RemoteAction._validate_action_result = fast


async def run(args) -> None:
    import logging

    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    configure_logging_and_warnings(logging.WARNING)  # as `rasa run` without --debug (INFO) would, minus noise
    configure_structlog(logging.WARNING)
    from rasa.core.agent import load_agent
    from rasa.core.utils import AvailableEndpoints
    from rasa.utils.endpoints import EndpointConfig

    if args.fast_validate:
        patch_validation()
    tmp = Path(tempfile.mkdtemp(prefix="zwzx-prof-"))
    qs = [l.split("|", 1)[1].strip() for l in (ROOT / "bench/questions.txt").read_text(encoding="utf-8").splitlines()
          if "|" in l and not l.startswith("#")]
    qs = [qs[i % len(qs)] for i in range(args.n)]

    if args.speedups:
        from bot.rasa_speedups import install
        install()
    store_type = {"sql": "SQL", "cached": "bot.ops.tracker_cache.CachedSQLTrackerStore"}.get(args.tracker)
    tracker_cfg = (EndpointConfig(type=store_type, dialect="sqlite", db=str(tmp / "tracker.db"))
                   if store_type else None)
    agent = await load_agent(model_path=args.model, endpoints=AvailableEndpoints(
        action=EndpointConfig(f"http://127.0.0.1:{args.action_port}/webhook"), tracker_store=tracker_cfg))
    print(f"tracker store: {type(agent.tracker_store).__name__}")
    try:
        await _measure(args, agent, qs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def _measure(args, agent, qs) -> None:
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

    async def turn(sender, text):
        out = CollectingOutputChannel()
        await agent.handle_message(UserMessage(text, out, sender))
        return out.messages

    for i in range(10):  # warm up
        await turn(f"warm-{i}", qs[i])
    prof = cProfile.Profile()
    t0, c0 = time.perf_counter(), time.process_time()
    sender = None
    if not args.no_profile:
        prof.enable()
    for i, q in enumerate(qs):
        if i % 10 == 0:
            sender = f"prof-{uuid.uuid4().hex[:8]}"
        await turn(sender, q)
    prof.disable()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"{len(qs)} messages, tracker={args.tracker}, fast_validate={args.fast_validate}: "
          f"{dt / len(qs) * 1000:.1f} ms wall, {cpu / len(qs) * 1000:.1f} ms Rasa-process CPU per message"
          + ("" if args.no_profile else " (profiler overhead included)"))
    if args.no_profile:
        return
    for key in ("cumulative", "tottime"):
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats(key).print_stats(args.top)
        print(s.getvalue())


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=str(ROOT / "models/zhengwu.tar.gz"))
    p.add_argument("--tracker", choices=["sql", "cached", "memory"], default="sql",
                   help="sql: Rasa's SQLTrackerStore; cached: ours (endpoints.yml); memory: in-memory")
    p.add_argument("--speedups", action="store_true", help="install bot/rasa_speedups.py (as served)")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--action-port", type=int, default=5271)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--no-profile", action="store_true", help="only time wall/CPU per message")
    p.add_argument("--fast-validate", action="store_true",
                   help="what-if: cache the jsonschema validator for action-server responses")
    args = p.parse_args()
    if not 5105 <= args.action_port <= 5299:
        p.error("use a port in 5105-5299")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    actions = subprocess.Popen([str(ROOT / ".venv/bin/rasa"), "run", "actions", "--port", str(args.action_port),
                                "--actions", "actions"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(args.action_port, 120)
        asyncio.run(run(args))
    finally:
        os.killpg(actions.pid, signal.SIGTERM)
        actions.wait(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
