"""PostgreSQL tracker store of the production profile.

Rasa's own SQLTrackerStore, with three differences:

* **No silent fallback.** Rasa wraps every tracker store in a ``FailSafeTrackerStore`` that, when
  the database fails, hands out an empty tracker and keeps the turn in process memory — the
  citizen gets an answer without context and the conversation is silently lost. bot.ops.rasa_app
  unwraps it so a database error fails the request (HTTP 503, nothing stored) instead.
* ``pool_pre_ping``: connections broken by a database restart are replaced on the next use,
  so the first request after an outage does not fail.
* Metrics: user messages and bot replies (by answer-card kind) counted when committed.

A turn's events are written in one transaction (one commit), so a failure while saving leaves
the conversation as it was before the message: nothing half-written. Tables are created by
Rasa (``events``) on start; ``python -m bot.ops.db migrate`` does the same ahead of time.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Optional, Text

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs
from rasa.shared.core.trackers import DialogueStateTracker

from bot.ops import metrics
from bot.ops.tracker_cache import event_record

logger = logging.getLogger(__name__)


class ProdSQLTrackerStore(SQLTrackerStore):
    """SQL tracker store that raises on database errors (see module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        url = self.engine.url
        self.engine.dispose()
        engine_kwargs = create_engine_kwargs(url)
        self.engine = sa.create_engine(url, pool_pre_ping=True, pool_recycle=1800, **engine_kwargs)
        self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)

    # -- reads ---------------------------------------------------------------------------
    async def retrieve(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        try:
            return await super().retrieve(sender_id)
        except Exception:
            metrics.STORE_ERRORS.labels(store="tracker", op="retrieve").inc()
            raise

    async def retrieve_full_tracker(self, conversation_id: Text) -> Optional[DialogueStateTracker]:
        try:
            return await super().retrieve_full_tracker(conversation_id)
        except Exception:
            metrics.STORE_ERRORS.labels(store="tracker", op="retrieve").inc()
            raise

    async def keys(self) -> Iterable[Text]:
        try:
            return await super().keys()
        except Exception:
            metrics.STORE_ERRORS.labels(store="tracker", op="keys").inc()
            raise

    # -- write ---------------------------------------------------------------------------
    async def save(self, tracker: DialogueStateTracker) -> None:
        """SQLTrackerStore.save, plus counting what was committed."""
        try:
            await self.stream_events(tracker)
            with self.session_scope() as session:
                events = list(self._additional_events(session, tracker))
                for event in events:
                    session.add(event_record(self, tracker.sender_id, event))
                session.commit()
        except Exception:
            metrics.STORE_ERRORS.labels(store="tracker", op="save").inc()
            raise
        metrics.count_stored_events(events)

    def ping(self) -> None:
        """Raise if the database cannot be reached (readiness check)."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
