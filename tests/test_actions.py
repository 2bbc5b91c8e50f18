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


# ------------------------------------------- out of scope, unless about the item just answered
def _detail_words(answerer, doc, item):
    """Topic words of the item beyond its heading (not time words: 时限 asks a deadline), rarest
    first and then in character order, so that every run picks the same one."""
    from bot.answering.answerer import DEADLINE_WORDS

    index = answerer.index
    words = [w for w in index.word_sets[index.position(doc.doc_id, item.number)]
             if len(w) == 2 and index.singles_out_items(w) and w in item.text and w not in item.title
             and w not in DEADLINE_WORDS]
    return sorted(words, key=lambda w: (-index.words.idf_of(w), w))


def test_out_of_scope_follow_up_in_words_of_the_item_in_context_is_answered_from_it():
    from actions.answer import ActionOutOfScope
    from actions.knowledge import answerer

    a = answerer()
    checked = 0
    for doc, item in a.kb.all_items():
        words = _detail_words(a, doc, item)
        if not words:
            continue
        slots = {"current_doc": doc.doc_id, "current_item": float(item.number)}
        messages, events = run(ActionOutOfScope(), tracker(f"之前说的{words[0]}是咋回事", "out_of_scope", slots=slots))
        card = cards(messages)[0]
        assert card["kind"] == "answer" and card["citations"][0]["item"] == item.number, (item.number, words[0])
        # another service, asked right after the same item, is still out of scope
        messages, events = run(ActionOutOfScope(), tracker("社保卡挂失怎么补办", "out_of_scope", slots=slots))
        assert [m.get("response") for m in messages] == ["utter_out_of_scope"]
        assert events == []
        checked += 1
    assert checked >= 10


def test_out_of_scope_without_an_item_in_context_is_out_of_scope():
    from actions.answer import ActionOutOfScope

    messages, events = run(ActionOutOfScope(), tracker("之前已经编了多少个领域", "out_of_scope"))
    assert [m.get("response") for m in messages] == ["utter_out_of_scope"] and events == []


def test_english_out_of_scope_follow_up_reads_the_item_in_context():
    from actions.answer import ActionOutOfScope
    from actions.knowledge import answerer

    a = answerer()
    having = [(d, it) for d, it in a.kb.all_items() if any(t in it.text for t in a.index.translations("field"))]
    assert having
    doc, item = having[0]
    slots = {"current_doc": doc.doc_id, "current_item": float(item.number)}
    messages, _ = run(ActionOutOfScope(), tracker("How many fields are covered?", "out_of_scope", slots=slots))
    assert cards(messages)[0]["citations"][0]["item"] == item.number
    messages, _ = run(ActionOutOfScope(), tracker("How do I renew my passport?", "out_of_scope", slots=slots))
    assert [m.get("response") for m in messages] == ["utter_out_of_scope"]
