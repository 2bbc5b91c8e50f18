"""Client message ids (bot/ops/idempotency.py): a message sent again with the same message_id is
answered once — the rules on the shared state (process memory here; Redis in the production
profile, where bench/load.py's failover run exercises them with a Rasa server killed mid-load),
then REST and the web widget against a real Rasa server: one user event, the same reply again."""
import asyncio
import functools
import json
import threading
import uuid

import pytest
import requests
import sqlalchemy as sa

from bot.ops import idempotency
from bot.ops.shared_state import MemoryState
from tests.servers import free_ports, running_bot

PORTS = (6440, 6459)


def run(coro):
    return asyncio.run(coro)


def test_sent_twice_processed_once():
    ids = idempotency.MessageIds("t", MemoryState())
    calls = []

    async def process():
        calls.append(1)
        return [{"text": "答案"}]

    async def stored():
        raise AssertionError("not a takeover")

    async def main():
        first = await ids.handle("s1", "m-00000001", process, stored)
        again = await ids.handle("s1", "m-00000001", process, stored)
        other_conversation = await ids.handle("s2", "m-00000001", process, stored)
        return first, again, other_conversation

    first, again, other = run(main())
    assert (first.status, again.status, other.status) == ("processed", "replayed", "processed")
    assert again.messages == first.messages == [{"text": "答案"}]
    assert len(calls) == 2  # once per conversation


def test_a_copy_arriving_while_the_first_is_answered_waits_for_its_reply():
    ids = idempotency.MessageIds("t", MemoryState())
    calls = []

    async def process():
        calls.append(1)
        await asyncio.sleep(0.5)
        return [{"text": f"答案{len(calls)}"}]

    async def stored():
        return None

    async def main():
        return await asyncio.gather(*(ids.handle("s", "m-00000002", process, stored) for _ in range(4)))

    outcomes = run(main())
    assert sorted(o.status for o in outcomes) == ["processed", "replayed", "replayed", "replayed"]
    assert {json.dumps(o.messages, ensure_ascii=False) for o in outcomes} == {'[{"text": "答案1"}]'}
    assert len(calls) == 1


def test_a_failed_attempt_is_processed_again_on_resend():
    ids = idempotency.MessageIds("t", MemoryState())
    results = [None, [{"text": "好了"}]]

    async def process():
        return results.pop(0)

    async def stored():
        return None

    async def main():
        return [await ids.handle("s", "m-00000003", process, stored) for _ in range(3)]

    a, b, c = run(main())
    assert (a.status, b.status, c.status) == ("failed", "processed", "replayed")
    assert c.messages == [{"text": "好了"}]


@pytest.mark.parametrize("had_stored", [True, False])
def test_taken_over_when_the_answering_server_died(had_stored):
    """The lease of the server answering lapsed (killed): a copy takes the message over, reading
    the reply back from the tracker when the dead server had stored the turn."""
    state = MemoryState()
    ids = idempotency.MessageIds("t", state, lease=0.3)
    calls = []

    async def process():
        calls.append(1)
        return [{"text": "新处理的答案"}]

    async def stored():
        return [{"text": "已存储的答案"}] if had_stored else None

    async def main():
        key = ids._key("s", "m-00000004")
        dead = idempotency.PROCESSING + "deadserver"
        await state.add(key, dead, 60)                     # claimed by a server that then died:
        return await ids.handle("s", "m-00000004", process, stored)  # no alive key

    outcome = run(main())
    if had_stored:
        assert outcome.status == "replayed" and outcome.messages == [{"text": "已存储的答案"}] and not calls
    else:
        assert outcome.status == "processed" and outcome.messages == [{"text": "新处理的答案"}] and len(calls) == 1
    assert ids.taken_over == 1


def test_turn_bot_events():
    events = [
        {"event": "user", "text": "a", "message_id": "x1"},
        {"event": "bot", "text": "A1"},
        {"event": "action", "name": "action_listen"},
        {"event": "user", "text": "b", "message_id": "x2"},
        {"event": "bot", "text": "B1", "data": {"buttons": [{"title": "t", "payload": "/p"}]}},
        {"event": "bot", "text": "staff", "metadata": {"from": "staff"}},
        {"event": "bot", "text": None, "data": {"custom": {"kind": "answer"}}},
        {"event": "action", "name": "action_listen"},
        {"event": "bot", "text": "later"},
    ]
    assert [e["text"] for e in idempotency.turn_bot_events(events, "x1")] == ["A1"]
    assert [e["text"] for e in idempotency.turn_bot_events(events, "x2")] == ["B1", None]
    assert idempotency.turn_bot_events(events, "x3") is None
    assert idempotency.bot_message(events[4]) == {"text": "B1", "buttons": [{"title": "t", "payload": "/p"}]}
    assert idempotency.valid("0123abcd") and not idempotency.valid("short") and not idempotency.valid("x" * 65)
    assert not idempotency.valid("含中文的编号12345")


# ----------------------------------------------------------------------------- a real server
@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("message_ids")
    credentials = tmp / "credentials.yml"
    credentials.write_text("bot.channels.rest.RestInput:\nbot.channels.widget.WidgetInput:\n"
                           "  session_persistence: true\n", encoding="utf-8")
    rasa_port, action_port = free_ports(2, *PORTS)
    with running_bot(rasa_port, action_port, tmp, credentials=credentials,
                     extra_env={"ZWZX_WIDGET_SECRET_FILE": str(tmp / "widget_secret"),
                                "ZWZX_WIDGET_SECRET": None}) as servers:
        yield servers


def user_events(servers, sender):
    engine = sa.create_engine(servers.db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT data FROM events WHERE sender_id = :s AND type_name = 'user' "
                                        "ORDER BY id"), {"s": sender}).fetchall()
    finally:
        engine.dispose()
    return [json.loads(r[0]) for r in rows]


def post(servers, body):
    return requests.post(f"{servers.rasa_url}/webhooks/rest/webhook", json=body, timeout=60)


def test_rest_retry_with_the_same_message_id_gets_the_same_reply_and_is_stored_once(bot):
    sender = "mid-" + uuid.uuid4().hex[:8]
    mid = uuid.uuid4().hex
    body = {"sender": sender, "message": "政府网站集约化建设有什么要求", "message_id": mid}
    first = post(bot, body)
    again = post(bot, body)
    assert first.status_code == again.status_code == 200
    assert again.headers.get("X-Zwzx-Replayed") == "1" and "X-Zwzx-Replayed" not in first.headers
    assert again.json() == first.json() and any(m.get("custom") for m in first.json())
    # copies at the same time (a client that retried too early): still one message
    mid2 = uuid.uuid4().hex
    out = []
    body2 = {"sender": sender, "message": "那由哪个部门负责？", "message_id": mid2}
    threads = [threading.Thread(target=lambda: out.append(post(bot, body2))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r.status_code for r in out] == [200] * 3
    assert len({json.dumps(r.json(), ensure_ascii=False) for r in out}) == 1
    stored = user_events(bot, sender)
    assert [e["text"] for e in stored] == ["政府网站集约化建设有什么要求", "那由哪个部门负责？"]
    assert [e["message_id"] for e in stored] == [mid, mid2]
    # without an id every request is a new message; a bad id is refused before anything is stored
    assert post(bot, {"sender": sender, "message": "你好", "message_id": "bad id"}).status_code == 400
    assert len(user_events(bot, sender)) == 2


def test_widget_resend_with_the_same_message_id_replays_the_reply(bot):
    from tests.test_widget_session import Client

    citizen = Client(bot.rasa_url)
    try:
        mid = uuid.uuid4().hex
        first = citizen.ask("预算和决算要公开到什么程度", message_id=mid)
        again = citizen.ask("预算和决算要公开到什么程度", message_id=mid)
        texts = lambda evs: [d.get("text") for e, d in evs if e == "bot_uttered"]  # noqa: E731
        cards = lambda evs: [d.get("custom") for e, d in evs if e == "bot_uttered" and d.get("custom")]  # noqa: E731
        assert texts(again) == texts(first) and len(cards(first)) == 1 and cards(again) == cards(first)
        done = [d for e, d in again if e == "turn_done"]
        assert done and done[-1].get("replayed") is True and done[-1]["message_id"] == mid
        assert [e["text"] for e in user_events(bot, citizen.session_id)] == ["预算和决算要公开到什么程度"]
        bad = citizen.ask("你好", message_id="?")
        assert any(e == "widget_error" for e, _ in bad)
        assert len(user_events(bot, citizen.session_id)) == 1
    finally:
        citizen.close()
