"""End to end over HTTP: start the action server and the Rasa server (trained model,
SQLite tracker store in a temp dir) and talk to the REST channel like a client."""
import uuid

import pytest
import requests

from tests.servers import running_bot


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    with running_bot(rasa_port=5020, action_port=5021, tmp_dir=tmp_path_factory.mktemp("e2e")) as servers:
        yield servers.rasa_url


def say(url, sender, text):
    r = requests.post(f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": text}, timeout=30)
    assert r.status_code == 200, r.text
    messages = r.json()
    cards = [m["custom"] for m in messages if isinstance(m.get("custom"), dict) and "kind" in m["custom"]]
    assert len(cards) == 1, messages
    return cards[0], [m["text"] for m in messages if m.get("text")], messages


def sender():
    return f"e2e-{uuid.uuid4().hex[:10]}"


def test_policy_question_and_follow_ups(bot):
    s = sender()
    card, texts, _ = say(bot, s, "请问惠民惠农的资金发放信息会公开吗")
    assert card["kind"] == "answer" and card["citations"][0]["item"] == 5
    assert card["citations"][0]["doc"] == "ningxiang-2021"
    assert len(texts[0]) <= 300 and any(t.startswith("依据：《宁乡市2021年政务公开工作要点》第（五）项") for t in texts)
    card, texts, _ = say(bot, s, "那由哪个部门负责？")
    assert card["kind"] == "answer" and card["citations"][0]["item"] == 5 and card["departments"][0] == "市财政局"
    card, texts, _ = say(bot, s, "查看全文")
    assert card["citations"][0]["item"] == 5 and "还本付息" in texts[0]


def test_department_then_other_department(bot):
    s = sender()
    card, _, _ = say(bot, s, "发改委在政务公开方面负责什么")
    assert card["departments"] == ["市发改局"] and {c["item"] for c in card["citations"]} == {2, 3, 9}
    card, _, _ = say(bot, s, "那网信办呢")
    assert card["departments"] == ["市委网信办"] and [c["item"] for c in card["citations"]] == [12]


def test_document_facts(bot):
    card, texts, _ = say(bot, sender(), "这份工作要点的发文字号是什么")
    assert card["kind"] == "answer" and "宁政务办发〔2021〕3号" in texts[0]


def test_chitchat_out_of_scope_and_person(bot):
    assert say(bot, sender(), "你好")[0]["kind"] == "chitchat"
    card, _, _ = say(bot, sender(), "帮我查一下明天的天气")
    assert card["kind"] in ("out_of_scope", "fallback") and card["citations"] == []
    assert say(bot, sender(), "帮我转人工客服")[0]["kind"] == "handoff"


@pytest.mark.parametrize("text", ["", "   ", "<img src=x onerror=alert(1)>", "😀😀😀", "政务" * 400,
                                  "Hello, 请问 budget 公开吗?", '{"json": true}', "\u0000\u202e"])
def test_bad_input_gets_a_reply_never_an_error(bot, text):
    card, texts, _ = say(bot, sender(), text)
    assert texts, "every message gets a visible reply"
    if len(text) > 500:
        assert card["kind"] == "fallback" and any("500" in t for t in texts)


def test_conversation_is_stored_in_the_tracker(bot):
    s = sender()
    say(bot, s, "政府规章在哪集中公开")
    tracker = requests.get(f"{bot}/conversations/{s}/tracker", timeout=10).json()
    users = [e for e in tracker["events"] if e["event"] == "user"]
    bots = [e for e in tracker["events"] if e["event"] == "bot"]
    assert users[-1]["text"] == "政府规章在哪集中公开"
    assert users[-1]["parse_data"]["tokens_zh"]  # the tokenizer's words travel with the message
    assert tracker["slots"]["current_item"] == 11.0
    assert any(((b.get("data") or {}).get("custom") or {}).get("kind") == "answer" for b in bots)


def test_requests_for_a_person_and_questions_about_staff(bot):
    # 220 messages written by two separate helpers without seeing the rules: 130 requests for a
    # person (Chinese, 繁體, dialect, pinyin, English, typos), 90 policy questions that mention staff,
    # officials, hotlines or calls. First runs: 61/70 + 50/50 and 49/60 + 40/40; the misses were
    # then read and fixed, so these files are a regression set for the classifier + arbiter
    # together, not an evaluation.
    import json
    from pathlib import Path

    data = Path(__file__).parent / "data"
    cases = [json.loads(line) for name in ("handoff_probe.jsonl", "handoff_probe2.jsonl")
             for line in open(data / name, encoding="utf-8")]
    wrong = []
    for case in cases:
        card, _, _ = say(bot, sender(), case["text"])
        if (card["kind"] == "handoff") != (case["expect"] == "handoff"):
            wrong.append((case["expect"], card["kind"], case["text"]))
    assert not wrong, wrong
