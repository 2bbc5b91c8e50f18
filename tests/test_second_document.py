"""A second work-points document loads with no code change, and answers cite it."""
import shutil

import pytest

from bot.answering.answerer import Answerer, Query
from bot.kb.generate import write_user_dict
from bot.kb.store import DEFAULT_CONFIG_DIR, build_kb
from bot.nlp.segmenter import Segmenter
from bot.retrieval.search import PolicyIndex, build_index
from tests.conftest import ROOT, SEED


@pytest.fixture(scope="module")
def two_docs(tmp_path_factory):
    policies = tmp_path_factory.mktemp("policies")
    shutil.copy(SEED, policies / "ningxiang-2021.txt")
    shutil.copy(ROOT / "tests" / "fixtures" / "policies" / "taojiang-2022.txt", policies / "taojiang-2022.txt")
    kb = build_kb(policies, DEFAULT_CONFIG_DIR)
    words = write_user_dict(kb, tmp_path_factory.mktemp("build") / "dict.txt")
    seg = Segmenter(words)
    index = PolicyIndex(kb, build_index(kb, seg))
    return kb, seg, Answerer(kb, index)


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
