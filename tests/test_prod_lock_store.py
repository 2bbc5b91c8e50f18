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


def _hold_forever(prefix, conversation, ready):
    async def main():
        async with make_store(prefix).lock(conversation):
            ready.set()
            await asyncio.sleep(3600)

    asyncio.run(main())


def test_tickets_are_leases_renewed_while_held_and_lapsing_when_the_server_dies(prefix, monkeypatch):
    """A lock held longer than its lease stays held (renewed); a server killed while holding it
    blocks the conversation for one lease (here 1.5 s), not Rasa's 60 s lifetime."""
    import signal
    import time

    monkeypatch.setenv("ZWZX_LOCK_LEASE_SECONDS", "1.5")
    conversation = "c-" + uuid.uuid4().hex[:6]
    a, b = make_store(prefix), make_store(prefix)
    order = []

    async def long_holder():
        async with a.lock(conversation):
            order.append("a in")
            await asyncio.sleep(4.0)  # > 2 leases
            order.append("a out")

    async def waiter():
        await asyncio.sleep(0.2)
        async with b.lock(conversation):
            order.append("b in")

    async def main():
        await asyncio.gather(long_holder(), waiter())

    asyncio.run(main())
    assert order == ["a in", "a out", "b in"]

    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_forever, args=(prefix, conversation, ready))
    proc.start()
    try:
        assert ready.wait(10)
        time.sleep(2.0)  # renewed past its first lease
        assert a.get_lock(conversation) is not None
        os.kill(proc.pid, signal.SIGKILL)                     # the server dies holding the lock
        killed = time.time()

        async def next_message():
            async with b.lock(conversation):
                return time.time() - killed

        waited = asyncio.run(next_message())
    finally:
        proc.kill()
        proc.join(5)
    assert waited < 1.5 + 1.0, waited                         # one lease (+ polling), not 60 s
