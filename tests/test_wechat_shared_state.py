"""WeChat channel state shared by several servers (bot/ops/shared_state.py): two endpoints —
two "servers" in one test process — on one store (in-process, and Redis when it answers). A retry
or replay reaching the other server is recognised there: one bot call, one answer; the access
token is fetched once for both. In-process stand-in for the Rasa agent, fake WeChat API over HTTP.
The same sequences against two real Rasa servers behind nginx: tests/test_prod_shared_state.py."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from wechatpy.utils import WeChatSigner

from bot.channels.wechat import WeChatConfig, WeChatEndpoint
from bot.channels.wechat_api import WeChatAPIClient
from bot.channels.wechat_store import PROCESSING
from bot.ops.shared_state import MemoryState, RedisState
from tests.fake_wechat_api import FakeWeChatAPI
from tests.servers import free_ports
from tests.test_shared_state import REDIS_HOST, REDIS_PORT, prefix, redis_or_skip  # noqa: F401

TOKEN = "shared-token"


class StandInBot:
    def __init__(self, delay=0.0):
        self.calls, self.delay = [], delay

    async def __call__(self, sender_id, text, metadata):
        self.calls.append((sender_id, text))
        await asyncio.sleep(self.delay)
        return [{"text": f"答复：{text}"}]


@pytest.fixture
def fake():
    f = FakeWeChatAPI("wxshared", "shared-secret", port=free_ports(1, 6150, 6169)[0]).start()
    yield f
    f.stop()


@pytest.fixture(params=["memory", "redis"])
def state_factory(request, prefix):  # noqa: F811
    """Returns a function giving each 'server' its view of one store."""
    if request.param == "memory":
        shared = MemoryState()
        return lambda: shared
    redis_or_skip()
    return lambda: RedisState(REDIS_HOST, REDIS_PORT, prefix=prefix)


def two_servers(tmp_path, fake, bot, state_factory, **overrides):
    cfg = WeChatConfig(token=TOKEN, app_id="wxshared", app_secret="shared-secret", api_base=fake.base_url,
                       db_url=f"sqlite:///{tmp_path / 'wx.db'}", **overrides)
    return WeChatEndpoint(cfg, bot, state=state_factory()), WeChatEndpoint(cfg, bot, state=state_factory())


def query(nonce=None, ts=None):
    ts = ts or str(int(time.time()))
    nonce = nonce or uuid.uuid4().hex[:8]
    s = WeChatSigner()
    s.add_data(TOKEN, ts, nonce)
    return {"signature": s.signature, "timestamp": ts, "nonce": nonce}


def body(openid, content, msg_id):
    return (f"<xml><ToUserName><![CDATA[gh_s]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>").encode()


async def later(delay, coro):
    await asyncio.sleep(delay)
    return await coro


def test_retry_on_the_other_server_while_answering_gets_the_same_reply(tmp_path, fake, state_factory):
    bot = StandInBot(delay=0.5)
    a, b = two_servers(tmp_path, fake, bot, state_factory, passive_reply_seconds=3.0)
    msg = body("oR", "问题一", 9001)

    async def run():
        return await asyncio.gather(a.receive(query(), msg), later(0.1, b.receive(query(), msg)),
                                    later(0.2, a.receive(query(), msg)))
    replies = asyncio.run(run())
    assert len(bot.calls) == 1
    assert all(r.status == 200 and "答复：问题一" in r.body for r in replies), replies
    assert len({r.body for r in replies}) == 1
    assert b.duplicates == 1 and a.duplicates == 1
    # a retry after the answer went out (WeChat did not get it) gets it again, not a new answer

    async def again():
        return await b.receive(query(), msg)
    r = asyncio.run(again())
    assert "答复：问题一" in r.body and len(bot.calls) == 1
    assert fake.messages_to("oR") == []


def test_slow_answer_goes_once_through_the_api_whichever_server_the_retries_reach(tmp_path, fake, state_factory):
    bot = StandInBot(delay=1.5)
    a, b = two_servers(tmp_path, fake, bot, state_factory, passive_reply_seconds=0.6)
    msg = body("oS", "慢问题", 9002)

    async def run():
        replies = await asyncio.gather(a.receive(query(), msg), later(0.2, b.receive(query(), msg)),
                                       later(0.9, b.receive(query(), msg)), later(1.1, a.receive(query(), msg)))
        for _ in range(100):
            if fake.messages_to("oS"):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        return replies
    replies = asyncio.run(run())
    assert [(r.status, r.body) for r in replies] == [(200, "success")] * 4
    assert len(bot.calls) == 1
    assert fake.messages_to("oS") == ["答复：慢问题"]


def test_replayed_nonce_with_another_message_refused_on_the_other_server(tmp_path, fake, state_factory):
    bot = StandInBot()
    a, b = two_servers(tmp_path, fake, bot, state_factory)
    q = query()

    async def run():
        first = await a.receive(q, body("oN", "原消息", 9003))
        forged = await b.receive(dict(q), body("oN", "伪造的消息", 9004))
        same = await b.receive(dict(q), body("oN", "原消息", 9003))   # exact replay: deduplicated
        return first, forged, same
    first, forged, same = asyncio.run(run())
    assert first.status == 200 and "答复：原消息" in first.body
    assert forged.status == 403 and "nonce" in forged.body
    assert same.status == 200 and same.body == first.body
    assert bot.calls == [("wechat:oN", "原消息")]


def test_retry_takes_over_when_the_answering_server_died(tmp_path, fake, state_factory):
    """A claim whose owner no longer renews it (server killed) is taken over by the retry."""
    bot = StandInBot()
    a, b = two_servers(tmp_path, fake, bot, state_factory, passive_reply_seconds=2.0)
    msg = body("oD", "问题", 9005)

    async def run():
        dead = PROCESSING + "deadbeef"  # no alive key: its server is gone
        await a.claims.state.add(a.claims._msg("msg:9005"), dead, 60)
        return await b.receive(query(), msg)
    r = asyncio.run(run())
    assert r.status == 200 and "答复：问题" in r.body
    assert len(bot.calls) == 1


def test_access_token_one_refresh_for_the_cluster(fake, state_factory):
    async def run():
        clients = [WeChatAPIClient(fake.base_url, "wxshared", "shared-secret", state=state_factory())
                   for _ in range(4)]
        try:
            results = await asyncio.gather(*[c.send_text("oT", f"消息{i}") for i, c in enumerate(clients * 3)])
            assert all(r.ok for r in results)
            assert fake.token_requests == 1
            assert sum(c.refreshes for c in clients) == 1
            fake.fail_next(40001)  # WeChat retired the token: one client refreshes, the others use it
            results = await asyncio.gather(*[c.send_text("oT", f"再{i}") for i, c in enumerate(clients)])
            assert all(r.ok for r in results)
            assert fake.token_requests == 2
        finally:
            for c in clients:
                await c.close()
    asyncio.run(run())
    assert len(fake.messages_to("oT")) == 16
