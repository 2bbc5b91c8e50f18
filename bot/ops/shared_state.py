"""Cross-process state: one small key/value interface, two implementations.

Everything that several Rasa servers (or console workers) must agree on and that is not a
conversation or a ticket goes through :class:`SharedState`: WeChat's MsgId de-duplication
(including the "being answered" state), the nonce replay window, the WeChat access token and
its refresh lock, rate-limit counters, ...

* :class:`MemoryState` — in the process's memory. The embedded profile (`make run`: one Rasa
  server) uses it; nothing to install or run.
* :class:`RedisState` — Redis (redis-py's asyncio client, already pinned for Rasa's lock store).
  The production profile uses it, so every server sees the same keys.

Which one: :func:`shared_state` reads ``ZWZX_SHARED_STATE`` — ``memory`` (the default when unset)
or ``redis``; the Redis server is the profile's (``ZWZX_REDIS_HOST`` / ``_PORT`` / ``_DB`` /
``_PASSWORD``), keys are ``<ZWZX_REDIS_PREFIX>:state:<key>``. The production profile
(bot/ops/settings.py ``profile_env``) sets ``ZWZX_SHARED_STATE=redis``.

All values are strings, every key has a TTL (seconds, float). Operations are atomic in both
implementations (Redis: single commands or Lua scripts):

    await st.add(key, value, ttl)                  # SET NX: None when stored, else the current value
    await st.get(key) / st.set(key, value, ttl) / st.delete(key) / st.exists(key)
    await st.compare_and_set(key, expected, value, ttl)   # True when the value was `expected`
    await st.compare_and_delete(key, expected)
    await st.incr(key, ttl)                        # counter; the TTL starts with the first incr
    async with st.lock(name, ttl=10, timeout=10):  # mutual exclusion across processes
        ...

Usage from a channel::

    from bot.ops.shared_state import shared_state
    st = shared_state()          # one per process (per event loop for Redis)
    n = await st.incr(f"ratelimit:{ip}:{int(time.time() // 60)}", ttl=60)
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
import time
import weakref
from typing import AsyncIterator, Dict, Optional, Tuple


class LockTimeout(RuntimeError):
    """The lock was not acquired within the timeout."""


class SharedState:
    """Interface (see the module docstring). Keys are plain strings chosen by the caller."""

    kind = "abstract"

    async def get(self, key: str) -> Optional[str]:
        raise NotImplementedError

    async def set(self, key: str, value: str, ttl: float) -> None:
        raise NotImplementedError

    async def add(self, key: str, value: str, ttl: float) -> Optional[str]:
        """Store `value` only if `key` is absent. None when stored, else the value already there."""
        raise NotImplementedError

    async def compare_and_set(self, key: str, expected: str, value: str, ttl: float) -> bool:
        raise NotImplementedError

    async def compare_and_delete(self, key: str, expected: str) -> bool:
        raise NotImplementedError

    async def delete(self, key: str) -> None:
        raise NotImplementedError

    async def exists(self, key: str) -> bool:
        return (await self.get(key)) is not None

    async def incr(self, key: str, ttl: float, amount: int = 1) -> int:
        raise NotImplementedError

    async def ping(self) -> None:
        """Raise if the store cannot be reached."""

    async def close(self) -> None:
        pass

    @contextlib.asynccontextmanager
    async def lock(self, name: str, ttl: float = 10.0, timeout: float = 10.0,
                   poll: float = 0.05) -> AsyncIterator[str]:
        """Hold `lock:<name>` (expires after `ttl` s if the holder dies). Raises LockTimeout."""
        key = f"lock:{name}"
        token = secrets.token_hex(8)
        deadline = time.monotonic() + timeout
        while await self.add(key, token, ttl) is not None:
            if time.monotonic() >= deadline:
                raise LockTimeout(f"lock {name} not acquired in {timeout:g} s")
            await asyncio.sleep(poll)
        try:
            yield token
        finally:
            await self.compare_and_delete(key, token)


class MemoryState(SharedState):
    """Process memory (a dict with expiry times). Safe across threads and event loops."""

    kind = "memory"

    def __init__(self, max_entries: int = 200_000) -> None:
        self._items: Dict[str, Tuple[str, float]] = {}
        self._mutex = threading.Lock()
        self.max_entries = max_entries

    def _live(self, key: str, now: float) -> Optional[str]:
        item = self._items.get(key)
        if item is None:
            return None
        if item[1] <= now:
            del self._items[key]
            return None
        return item[0]

    def _put(self, key: str, value: str, ttl: float, now: float) -> None:
        if len(self._items) >= self.max_entries:
            for k in [k for k, (_, exp) in self._items.items() if exp <= now]:
                del self._items[k]
            while len(self._items) >= self.max_entries:  # oldest insertion first
                del self._items[next(iter(self._items))]
        self._items[key] = (value, now + max(0.001, ttl))

    async def get(self, key: str) -> Optional[str]:
        with self._mutex:
            return self._live(key, time.monotonic())

    async def set(self, key: str, value: str, ttl: float) -> None:
        with self._mutex:
            self._put(key, value, ttl, time.monotonic())

    async def add(self, key: str, value: str, ttl: float) -> Optional[str]:
        with self._mutex:
            now = time.monotonic()
            current = self._live(key, now)
            if current is not None:
                return current
            self._put(key, value, ttl, now)
            return None

    async def compare_and_set(self, key: str, expected: str, value: str, ttl: float) -> bool:
        with self._mutex:
            now = time.monotonic()
            if self._live(key, now) != expected:
                return False
            self._put(key, value, ttl, now)
            return True

    async def compare_and_delete(self, key: str, expected: str) -> bool:
        with self._mutex:
            if self._live(key, time.monotonic()) != expected:
                return False
            del self._items[key]
            return True

    async def delete(self, key: str) -> None:
        with self._mutex:
            self._items.pop(key, None)

    async def incr(self, key: str, ttl: float, amount: int = 1) -> int:
        with self._mutex:
            now = time.monotonic()
            current = self._live(key, now)
            if current is None:
                self._put(key, str(amount), ttl, now)
                return amount
            value = int(current) + amount
            self._items[key] = (str(value), self._items[key][1])
            return value


_CAS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1
end
return 0
"""
_CAD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""
_INCR = """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v
"""


def _ms(ttl: float) -> int:
    return max(1, int(ttl * 1000))


class RedisState(SharedState):
    """Redis. One client per event loop (redis-py's asyncio connections belong to one loop)."""

    kind = "redis"

    def __init__(self, host: str = "127.0.0.1", port: int = 6379, db: int = 0,
                 password: Optional[str] = None, prefix: str = "zwzx", socket_timeout: float = 5.0) -> None:
        self.params = dict(host=host, port=int(port), db=int(db), password=password or None,
                           socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
                           decode_responses=True)
        self.prefix = f"{prefix}:state:"
        self._clients: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

    def _client(self):
        import redis.asyncio as aioredis

        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            client = aioredis.Redis(**self.params)
            entry = (client, client.register_script(_CAS), client.register_script(_CAD),
                     client.register_script(_INCR))
            self._clients[loop] = entry
        return entry

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def get(self, key: str) -> Optional[str]:
        return await self._client()[0].get(self._k(key))

    async def set(self, key: str, value: str, ttl: float) -> None:
        await self._client()[0].set(self._k(key), value, px=_ms(ttl))

    async def add(self, key: str, value: str, ttl: float) -> Optional[str]:
        client = self._client()[0]
        k = self._k(key)
        while True:
            if await client.set(k, value, px=_ms(ttl), nx=True):
                return None
            current = await client.get(k)
            if current is not None:
                return current
            # expired between SET NX and GET: try again

    async def compare_and_set(self, key: str, expected: str, value: str, ttl: float) -> bool:
        return bool(await self._client()[1](keys=[self._k(key)], args=[expected, value, _ms(ttl)]))

    async def compare_and_delete(self, key: str, expected: str) -> bool:
        return bool(await self._client()[2](keys=[self._k(key)], args=[expected]))

    async def delete(self, key: str) -> None:
        await self._client()[0].delete(self._k(key))

    async def exists(self, key: str) -> bool:
        return bool(await self._client()[0].exists(self._k(key)))

    async def incr(self, key: str, ttl: float, amount: int = 1) -> int:
        return int(await self._client()[3](keys=[self._k(key)], args=[amount, _ms(ttl)]))

    async def ping(self) -> None:
        await self._client()[0].ping()

    async def close(self) -> None:
        try:
            entry = self._clients.pop(asyncio.get_running_loop(), None)
        except RuntimeError:
            entry = None
        if entry is not None:
            await entry[0].close()


def from_environment(environ: Optional[Dict[str, str]] = None) -> SharedState:
    """A new store as configured by ZWZX_SHARED_STATE (memory | redis) and ZWZX_REDIS_*."""
    e = os.environ if environ is None else environ
    kind = (e.get("ZWZX_SHARED_STATE") or "memory").strip().lower()
    if kind == "memory":
        return MemoryState()
    if kind == "redis":
        return RedisState(host=e.get("ZWZX_REDIS_HOST") or "127.0.0.1", port=int(e.get("ZWZX_REDIS_PORT") or 6379),
                          db=int(e.get("ZWZX_REDIS_DB") or 0), password=e.get("ZWZX_REDIS_PASSWORD") or None,
                          prefix=e.get("ZWZX_REDIS_PREFIX") or "zwzx")
    raise ValueError(f"ZWZX_SHARED_STATE={kind!r}: expected 'memory' or 'redis'")


_default: Optional[SharedState] = None
_default_lock = threading.Lock()


def shared_state() -> SharedState:
    """The process's store (created on first use from the environment)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = from_environment()
        return _default


def reset_shared_state() -> None:
    """Forget the process's store (tests that change the environment)."""
    global _default
    with _default_lock:
        _default = None
