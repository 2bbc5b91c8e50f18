"""Hooks that turn a stock Rasa server into a production-profile one.

Installed by ``python -m bot.ops.serve`` (which then runs Rasa's own ``rasa run``):

* ``configure_app`` wrapper: after Rasa has built its Sanic app (API + channel blueprints) we
  add
    - ``GET /ready``   readiness: model loaded, tracker store is PostgreSQL and reachable,
                       lock store (Redis) reachable → 200, otherwise 503 with the failed checks;
    - ``GET /metrics`` Prometheus metrics (bot.ops.metrics);
    - HTTP middleware timing every channel webhook request (``/webhooks/<channel>/webhook``)
      and, for the REST channel, turning a message that failed inside Rasa (database or lock
      store unreachable, …) into ``503 {"error": "系统繁忙…"}`` instead of Rasa's
      ``200 []`` (silence) — nothing of that message was stored, the client may resend it;
    - JSON error handlers for database / lock-store errors raised by other routes.
* Agent hardening (on start and, idempotently, on every request because a model reload
  creates a new agent): Rasa's ``FailSafeTrackerStore`` wrapper is removed so database errors
  are not hidden behind an empty in-memory tracker, and ``handle_message`` records failures for
  the middleware.
* ``RemoteAction.run`` wrapper: when the action server cannot be reached, answers 5xx or
  times out, Rasa logs the error and sends *nothing*; instead the citizen gets the polite
  系统繁忙 reply with a ``fallback`` answer card (``reason: system_busy``), which is stored in
  the tracker like any other reply, and the conversation carries on.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import re
import time
from typing import Any, Dict, List, Optional

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.answering.cards import make_card
from bot.ops import metrics

logger = logging.getLogger(__name__)

BUSY_TEXT = ("抱歉，系统繁忙，暂时无法处理您的问题，请您稍后再试。"
             "如有急事，也可以拨打12345政务服务便民热线咨询。")
UNAVAILABLE_TEXT = "系统繁忙，您的消息暂未处理，请稍后重新发送。"
WEBHOOK_RE = re.compile(r"^/webhooks/([^/]+)/webhook/?$")
READY_TIMEOUT = 3.0

# Per-request list of failures inside Rasa's message handling (set by the request middleware;
# the handle_message wrapper appends to it; the response middleware reads it).
_FAILURES: contextvars.ContextVar[Optional[List[str]]] = contextvars.ContextVar(
    "zwzx_failures", default=None)


def failure_channels() -> set:
    """Channels whose failed messages are answered with a 503 JSON error."""
    return {c.strip() for c in os.environ.get("ZWZX_FAIL_503_CHANNELS", "rest").split(",") if c.strip()}


# --------------------------------------------------------------------------- action server
def busy_events() -> List[Any]:
    from rasa.shared.core.events import BotUttered

    return [BotUttered(text=BUSY_TEXT, data={}),
            BotUttered(data={"custom": make_card("fallback", reason="system_busy")})]


def install_action_fallback() -> None:
    """Make a failed custom-action call answer 系统繁忙 instead of nothing."""
    from rasa.core.actions.action import ActionExecutionRejection, RemoteAction

    if getattr(RemoteAction.run, "_zwzx_busy_reply", False):
        return
    original = RemoteAction.run

    async def run(self: RemoteAction, output_channel: Any, nlg: Any, tracker: Any, domain: Any) -> List[Any]:
        try:
            return await original(self, output_channel, nlg, tracker, domain)
        except ActionExecutionRejection:
            raise
        except Exception as e:  # unreachable, 5xx, timeout, invalid response
            logger.error("custom action %s failed, replying 系统繁忙: %s", self.name(), e)
            metrics.ACTION_ERRORS.labels(action=self.name()).inc()
            return busy_events()

    run._zwzx_busy_reply = True  # type: ignore[attr-defined]
    RemoteAction.run = run  # type: ignore[assignment]


# --------------------------------------------------------------------------- agent
def harden_agent(agent: Any) -> None:
    """Remove the FailSafeTrackerStore wrapper and record message failures (idempotent)."""
    if agent is None or getattr(agent, "_zwzx_hardened", False):
        return
    from rasa.core.tracker_store import FailSafeTrackerStore

    store = agent.tracker_store
    if isinstance(store, FailSafeTrackerStore):
        inner = store._tracker_store
        agent.tracker_store = inner
        if getattr(agent, "processor", None) is not None:
            agent.processor.tracker_store = inner
    original = agent.handle_message

    async def handle_message(message: Any) -> Any:
        if not agent.is_ready():
            _record("model not loaded")
            return None
        try:
            return await original(message)
        except Exception as e:
            _record(f"{type(e).__name__}: {e}")
            raise

    agent.handle_message = handle_message
    agent._zwzx_hardened = True


def message_failed() -> bool:
    """True when the message being handled in this request failed inside Rasa (see harden_agent)."""
    return bool(_FAILURES.get())


def _record(failure: str) -> None:
    holder = _FAILURES.get()
    if holder is not None:
        holder.append(failure)


# --------------------------------------------------------------------------- readiness
def _tracker_store(agent: Any) -> Any:
    store = getattr(agent, "tracker_store", None)
    return getattr(store, "_tracker_store", store)  # tolerate an unhardened agent


async def readiness(app: Sanic) -> Dict[str, Any]:
    from bot.ops.lock_store import AtomicRedisLockStore
    from bot.ops.store import ProdSQLTrackerStore

    agent = getattr(app.ctx, "agent", None)
    checks: Dict[str, Any] = {}
    checks["model"] = {"ok": bool(agent is not None and agent.is_ready())}
    if agent is not None and agent.is_ready():
        checks["model"]["id"] = getattr(agent.processor, "model_filename", None)
    loop = asyncio.get_running_loop()

    async def probe(name: str, fn: Any, expected_type: type, obj: Any) -> None:
        if not isinstance(obj, expected_type):
            checks[name] = {"ok": False, "error": f"{type(obj).__name__} is not {expected_type.__name__}"}
            return
        try:
            await asyncio.wait_for(loop.run_in_executor(None, fn), READY_TIMEOUT)
            checks[name] = {"ok": True, "type": type(obj).__name__}
        except Exception as e:  # noqa: BLE001 — any failure means not ready
            checks[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:300]}

    store = _tracker_store(agent)
    lock_store = getattr(agent, "lock_store", None)
    await probe("tracker_store", getattr(store, "ping", None), ProdSQLTrackerStore, store)
    await probe("lock_store", getattr(lock_store, "ping", None), AtomicRedisLockStore, lock_store)
    ready = all(c["ok"] for c in checks.values())
    metrics.READY.set(1 if ready else 0)
    return {"ready": ready, "pid": os.getpid(), "checks": checks}


# --------------------------------------------------------------------------- the app
def instrument(app: Sanic) -> Sanic:
    async def ready_route(request: Request) -> HTTPResponse:
        harden_agent(getattr(request.app.ctx, "agent", None))
        body = await readiness(request.app)
        return response.json(body, status=200 if body["ready"] else 503)

    async def metrics_route(request: Request) -> HTTPResponse:
        return response.raw(metrics.render(), content_type=metrics.CONTENT_TYPE_LATEST)

    app.add_route(ready_route, "/ready", methods=["GET"], name="zwzx_ready")
    app.add_route(metrics_route, "/metrics", methods=["GET"], name="zwzx_metrics")

    async def on_request(request: Request) -> None:
        harden_agent(getattr(request.app.ctx, "agent", None))
        if request.method != "POST":
            return
        m = WEBHOOK_RE.match(request.path)
        if not m:
            return
        holder: List[str] = []
        _FAILURES.set(holder)
        request.ctx.zwzx = (m.group(1), time.perf_counter(), holder)
        metrics.IN_FLIGHT.inc()

    async def on_response(request: Request, resp: HTTPResponse) -> Optional[HTTPResponse]:
        info = getattr(request.ctx, "zwzx", None)
        if info is None:
            return None
        request.ctx.zwzx = None
        channel, started, holder = info
        metrics.IN_FLIGHT.dec()
        replaced = None
        if holder and resp is not None and resp.status < 400 and channel in failure_channels():
            logger.error("message on %s failed, answering 503: %s", channel, "; ".join(holder)[:500])
            replaced = response.json({"error": UNAVAILABLE_TEXT}, status=503, headers={"Retry-After": "5"})
        status = (replaced or resp).status if (replaced or resp) is not None else 500
        outcome = "answered" if status < 400 else ("rejected" if status < 500 else "failed")
        if holder and outcome == "answered":
            outcome = "failed"  # a channel that acknowledges anyway (e.g. WeChat) — still a failure
        metrics.MESSAGES.labels(channel=channel, outcome=outcome).inc()
        metrics.LATENCY.labels(channel=channel).observe(time.perf_counter() - started)
        return replaced

    app.register_middleware(on_request, "request")
    app.register_middleware(on_response, "response")

    import sqlalchemy.exc
    from rasa.core.lock_store import LockError

    async def storage_error(request: Request, exception: Exception) -> HTTPResponse:
        logger.error("storage error on %s: %s", request.path, exception)
        return response.json({"error": UNAVAILABLE_TEXT}, status=503, headers={"Retry-After": "5"})

    app.error_handler.add(sqlalchemy.exc.SQLAlchemyError, storage_error)
    app.error_handler.add(LockError, storage_error)

    async def after_start(app_: Sanic, _loop: Any) -> None:
        harden_agent(getattr(app_.ctx, "agent", None))

    app.register_listener(after_start, "after_server_start")
    return app


def install() -> None:
    """Patch Rasa's app factory and RemoteAction (this process only)."""
    import rasa.core.run as rasa_run

    install_action_fallback()
    if getattr(rasa_run.configure_app, "_zwzx_instrumented", False):
        return
    original = rasa_run.configure_app

    def configure_app(*args: Any, **kwargs: Any) -> Sanic:
        return instrument(original(*args, **kwargs))

    configure_app._zwzx_instrumented = True  # type: ignore[attr-defined]
    rasa_run.configure_app = configure_app
