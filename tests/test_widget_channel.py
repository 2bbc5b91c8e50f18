"""Widget channel without a server: what the history route shows of a tracker, and what the
channel accepts from a browser. (The channel over HTTP/socket.io in a real browser is in
test_widget_browser.py.)"""
import asyncio

import pytest
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered

from bot.channels.widget import (OVERSIZED_EVT, WidgetInput, WidgetOutput, _oversized_replacement,
                                 _shrink_polling_body, frame_limit, turns_from_events)
from bot.user_display import OfferedButtons


def events(*evs):
    return [e.as_dict() for e in evs]


def test_history_shows_only_what_the_citizen_saw():
    card = {"kind": "answer", "citations": [{"doc": "d", "item": 5, "title": "t", "label": "第（五）项 t",
                                             "doc_title": "D"}], "departments": ["市财政局"],
            "internal": "not for the browser"}
    turns = turns_from_events(events(
        UserUttered("财政预决算会公开吗", {"intent": {"name": "ask_policy", "confidence": 0.9}}),
        ActionExecuted("action_answer"),
        BotUttered("稳步扩大预决算公开范围。", {"buttons": [{"title": "相关：第（四）项",
                                                            "payload": '/ask_policy{"item_ref": "d#4"}'}]}),
        BotUttered(None, {"custom": card}),
        SlotSet("current_item", 5.0),
        UserUttered('/feedback{"feedback": "down"}', {"intent": {"name": "feedback", "confidence": 1.0},
                                                      "entities": [{"entity": "feedback", "value": "down"}]},
                    metadata={"hidden": True, "display": "👎"}),
        UserUttered('/ask_policy{"item_ref": "d#4"}', {"intent": {"name": "ask_policy"}},
                    metadata={"display": "相关：第（四）项"}),
        UserUttered("/request_human", {"intent": {"name": "request_human"}}),  # the widget's 转人工 button
        BotUttered("您好，我是工作人员。", {}, metadata={"from": "staff", "staff": "李工"}),
        BotUttered("本次人工服务已结束。", {"buttons": [{"title": "5分 非常满意", "payload": '/rate{"rating": "5"}'}]},
                   metadata={"from": "bot", "push": True}),
    ))
    assert [t["role"] for t in turns] == ["user", "bot", "bot", "feedback", "user", "user", "staff", "bot"]
    assert turns[1]["text"] == "稳步扩大预决算公开范围。"
    assert turns[1]["quick_replies"] == [{"title": "相关：第（四）项", "payload": '/ask_policy{"item_ref": "d#4"}'}]
    assert turns[2]["custom"] == {k: card[k] for k in ("kind", "citations", "departments")}
    assert turns[3]["value"] == "down"
    # the button title, not the payload — because the bot offered that button with that payload
    assert turns[4]["text"] == "相关：第（四）项"
    assert turns[5]["text"] == "转人工"
    assert turns[6] == {"role": "staff", "text": "您好，我是工作人员。", "staff": "李工",
                        "timestamp": turns[6]["timestamp"]}
    assert turns[7]["quick_replies"][0]["title"] == "5分 非常满意"
    assert all("internal" not in str(t) and "slot" not in str(t) for t in turns)


def test_metadata_from_the_browser_is_reduced_to_display_and_hidden():
    clean = WidgetInput._clean_metadata
    assert clean({"display": "转人工", "hidden": True, "anything": {"x": 1}}) == {"display": "转人工", "hidden": True}
    assert clean({"display": "长" * 500})["display"] == "长" * 100
    assert clean({"hidden": "yes"}) == {}
    assert clean('{"display": "👍"}') == {"display": "👍"}
    assert clean("not json") == {} and clean(None) == {} and clean([1]) == {}


def test_credentials():
    ch = WidgetInput.from_credentials(None)
    assert ch.name() == "widget" and ch.session_persistence is True
    assert ch.cors_allowed_origins is None  # only the server's own origin
    ch = WidgetInput.from_credentials({"cors_allowed_origins": ["https://www.ningxiang.gov.cn/"],
                                       "max_message_length": 200})
    assert ch.cors_allowed_origins == ["https://www.ningxiang.gov.cn"] and ch.max_message_length == 200
    assert WidgetInput.from_credentials({"cors_allowed_origins": "*"}).cors_allowed_origins == "*"


class RecordingServer:
    """Stands in for python-socketio's AsyncServer (third-party), recording emits."""

    def __init__(self, rooms=None):
        self.emitted = []
        rooms = rooms or {}

        class Manager:
            @staticmethod
            def get_participants(namespace, room):
                yield from rooms.get(room, [])
        self.manager = Manager()

    async def emit(self, event, data=None, room=None, namespace=None):
        self.emitted.append((event, data, room))


def test_output_sends_one_event_per_bot_message():
    sio = RecordingServer()
    out = WidgetOutput(sio, "bot_uttered")

    async def run():
        await out.send_response("s1", {"text": "第一段\n\n第二段", "buttons": [{"title": "转人工", "payload": "/request_human"}]})
        await out.send_response("s1", {"custom": {"kind": "clarify", "citations": [], "departments": [],
                                                  "candidates": [{"doc": "d", "item": 1}]}})
        await out.send_response("s1", {})
    asyncio.run(run())
    assert len(sio.emitted) == 2
    (ev1, d1, room1), (ev2, d2, _) = sio.emitted
    assert ev1 == "bot_uttered" and room1 == "s1"
    assert d1["text"] == "第一段\n\n第二段"  # not split: the widget shows line breaks as they are
    assert d1["quick_replies"] == [{"title": "转人工", "payload": "/request_human"}]
    assert d2["custom"]["kind"] == "clarify" and d2["custom"]["candidates"] == [{"doc": "d", "item": 1}]
    assert all(isinstance(d["metadata"]["timestamp"], float) for _, d, _ in sio.emitted)
    # Rasa's message keys only at the top level (rasa-webchat tells a message's kind by them)
    assert set(d1) == {"text", "quick_replies", "metadata"} and set(d2) == {"custom", "metadata"}


def test_staff_delivery_goes_to_the_session_room():
    ch = WidgetInput.from_credentials({})
    ch.sio = RecordingServer(rooms={"s1": [("sid-a", "eio-a")]})
    assert asyncio.run(ch.deliver_staff_message("s1", "<b>您好</b>", "李工")) is True
    assert asyncio.run(ch.deliver_staff_message("gone", "本次人工服务已结束。", None)) is False
    (_, staff, room), (_, push, _) = ch.sio.emitted
    assert room == "s1" and staff["metadata"]["from"] == "staff" and staff["metadata"]["staff"] == "李工"
    assert staff["text"] == "<b>您好</b>" and set(staff) == {"text", "metadata"}
    assert push["metadata"]["from"] == "bot" and push["metadata"]["push"] is True


@pytest.mark.parametrize("bad", [None, [], ""])
def test_same_origin_by_default(bad):
    assert WidgetInput.from_credentials({"cors_allowed_origins": bad}).cors_allowed_origins is None


# ------------------------------------------------------------------ display decided by the server
SPOOF = "我同意公开我的身份证号"


def test_display_is_what_the_server_offered():
    offered = OfferedButtons()
    assert offered.display("财政预决算会公开吗", SPOOF) == "财政预决算会公开吗"  # free text shows itself
    assert offered.display("/request_human", SPOOF) == "转人工"             # the widget's own button
    assert offered.display('/ask_policy{"item_ref": "d#4"}', SPOOF) == '/ask_policy{"item_ref": "d#4"}'
    offered.add_event(BotUttered("请选择", {"buttons": [
        {"title": "第（四）项", "payload": '/ask_policy{"item_ref": "d#4"}'},
        {"title": "同意", "payload": "/affirm"}]}).as_dict())
    offered.add_event(BotUttered("请再选择", {"quick_replies": [{"title": "可以", "payload": "/affirm"}]}).as_dict())
    assert offered.display('/ask_policy{"item_ref": "d#4"}', SPOOF) == "第（四）项"
    assert offered.display('/ask_policy{"item_ref": "d#4"}') == "第（四）项"
    # a claim only picks between titles offered for that payload; default: the latest offer
    assert offered.display("/affirm", "同意") == "同意"
    assert offered.display("/affirm", SPOOF) == "可以"
    assert offered.display("/affirm", "第（四）项") == "可以"


def test_spoofed_display_never_reaches_the_history():
    turns = turns_from_events(events(
        UserUttered("财政预决算会公开吗", {"intent": {"name": "ask_policy"}}, metadata={"display": SPOOF}),
        BotUttered("稳步扩大预决算公开范围。", {"buttons": [{"title": "相关：第（四）项", "payload": "/p4"}]}),
        UserUttered("/p4", {"intent": {"name": "ask_policy"}}, metadata={"display": SPOOF}),
        UserUttered("/never_offered", {"intent": {"name": "ask_policy"}}, metadata={"display": SPOOF}),
    ))
    assert [t.get("text") for t in turns if t["role"] == "user"] == ["财政预决算会公开吗", "相关：第（四）项",
                                                                     "/never_offered"]
    assert SPOOF not in str(turns)


def test_console_transcript_shows_the_same_as_the_history(tmp_path):
    import json

    import sqlalchemy as sa

    from bot.console.conversations import load_transcript
    from bot.console.db import Database

    evs = events(
        UserUttered("财政预决算会公开吗", {"intent": {"name": "ask_policy"}}, metadata={"display": SPOOF}),
        BotUttered("稳步扩大预决算公开范围。", {"buttons": [{"title": "相关：第（四）项", "payload": "/p4"}]}),
        UserUttered("/p4", {"intent": {"name": "ask_policy"}}, metadata={"display": SPOOF}),
    )
    url = f"sqlite:///{tmp_path / 'tracker.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id TEXT, type_name TEXT, "
                             "timestamp REAL, intent_name TEXT, action_name TEXT, data TEXT)"))
        for e in evs:
            conn.execute(sa.text("INSERT INTO events (sender_id, type_name, timestamp, data) VALUES "
                                 "('s1', :t, :ts, :d)"), {"t": e["event"], "ts": e["timestamp"], "d": json.dumps(e)})
    engine.dispose()
    citizen = [m for m in load_transcript(Database(url), "s1") if m["who"] == "citizen"]
    history = [t["text"] for t in turns_from_events(evs) if t["role"] == "user"]
    assert [m["display"] for m in citizen] == history == ["财政预决算会公开吗", "相关：第（四）项"]
    assert [m["text"] for m in citizen] == ["财政预决算会公开吗", "/p4"]  # staff still see the real payload
    assert SPOOF not in str(citizen)


# ------------------------------------------------------------------ frames above the limit
def test_frame_limit_is_just_above_the_largest_allowed_message():
    import json

    limit = frame_limit(500)
    worst = "😀" * 500  # 12 characters each once JSON-escaped, 4 bytes each in UTF-8
    for ensure_ascii in (True, False):
        frame = "42" + json.dumps(["user_uttered", {"message": worst, "session_id": "a" * 64,
                                                    "metadata": {"display": "😀" * 100, "hidden": True}}],
                                  ensure_ascii=ensure_ascii)
        assert len(frame.encode("utf-8")) <= limit
    assert limit < 10 * 1024
    assert WidgetInput.from_credentials({"max_message_length": 200}).frame_limit == frame_limit(200) < limit


def test_oversized_frames_become_a_short_event():
    import json

    frame = "42" + json.dumps(["user_uttered", {"message": "长" * 10000}])
    out = _oversized_replacement(frame)
    assert out.startswith("42[") and json.loads(out[2:]) == [OVERSIZED_EVT, {"event": "user_uttered",
                                                                             "size": len(frame)}]
    # namespace and ack id are kept, so the answer reaches the same namespace
    assert _oversized_replacement('42/chat,17["user_uttered",' + "x" * 9000 + "]").startswith(
        '42/chat,17["' + OVERSIZED_EVT + '"')
    assert json.loads(_oversized_replacement("4" + "y" * 9000)[2:])[1]["event"] is None
    # long-polling: only the packets that do not fit are replaced
    small = '42["session_request",{"session_id":null}]'
    body = _shrink_polling_body(small + "\x1e" + frame, 8224)
    first, second = body.split("\x1e")
    assert first == small and OVERSIZED_EVT in second and len(body) < 8224
