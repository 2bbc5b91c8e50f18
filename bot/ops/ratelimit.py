"""Token-bucket rate limits on top of the cross-process state interface (issue 16).

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; a request takes
one token or is refused with the time until the next token (``Retry-After``). Buckets are keyed
by scope and subject, e.g. ``msg:addr:203.0.113.5`` or ``msg:sender:rest:citizen-1``.

The counters live in :mod:`bot.ops.shared_state` (``ZWZX_SHARED_STATE``): in process memory in
the embedded profile (`make run`, one Rasa server; bounded to 200 000 keys), in Redis in the
production profile (every Rasa server sees the same buckets). A bucket is one key
``ratelimit:<scope>:<subject>`` holding ``"<tokens> <unix time>"``, updated with the interface's
atomic ``add`` / ``compare_and_set`` (optimistic: re-read and retry when another process changed
it in between), with a TTL of the time it takes to fill up again — after that an absent key
*is* a full bucket.

A store error (Redis down) *allows* the request — a citizen is never refused because the
limiter is unavailable — and is counted in ``zwzx_store_errors_total{store="ratelimit"}``.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Rate:
    """``rate`` tokens per second, at most ``burst`` at once. rate <= 0 or burst <= 0: unlimited."""

    rate: float
    burst: float

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0 or self.burst <= 0


@dataclass
class Verdict:
    allowed: bool
    retry_after: float = 0.0  # seconds until a token is available (refused requests)

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after - 1e-9)))


def _decode(value: Optional[str], rate: Rate, now: float) -> float:
    """Tokens in a stored bucket at `now` (a missing or unreadable bucket is full)."""
    if value is None:
        return rate.burst
    try:
        tokens_s, ts_s = value.split(" ", 1)
        tokens, ts = float(tokens_s), float(ts_s)
    except ValueError:
        return rate.burst
    return min(rate.burst, tokens + max(0.0, now - ts) * rate.rate)


class Buckets:
    """Token buckets in a SharedState (``await take(key, rate)`` → Verdict)."""

    def __init__(self, state: Any = None, clock: Callable[[], float] = time.time) -> None:
        self._state = state
        self.clock = clock
        self.errors = 0

    @property
    def state(self) -> Any:
        if self._state is None:
            from bot.ops.shared_state import shared_state

            self._state = shared_state()
        return self._state

    async def take(self, key: str, rate: Rate, cost: float = 1.0) -> Verdict:
        if rate.unlimited:
            return Verdict(True)
        key = "ratelimit:" + key
        try:
            st = self.state
            for _ in range(MAX_ATTEMPTS):
                current = await st.get(key)
                now = self.clock()
                tokens = _decode(current, rate, now)
                if tokens >= cost:
                    verdict, left = Verdict(True), tokens - cost
                else:
                    verdict, left = Verdict(False, (cost - tokens) / rate.rate), tokens
                value = f"{left:.6f} {now:.6f}"
                ttl = (rate.burst - left) / rate.rate + 1.0
                if current is None:
                    if await st.add(key, value, ttl) is None:
                        return verdict
                elif await st.compare_and_set(key, current, value, ttl):
                    return verdict
            logger.warning("rate limiter: bucket %s contended, request allowed", key)
            return Verdict(True)
        except Exception as e:  # fail open, but visibly
            self.errors += 1
            logger.warning("rate limiter: state store unavailable, request allowed (%s)", e)
            try:
                from bot.ops import metrics

                metrics.STORE_ERRORS.labels(store="ratelimit", op="take").inc()
            except Exception:  # pragma: no cover
                pass
            return Verdict(True)


_buckets: Optional[Buckets] = None


def buckets() -> Buckets:
    """The process's buckets (in the process's shared state, see bot.ops.shared_state)."""
    global _buckets
    if _buckets is None:
        _buckets = Buckets()
    return _buckets
