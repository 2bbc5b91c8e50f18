"""WeChat + handoff, end to end: a citizen asks for a person over WeChat, the ticket records the
channel, a hotline staff member's message (staff API) reaches the citizen through the
customer-service API of the (fake) WeChat server, and after 48 hours without a citizen message
the staff API reports it as not delivered instead of losing it silently. Servers: tests/servers.py.
"""
from __future__ import annotations

import re
import time

import pytest
import requests

from bot.channels.wechat_store import UserStore
from tests.fake_wechat_api import FakeWeChatAPI
from tests.servers import free_ports, running_bot
from tests.test_wechat_e2e import APP_ID, APP_SECRET, PORTS, TOKEN, new_openid, post, reply_text, text_xml


class Stack:
    def __init__(self, servers, fake):
        self.servers, self.fake = servers, fake
        self.webhook = servers.rasa_url + "/webhooks/wechat/webhook"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wechat_handoff")
    rasa_port, action_port, fake_port = free_ports(3, *PORTS)
    fake = FakeWeChatAPI(APP_ID, APP_SECRET, port=fake_port).start()
    credentials = tmp / "credentials.yml"
    credentials.write_text(
        "bot.channels.staff.StaffInput:\n"
        "bot.channels.wechat.WeChatInput:\n"
        f'  token: "{TOKEN}"\n  app_id: "{APP_ID}"\n  app_secret: "{APP_SECRET}"\n'
        f'  api_base: "{fake.base_url}"\n', encoding="utf-8")
    try:
        with running_bot(rasa_port, action_port, tmp / "bot", credentials=credentials) as servers:
            yield Stack(servers, fake)
    finally:
        fake.stop()


def staff(stack, token, method, path, **kw):
    return requests.request(method, stack.servers.rasa_url + "/webhooks/staff" + path,
                            headers={"Authorization": f"Bearer {token}"}, timeout=30, **kw)


def test_staff_messages_reach_wechat_citizens_within_48_hours(stack):
    openid = new_openid()
    r, params = post(stack, text_xml(openid, "我要转人工"), openid=openid)
    content = reply_text(r, params, openid)
    assert content and "人工" in content and "{" not in content
    m = re.search(r"工单(?:编)?号：(\d+)", content)
    assert m, content  # the ticket number from the card is shown to the citizen
    ticket_id = int(m.group(1))
    token = stack.servers.add_staff("王芳")
    ticket = staff(stack, token, "GET", f"/tickets/{ticket_id}").json()["ticket"]
    assert ticket["channel"] == "wechat" and ticket["sender_id"] == "wechat:" + openid
    assert staff(stack, token, "POST", f"/tickets/{ticket_id}/accept").status_code == 200

    r = staff(stack, token, "POST", f"/tickets/{ticket_id}/messages",
              json={"text": "您好，我是12345热线工作人员，请问有什么可以帮您？"})
    assert r.status_code == 200 and r.json()["delivered"] is True, r.text
    got = stack.fake.wait_for(openid, 1, timeout=10)
    assert got == ["【人工客服 王芳】您好，我是12345热线工作人员，请问有什么可以帮您？"]

    # 49 hours later, without a citizen message in between: WeChat would refuse; we say so
    UserStore(stack.servers.db_url).touch(openid, time.time() - 49 * 3600)
    r = staff(stack, token, "POST", f"/tickets/{ticket_id}/messages", json={"text": "还在吗？"})
    assert r.status_code == 200 and r.json()["delivered"] is False and r.json().get("detail"), r.text
    time.sleep(0.5)
    assert stack.fake.messages_to(openid) == got
