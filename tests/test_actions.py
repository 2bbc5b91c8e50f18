"""Action tests in the style of Rasa's financial-demo: Tracker.from_dict +
CollectingDispatcher, assertions on the messages sent and the events returned."""
import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.answer import ActionAnswer, ActionFallback
from actions.handoff import ActionHandoff
from bot.nlp.segmenter import default_segmenter


def tracker(text, intent, entities=(), slots=None, sender="test-user", with_tokens=True):
    message = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.9},
        "entities": [dict(e) for e in entities],
    }
    if with_tokens:
        message["tokens_zh"] = default_segmenter().words(text)
    return Tracker.from_dict({
        "sender_id": sender,
        "slots": slots or {},
        "latest_message": message,
        "events": [],
        "paused": False,
        "followup_action": None,
        "active_loop": {},
        "latest_action_name": "action_listen",
    })


def run(action, t):
    dispatcher = CollectingDispatcher()
    events = pytest.importorskip("asyncio").run(action.run(dispatcher, t, {}))
    return dispatcher.messages, events


def cards(messages):
    return [m["custom"] for m in messages if m.get("custom")]


def test_policy_answer_sends_text_then_one_card_and_sets_context():
    messages, events = run(ActionAnswer(), tracker("惠民惠农补贴发放信息会公开吗", "ask_policy"))
    assert len(cards(messages)) == 1
    card = cards(messages)[0]
    assert card["kind"] == "answer" and card["citations"][0]["item"] == 5
    assert messages[0]["text"] and len(messages[0]["text"]) <= 300
    assert messages[-1].get("custom") is card
    assert SlotSet("current_item", 5.0) in events and SlotSet("current_doc", "ningxiang-2021") in events


def test_tokens_missing_from_parse_falls_back_to_segmenter():
    messages, _ = run(ActionAnswer(), tracker("惠民惠农补贴发放信息会公开吗", "ask_policy", with_tokens=False))
    assert cards(messages)[0]["citations"][0]["item"] == 5


def test_follow_up_uses_slots():
    slots = {"current_doc": "ningxiang-2021", "current_item": 3.0}
    messages, events = run(ActionAnswer(), tracker("那谁牵头呢", "ask_responsible", slots=slots))
    card = cards(messages)[0]
    assert card["citations"][0]["item"] == 3
    assert card["departments"][:3] == ["市发改局", "市市场监管局", "市司法局"]


def test_department_entity_after_synonym_mapping():
    entity = {"entity": "department", "value": "市医保局", "start": 0, "end": 3}
    messages, events = run(ActionAnswer(), tracker("医保局负责啥", "ask_department_duties", [entity]))
    card = cards(messages)[0]
    assert card["departments"] == ["市医保局"] and [c["item"] for c in card["citations"]] == [6]
    assert SlotSet("department", "市医保局") in events


def test_clarify_button_payload_answers_item():
    entity = {"entity": "item_ref", "value": "ningxiang-2021#16"}
    messages, events = run(ActionAnswer(), tracker('/ask_policy{"item_ref": "ningxiang-2021#16"}', "ask_policy", [entity]))
    assert cards(messages)[0]["citations"][0]["item"] == 16
    assert SlotSet("current_item", 16.0) in events


def test_fallback_action_declines_unrelated_text():
    messages, events = run(ActionFallback(), tracker("周末去哪里钓鱼比较好", "nlu_fallback"))
    card = cards(messages)[0]
    assert card["kind"] == "fallback" and card["citations"] == []
    assert any(b["payload"] == "/request_human" for m in messages for b in m.get("buttons", []))
    assert events == []


def test_handoff_card():
    messages, _ = run(ActionHandoff(), tracker("转人工", "request_human"))
    card = cards(messages)[0]
    assert card["kind"] == "handoff" and "ticket" in card
    assert any("12345" in (m.get("text") or "") for m in messages)
