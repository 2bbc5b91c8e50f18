"""Prometheus metrics of a Rasa server process (one registry per process; Prometheus scrapes
every Rasa server's /metrics, the load test sums them).

Messages are counted where they are known for sure:
  * requests to a channel webhook (count + latency histogram, by channel and outcome) in the
    HTTP middleware (bot.ops.rasa_app);
  * user messages and bot replies *stored* (by answer-card kind) in the tracker store, i.e.
    only what was committed to PostgreSQL — fallbacks and handoffs are the card kinds
    "fallback" and "handoff";
  * action-server failures turned into a "系统繁忙" reply, tracker/lock store errors.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported for the routes)
from prometheus_client import ProcessCollector, disable_created_metrics

disable_created_metrics()  # no *_created series: they double the output and nobody reads them
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, ...

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)

MESSAGES = Counter(
    "zwzx_messages_total",
    "Messages received on a channel webhook, by outcome (answered: 2xx reply; failed: 5xx, "
    "nothing stored; rejected: 4xx bad request)",
    ["channel", "outcome"], registry=REGISTRY)
LATENCY = Histogram(
    "zwzx_message_latency_seconds",
    "Time from receiving a channel webhook request to sending its response",
    ["channel"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
IN_FLIGHT = Gauge(
    "zwzx_messages_in_flight", "Channel webhook requests being processed", registry=REGISTRY)
USER_STORED = Counter(
    "zwzx_user_messages_stored_total",
    "Citizen messages committed to the tracker store", registry=REGISTRY)
REPLIES = Counter(
    "zwzx_replies_total",
    "Bot replies committed to the tracker store, by answer-card kind", ["kind"], registry=REGISTRY)
FALLBACKS = Counter(
    "zwzx_fallbacks_total",
    "Replies whose answer card is a fallback (including 系统繁忙 replies)", registry=REGISTRY)
HANDOFFS = Counter(
    "zwzx_handoffs_total",
    "Replies whose answer card hands the conversation to 12345 staff", registry=REGISTRY)
ACTION_ERRORS = Counter(
    "zwzx_action_server_errors_total",
    "Custom-action calls that failed (action server unreachable, 5xx or timeout) and were "
    "answered with the 系统繁忙 reply", ["action"], registry=REGISTRY)
STORE_ERRORS = Counter(
    "zwzx_store_errors_total",
    "Tracker-store / lock-store operations that failed", ["store", "op"], registry=REGISTRY)
READY = Gauge(
    "zwzx_ready", "1 when the last readiness check passed", registry=REGISTRY)


def render() -> bytes:
    return generate_latest(REGISTRY)


def card_kind(bot_event_data: Optional[Dict[str, Any]]) -> Optional[str]:
    """The answer-card kind of a BotUttered event's data (None for text-only messages)."""
    custom = (bot_event_data or {}).get("custom")
    if isinstance(custom, dict) and isinstance(custom.get("kind"), str):
        return custom["kind"]
    return None


def count_stored_events(events: Iterable[Any]) -> None:
    """Count the events of one committed save (rasa.shared.core.events objects)."""
    for event in events:
        type_name = getattr(event, "type_name", None)
        if type_name == "user":
            USER_STORED.inc()
        elif type_name == "bot":
            kind = card_kind(getattr(event, "data", None))
            if kind is None:
                continue
            REPLIES.labels(kind=kind).inc()
            if kind == "fallback":
                FALLBACKS.inc()
            elif kind == "handoff":
                HANDOFFS.inc()

# Issue 16: bounded work per request (bot/ops/limits.py, bot/ops/looplag.py)
REFUSED = Counter(
    "zwzx_refused_total",
    "Requests or messages refused before any NLU, by reason (too_large: 413, too_long: 请精简 "
    "reply, rate_sender / rate_address: 429 or polite reply, body_slow / body_stalled / body_timeout: "
    "408, see bot.ops.limits.body_due)",
    ["reason", "channel"], registry=REGISTRY)
NLU_PARSES = Counter(
    "zwzx_nlu_parses_total", "Messages run through the NLU pipeline", registry=REGISTRY)
LOOP_LAG = Histogram(
    "zwzx_event_loop_lag_seconds",
    "Delay of a periodic timer on the server's event loop (how long the loop was held)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0), registry=REGISTRY)
LOOP_LAG_MAX = Gauge(
    "zwzx_event_loop_lag_max_seconds",
    "Largest event-loop lag over the last 60 seconds", registry=REGISTRY)
