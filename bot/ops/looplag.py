"""Event-loop lag: a timer that should fire every ``ZWZX_LOOP_LAG_INTERVAL`` seconds (0.1) and
records how late it fired — the time the loop was held by something else (a parse, a blocking
database call). Exported as ``zwzx_event_loop_lag_seconds`` (histogram) and
``zwzx_event_loop_lag_max_seconds`` (largest over the last 60 s) on ``/metrics`` of the
production profile; started on every Rasa server by bot.ops.limits.install_edge.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from typing import Deque, Optional, Tuple

logger = logging.getLogger(__name__)

_task: Optional["asyncio.Task"] = None
WINDOW = 60.0
_recent: Deque[Tuple[float, float]] = collections.deque()
max_since_start = 0.0


def recent_max(now: Optional[float] = None) -> float:
    now = time.monotonic() if now is None else now
    while _recent and _recent[0][0] < now - WINDOW:
        _recent.popleft()
    return max((lag for _, lag in _recent), default=0.0)


async def _run(interval: float) -> None:
    global max_since_start
    from bot.ops import metrics

    loop = asyncio.get_running_loop()
    while True:
        t0 = loop.time()
        await asyncio.sleep(interval)
        lag = max(0.0, loop.time() - t0 - interval)
        now = time.monotonic()
        metrics.LOOP_LAG.observe(lag)
        if lag > 0.001:
            _recent.append((now, lag))
        max_since_start = max(max_since_start, lag)
        metrics.LOOP_LAG_MAX.set(recent_max(now))
        if lag > 0.5:
            logger.warning("event loop held for %.0f ms", lag * 1000)


def start(interval: Optional[float] = None) -> "asyncio.Task":
    global _task
    if _task is None or _task.done():
        interval = interval or float(os.environ.get("ZWZX_LOOP_LAG_INTERVAL") or 0.1)
        _task = asyncio.ensure_future(_run(interval))
    return _task
