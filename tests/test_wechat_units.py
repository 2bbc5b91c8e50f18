"""WeChat channel parts without the Rasa server: text splitting (UTF-8 bytes), rendering of the
answer card, settings from credentials/env, safe XML, the access-token client against the fake
WeChat API (real HTTP), and the channel's request handling in process with a stand-in for the
Rasa agent (safe mode, deadline 0 → customer-service API, concurrent retries, staff delivery and
the 48-hour window on a real SQLite table)."""
from __future__ import annotations

import asyncio
import base64
import time
import uuid

import pytest
import xmltodict
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from bot.channels import wechat
from bot.channels.wechat import (BadRequest, WeChatConfig, WeChatEndpoint, resolve_setting,
                                 safe_parse_xml)
from bot.channels.wechat_api import WeChatAPIClient
from bot.channels.wechat_render import parse_choice, render_messages, split_utf8, utf8_len
from bot.channels.wechat_store import NonceCache, UserStore
from tests.fake_wechat_api import FakeWeChatAPI
from tests.servers import free_ports

DOC = "宁乡市2021年政务公开工作要点"
CITE5 = {"doc": "ningxiang-2021", "item": 5, "title": "做好财政信息公开",
         "label": "第（五）项 做好财政信息公开", "doc_title": DOC}


# --------------------------------------------------------------------------- splitting
def test_split_respects_utf8_bytes_and_loses_nothing():
    text = "宁乡市政务公开。" * 300  # 8 chars * 3 bytes * 300 = 7200 bytes, no line breaks
    parts = split_utf8(text, 2048)
    assert len(parts) == 4
    assert all(utf8_len(p) <= 2048 for p in parts)
    assert "".join(parts) == text
    assert all(p.endswith("。") for p in parts[:-1])  # cut after a sentence end


def test_split_exact_limit_and_character_boundaries():
    assert split_utf8("a" * 2048) == ["a" * 2048]
    assert split_utf8("a" * 2049) == ["a" * 2048, "a"]
    assert split_utf8("政" * 682 + "ab") == ["政" * 682 + "ab"]  # 2046 + 2 bytes
    parts = split_utf8("政" * 683)  # 2049 bytes: a 3-byte character is never cut
    assert parts == ["政" * 682, "政"]
    emoji = "😀" * 600  # 4-byte characters
    parts = split_utf8(emoji)
    assert [utf8_len(p) for p in parts] == [2048, 352] and "".join(parts) == emoji
    assert split_utf8("") == [] and split_utf8("\n\n短\n") == ["短"]
    with pytest.raises(ValueError):
        split_utf8("abc", 3)


def test_split_prefers_line_breaks():
    lines = [f"第{i}行：" + "政务公开" * 20 for i in range(40)]
    parts = split_utf8("\n".join(lines), 2048)
    assert all(utf8_len(p) <= 2048 for p in parts)
    assert "\n".join(parts) == "\n".join(lines)
    assert all(p.splitlines()[-1] in lines for p in parts)  # whole lines only


# --------------------------------------------------------------------------- rendering
def test_render_answer_adds_citation_and_units_once():
    card = {"kind": "answer", "citations": [CITE5], "departments": ["市财政局"]}
    r = render_messages([{"text": "加大惠民惠农政策和资金发放信息公开力度。"}, {"custom": card}])
    assert r.text.splitlines() == ["加大惠民惠农政策和资金发放信息公开力度。",
                                   f"依据：《{DOC}》第（五）项 做好财政信息公开", "相关单位：市财政局"]
    assert r.choices == [] and r.card == card
    already = render_messages([{"text": "答复"}, {"text": f"依据：《{DOC}》第（五）项 做好财政信息公开\n牵头单位：市财政局"},
                               {"custom": card}])
    assert already.text.count("依据") == 1 and "相关单位" not in already.text


def test_render_buttons_become_numbered_choices_and_card_is_never_json():
    buttons = [{"title": "第（二）项 做好各类规划主动公开", "payload": '/ask_full_text{"item_ref": "ningxiang-2021#2"}'},
               {"title": "第（九）项 加大政策解读回应", "payload": '/ask_full_text{"item_ref": "ningxiang-2021#9"}'}]
    card = {"kind": "answer", "citations": [dict(CITE5, item=2, label="第（二）项 做好各类规划主动公开")],
            "departments": ["市发改局"]}
    r = render_messages([{"text": "市发改局牵头：\n· 第（二）项 做好各类规划主动公开"},
                         {"text": "点击条目可查看该项全文。", "buttons": buttons}, {"custom": card},
                         {"custom": {"some": "rich-client payload"}}])
    assert "1. 第（二）项 做好各类规划主动公开\n2. 第（九）项 加大政策解读回应" in r.text
    assert "回复条目序号可查看该项全文。" in r.text and "点击" not in r.text
    assert r.choices == buttons
    assert "{" not in r.text and "payload" not in r.text and "kind" not in r.text
    assert "依据" not in r.text  # list answers name their items already


def test_render_handoff_ticket_and_empty_turn():
    r = render_messages([{"text": "正在为您转接人工客服。"},
                         {"custom": {"kind": "handoff", "citations": [], "departments": [], "ticket": "T-42"}}])
    assert r.text == "正在为您转接人工客服。\n工单编号：T-42"
    assert "12345" in render_messages([]).text


def test_parse_choice():
    assert parse_choice("1", 3) == 1 and parse_choice(" ２ ", 3) == 2 and parse_choice("第3项", 3) == 3
    assert parse_choice("9", 3) == 9  # out of range is reported to the citizen, not sent to the bot
    assert parse_choice("1", 0) is None and parse_choice("12345", 3) is None
    assert parse_choice("1号楼在哪", 3) is None and parse_choice("", 3) is None


# --------------------------------------------------------------------------- settings
def test_settings_from_credentials_and_environment(monkeypatch):
    for k in list(wechat.SETTINGS.values()):
        monkeypatch.delenv(k[0], raising=False)
    cfg = WeChatConfig.from_credentials({"token": "${WECHAT_TOKEN}", "encoding_aes_key": "${WECHAT_ENCODING_AES_KEY}",
                                         "api_base": "${WECHAT_API_BASE:-https://api.weixin.qq.com}"})
    assert cfg.token == "" and cfg.encrypt_mode == "plain" and cfg.api_base == "https://api.weixin.qq.com"
    key = base64.b64encode(b"k" * 32).decode()[:-1]
    monkeypatch.setenv("WECHAT_TOKEN", "tok")
    monkeypatch.setenv("WECHAT_ENCODING_AES_KEY", key)
    monkeypatch.setenv("WECHAT_API_BASE", "http://127.0.0.1:5599")
    monkeypatch.setenv("WECHAT_PASSIVE_REPLY_SECONDS", "0")
    cfg = WeChatConfig.from_credentials({"token": "${WECHAT_TOKEN}", "encoding_aes_key": "",
                                         "api_base": "${WECHAT_API_BASE:-https://api.weixin.qq.com}",
                                         "max_text_bytes": 99999, "menu": {"K": "问题"}})
    assert (cfg.token, cfg.encoding_aes_key, cfg.encrypt_mode) == ("tok", key, "safe")
    assert cfg.api_base == "http://127.0.0.1:5599" and cfg.passive_reply_seconds == 0.0
    assert cfg.max_text_bytes == 2048 and cfg.menu == {"K": "问题"}
    assert WeChatConfig.from_credentials(None).token == "tok"
    assert resolve_setting("literal", "X", "d") == "literal" and resolve_setting(300, "X", "d") == "300"


# --------------------------------------------------------------------------- safe XML
@pytest.mark.parametrize("data", [
    b'<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><a>&x;</a></xml>',
    b'<?xml version="1.0"?><!doctype lolz [<!ENTITY lol "lol">]><xml><a>&lol;</a></xml>',
    b'<xml><a>1</a>',
    b'<other><a>1</a></other>',
    "<xml><a>政务</a></xml>".encode("gbk"),
    b"<xml><a>" + b"x" * 70000 + b"</a></xml>",
])
def test_safe_parse_xml_rejects(data):
    with pytest.raises(BadRequest) as e:
        safe_parse_xml(data, 65536)
    assert e.value.status == 400


def test_nonce_cache():
    cache = NonceCache(ttl=10)
    assert cache.check_and_add("n1", "msg:1", now=100)
    assert cache.check_and_add("n1", "msg:1", now=101)      # same message again: dedup decides
    assert not cache.check_and_add("n1", "msg:2", now=102)  # same nonce, other message: replay
    assert cache.check_and_add("n1", "msg:2", now=111)      # forgotten after the window


# --------------------------------------------------------------------------- API client + fake
@pytest.fixture
def fake():
    f = FakeWeChatAPI("wxunit", "unit-secret", port=free_ports(1, 5560, 5599)[0]).start()
    yield f
    f.stop()


def test_token_cached_refreshed_before_expiry_and_on_40001(fake):
    async def run():
        client = WeChatAPIClient(fake.base_url, "wxunit", "unit-secret", refresh_margin=1.0)
        try:
            fake.expires_in = 2
            assert (await client.send_text("o1", "一")).ok
            assert (await client.send_text("o1", "二")).ok
            assert fake.token_requests == 1                        # cached
            await asyncio.sleep(1.1)                               # within the refresh margin
            assert (await client.send_text("o1", "三")).ok
            assert fake.token_requests == 2                        # refreshed before it expired
            fake.expires_in = 7200
            fake.fail_next(40001)
            assert (await client.send_text("o1", "四")).ok         # retried with a new token
            assert fake.token_requests == 3
            fake.fail_next(42001)
            assert (await client.send_text("o1", "五")).ok
            assert fake.token_requests == 4
            fake.expired_users.add("o2")
            res = await client.send_text("o2", "六")
            assert not res.ok and res.errcode == 45015 and "48" in res.reason
            bad = WeChatAPIClient(fake.base_url, "wxunit", "wrong")
            res = await bad.send_text("o1", "七")
            assert not res.ok and res.errcode == 40125
            await bad.close()
        finally:
            await client.close()
    asyncio.run(run())
    assert fake.messages_to("o1") == ["一", "二", "三", "四", "五"]
    assert fake.messages_to("o2") == []


# --------------------------------------------------------------------------- endpoint in process
TOKEN = "unit-token"
AES = base64.b64encode(b"u" * 32).decode()[:-1]


class StandInBot:
    """Replaces the Rasa agent only: counts calls, can be slow, answers with a fixed turn."""

    def __init__(self, delay=0.0, text="这是答复。"):
        self.calls, self.delay, self.text = [], delay, text

    async def __call__(self, sender_id, text, metadata):
        self.calls.append((sender_id, text))
        await asyncio.sleep(self.delay)
        return [{"text": self.text}, {"custom": {"kind": "answer", "citations": [CITE5], "departments": []}}]


def make_endpoint(tmp_path, fake, bot, **overrides):
    cfg = WeChatConfig(token=TOKEN, app_id="wxunit", app_secret="unit-secret", api_base=fake.base_url,
                       db_url=f"sqlite:///{tmp_path / 'wx.db'}", **overrides)
    if cfg.encrypt_mode != "plain":
        cfg.encoding_aes_key = AES
    return WeChatEndpoint(cfg, bot)


def query(nonce=None, ts=None, token=TOKEN):
    ts = ts or str(int(time.time()))
    nonce = nonce or uuid.uuid4().hex[:8]
    s = WeChatSigner()
    s.add_data(token, ts, nonce)
    return {"signature": s.signature, "timestamp": ts, "nonce": nonce}


def text_body(openid, content, msg_id):
    return (f"<xml><ToUserName><![CDATA[gh_unit]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>").encode()


def test_safe_mode_refuses_plaintext_and_answers_encrypted(tmp_path, fake):
    bot = StandInBot()
    ep = make_endpoint(tmp_path, fake, bot, encrypt_mode="safe")

    async def run():
        r = await ep.receive(query(), text_body("oS", "问题", 1))
        assert r.status == 403 and r.error
        q = query()
        env = xmltodict.parse(WeChatCrypto(TOKEN, AES, "wxunit").encrypt_message(
            text_body("oS", "问题", 2).decode(), q["nonce"], q["timestamp"]))["xml"]
        q.update(encrypt_type="aes", msg_signature=env["MsgSignature"])
        body = f"<xml><Encrypt><![CDATA[{env['Encrypt']}]]></Encrypt></xml>".encode()
        r = await ep.receive(q, body)
        assert r.status == 200 and "<Encrypt>" in r.body
        doc = xmltodict.parse(r.body)["xml"]
        inner = WeChatCrypto(TOKEN, AES, "wxunit").decrypt_message(r.body, doc["MsgSignature"],
                                                                 doc["TimeStamp"], doc["Nonce"])
        assert "这是答复。" in inner and "依据" in inner
    asyncio.run(run())
    assert bot.calls == [("wechat:oS", "问题")]


def test_deadline_zero_sends_everything_through_the_api(tmp_path, fake):
    long_text = "宁乡市政务公开工作要点。" * 200  # ~7.2 KB
    bot = StandInBot(text=long_text)
    ep = make_endpoint(tmp_path, fake, bot, passive_reply_seconds=0.0)

    async def run():
        r = await ep.receive(query(), text_body("oZ", "长问题", 10))
        assert (r.status, r.body) == (200, "success")
        for _ in range(100):
            if len(fake.messages_to("oZ")) >= 4:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
    asyncio.run(run())
    parts = fake.messages_to("oZ")
    assert len(parts) == 4 and all(utf8_len(p) <= 2048 for p in parts)
    assert "".join(parts[:-1]) + parts[-1].split("\n")[0] == long_text
    assert parts[-1].endswith(f"依据：《{DOC}》第（五）项 做好财政信息公开")


def test_concurrent_retries_are_processed_once(tmp_path, fake):
    bot = StandInBot(delay=0.3)
    ep = make_endpoint(tmp_path, fake, bot, passive_reply_seconds=2.0)

    async def run():
        body = text_body("oC", "同一条消息", 77)
        return await asyncio.gather(*[ep.receive(query(), body) for _ in range(3)])
    replies = asyncio.run(run())
    assert len(bot.calls) == 1
    assert all(r.status == 200 and "这是答复。" in r.body for r in replies)
    assert len({r.body for r in replies}) == 1
    assert fake.messages_to("oC") == []


def test_staff_delivery_and_48_hour_window(tmp_path, fake):
    ep = make_endpoint(tmp_path, fake, StandInBot())
    users = UserStore(f"sqlite:///{tmp_path / 'wx.db'}")

    async def run():
        assert not await ep.deliver_staff_message("wechat:oNever", "您好", "王芳")
        assert "没有" in ep.last_delivery_error
        users.touch("oOld", time.time() - 49 * 3600)
        assert not await ep.deliver_staff_message("wechat:oOld", "您好，您的问题已处理。", "王芳")
        assert "48" in ep.last_delivery_error
        users.touch("oNew", time.time() - 47 * 3600)
        assert await ep.deliver_staff_message("wechat:oNew", "您好，您的问题已处理。", "王芳")
        assert await ep.deliver_staff_message("oNew", "还有别的问题吗？", None)
        fake.expired_users.add("oNew")  # WeChat's own refusal is reported too
        assert not await ep.deliver_staff_message("wechat:oNew", "第三条", "王芳")
        assert "45015" in ep.last_delivery_error
        await ep.api.close()
    asyncio.run(run())
    assert fake.messages_to("oOld") == []
    assert fake.messages_to("oNew") == ["【人工客服 王芳】您好，您的问题已处理。", "还有别的问题吗？"]


def test_citizen_messages_update_last_message_time(tmp_path, fake):
    ep = make_endpoint(tmp_path, fake, StandInBot())
    users = UserStore(f"sqlite:///{tmp_path / 'wx.db'}")

    async def run():
        r = await ep.receive(query(), text_body("oT", "问题", 501))
        assert r.status == 200
    before = time.time()
    asyncio.run(run())
    assert users.last_message_at("oT") >= before - 1
