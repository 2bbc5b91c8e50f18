"""The production lock store (bot.ops.lock_store.AtomicRedisLockStore) against a real Redis:
tickets stay unique when several processes (= several Rasa servers) take them at once, and
the conversation lock lets exactly one message through at a time, in ticket order.
Skipped when Redis is not reachable (ZWZX_REDIS_HOST/PORT, default 127.0.0.1:6379)."""
import asyncio
import multiprocessing
import os
import uuid

import pytest

redis = pytest.importorskip("redis")

HOST = os.environ.get("ZWZX_REDIS_HOST", "127.0.0.1")
PORT = int(os.environ.get("ZWZX_REDIS_PORT", "6379"))
DB = int(os.environ.get("ZWZX_REDIS_DB", "0"))


@pytest.fixture(scope="module")
def prefix():
    client = redis.StrictRedis(host=HOST, port=PORT, db=DB, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as e:
        pytest.skip(f"Redis not reachable at {HOST}:{PORT} ({e})")
    p = "zwzxlt" + uuid.uuid4().hex[:8]
    yield p
    for key in client.scan_iter(f"{p}:*"):
        client.delete(key)


def make_store(prefix):
    from bot.ops.lock_store import AtomicRedisLockStore

    return AtomicRedisLockStore(host=HOST, port=PORT, db=DB, key_prefix=prefix)


def _issue(args):
    prefix, conversation, n = args
    store = make_store(prefix)
    return [store.issue_ticket(conversation, 60) for _ in range(n)]


def test_tickets_are_unique_across_processes(prefix):
    conversation = "c-" + uuid.uuid4().hex[:6]
    workers, per_worker = 4, 60
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        results = pool.map(_issue, [(prefix, conversation, per_worker)] * workers)
    numbers = [n for r in results for n in r]
    assert len(numbers) == workers * per_worker
    assert sorted(numbers) == list(range(workers * per_worker)), "every ticket number issued exactly once"
    for r in results:
        assert r == sorted(r), "one process sees its own tickets in increasing order"
    store = make_store(prefix)
    lock = store.get_lock(conversation)
    assert len(lock.tickets) == workers * per_worker
    assert store.red.pttl(store.key_prefix + conversation) > 0, "the queue expires if every server dies"
    for n in numbers:
        store.cleanup(conversation, n)
    assert store.get_lock(conversation) is None, "the key is deleted once nobody waits"


def test_lock_lets_one_message_through_at_a_time_in_ticket_order(prefix):
    conversation = "c-" + uuid.uuid4().hex[:6]
    stores = [make_store(prefix), make_store(prefix)]  # two "servers"
    inside, max_inside, entered = [0], [0], []

    async def message(i):
        await asyncio.sleep(0.01 * i)  # arrival order
        async with stores[i % 2].lock(conversation):
            inside[0] += 1
            max_inside[0] = max(max_inside[0], inside[0])
            entered.append(i)
            await asyncio.sleep(0.02)
            inside[0] -= 1

    async def main():
        await asyncio.gather(*(message(i) for i in range(12)))

    asyncio.run(main())
    assert max_inside[0] == 1
    assert entered == list(range(12))
    assert stores[0].get_lock(conversation) is None
