"""bot.ops.shared_state: the same behaviour from the in-process and the Redis implementation
(Redis tests skip when 127.0.0.1:6379 does not answer), and Redis seen from two clients as from
two servers."""
import asyncio
import os
import uuid

import pytest

from bot.ops.shared_state import LockTimeout, MemoryState, RedisState, from_environment

REDIS_HOST = os.environ.get("ZWZX_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("ZWZX_TEST_REDIS_PORT", "6379"))


def redis_or_skip():
    import redis

    try:
        redis.StrictRedis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=2).ping()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT} ({e})")


@pytest.fixture
def prefix():
    p = f"zwzxss{uuid.uuid4().hex[:8]}"
    yield p
    try:
        import redis

        client = redis.StrictRedis(host=REDIS_HOST, port=REDIS_PORT)
        for key in client.scan_iter(f"{p}:*"):
            client.delete(key)
    except Exception:  # noqa: BLE001
        pass


def make(kind, prefix):
    if kind == "memory":
        return MemoryState()
    redis_or_skip()
    return RedisState(REDIS_HOST, REDIS_PORT, prefix=prefix)


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_operations(kind, prefix):
    st = make(kind, prefix)

    async def run():
        assert await st.get("a") is None
        assert await st.add("a", "1", ttl=5) is None          # stored
        assert await st.add("a", "2", ttl=5) == "1"           # already there: current value
        assert not await st.compare_and_set("a", "x", "3", ttl=5)
        assert await st.compare_and_set("a", "1", "3", ttl=5)
        assert await st.get("a") == "3" and await st.exists("a")
        assert not await st.compare_and_delete("a", "1")
        assert await st.compare_and_delete("a", "3")
        assert await st.get("a") is None and not await st.exists("a")
        await st.set("b", "v", ttl=0.2)
        assert await st.get("b") == "v"
        await asyncio.sleep(0.35)
        assert await st.get("b") is None                      # expired
        assert [await st.incr("c", ttl=0.3) for _ in range(3)] == [1, 2, 3]
        await asyncio.sleep(0.45)
        assert await st.incr("c", ttl=0.3) == 1               # window over: starts again
        await st.set("d", "x", ttl=5)
        await st.delete("d")
        assert await st.get("d") is None
        await st.ping()
        await st.close()
    asyncio.run(run())


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_lock_is_exclusive_and_expires(kind, prefix):
    st = make(kind, prefix)
    inside, order = [], []

    async def worker(i):
        async with st.lock("L", ttl=5, timeout=5, poll=0.01):
            inside.append(i)
            assert len(inside) == 1
            await asyncio.sleep(0.02)
            order.append(i)
            inside.remove(i)

    async def run():
        await asyncio.gather(*[worker(i) for i in range(8)])
        # a holder that died: the lock expires after its ttl
        assert await st.add("lock:dead", "gone", ttl=0.3) is None
        with pytest.raises(LockTimeout):
            async with st.lock("dead", timeout=0.1):
                pass
        async with st.lock("dead", timeout=2):
            pass
        await st.close()
    asyncio.run(run())
    assert sorted(order) == list(range(8))


def test_two_redis_clients_see_one_state(prefix):
    """Two stores (as on two servers) with the same prefix: one add wins, the other sees it."""
    redis_or_skip()
    a, b = RedisState(REDIS_HOST, REDIS_PORT, prefix=prefix), RedisState(REDIS_HOST, REDIS_PORT, prefix=prefix)

    async def run():
        results = await asyncio.gather(*[(a if i % 2 else b).add("once", f"s{i}", ttl=5) for i in range(20)])
        assert results.count(None) == 1
        assert len({r for r in results if r is not None}) == 1
        assert await a.get("once") == await b.get("once")
        counts = await asyncio.gather(*[(a if i % 2 else b).incr("n", ttl=5) for i in range(50)])
        assert sorted(counts) == list(range(1, 51))
        await a.close()
        await b.close()
    asyncio.run(run())


def test_chosen_from_the_environment():
    assert isinstance(from_environment({}), MemoryState)
    assert isinstance(from_environment({"ZWZX_SHARED_STATE": "memory"}), MemoryState)
    st = from_environment({"ZWZX_SHARED_STATE": "redis", "ZWZX_REDIS_PORT": "6390", "ZWZX_REDIS_PREFIX": "p1"})
    assert isinstance(st, RedisState) and st.params["port"] == 6390 and st.prefix == "p1:state:"
    with pytest.raises(ValueError):
        from_environment({"ZWZX_SHARED_STATE": "memcached"})
