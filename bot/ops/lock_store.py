"""Redis ticket lock store with atomic ticket operations.

Rasa's RedisLockStore keeps one ticket queue per conversation in a Redis key and updates it
with a plain GET → modify → SET. With several Rasa servers two messages of one conversation
arriving together can both read the queue before either writes it back: both get the same
ticket number (processed concurrently, events interleaved or lost), or one server deletes
the queue while the other is still waiting (that message fails with "Could not acquire
lock"). This store does every read-modify-write inside a Redis transaction (WATCH/MULTI/EXEC,
retried when another client changed the key), so tickets are unique and issued in arrival
order across all servers, and the key carries a TTL so a crashed server cannot leave a queue
behind forever.

It also checks the queue every ``ZWZX_LOCK_POLL_SECONDS`` (default 0.05 s) instead of Rasa's
1 s, so a message that waits behind another of the same conversation is not delayed by up
to a second.

Tickets are leases: issued for ``ZWZX_LOCK_LEASE_SECONDS`` (default 8 s) and renewed every
quarter of that by the server holding or waiting with them, for at most Rasa's lock lifetime
(``TICKET_LOCK_LIFETIME``, 60 s) in all. A server that is killed stops renewing, so the next
message of a conversation it was answering waits at most one lease (8 s) instead of the whole
lifetime (60 s) before another server takes the conversation. ``ZWZX_LOCK_LEASE_SECONDS=0``
turns renewal off (Rasa's fixed lifetime).

endpoints.prod.yml::

    lock_store:
      type: bot.ops.lock_store.AtomicRedisLockStore
      url: ${ZWZX_REDIS_HOST}
      port: ${ZWZX_REDIS_PORT}
      db: ${ZWZX_REDIS_DB}
      password: ${ZWZX_REDIS_PASSWORD}
      key_prefix: ${ZWZX_REDIS_PREFIX}
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncGenerator, Callable, Optional, Text, Tuple

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore

from bot.ops import metrics

logger = logging.getLogger(__name__)

KEY_TTL_MARGIN_SECONDS = 5.0
REDIS_KWARGS = ("port", "db", "username", "password", "use_ssl", "ssl_certfile", "ssl_keyfile",
                "ssl_ca_certs", "key_prefix", "socket_timeout")


def lease_seconds() -> float:
    try:
        value = float(os.environ.get("ZWZX_LOCK_LEASE_SECONDS", "8"))
    except ValueError:
        return 8.0
    return 0.0 if value <= 0 else max(1.0, value)


def poll_seconds() -> float:
    try:
        return max(0.005, float(os.environ.get("ZWZX_LOCK_POLL_SECONDS", "0.05")))
    except ValueError:
        return 0.05


class AtomicRedisLockStore(RedisLockStore):
    def __init__(self, endpoint_config: Any = None, host: Text = "localhost", **kwargs: Any) -> None:
        if endpoint_config is not None:  # how Rasa builds a lock store given by module path
            host = endpoint_config.url or host
            kwargs = {**endpoint_config.kwargs, **kwargs}
        kwargs = {k: v for k, v in kwargs.items() if k in REDIS_KWARGS}
        for name in ("username", "password"):
            if kwargs.get(name) == "":
                kwargs[name] = None
        if "port" in kwargs:
            kwargs["port"] = int(kwargs["port"])
        if "db" in kwargs:
            kwargs["db"] = int(kwargs["db"])
        super().__init__(host=host, **kwargs)

    # -- atomic read-modify-write ----------------------------------------------------------
    def _atomic(self, conversation_id: Text,
                mutate: Callable[[Optional[TicketLock]], Tuple[Any, Optional[TicketLock]]]) -> Any:
        """Run ``mutate(lock) -> (result, lock_to_store)`` under WATCH; an empty or missing
        lock to store deletes the key."""
        key = self.key_prefix + conversation_id

        def txn(pipe: Any) -> Any:
            raw = pipe.get(key)
            lock = TicketLock.from_dict(json.loads(raw)) if raw else None
            result, new_lock = mutate(lock)
            pipe.multi()
            if new_lock is None or not new_lock.tickets:
                pipe.delete(key)
            else:
                ttl = max(t.expires for t in new_lock.tickets) - time.time() + KEY_TTL_MARGIN_SECONDS
                pipe.set(key, new_lock.dumps(), px=max(1000, int(ttl * 1000)))
            return result

        try:
            return self.red.transaction(txn, key, value_from_callable=True)
        except Exception as e:
            metrics.STORE_ERRORS.labels(store="lock", op="update").inc()
            raise LockError(f"Lock store error for conversation '{conversation_id}': {e}") from e

    def issue_ticket(self, conversation_id: Text, lock_lifetime: float = LOCK_LIFETIME) -> int:
        def mutate(lock: Optional[TicketLock]) -> Tuple[int, TicketLock]:
            lock = lock or self.create_lock(conversation_id)
            return lock.issue_ticket(lock_lifetime), lock

        return self._atomic(conversation_id, mutate)

    def extend_ticket(self, conversation_id: Text, ticket_number: int, seconds: float) -> bool:
        """Move a ticket's expiry to now + seconds; False when it is gone (expired)."""
        def mutate(lock: Optional[TicketLock]) -> Tuple[bool, Optional[TicketLock]]:
            for t in (lock.tickets if lock is not None else []):
                if t.number == ticket_number:
                    t.expires = time.time() + seconds
                    return True, lock
            return False, lock

        return self._atomic(conversation_id, mutate)

    async def _renew(self, conversation_id: Text, ticket: int, lease: float, lifetime: float) -> None:
        deadline = time.time() + max(0.0, lifetime - lease)
        try:
            while time.time() < deadline:
                await asyncio.sleep(lease / 4)
                if not self.extend_ticket(conversation_id, ticket, min(lease, deadline + lease - time.time())):
                    return
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 — the ticket then expires with its lease
            logger.warning("could not renew lock ticket %s of %s", ticket, conversation_id)

    def update_lock(self, conversation_id: Text) -> None:
        def mutate(lock: Optional[TicketLock]) -> Tuple[None, Optional[TicketLock]]:
            if lock is not None:
                lock.remove_expired_tickets()
            return None, lock

        self._atomic(conversation_id, mutate)

    def finish_serving(self, conversation_id: Text, ticket_number: int) -> None:
        def mutate(lock: Optional[TicketLock]) -> Tuple[None, Optional[TicketLock]]:
            if lock is not None:
                lock.remove_ticket_for(ticket_number)
            return None, lock

        self._atomic(conversation_id, mutate)

    def cleanup(self, conversation_id: Text, ticket_number: int) -> None:
        # finish_serving deletes the key in the same transaction when nobody is waiting
        self.finish_serving(conversation_id, ticket_number)

    def get_lock(self, conversation_id: Text) -> Optional[TicketLock]:
        try:
            return super().get_lock(conversation_id)
        except Exception as e:
            metrics.STORE_ERRORS.labels(store="lock", op="get").inc()
            raise LockError(f"Lock store error for conversation '{conversation_id}': {e}") from e

    @asynccontextmanager
    async def lock(self, conversation_id: Text, lock_lifetime: float = LOCK_LIFETIME,
                   wait_time_in_seconds: Optional[float] = None) -> AsyncGenerator[TicketLock, None]:
        wait = poll_seconds() if wait_time_in_seconds in (None, 1) else wait_time_in_seconds
        lease = lease_seconds()
        ticket = self.issue_ticket(conversation_id, min(lease, lock_lifetime) if lease else lock_lifetime)
        renew = asyncio.ensure_future(self._renew(conversation_id, ticket, lease, lock_lifetime)) \
            if lease and lease < lock_lifetime else None
        try:
            yield await self._acquire_lock(conversation_id, ticket, wait)
        finally:
            if renew is not None:
                renew.cancel()
            try:
                self.cleanup(conversation_id, ticket)
            except LockError:
                # the ticket expires by itself (key TTL); do not hide the original error
                logger.warning("could not release lock ticket %s of %s", ticket, conversation_id)

    def ping(self) -> None:
        self.red.ping()
