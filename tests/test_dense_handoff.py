"""Requests for a person recognised by meaning (bot/nlu/dense_handoff.py) and how the arbiter
uses the score (bot/nlu/retrieval_arbiter.py). Every text here is written for these tests; no
evaluation or probe question (tests/data/*.jsonl, ../shared/eval) is used.
"""
import asyncio
from pathlib import Path

import numpy as np
import pytest
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlp.normalize import normalize_text, scoring_text
from bot.nlp.segmenter import default_segmenter
from bot.nlu import dense_prefetch
from bot.nlu.dense_handoff import HANDOFF_P_KEY, DenseHandoffScorer
from bot.nlu.retrieval_arbiter import ENGLISH_HANDOFF_RE, HUMAN_REQUEST_RE, SOFT_HUMAN_REQUEST_RE, RetrievalArbiter
from bot.retrieval import dense as D


PERSON_ASKS = ["帮我转人工", "我要找工作人员", "让真人来回答我", "转接客服", "找个懂行的人跟我说", "人工服务",
               "别让机器回答了，找人", "请工作人员联系我", "我想跟客服聊", "给我接个真人"]
OTHER = ["预算公开在哪里看", "规划什么时候公布", "你好", "谢谢", "今天天气怎么样", "哪个部门负责培训",
         "工作人员培训的内容有哪些", "依申请公开怎么收费", "网站栏目怎么整合", "手机丢了怎么办", "再见",
         "公共企业要公开哪些信息", "疫情信息在哪发布", "政策解读有哪些形式"]


class _Storage:
    """Just enough of Rasa's ModelStorage for write_to/read_from on a directory."""

    def __init__(self, root: Path):
        self.root = root

    def write_to(self, resource):
        from contextlib import contextmanager

        @contextmanager
        def cm():
            d = self.root / resource.name
            d.mkdir(parents=True, exist_ok=True)
            yield d
        return cm()

    def read_from(self, resource):
        from contextlib import contextmanager

        @contextmanager
        def cm():
            d = self.root / resource.name
            if not d.exists():
                raise ValueError("not persisted")
            yield d
        return cm()


def _training_data():
    examples = [Message(data={"text": t, "intent": "request_human"}) for t in PERSON_ASKS]
    examples += [Message(data={"text": t, "intent": "ask_policy"}) for t in OTHER]
    return TrainingData(training_examples=examples)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from rasa.engine.storage.resource import Resource

    storage, resource = _Storage(tmp_path_factory.mktemp("handoff")), Resource("dense_handoff")
    DenseHandoffScorer.create({}, storage, resource, None).train(_training_data())
    return DenseHandoffScorer.load({}, storage, resource, None)


def _scored(scorer, text, intent="out_of_scope", confidence=0.6):
    message = Message(data={"text": normalize_text(text), "text_scoring": scoring_text(normalize_text(text)),
                            "intent": {"name": intent, "confidence": confidence}})
    scorer.process([message])
    return message


def test_trained_scores_unseen_requests_above_unseen_questions(trained):
    asks = [_scored(trained, t).get(HANDOFF_P_KEY) for t in ["麻烦找一位真人客服跟我聊聊", "我需要人工帮忙"]]
    questions = [_scored(trained, t).get(HANDOFF_P_KEY) for t in ["财政预算在哪里可以查到", "明天会下雨吗"]]
    assert None not in asks + questions
    assert min(asks) > 0.5 > max(questions)


def test_the_model_persists_and_loads(trained, tmp_path):
    from rasa.engine.storage.resource import Resource

    # a scorer trained with the dense model off (nothing persisted) scores nothing
    empty = DenseHandoffScorer.load({}, _Storage(tmp_path), Resource("never_trained"), None)
    assert _scored(empty, "我需要人工帮忙").get(HANDOFF_P_KEY) is None
    assert trained._weights is not None and trained._weights.shape == (385,)


def test_off_switch_trains_and_scores_nothing(monkeypatch, tmp_path):
    from rasa.engine.storage.resource import Resource

    monkeypatch.setenv("ZWZX_DENSE", "off")
    storage, resource = _Storage(tmp_path), Resource("off")
    DenseHandoffScorer.create({}, storage, resource, None).train(_training_data())
    assert not (tmp_path / "off").exists()


def test_only_unsettled_messages_or_ones_naming_a_person_are_scored(trained):
    assert _scored(trained, "预算公开在哪里看", intent="ask_policy", confidence=0.9).get(HANDOFF_P_KEY) is None
    assert _scored(trained, "我投诉窗口服务", intent="complain").get(HANDOFF_P_KEY) is None
    assert _scored(trained, "请回电给我", intent="request_callback").get(HANDOFF_P_KEY) is None
    # "are you a real person?" asks about the assistant: near a request for a person, but not one
    assert _scored(trained, "跟我说话的是真人还是程序", intent="bot_identity").get(HANDOFF_P_KEY) is None
    assert _scored(trained, "窗口人员的培训谁负责", intent="ask_responsible", confidence=0.9).get(HANDOFF_P_KEY) is not None
    assert _scored(trained, "今天天气不错啊", intent="greet").get(HANDOFF_P_KEY) is not None


def test_scoring_asks_for_the_vector_off_the_event_loop(trained):
    text = "有没有哪位同志能陪我聊两句"
    D._vectors.pop(D.query_text(scoring_text(text)), None)
    token = D.DEFER.set(True)
    try:
        message = _scored(trained, text)
        dense_prefetch.want(message, ["另一个问题"])  # a second component's wish is merged, not lost
    finally:
        D.DEFER.reset(token)
    assert message.get(HANDOFF_P_KEY) is None
    assert message.get(dense_prefetch.WANTED_KEY) == [D.query_text(scoring_text(text)), "另一个问题"]


# ------------------------------------------------ the arbiter's use of the score


def _arbitrated(text, intent, confidence, p):
    scoring = scoring_text(normalize_text(text))
    message = Message(data={"text": normalize_text(text), "text_scoring": scoring,
                            "tokens_zh": default_segmenter().words(scoring) if scoring else [],
                            "intent": {"name": intent, "confidence": confidence},
                            "intent_ranking": [{"name": intent, "confidence": confidence}], HANDOFF_P_KEY: p})
    RetrievalArbiter()._arbitrate(message)
    return message.get("intent")["name"], (message.get("arbitration") or {}).get("by")


def _no_pattern(text):
    return not (HUMAN_REQUEST_RE.search(text) or SOFT_HUMAN_REQUEST_RE.search(text) or ENGLISH_HANDOFF_RE.search(text))


@pytest.mark.parametrize("text, intent", [("想揾个职员倾下偈", "out_of_scope"),
                                          ("Could an actual human help me out here?", "request_human")])
def test_a_sure_meaning_hands_off_what_no_pattern_reads(text, intent):
    assert _no_pattern(text)
    assert _arbitrated(text, intent, 0.45, 0.97)[0] == "request_human"
    assert _arbitrated(text, "out_of_scope", 0.45, 0.5)[0] != "request_human"  # an unsure meaning does not


def test_an_errand_is_not_handed_off_by_meaning():
    assert _arbitrated("Who do I call to get my water meter fixed?", "out_of_scope", 0.9, 0.95)[0] != "request_human"


def test_a_callback_request_keeps_its_own_flow():
    text = "麻烦稍后致电本人"
    assert _no_pattern(text)
    assert _arbitrated(text, "request_callback", 0.8, 0.99)[0] == "request_callback"


def test_an_unsure_request_far_from_every_request_is_a_question():
    text = "代办人可以替别人递交公开申请吗"
    assert _no_pattern(text)
    assert _arbitrated(text, "request_human", 0.6, 0.05) == ("nlu_fallback", "dense_doubts_handoff")
    assert _arbitrated(text, "request_human", 0.6, 0.6)[0] == "request_human"
    # a request the patterns read is never doubted
    assert _arbitrated("帮我转人工", "request_human", 0.6, 0.05)[0] == "request_human"


# ------------------------------------------------ the trained model, parsed as the server does


@pytest.mark.parametrize("text", ["I would really prefer a human being to help me",
                                  "Could an actual human help me out here?"])
def test_the_served_model_hands_off_requests_no_pattern_reads(agent, text):
    assert _no_pattern(text)
    data = asyncio.run(agent.parse_message(text))
    assert data["intent"]["name"] == "request_human"
    assert data.get(HANDOFF_P_KEY, 0) >= 0.9


@pytest.mark.parametrize("text", ["政务公开工作人员要遵守什么规定", "工作人员的培训由哪个部门负责"])
def test_the_served_model_answers_questions_about_staff(agent, text):
    data = asyncio.run(agent.parse_message(text))
    assert data["intent"]["name"] != "request_human"


@pytest.mark.parametrize("text", ["基层搞公开的同志，上面会不会定期派人来培训", "下属单位的公开工作有没有人来指导"])
def test_whether_someone_teaches_or_oversees_the_work_is_a_question_not_a_request(text):
    # a sure classifier and a near meaning do not hand it off: the words name a topic
    assert _arbitrated(text, "request_human", 0.7, 0.95)[0] != "request_human"
    # the same words as a request for a person now still hand off
    assert _arbitrated("能不能派个人来帮我看看", "request_human", 0.7, 0.95)[0] == "request_human"


def test_an_unsure_request_naming_no_person_is_doubted_unless_the_meaning_confirms_it():
    # an errand the classifier barely reads as a request for a person: no person, call or hotline in it
    text = "帮我看看我家的燃气费欠了多少"
    assert _no_pattern(text)
    assert _arbitrated(text, "request_human", 0.4, 0.45)[0] == "nlu_fallback"
    assert _arbitrated(text, "request_human", 0.4, 0.7)[0] == "request_human"  # the meaning is sure enough
    assert _arbitrated(text, "request_human", 0.7, 0.45)[0] == "request_human"  # the classifier is sure
    # the same unsure reading of a message that names a person keeps the request
    assert _arbitrated("来个懂行的帮帮忙", "request_human", 0.4, 0.45)[0] == "request_human"
    assert _arbitrated("有个事想电话里说", "request_human", 0.4, 0.45)[0] == "request_human"
