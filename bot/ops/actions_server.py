"""Action server of the production profile: rasa-sdk's own app (``rasa run actions``) plus

* ``GET /ready``   200 when the knowledge base and retrieval index are loaded (loads them on
                   the first call, so a probe also warms the process up) and, when
                   ZWZX_DB_URL points at a database, that database answers; 503 otherwise;
* ``GET /metrics`` Prometheus: action calls by action and outcome, latency histogram.

    python -m bot.ops.actions_server --port 5730 [--host 127.0.0.1]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from typing import Any, Dict, Optional

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, ProcessCollector,
                               generate_latest)
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.ops.metrics import LATENCY_BUCKETS  # also disables *_created series

logger = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
CALLS = Counter("zwzx_action_calls_total", "Custom-action calls, by action and outcome (ok, rejected, error)",
                ["action", "outcome"], registry=REGISTRY)
LATENCY = Histogram("zwzx_action_latency_seconds", "Time to run a custom action", ["action"],
                    buckets=LATENCY_BUCKETS, registry=REGISTRY)


def _check_kb() -> Dict[str, Any]:
    from actions.knowledge import answerer

    a = answerer()
    kb = getattr(a, "kb", None)
    docs = getattr(kb, "documents", None)
    return {"ok": True, "documents": len(docs) if docs is not None else None}


_engines: Dict[str, Any] = {}


def _check_db(url: str) -> Dict[str, Any]:
    import sqlalchemy as sa

    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = sa.create_engine(url, pool_pre_ping=True, pool_size=1, max_overflow=1)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    return {"ok": True}


async def readiness() -> Dict[str, Any]:
    loop = asyncio.get_running_loop()
    checks: Dict[str, Any] = {}
    for name, fn, timeout in (("knowledge_base", _check_kb, 60.0),):
        try:
            checks[name] = await asyncio.wait_for(loop.run_in_executor(None, fn), timeout)
        except Exception as e:  # noqa: BLE001
            checks[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:300]}
    url = os.environ.get("ZWZX_DB_URL", "")
    if url.startswith("postgresql"):
        try:
            checks["database"] = await asyncio.wait_for(loop.run_in_executor(None, _check_db, url), 5.0)
        except Exception as e:  # noqa: BLE001
            checks["database"] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:300]}
    return {"ready": all(c.get("ok") for c in checks.values()), "pid": os.getpid(), "checks": checks}


def create_app(actions_package: str = "actions") -> Sanic:
    from rasa_sdk.endpoint import create_app as sdk_create_app

    app = sdk_create_app(actions_package, cors_origins="")

    @app.get("/ready")
    async def ready(_: Request) -> HTTPResponse:
        body = await readiness()
        return response.json(body, status=200 if body["ready"] else 503)

    @app.get("/metrics")
    async def metrics_route(_: Request) -> HTTPResponse:
        return response.raw(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)

    @app.middleware("request")
    async def start_timer(request: Request) -> None:
        if request.method == "POST" and request.path == "/webhook":
            request.ctx.zwzx_started = time.perf_counter()

    @app.middleware("response")
    async def count(request: Request, resp: HTTPResponse) -> None:
        started: Optional[float] = getattr(request.ctx, "zwzx_started", None)
        if started is None:
            return
        try:
            action = str((request.json or {}).get("next_action") or "unknown")[:64]
        except Exception:  # noqa: BLE001 — compressed or invalid body
            action = "unknown"
        status = resp.status if resp is not None else 500
        outcome = "ok" if status < 300 else ("rejected" if status < 500 else "error")
        CALLS.labels(action=action, outcome=outcome).inc()
        LATENCY.labels(action=action).observe(time.perf_counter() - started)

    return app


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description="政务咨询助手 action server (production profile)")
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--actions", default="actions")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("ZWZX_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(args.actions)
    logger.info("action server on http://%s:%s (pid %s)", args.host, args.port, os.getpid())
    app.run(host=args.host, port=args.port, workers=1, access_log=False)


if __name__ == "__main__":
    main()
