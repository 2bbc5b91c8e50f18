"""End to end over HTTP: the action server and the Rasa server (REST + staff channels, one
SQLite database for tracker and tickets), a citizen on the REST channel and staff on the staff
API. Servers start once for the module (tests/servers.py)."""
import threading
import time
import uuid

import pytest
import requests
import yaml

from tests.servers import ALWAYS_OPEN, running_bot

RASA_PORT, ACTION_PORT = 5305, 5306
STAFF = "/webhooks/staff"
CREDENTIALS = "bot.channels.rest.RestInput:\nbot.channels.staff.StaffInput:\n"


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("handoff-e2e")
    credentials = tmp / "credentials.yml"
    credentials.write_text(CREDENTIALS, encoding="utf-8")
    with running_bot(RASA_PORT, ACTION_PORT, tmp, credentials=credentials) as servers:
        yield servers


@pytest.fixture(scope="module")
def staff(bot):
    return {name: {"Authorization": f"Bearer {bot.add_staff(name, role)}"}
            for name, role in (("李四", "agent"), ("王五", "agent"), ("赵班长", "supervisor"))}


def new_sender():
    return f"handoff-{uuid.uuid4().hex[:10]}"


def say(bot, sender, text, **extra):
    r = requests.post(f"{bot.rasa_url}/webhooks/rest/webhook", json={"sender": sender, "message": text, **extra},
                      timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def card_of(messages):
    cards = [m["custom"] for m in messages if isinstance(m.get("custom"), dict) and "kind" in m["custom"]]
    assert len(cards) == 1, messages
    return cards[0]


def api(bot, method, path, headers=None, **kwargs):
    return requests.request(method, f"{bot.rasa_url}{STAFF}{path}", headers=headers, timeout=30, **kwargs)


def transcript(bot, ticket_id, headers):
    r = api(bot, "GET", f"/tickets/{ticket_id}/transcript", headers)
    assert r.status_code == 200, r.text
    return r.json()["events"]


def outbox(bot, sender, since=0.0):
    r = requests.get(f"{bot.rasa_url}/webhooks/rest/outbox/{sender}", params={"since": since}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["messages"]


def open_ticket(bot, text="请帮我转人工客服"):
    sender = new_sender()
    card = card_of(say(bot, sender, text))
    assert card["kind"] == "handoff" and isinstance(card["ticket"], int), card
    return sender, card["ticket"]


def test_request_takeover_reply_close_and_the_bot_is_back(bot, staff):
    agent = staff["李四"]
    sender = new_sender()
    card = card_of(say(bot, sender, "请问政府信息公开申请超过期限没答复怎么办"))
    messages = say(bot, sender, "我想找人工客服")
    card = card_of(messages)
    assert card["kind"] == "handoff" and card["status"] == "waiting" and isinstance(card["ticket"], int)
    ticket_id = card["ticket"]
    assert any("工单号" in (m.get("text") or "") for m in messages)

    # paused: the citizen's messages are stored, the bot does not answer them
    assert say(bot, sender, "我申请的是去年的财政预算信息") == []
    assert say(bot, sender, "请问还要等多久？") == []

    waiting = api(bot, "GET", "/tickets?status=waiting", agent).json()["tickets"]
    ticket = next(t for t in waiting if t["id"] == ticket_id)
    assert ticket["sender_id"] == sender and ticket["channel"] == "rest" and ticket["reason"] == "requested"
    assert "政府信息公开申请超过期限" in ticket["summary"]
    events = transcript(bot, ticket_id, agent)
    assert [e["text"] for e in events if e["from"] == "citizen"][-2:] == ["我申请的是去年的财政预算信息", "请问还要等多久？"]
    assert events[-3]["from"] == "bot" and "工单号" in events[-3]["text"]

    r = api(bot, "POST", f"/tickets/{ticket_id}/accept", agent)
    assert r.status_code == 200 and r.json()["ticket"]["status"] == "active" and r.json()["ticket"]["assignee"] == "李四"

    reply = "您好，我是12345热线工作人员李四。逾期未答复的，您可以向市政务公开办投诉。"
    r = api(bot, "POST", f"/tickets/{ticket_id}/messages", agent, json={"text": reply})
    assert r.status_code == 200 and r.json() == {"delivered": True}
    [pushed] = outbox(bot, sender)
    assert pushed["text"] == reply and pushed["from"] == "staff" and pushed["staff"] == "李四"
    assert outbox(bot, sender, since=pushed["time"]) == []

    assert say(bot, sender, "好的，谢谢您") == []  # still with staff, not the bot
    events = transcript(bot, ticket_id, agent)
    assert [(e["from"], e.get("staff")) for e in events[-2:]] == [("staff", "李四"), ("citizen", None)]

    r = api(bot, "POST", f"/tickets/{ticket_id}/close", agent)
    assert r.status_code == 200 and r.json()["ticket"]["status"] == "closed" and r.json()["delivered"] is True
    notice = outbox(bot, sender, since=pushed["time"])
    assert len(notice) == 1 and notice[0]["from"] == "bot" and "打分" in notice[0]["text"]
    rate = notice[0]["buttons"][0]["payload"]
    assert card_of(say(bot, sender, rate))["kind"] == "chitchat"
    assert bot.store().get_ticket(ticket_id)["rating"] == 5

    card = card_of(say(bot, sender, "政府网站集约化建设有什么要求"))
    assert card["kind"] == "answer" and card["citations"]

    # nothing lost: the tracker store has every message in order, with who said it
    tracker = requests.get(f"{bot.rasa_url}/conversations/{sender}/tracker", timeout=30).json()
    kinds = [e["event"] for e in tracker["events"]]
    assert "pause" in kinds and "resume" in kinds and kinds.index("pause") < kinds.index("resume")
    staff_events = [e for e in tracker["events"] if e["event"] == "bot" and (e.get("metadata") or {}).get("from") == "staff"]
    assert [(e["text"], e["metadata"]["staff"]) for e in staff_events] == [(reply, "李四")]


def test_two_staff_accept_at_once_exactly_one_wins(bot, staff):
    _, ticket_id = open_ticket(bot)
    barrier = threading.Barrier(2)
    results = {}

    def accept(name):
        barrier.wait()
        results[name] = api(bot, "POST", f"/tickets/{ticket_id}/accept", staff[name])

    threads = [threading.Thread(target=accept, args=(n,)) for n in ("李四", "王五")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results.values())
    assert codes == [200, 409], {n: r.text for n, r in results.items()}
    winner = next(n for n, r in results.items() if r.status_code == 200)
    loser = next(r for r in results.values() if r.status_code == 409)
    assert "error" in loser.json()
    assert bot.store().get_ticket(ticket_id)["assignee"] == winner


def test_bad_staff_requests_are_refused_without_state_change(bot, staff):
    agent, other, supervisor = staff["李四"], staff["王五"], staff["赵班长"]
    sender, ticket_id = open_ticket(bot)
    # authentication
    assert api(bot, "GET", "/tickets").status_code == 401
    r = api(bot, "GET", "/tickets", {"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and "令牌" in r.json()["error"]
    # unknown tickets and bad parameters
    for method, path in (("POST", "/tickets/999999/accept"), ("GET", "/tickets/999999/transcript"),
                         ("POST", "/tickets/999999/close"), ("POST", "/tickets/abc/accept")):
        r = api(bot, method, path, agent)
        assert r.status_code == 404 and "不存在" in r.json()["error"]
    r = api(bot, "POST", "/tickets/999999/messages", agent, json={"text": "您好"})
    assert r.status_code == 404
    assert api(bot, "GET", "/tickets?status=lost", agent).status_code == 400
    # a waiting ticket takes no messages and can't be closed by an agent
    assert api(bot, "POST", f"/tickets/{ticket_id}/messages", agent, json={"text": "您好"}).status_code == 409
    assert api(bot, "POST", f"/tickets/{ticket_id}/close", agent).status_code == 403
    assert api(bot, "POST", f"/tickets/{ticket_id}/accept", agent).status_code == 200
    before = bot.store().get_ticket(ticket_id), transcript(bot, ticket_id, agent)
    # another agent's token
    r = api(bot, "POST", f"/tickets/{ticket_id}/messages", other, json={"text": "我来回答"})
    assert r.status_code == 403 and "李四" in r.json()["error"]
    assert api(bot, "POST", f"/tickets/{ticket_id}/close", other).status_code == 403
    assert api(bot, "POST", f"/tickets/{ticket_id}/accept", other).status_code == 409
    # bad bodies
    r = api(bot, "POST", f"/tickets/{ticket_id}/messages", agent, json={"text": "长" * 2001})
    assert r.status_code == 413 and "2000" in r.json()["error"]
    assert api(bot, "POST", f"/tickets/{ticket_id}/messages", agent, json={"text": "  "}).status_code == 400
    assert api(bot, "POST", f"/tickets/{ticket_id}/messages", agent, json=["您好"]).status_code == 400
    r = api(bot, "POST", f"/tickets/{ticket_id}/messages", dict(agent, **{"Content-Type": "application/json"}),
            data="{not json")
    assert r.status_code == 400 and "error" in r.json()
    assert (bot.store().get_ticket(ticket_id), transcript(bot, ticket_id, agent)) == before
    assert outbox(bot, sender) == []
    # a supervisor may step in; a closed ticket can't be closed again
    r = api(bot, "POST", f"/tickets/{ticket_id}/messages", supervisor, json={"text": "您好，我是值班长。"})
    assert r.status_code == 200 and r.json()["delivered"] is True
    assert api(bot, "POST", f"/tickets/{ticket_id}/close", supervisor).status_code == 200
    closed = bot.store().get_ticket(ticket_id)
    r = api(bot, "POST", f"/tickets/{ticket_id}/close", agent)
    assert r.status_code == 409 and "关闭" in r.json()["error"]
    assert api(bot, "POST", f"/tickets/{ticket_id}/accept", agent).status_code == 409
    assert api(bot, "POST", f"/tickets/{ticket_id}/messages", agent, json={"text": "还在吗"}).status_code == 409
    assert bot.store().get_ticket(ticket_id) == closed


def test_bad_rest_requests(bot):
    r = requests.post(f"{bot.rasa_url}/webhooks/rest/webhook", json={"message": "你好"}, timeout=30)
    assert r.status_code == 400 and "sender" in r.json()["error"]
    r = requests.post(f"{bot.rasa_url}/webhooks/rest/webhook", data="nope", timeout=30,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = requests.get(f"{bot.rasa_url}/webhooks/rest/outbox/x", params={"since": "yesterday"}, timeout=30)
    assert r.status_code == 400
    assert outbox(bot, "nobody-" + uuid.uuid4().hex) == []


def test_cancel_while_waiting_but_not_once_accepted(bot, staff):
    sender, ticket_id = open_ticket(bot)
    messages = say(bot, sender, "不用了")
    assert card_of(messages)["kind"] == "chitchat" and "取消" in messages[0]["text"]
    assert bot.store().get_ticket(ticket_id)["status"] == "cancelled"
    assert card_of(say(bot, sender, "你好"))["kind"] == "chitchat"  # the bot answers again
    assert api(bot, "POST", f"/tickets/{ticket_id}/accept", staff["李四"]).status_code == 409

    sender, ticket_id = open_ticket(bot)
    assert api(bot, "POST", f"/tickets/{ticket_id}/accept", staff["李四"]).status_code == 200
    assert say(bot, sender, "取消") == []  # with staff now: it is a message for them
    assert bot.store().get_ticket(ticket_id)["status"] == "active"
    assert transcript(bot, ticket_id, staff["李四"])[-1] == {
        "from": "citizen", "text": "取消", "time": pytest.approx(time.time(), abs=60)}


def test_the_ticket_not_the_tracker_decides_the_pause(bot, staff):
    """E.g. a session that expired while waiting starts unpaused: an open ticket re-pauses it."""
    sender, ticket_id = open_ticket(bot)
    r = requests.post(f"{bot.rasa_url}/conversations/{sender}/tracker/events", json={"event": "resume"}, timeout=30)
    assert r.status_code == 200 and r.json()["paused"] is False
    assert say(bot, sender, "财政预决算信息会公开吗") == []  # not answered by the bot
    tracker = requests.get(f"{bot.rasa_url}/conversations/{sender}/tracker", timeout=30).json()
    assert tracker["paused"] is True and tracker["events"][-1]["event"] == "pause"
    assert transcript(bot, ticket_id, staff["李四"])[-1]["text"] == "财政预决算信息会公开吗"


def test_two_failed_answers_hand_off(bot):
    sender = new_sender()
    first = card_of(say(bot, sender, "那个表格在哪里下载"))
    assert first["kind"] in ("fallback", "clarify"), first
    card = card_of(say(bot, sender, "我想问一下那个事情"))
    assert card["kind"] == "handoff" and card["reason"] == "repeated_fallback" and card["ticket"]
    assert bot.store().get_ticket(card["ticket"])["reason"] == "repeated_fallback"


def test_two_thumbs_down_hand_off(bot):
    sender = new_sender()
    card_of(say(bot, sender, "财政预决算信息会公开吗"))
    assert card_of(say(bot, sender, '/feedback{"feedback": "down"}'))["kind"] == "chitchat"
    card = card_of(say(bot, sender, '/feedback{"feedback": "down"}'))
    assert card["kind"] == "handoff" and card["reason"] == "negative_feedback"


def test_undeliverable_staff_message_is_reported(bot, staff):
    sender = new_sender()
    card = card_of(say(bot, sender, "转人工", input_channel="pigeon-post"))
    ticket_id = card["ticket"]
    assert bot.store().get_ticket(ticket_id)["channel"] == "pigeon-post"
    assert api(bot, "POST", f"/tickets/{ticket_id}/accept", staff["王五"]).status_code == 200
    r = api(bot, "POST", f"/tickets/{ticket_id}/messages", staff["王五"], json={"text": "您好"})
    assert r.status_code == 200 and r.json()["delivered"] is False and "pigeon-post" in r.json()["detail"]
    assert transcript(bot, ticket_id, staff["王五"])[-1]["text"] == "您好"  # stored all the same


def test_after_hours_callback_form(bot, staff):
    closed = {"working_hours": dict(ALWAYS_OPEN["working_hours"], weekdays=[])}
    original = bot.handoff_config.read_text(encoding="utf-8")
    config = yaml.safe_load(original)
    config.update(closed)
    bot.handoff_config.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    try:
        sender = new_sender()
        messages = say(bot, sender, "我要投诉")
        card = card_of(messages)
        assert card["kind"] == "handoff" and card["ticket"] is None and card["status"] == "after_hours"
        assert "12345" in " ".join(m.get("text") or "" for m in messages)
        messages = say(bot, sender, "/request_callback")
        assert "同意" in messages[0]["text"] and card_of(messages)["ticket"] is None
        say(bot, sender, "同意")
        messages = say(bot, sender, "12345")
        assert any("11位" in (m.get("text") or "") for m in messages)      # bad number: asked again
        messages = say(bot, sender, "138 1234 5678")
        assert any("时间" in (m.get("text") or "") for m in messages)
        messages = say(bot, sender, "工作日上午")
        card = card_of(messages)
        assert card["kind"] == "handoff" and card["status"] == "callback" and isinstance(card["ticket"], int)
        ticket = bot.store().get_ticket(card["ticket"])
        assert ticket["status"] == "callback" and ticket["phone"] == "13812345678" and ticket["reason"] == "complaint"
        assert ticket["callback_time"] == "工作日上午"
        assert card_of(say(bot, sender, "你好"))["kind"] == "chitchat"  # not paused
        listed = api(bot, "GET", "/tickets?status=callback", staff["李四"]).json()["tickets"]
        assert ticket["id"] in [t["id"] for t in listed]
        r = api(bot, "POST", f"/tickets/{ticket['id']}/close", staff["李四"])  # called back
        assert r.status_code == 200 and r.json()["ticket"]["assignee"] == "李四"

        declined = new_sender()
        say(bot, declined, "转人工")
        messages = say(bot, declined, "不用了")
        assert card_of(messages)["kind"] == "chitchat" and "12345" in messages[0]["text"]
        assert bot.store().list_tickets(sender_id=declined) == []
    finally:
        bot.handoff_config.write_text(original, encoding="utf-8")


# ----------------------------------------------------------------- PostgreSQL
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="module")
def pg_bot(tmp_path_factory):
    import sqlalchemy as sa

    try:
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect():
            pass
    except Exception:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    name = f"zwzx_handoff_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    tmp = tmp_path_factory.mktemp("handoff-pg")
    credentials = tmp / "credentials.yml"
    credentials.write_text(CREDENTIALS, encoding="utf-8")
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        with running_bot(5307, 5308, tmp, credentials=credentials, db_url=url) as servers:
            yield servers
            servers.store().engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_on_postgresql(pg_bot):
    """The same takeover with the tracker store and the tickets in PostgreSQL."""
    bot = pg_bot
    agent = {"Authorization": f"Bearer {bot.add_staff('李四', 'agent')}"}
    other = {"Authorization": f"Bearer {bot.add_staff('王五', 'agent')}"}
    sender, ticket_id = open_ticket(bot)
    assert say(bot, sender, "我还有个问题") == []
    results = []
    barrier = threading.Barrier(2)

    def accept(headers):
        barrier.wait()
        results.append(api(bot, "POST", f"/tickets/{ticket_id}/accept", headers).status_code)

    threads = [threading.Thread(target=accept, args=(h,)) for h in (agent, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 409]
    owner = agent if bot.store().get_ticket(ticket_id)["assignee"] == "李四" else other
    assert api(bot, "POST", f"/tickets/{ticket_id}/messages", owner, json={"text": "您好"}).json() == {"delivered": True}
    assert [m["text"] for m in outbox(bot, sender)] == ["您好"]
    events = transcript(bot, ticket_id, owner)
    assert [e["from"] for e in events[-2:]] == ["citizen", "staff"] and events[-2]["text"] == "我还有个问题"
    assert api(bot, "POST", f"/tickets/{ticket_id}/close", owner).status_code == 200
    assert card_of(say(bot, sender, "政府网站集约化建设有什么要求"))["kind"] == "answer"
