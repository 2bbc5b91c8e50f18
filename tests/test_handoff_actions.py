"""Handoff actions with Tracker.from_dict + CollectingDispatcher, a real SQLite ticket store and
a fixed clock: ticket creation and pausing, the after-hours callback offer, the "failed twice"
and "two 👎" triggers, the rating, and the callback form's validation."""
import asyncio
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.events import ConversationPaused, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.answer import ActionAnswer, ActionFallback
from actions.callback import (ActionAskCallbackConsent, ActionCallbackSubmit, ValidateCallbackForm,
                              normalize_phone)
from actions.feedback import ActionFeedback, ActionRate
from actions.handoff import ActionHandoff
from bot.handoff.store import HandoffStore

ROOT = Path(__file__).resolve().parents[1]
CST = ZoneInfo("Asia/Shanghai")
MONDAY_10AM = dt.datetime(2026, 11, 23, 10, 0, tzinfo=CST)
MONDAY_8PM = dt.datetime(2026, 11, 23, 20, 0, tzinfo=CST)


@pytest.fixture
def store(tmp_path):
    return HandoffStore(f"sqlite:///{tmp_path / 'tickets.db'}")


@pytest.fixture(autouse=True)
def handoff_config(tmp_path, monkeypatch):
    """The repository's handoff.yml, copied so a test can change thresholds."""
    path = tmp_path / "handoff.yml"
    path.write_text((ROOT / "handoff.yml").read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setenv("ZWZX_HANDOFF_CONFIG", str(path))
    monkeypatch.setenv("ZWZX_DB_URL", f"sqlite:///{tmp_path / 'default.db'}")
    return path


@pytest.fixture(scope="module")
def domain():
    from rasa.shared.core.domain import Domain

    return Domain.load(str(ROOT / "domain.yml")).as_dict()


def user(text, intent, entities=(), ts=None):
    return {"event": "user", "text": text, "timestamp": ts, "input_channel": "rest",
            "parse_data": {"text": text, "intent": {"name": intent, "confidence": 0.95},
                           "entities": list(entities)}}


def bot_card(kind, text="……", citations=()):
    return [{"event": "bot", "text": text, "data": {}},
            {"event": "bot", "text": None, "data": {"custom": {"kind": kind, "citations": list(citations)}}}]


def tracker(text, intent, entities=(), slots=None, events=(), sender="citizen-1", active_loop=None):
    latest = user(text, intent, entities)
    return Tracker.from_dict({
        "sender_id": sender, "slots": slots or {}, "latest_message": latest["parse_data"],
        "events": list(events) + [latest], "paused": False, "followup_action": None,
        "active_loop": {"name": active_loop} if active_loop else {},
        "latest_action_name": "action_listen", "latest_input_channel": "rest",
    })


def run(action, t, domain=None):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, t, domain or {}))
    return dispatcher.messages, events


def cards(messages):
    return [m["custom"] for m in messages if m.get("custom")]


def texts(messages):
    return " ".join(m.get("text") or "" for m in messages)


# ------------------------------------------------------------------- handoff
def test_handoff_in_working_hours_creates_a_waiting_ticket_and_pauses(store):
    history = [user("财政预算会公开吗", "ask_policy"),
               *bot_card("answer", citations=[{"doc": "ningxiang-2021", "item": 5, "label": "第（五）项 做好财政信息公开",
                                               "doc_title": "宁乡市2021年政务公开工作要点"}])]
    messages, events = run(ActionHandoff(clock=lambda: MONDAY_10AM, store=store),
                           tracker("我要找人工", "request_human", events=history))
    [card] = cards(messages)
    assert card["kind"] == "handoff" and card["status"] == "waiting" and card["queue_position"] == 1
    ticket = store.get_ticket(card["ticket"])
    assert ticket["status"] == "waiting" and ticket["reason"] == "requested"
    assert ticket["sender_id"] == "citizen-1" and ticket["channel"] == "rest"
    assert ticket["created_at"] == MONDAY_10AM.timestamp()
    assert "财政预算会公开吗" in ticket["summary"] and "第（五）项 做好财政信息公开" in ticket["summary"]
    assert ConversationPaused() in events and SlotSet("handoff_ticket", float(ticket["id"])) in events
    assert SlotSet("handoff_due", None) in events
    text = texts(messages)
    assert f"工单号：{ticket['id']}" in text and "第1位" in text and "取消" in text and "12345" in text
    # a second citizen queues behind
    messages, _ = run(ActionHandoff(clock=lambda: MONDAY_10AM, store=store),
                      tracker("投诉窗口态度差", "complain", sender="citizen-2"))
    [card] = cards(messages)
    assert card["queue_position"] == 2 and store.get_ticket(card["ticket"])["reason"] == "complaint"
    assert "前面还有1位" in texts(messages)


def test_handoff_after_hours_offers_callback_and_12345_without_ticket(store):
    messages, events = run(ActionHandoff(clock=lambda: MONDAY_8PM, store=store), tracker("转人工", "request_human"))
    [card] = cards(messages)
    assert card["kind"] == "handoff" and card["ticket"] is None and card["status"] == "after_hours"
    assert card["next_open"].startswith("2026-11-24T08:30")
    text = texts(messages)
    assert "非工作时间" in text and "明天 08:30" in text and "12345" in text and "回电" in text
    assert {b["payload"] for m in messages for b in m.get("buttons", [])} == {"/request_callback", "/deny"}
    assert store.list_tickets() == [] and ConversationPaused() not in events
    assert SlotSet("handoff_reason", "requested") in events


def test_handoff_reason_comes_from_the_trigger_slot(store):
    messages, _ = run(ActionHandoff(clock=lambda: MONDAY_10AM, store=store),
                      tracker("那狗呢", "nlu_fallback", slots={"handoff_due": "repeated_fallback"}))
    assert store.get_ticket(cards(messages)[0]["ticket"])["reason"] == "repeated_fallback"
    assert "没能解答" in texts(messages)


def test_handoff_when_the_database_is_down_still_points_to_12345(tmp_path):
    broken = HandoffStore(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    (tmp_path / "missing-dir").rmdir()
    messages, events = run(ActionHandoff(clock=lambda: MONDAY_10AM, store=broken), tracker("转人工", "request_human"))
    [card] = cards(messages)
    assert card["ticket"] is None and card["status"] == "unavailable" and "12345" in texts(messages)
    assert ConversationPaused() not in events


# -------------------------------------------------------------- failure streak
UNRELATED = "周末去哪里钓鱼比较好"


def test_first_failure_does_not_hand_off():
    messages, events = run(ActionFallback(), tracker(UNRELATED, "nlu_fallback"))
    assert cards(messages)[0]["kind"] == "fallback"
    assert not any(e.get("name") == "handoff_due" for e in events)


def test_second_failure_in_a_row_hands_off():
    history = [user("我家猫不吃饭怎么办", "nlu_fallback"), *bot_card("fallback")]
    messages, events = run(ActionFallback(), tracker(UNRELATED, "nlu_fallback", events=history))
    assert cards(messages) == [] and "没能理解" in texts(messages)  # the handoff sends the card
    assert SlotSet("handoff_due", "repeated_fallback") in events and FollowupAction("action_handoff") in events


def test_unresolved_clarify_counts_and_an_answer_resets():
    clarify = [user("公开的事情有哪些", "ask_policy"), *bot_card("clarify")]
    _, events = run(ActionAnswer(), tracker(UNRELATED, "ask_policy", events=clarify))
    assert SlotSet("handoff_due", "repeated_fallback") in events
    answered = clarify + [user("财政预算会公开吗", "ask_policy"), *bot_card("answer")]
    _, events = run(ActionFallback(), tracker(UNRELATED, "nlu_fallback", events=answered))
    assert not any(e.get("name") == "handoff_due" for e in events)
    # a greeting in between does not break the streak
    chat = clarify + [user("你好", "greet"), *bot_card("chitchat")]
    _, events = run(ActionFallback(), tracker(UNRELATED, "nlu_fallback", events=chat))
    assert SlotSet("handoff_due", "repeated_fallback") in events


def test_failure_threshold_is_configuration(handoff_config):
    cfg = yaml.safe_load(handoff_config.read_text(encoding="utf-8"))
    cfg["triggers"]["failed_turns"] = 3
    handoff_config.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    one = [user("a", "nlu_fallback"), *bot_card("fallback")]
    _, events = run(ActionFallback(), tracker(UNRELATED, "nlu_fallback", events=one))
    assert not any(e.get("name") == "handoff_due" for e in events)
    _, events = run(ActionFallback(), tracker(UNRELATED, "nlu_fallback", events=one * 2))
    assert SlotSet("handoff_due", "repeated_fallback") in events


def test_a_good_answer_clears_a_stale_trigger():
    _, events = run(ActionAnswer(), tracker("惠民惠农补贴发放信息会公开吗", "ask_policy",
                                            slots={"handoff_due": "repeated_fallback"}))
    assert SlotSet("handoff_due", None) in events


# -------------------------------------------------------------------- feedback
def down(count=0):
    return tracker('/feedback{"feedback": "down"}', "feedback", [{"entity": "feedback", "value": "down"}],
                   slots={"negative_feedback": float(count)} if count else None)


def test_thumbs_up_is_acknowledged():
    messages, events = run(ActionFeedback(), tracker('/feedback{"feedback": "up"}', "feedback",
                                                     [{"entity": "feedback", "value": "up"}]))
    assert [c["kind"] for c in cards(messages)] == ["chitchat"] and "感谢" in texts(messages) and events == []


def test_first_thumbs_down_is_counted_second_hands_off():
    messages, events = run(ActionFeedback(), down())
    assert [c["kind"] for c in cards(messages)] == ["chitchat"] and events == [SlotSet("negative_feedback", 1.0)]
    assert any(b["payload"] == "/request_human" for m in messages for b in m.get("buttons", []))
    messages, events = run(ActionFeedback(), down(1))
    assert cards(messages) == []
    assert SlotSet("negative_feedback", 2.0) in events and SlotSet("handoff_due", "negative_feedback") in events
    assert FollowupAction("action_handoff") in events


def test_negative_feedback_threshold_is_configuration(handoff_config):
    cfg = yaml.safe_load(handoff_config.read_text(encoding="utf-8"))
    cfg["triggers"]["negative_feedback"] = 3
    handoff_config.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    _, events = run(ActionFeedback(), down(1))
    assert events == [SlotSet("negative_feedback", 2.0)]


def test_typed_feedback_is_understood():
    _, events = run(ActionFeedback(), tracker("这个回答没用", "feedback"))
    assert events == [SlotSet("negative_feedback", 1.0)]
    _, events = run(ActionFeedback(), tracker("回答得不错", "feedback"))
    assert events == []


def test_handoff_after_feedback_resets_the_count(store):
    _, events = run(ActionHandoff(clock=lambda: MONDAY_10AM, store=store),
                    tracker("/feedback", "feedback", slots={"handoff_due": "negative_feedback", "negative_feedback": 2.0}))
    assert SlotSet("negative_feedback", 0.0) in events
    assert store.list_tickets()[0]["reason"] == "negative_feedback"


# ---------------------------------------------------------------------- rating
def test_rating_is_stored_on_the_closed_ticket(store):
    t = store.create_ticket("citizen-1", "rest", "requested")
    store.accept(t["id"], "李四")
    store.close(t["id"], "active")
    messages, events = run(ActionRate(store=store), tracker('/rate{"rating": "4"}', "rate", [{"entity": "rating", "value": "4"}],
                                                            slots={"rating_ticket": float(t["id"])}))
    assert store.get_ticket(t["id"])["rating"] == 4 and "4分" in texts(messages)
    assert events == [SlotSet("rating_ticket", None)]


@pytest.mark.parametrize("text,rating", [("5分", 5), ("给三分吧", 3), ("非常满意", 5), ("不满意", 2), ("1", 1)])
def test_typed_ratings(store, text, rating):
    t = store.create_ticket("citizen-1", "rest", "requested")
    store.accept(t["id"], "李四")
    store.close(t["id"], "active")
    run(ActionRate(store=store), tracker(text, "rate", slots={"rating_ticket": float(t["id"])}))
    assert store.get_ticket(t["id"])["rating"] == rating


def test_unclear_rating_is_asked_again(store):
    t = store.create_ticket("citizen-1", "rest", "requested")
    messages, events = run(ActionRate(store=store), tracker("还行吧", "rate", slots={"rating_ticket": float(t["id"])}))
    assert "1到5" in texts(messages) and events == [] and store.get_ticket(t["id"])["rating"] is None


# ------------------------------------------------------------- callback form
def form_tracker(slot, value, text, intent, slots=None):
    """The tracker the form's validation action sees after the citizen answered `slot`."""
    slots = dict(slots or {}, requested_slot=slot, **{slot: value})
    latest = user(text, intent)
    return Tracker.from_dict({
        "sender_id": "citizen-1", "slots": slots, "latest_message": latest["parse_data"],
        "events": [{"event": "active_loop", "name": "callback_form"}, latest,
                   {"event": "slot", "name": slot, "value": value}],
        "paused": False, "followup_action": None, "active_loop": {"name": "callback_form"},
        "latest_action_name": "action_listen",
    })


def validate(domain, slot, text, intent="out_of_scope", slots=None):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ValidateCallbackForm().run(dispatcher, form_tracker(slot, text, text, intent, slots), domain))
    return {e["name"]: e["value"] for e in events if e["event"] == "slot"}, dispatcher.messages


@pytest.mark.parametrize("text", ["12345", "2381234567", "138123456789", "1381234567", "12812345678",
                                  "我的电话是138123", "13812345678和13900001111", "abc"])
def test_bad_phone_numbers_are_asked_again(domain, text):
    slots, messages = validate(domain, "callback_phone", text, slots={"callback_consent": True})
    assert slots["callback_phone"] is None and "requested_slot" not in slots  # the form asks again
    assert "11位" in texts(messages)


@pytest.mark.parametrize("text,phone", [("13812345678", "13812345678"), ("138 1234 5678", "13812345678"),
                                        ("+86 138-1234-5678", "13812345678"), ("我的手机是15900001111", "15900001111"),
                                        ("１３８１２３４５６７８", "13812345678")])
def test_good_phone_numbers(domain, text, phone):
    slots, messages = validate(domain, "callback_phone", text, slots={"callback_consent": True})
    assert slots["callback_phone"] == phone and messages == []
    assert normalize_phone(text) == phone


def test_consent_is_required(domain):
    slots, _ = validate(domain, "callback_consent", "/affirm", "affirm")
    assert slots["callback_consent"] is True
    slots, _ = validate(domain, "callback_consent", "同意", "affirm")
    assert slots["callback_consent"] is True
    # refusing ends the form: no more slots are requested
    slots, _ = validate(domain, "callback_consent", "不同意", "deny")
    assert slots == {"callback_consent": False, "requested_slot": None}
    # anything else is not consent: asked again
    slots, messages = validate(domain, "callback_consent", "你们会打几次电话", "ask_policy")
    assert slots["callback_consent"] is None and "同意" in texts(messages)


def test_declining_while_asked_for_the_number_ends_the_form(domain):
    slots, _ = validate(domain, "callback_phone", "不用了", "cancel", slots={"callback_consent": True})
    assert slots["callback_consent"] is False and slots["requested_slot"] is None


def test_callback_time(domain):
    slots, _ = validate(domain, "callback_time", "工作日上午", slots={"callback_consent": True, "callback_phone": "13812345678"})
    assert slots["callback_time"] == "工作日上午"
    slots, _ = validate(domain, "callback_time", "下午，不要太早的时候",
                        slots={"callback_consent": True, "callback_phone": "13812345678"})
    assert slots["callback_time"] == "下午，不要太早的时候"
    slots, messages = validate(domain, "callback_time", "随时" * 40,
                               slots={"callback_consent": True, "callback_phone": "13812345678"})
    assert slots["callback_time"] is None and "50字" in texts(messages)


def test_submit_files_a_callback_ticket(store):
    history = [user("政府信息公开申请超期了怎么办", "ask_policy"), *bot_card("fallback"),
               {"event": "active_loop", "name": "callback_form"}, user("13812345678", "out_of_scope")]
    t = tracker("工作日上午", "out_of_scope", events=history,
                slots={"callback_consent": True, "callback_phone": "13812345678", "callback_time": "工作日上午",
                       "handoff_reason": "complaint"})
    messages, events = run(ActionCallbackSubmit(clock=lambda: MONDAY_8PM, store=store), t)
    [card] = cards(messages)
    ticket = store.get_ticket(card["ticket"])
    assert ticket["status"] == "callback" and ticket["phone"] == "13812345678" and ticket["reason"] == "complaint"
    assert ticket["callback_time"] == "工作日上午" and "超期" in ticket["summary"] and "13812345678" not in ticket["summary"]
    assert "138****5678" in texts(messages) and "明天 08:30" in texts(messages) and "12345" in texts(messages)
    assert SlotSet("callback_phone", None) in events and SlotSet("callback_consent", None) in events


def test_submit_without_consent_keeps_nothing_and_gives_12345(store):
    t = tracker("不同意", "deny", slots={"callback_consent": False})
    messages, events = run(ActionCallbackSubmit(clock=lambda: MONDAY_8PM, store=store), t)
    [card] = cards(messages)
    assert card["ticket"] is None and card["status"] == "declined"
    assert "12345" in texts(messages) and "不会保存" in texts(messages) and store.list_tickets() == []


def test_form_questions_carry_one_card():
    messages, _ = run(ActionAskCallbackConsent(), tracker("/request_callback", "request_callback"))
    assert len(cards(messages)) == 1 and {b["payload"] for b in messages[0]["buttons"]} == {"/affirm", "/deny"}


def test_text_that_is_no_feedback_is_answered_like_a_question():
    messages, _ = run(ActionFeedback(), tracker("他们说的那个", "feedback"))
    assert [c["kind"] for c in cards(messages)] in (["fallback"], ["clarify"], ["answer"])


def test_system_busy_replies_do_not_count_as_failed_turns():
    from actions.handoff import previous_failures

    busy = {"event": "bot", "data": {"custom": {"kind": "fallback", "reason": "system_busy"}}}
    failed = {"event": "bot", "data": {"custom": {"kind": "fallback"}}}
    assert previous_failures([busy, busy, busy]) == 0
    assert previous_failures([failed, busy, failed]) == 2
