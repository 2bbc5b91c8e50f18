"""Questions about a whole document: another place's or year's work points, and the outline."""
import pytest

from actions.knowledge import answerer as shared_answerer
from bot.answering.answerer import Query
from bot.answering.documents_asked import other_document, outline
from bot.nlp.segmenter import default_segmenter
from tests.conftest import ROOT, answerer_for


@pytest.fixture(scope="module")
def env():
    return shared_answerer(), default_segmenter()


def ask(env, text, intent="ask_policy"):
    answerer, seg = env
    return answerer.answer(Query(text, seg.words(text), intent))


@pytest.mark.parametrize("text", ["株洲市2023年政务公开工作要点讲了哪些事", "2019年的政务公开工作要点在哪看",
                                  "湘潭县的工作要点里有没有写财政公开"])
def test_another_places_or_years_work_points_are_not_answered_from_ours(env, text):
    assert other_document(env[0].kb, text)
    reply = ask(env, text)
    assert reply.kind == "out_of_scope" and reply.citations == []
    assert "宁乡市2021年政务公开工作要点" in reply.texts[0]  # says which document it has


@pytest.mark.parametrize("text", ["本市今年的工作要点里财政信息怎么公开", "请问市发改局牵头哪几项工作要点",
                                  "宁乡县2021年政务公开工作要点里预算公开怎么说", "工作要点要求2021年底前完成什么",
                                  "列出市市场监管局在工作要点里的全部任务"])
def test_our_own_place_year_and_units_are_not_another_document(env, text):
    assert not other_document(env[0].kb, text)


@pytest.mark.parametrize("text", ["这份工作要点主要讲了什么", "政务公开工作要点包括哪几个部分", "What does this document cover?"])
def test_asking_what_the_document_contains_gets_its_parts_and_items(env, text):
    reply = ask(env, text)
    assert reply.kind == "answer" and reply.citations[0]["item"] is None
    assert any("共5个部分、19项工作" in t for t in reply.texts)
    assert "第（十九）项 强化监督评估" in reply.texts[-1]


def test_a_topic_asked_of_the_document_is_still_that_topic(env):
    reply = ask(env, "工作要点里关于财政预决算讲了什么")
    assert reply.kind == "answer" and reply.citations[0]["item"] == 5


def test_the_outline_of_a_document_in_another_layout(tmp_path_factory):
    # the third fixture document numbers its items 1.–20. across its parts: the outline reads them
    answerer, _ = answerer_for(tmp_path_factory, {"songxi.txt": ROOT / "tests" / "fixtures" / "eval_docs" / "songxi-2023.txt"})
    doc = answerer.kb.documents[0]
    first, items = outline(doc)
    assert f"共{len(doc.sections)}个部分、{len(doc.items)}项工作" in first
    assert all(i.title in items for i in doc.items)
    # the document's own place and year are not another document; another year is
    year = next(t for t in [doc.title[i:i + 4] for i in range(len(doc.title))] if t.isdigit())
    assert not other_document(answerer.kb, f"{doc.title}有哪些内容")
    assert other_document(answerer.kb, f"{int(year) + 1}年的政务公开工作要点出来了吗")


@pytest.mark.parametrize("text", ["市政务服务中心主任叫什么名字", "现在的市长是谁", "市卫健局局长姓什么"])
def test_who_holds_an_office_is_out_of_scope(env, text):
    reply = ask(env, text, "ask_department_duties")
    assert reply.kind == "out_of_scope" and reply.citations == []


def test_the_lead_unit_of_a_task_is_still_answered(env):
    reply = ask(env, "政府网站集约化的负责人是谁", "ask_responsible")
    assert reply.kind == "answer" and reply.citations[0]["item"] == 12


@pytest.mark.parametrize("text", ["给老人办高龄补贴需要准备哪些资料", "户口迁移得提交什么证件"])
def test_the_papers_an_errand_needs_are_an_errand(env, text):
    reply = ask(env, text, "nlu_fallback")
    assert reply.kind in ("fallback", "out_of_scope") and reply.citations == []
