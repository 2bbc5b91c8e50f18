"""A second work-points document loads with no code change, and answers cite it."""
import shutil

import pytest

from bot.answering.answerer import Answerer, Query
from bot.kb.generate import write_user_dict
from bot.kb.store import DEFAULT_CONFIG_DIR, build_kb
from bot.nlp.segmenter import Segmenter
from bot.retrieval.search import PolicyIndex, build_index
from tests.conftest import ROOT, SEED, answerer_for


@pytest.fixture(scope="module")
def two_docs(tmp_path_factory):
    answerer, seg = answerer_for(tmp_path_factory, {
        "ningxiang-2021.txt": SEED,
        "taojiang-2022.txt": ROOT / "tests" / "fixtures" / "policies" / "taojiang-2022.txt"})
    return answerer.kb, seg, answerer


def ask(env, text, intent="ask_policy", **ctx):
    kb, seg, answerer = env
    return answerer.answer(Query(text, seg.words(text), intent, **ctx))


def test_second_document_parsed(two_docs):
    kb, _, _ = two_docs
    doc = kb.document("taojiang-2022")
    assert doc.title == "桃江县2022年政务公开工作要点"
    assert doc.doc_number == "桃政办发〔2022〕7号"
    assert doc.issuer == "桃江县人民政府办公室"
    assert doc.date_iso == "2022-04-15"
    assert doc.recipients == ["各乡镇人民政府", "县直各单位"]
    assert [i.number for i in doc.items] == [1, 2, 3]
    assert [s.items for s in doc.sections] == [[1, 2], [3]]
    assert doc.item(1).lead_units == ["县水利局"]
    assert "12个乡镇供水工程信息公示" in doc.item(1).body  # page break rejoined, spaces dropped
    assert doc.item(2).lead_units == ["县林业局", "县财政局"]
    assert doc.item(3).lead_units == ["县政府办"]
    assert "2022年6月底前" in doc.item(1).deadlines


def test_new_departments_get_aliases(two_docs):
    kb, _, _ = two_docs
    assert kb.canonical_department("水利局") == "县水利局"
    assert [i.number for _, i, _ in kb.department_items("县林业局")] == [2]


def test_answers_cite_the_right_document(two_docs):
    reply = ask(two_docs, "农村饮水的水质检测结果公开吗")
    assert reply.kind == "answer"
    assert reply.citations[0]["doc"] == "taojiang-2022" and reply.citations[0]["item"] == 1
    assert "县水利局" in reply.departments
    reply = ask(two_docs, "跨省通办的办事指南在哪里")
    assert reply.citations[0]["doc"] == "ningxiang-2021" and reply.citations[0]["item"] == 8


def test_document_info_for_the_named_document(two_docs):
    reply = ask(two_docs, "桃江县2022年政务公开工作要点的文号是多少", "ask_document_info")
    assert "桃政办发〔2022〕7号" in reply.texts[0]
    reply = ask(two_docs, "文件的印发日期", "ask_document_info", current_doc="ningxiang-2021")
    assert "2021年8月3日" in reply.texts[0]
    # two documents and no context: ask which one
    reply = ask(two_docs, "文件是哪天印发的", "ask_document_info")
    assert reply.kind == "clarify" and len(reply.buttons) == 2


def test_duties_across_documents_name_the_document(two_docs):
    reply = ask(two_docs, "县财政局负责什么", "ask_department_duties", departments=["县财政局"])
    assert [c["doc"] for c in reply.citations] == ["taojiang-2022"]
    assert "《桃江县2022年政务公开工作要点》" in reply.texts[0]


# ---------------------------------------------------------------- issue 13: both documents answer
def converse(env, turns):
    """Ask in order, carrying the slots of each reply (current_doc / current_item) as the
    action server does through the tracker."""
    ctx, replies = {}, []
    for text, intent in turns:
        item = ctx.get("current_item")
        reply = ask(env, text, intent, current_doc=ctx.get("current_doc"),
                    current_item=int(item) if item else None)
        ctx.update(reply.slots)
        replies.append(reply)
    return replies


def test_a_question_both_documents_answer_offers_both(two_docs):
    # 宁乡 (十七) 加强指导培训 and 桃江 (三) 加强队伍建设 (政务公开业务培训) both answer it
    for text in ("政务公开培训", "政务公开业务培训有哪些要求"):
        reply = ask(two_docs, text)
        assert reply.kind == "clarify" and not reply.citations, (text, reply)
        docs = [b for b in reply.buttons if b["payload"] != "/request_human"]
        assert len(docs) == 2, docs
        titles = " ".join(b["title"] for b in docs)
        assert "《宁乡市2021年政务公开工作要点》第（十七）项" in titles
        assert "《桃江县2022年政务公开工作要点》第（三）项" in titles
        assert {c["doc"] for c in reply.card["candidates"]} == {"ningxiang-2021", "taojiang-2022"}
        assert "哪一份文件" in reply.texts[0]
        # a button answers from its document, which becomes the document in context
        payload = next(b["payload"] for b in docs if "桃江县" in b["title"])
        ref = payload.split('"item_ref": "')[1].split('"')[0]
        chosen = ask(two_docs, "", "ask_policy", item_ref=ref)
        assert chosen.kind == "answer" and chosen.citations[0]["doc"] == "taojiang-2022"
        assert chosen.slots["current_doc"] == "taojiang-2022"


def test_a_question_one_document_answers_clearly_is_answered(two_docs):
    # only 桃江 says how often (每年不少于两次); only 宁乡 has 政府债务
    reply = ask(two_docs, "业务培训每年搞几次")
    assert reply.kind == "answer" and [c["doc"] for c in reply.citations] == ["taojiang-2022"]
    reply = ask(two_docs, "政府债务信息会公开吗？")
    assert reply.kind == "answer" and {c["doc"] for c in reply.citations} == {"ningxiang-2021"}


@pytest.mark.parametrize("first, doc, item", [("农村饮水的水质检测结果公开吗", "taojiang-2022", 1),
                                               ("政府债务信息会公开吗？", "ningxiang-2021", 5)])
def test_this_document_follow_ups_stay_on_the_document_in_context(two_docs, first, doc, item):
    other = "ningxiang-2021" if doc == "taojiang-2022" else "taojiang-2022"
    for follow in ("该文件关于培训有什么要求", "上面那个文件里关于政务公开培训的规定", "这份文件里关于资金的内容"):
        for intent in ("ask_policy", "ask_responsible"):
            answer, reply = converse(two_docs, [(first, "ask_policy"), (follow, intent)])
            assert answer.citations[0]["doc"] == doc and answer.citations[0]["item"] == item
            assert reply.kind == "answer", (follow, intent, reply)
            assert {c["doc"] for c in reply.citations} == {doc}, (follow, intent, reply.citations)
            assert reply.slots["current_doc"] == doc
            if intent == "ask_responsible":  # a topic of its own: not the item in context
                assert reply.citations[0]["item"] != item or doc == "ningxiang-2021"
    # without the reference the same question offers both documents
    _, reply = converse(two_docs, [(first, "ask_policy"), ("政务公开培训有什么要求", "ask_policy")])
    assert reply.kind == "clarify" and {c["doc"] for c in reply.card["candidates"]} == {doc, other}


def test_units_of_this_document(two_docs):
    for intent in ("ask_policy", "ask_responsible", "ask_document_info"):
        _, reply = converse(two_docs, [("农村饮水的水质检测结果公开吗", "ask_policy"), ("这个文件的责任单位有哪些", intent)])
        assert reply.kind == "answer" and [c["doc"] for c in reply.citations] == ["taojiang-2022"]
        assert reply.texts[0].startswith("《桃江县2022年政务公开工作要点》共3项工作，牵头单位：县水利局（第（一）项）")
        assert "各乡镇人民政府" in reply.texts[0] and "市" not in reply.texts[0]
        _, reply = converse(two_docs, [("政府债务信息会公开吗？", "ask_policy"), ("这份文件的牵头单位有哪些", intent)])
        assert reply.citations[0]["doc"] == "ningxiang-2021" and "县水利局" not in reply.texts[0]
        assert "市行政审批服务局（第（八）、（九）" in reply.texts[0] and len(reply.texts[0]) <= 300


def test_this_document_has_nothing_on_it_offers_the_other(two_docs):
    _, reply = converse(two_docs, [("农村饮水的水质检测结果公开吗", "ask_policy"), ("这个文件里关于预算的内容", "ask_policy")])
    assert reply.kind == "clarify" and not reply.citations
    assert reply.texts[0].startswith("在《桃江县2022年政务公开工作要点》中没有找到")
    assert reply.buttons[0]["title"] == "《宁乡市2021年政务公开工作要点》第（五）项 做好财政信息公开"
    # in the other document's context the same follow-up is answered from it
    _, reply = converse(two_docs, [("政府债务信息会公开吗？", "ask_policy"), ("这个文件里关于预算的内容", "ask_policy")])
    assert reply.kind == "answer" and reply.citations[0]["doc"] == "ningxiang-2021" and "预算" in reply.texts[0]


def test_department_in_this_document(two_docs):
    _, reply = converse(two_docs, [("竹产业扶持政策公开吗", "ask_policy"),
                                   ("这个文件里县财政局负责什么", "ask_department_duties")])
    assert [c["doc"] for c in reply.citations] == ["taojiang-2022"]


def test_one_document_loaded_is_unchanged_by_references_to_it(tmp_path):
    """With one document there is nothing to choose: '这个文件' scopes nothing and the
    document-units answer is not given (the dev/tune sets measure the rest, docs/kb-formats.md)."""
    from bot.answering.answerer import DOC_REF_RE
    assert DOC_REF_RE.search("这个文件里关于预算的内容") and DOC_REF_RE.search("上面那个文件的规定")
    assert DOC_REF_RE.search("刚才那份要点") and not DOC_REF_RE.search("文件库建设谁牵头")
    policies = tmp_path / "policies"
    policies.mkdir()
    shutil.copy(SEED, policies / "ningxiang-2021.txt")
    kb = build_kb(policies, DEFAULT_CONFIG_DIR)
    seg = Segmenter(write_user_dict(kb, tmp_path / "dict.txt"))
    one = Answerer(kb, PolicyIndex(kb, build_index(kb, seg)))
    for text in ("这个文件的责任单位有哪些", "这个文件里关于预算的内容", "该文件关于培训有什么要求"):
        q = Query(text, seg.words(text), "ask_policy", current_doc="ningxiang-2021", current_item=5)
        reply = one.answer(q)
        assert q.doc_scope is None and "共19项工作" not in reply.texts[0]
        assert reply.extra.get("reason") != "several_documents"


def test_content_of_this_document_asked_as_full_text(two_docs):
    """The NLU reads "这个文件里关于预算的内容" as ask_full_text: the item of the document in
    context that has it, or — when only the other document has it — say so and offer that."""
    _, reply = converse(two_docs, [("农村饮水的水质检测结果公开吗", "ask_policy"), ("这个文件里关于预算的内容", "ask_full_text")])
    assert reply.kind == "clarify" and reply.texts[0].startswith("在《桃江县2022年政务公开工作要点》中没有找到")
    _, reply = converse(two_docs, [("农村饮水的水质检测结果公开吗", "ask_policy"), ("这份文件里关于资金的内容", "ask_full_text")])
    assert reply.kind == "answer" and (reply.citations[0]["doc"], reply.citations[0]["item"]) == ("taojiang-2022", 2)
    assert reply.texts[0].startswith("第（二）项 做好竹产业扶持政策公开\n")
    # no topic of its own: the item in context, as before
    _, reply = converse(two_docs, [("农村饮水的水质检测结果公开吗", "ask_policy"), ("这个文件的全文", "ask_full_text")])
    assert (reply.citations[0]["doc"], reply.citations[0]["item"]) == ("taojiang-2022", 1)


# ---------------------------------------------------------------- the same over REST (real NLU)
@pytest.fixture(scope="module")
def two_docs_bot(tmp_path_factory):
    import os
    import subprocess
    import sys

    from tests.servers import free_ports, running_bot

    tmp = tmp_path_factory.mktemp("two_docs_bot")
    policies, build = tmp / "policies", tmp / "build"
    policies.mkdir()
    shutil.copy(SEED, policies / "ningxiang-2021.txt")
    shutil.copy(ROOT / "tests" / "fixtures" / "policies" / "taojiang-2022.txt", policies / "taojiang-2022.txt")
    subprocess.run([sys.executable, "-m", "bot.kb", "build", "--policies", str(policies), "--out", str(build),
                    "--nlu-out", str(tmp / "gen.yml")], cwd=ROOT, check=True, capture_output=True,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    rasa_port, action_port = free_ports(2, 6520, 6539)
    with running_bot(rasa_port, action_port, tmp / "bot", extra_env={"ZWZX_BUILD_DIR": str(build)}) as servers:
        yield servers


def rest(servers, sender, text):
    import requests

    messages = requests.post(f"{servers.rasa_url}/webhooks/rest/webhook",
                             json={"sender": sender, "message": text}, timeout=30).json()
    card = next(m["custom"] for m in messages if "custom" in m)
    return card, [m["text"] for m in messages if m.get("text")], \
        [b for m in messages for b in m.get("buttons") or []]


def test_over_rest_both_documents_offered_and_this_document_follow_ups(two_docs_bot):
    card, texts, buttons = rest(two_docs_bot, "two-docs-1", "政务公开培训有什么要求")
    assert card["kind"] == "clarify" and {c["doc"] for c in card["candidates"]} == {"ningxiang-2021", "taojiang-2022"}
    assert sum("《桃江县2022年政务公开工作要点》" in b["title"] for b in buttons) == 1
    assert sum("《宁乡市2021年政务公开工作要点》" in b["title"] for b in buttons) == 1
    # the citizen picks 桃江; "这个文件…" then stays on it
    card, _, _ = rest(two_docs_bot, "two-docs-1", next(b["payload"] for b in buttons if "桃江县" in b["title"]))
    assert (card["kind"], card["citations"][0]["doc"]) == ("answer", "taojiang-2022")
    card, texts, _ = rest(two_docs_bot, "two-docs-1", "这个文件的责任单位有哪些")
    assert [c["doc"] for c in card["citations"]] == ["taojiang-2022"] and "县水利局（第（一）项）" in texts[0]
    card, texts, buttons = rest(two_docs_bot, "two-docs-1", "这个文件里关于预算的内容")
    assert card["kind"] == "clarify" and "在《桃江县2022年政务公开工作要点》中没有找到" in texts[0]
    assert buttons[0]["title"].startswith("《宁乡市2021年政务公开工作要点》第（五）项")
    # a conversation about 宁乡: the same follow-ups stay on 宁乡
    card, _, _ = rest(two_docs_bot, "two-docs-2", "政府债务信息会公开吗？")
    assert card["citations"][0]["doc"] == "ningxiang-2021"
    card, texts, _ = rest(two_docs_bot, "two-docs-2", "该文件关于培训有什么要求")
    assert {c["doc"] for c in card["citations"]} == {"ningxiang-2021"}
    card, texts, _ = rest(two_docs_bot, "two-docs-2", "这个文件里关于预算的内容")
    assert card["kind"] == "answer" and card["citations"][0]["doc"] == "ningxiang-2021" and "预算" in texts[0]
