"""Retrieval and answering over the real knowledge base (built into build/ by make)."""
import json

import pytest

from actions.knowledge import answerer as shared_answerer
from bot.answering.answerer import MAX_ANSWER_CHARS, Query
from bot.nlp.segmenter import default_segmenter, question_words
from tests.conftest import ROOT, answerer_for

PARAPHRASES = [json.loads(line) for line in open(ROOT / "tests" / "data" / "paraphrases.jsonl", encoding="utf-8")]


@pytest.fixture(scope="module")
def env():
    return shared_answerer(), default_segmenter()


def ask(env, text, intent="ask_policy", **kw):
    answerer, seg = env
    return answerer.answer(Query(text, seg.words(text), intent, **kw))


def test_own_paraphrases_are_answered_from_the_right_item(env):
    wrong = []
    for case in PARAPHRASES:
        reply = ask(env, case["text"])
        top = reply.citations[0]["item"] if reply.citations else None
        if reply.kind != "answer" or top != case["item"]:
            wrong.append((case["text"], reply.kind, top, case["item"]))
    accuracy = 1 - len(wrong) / len(PARAPHRASES)
    assert accuracy >= 0.9, wrong


@pytest.mark.parametrize("text", ["今天股市行情怎么样啊", "推荐几本好看的小说", "红烧肉怎么做", "明天长沙天气",
                                  "帮我算一下3加5", "NBA总决赛谁赢了", "iPhone多少钱"])
def test_unrelated_questions_cite_nothing(env, text):
    reply = ask(env, text, "nlu_fallback")
    assert reply.kind in ("fallback", "clarify") and reply.citations == []


def test_answer_leads_with_short_sentence_then_citation_then_units(env):
    reply = ask(env, "政府债务余额会定期公开吗")
    assert reply.kind == "answer" and reply.citations[0]["item"] == 5
    assert len(reply.texts[0]) <= MAX_ANSWER_CHARS and "政府债务" in reply.texts[0]
    assert reply.texts[1].startswith("依据：《宁乡市2021年政务公开工作要点》第（五）项 做好财政信息公开")
    assert "市财政局" in reply.texts[1]
    assert reply.departments[0] == "市财政局"
    assert reply.slots == {"current_doc": "ningxiang-2021", "current_item": 5.0}


def test_fact_sentence_with_reference(env):
    reply = ask(env, "收信息处理费是按照什么文件")
    assert reply.citations[0]["item"] == 15
    assert "湘财税〔2021〕3号" in reply.texts[0] and len(reply.texts[0]) <= MAX_ANSWER_CHARS


def test_responsible_lists_lead_units_first(env):
    reply = ask(env, "政府门户网站集约化谁来牵头", "ask_responsible")
    assert reply.citations[0]["item"] == 12
    assert reply.departments[:2] == ["市数据资源中心", "市委网信办"]
    assert reply.texts[0].startswith("“全面推行政府网站集约化建设”这项工作由市数据资源中心、市委网信办牵头")


def test_follow_ups_use_the_item_in_context(env):
    first = ask(env, "政府网站支持IPv6有期限吗")
    assert first.citations[0]["item"] == 12
    ctx = {"current_doc": "ningxiang-2021", "current_item": 12}
    who = ask(env, "那由哪个部门负责？", "ask_responsible", **ctx)
    assert who.citations[0]["item"] == 12 and "市数据资源中心" in who.texts[0]
    when = ask(env, "有什么时间要求吗", "ask_deadline", **ctx)
    assert "2021 年底前" in when.texts[0]  # as the document writes it
    full = ask(env, "查看全文", "ask_full_text", **ctx)
    assert full.texts[0].startswith("第（十二）项 全面推行政府网站集约化建设")
    assert "互联网协议第 6 版" in full.texts[0]


def test_deadline_when_the_item_has_none(env):
    reply = ask(env, "有时间要求吗", "ask_deadline", current_doc="ningxiang-2021", current_item=6)
    assert "没有规定具体的完成时限" in reply.texts[0]


@pytest.mark.parametrize("alias,canonical,items", [
    ("发改委", "市发改局", {2, 3, 9}),
    ("卫健局", "市卫生健康局", {6}),
    ("审批局", "市行政审批服务局", {8, 9, 13, 14, 15, 17, 18, 19}),
    ("网信办", "市委网信办", {12}),
])
def test_department_duties_by_alias(env, alias, canonical, items):
    reply = ask(env, f"{alias}负责哪些工作", "ask_department_duties", departments=[alias])
    assert reply.kind == "answer" and reply.departments == [canonical]
    assert {c["item"] for c in reply.citations} == items
    assert "（牵头）" in reply.texts[0]


def test_department_named_only_in_an_items_text(env):
    # no item lists 市人民政府办公室 among its units, but one item's text gives it its task:
    # that sentence answers, with the item cited
    kb = env[0].kb
    reply = ask(env, "市人民政府办公室负责什么", "ask_department_duties", departments=["市人民政府办公室"])
    assert reply.kind == "answer" and "市人民政府办公室" in reply.texts[0]
    cited = kb.item(reply.citations[0]["doc"], reply.citations[0]["item"])
    assert "市人民政府办公室" in cited.text and "市人民政府办公室" not in cited.lead_units + cited.responsible_units


def test_document_info(env):
    reply = ask(env, "这个文件是哪个单位发的", "ask_document_info")
    assert "宁乡市政务公开政务服务工作领导小组办公室" in reply.texts[0]
    assert "宁政务办发〔2021〕3号" in reply.texts[0]


def test_vague_question_asks_to_clarify_with_buttons(env):
    reply = ask(env, "信息发布")
    assert reply.kind in ("clarify", "answer")
    if reply.kind == "clarify":
        assert reply.citations == [] and len(reply.extra["candidates"]) >= 2
        assert any("/ask_policy" in b["payload"] and "item_ref" in b["payload"] for b in reply.buttons)


def test_button_payload_answers_the_chosen_item(env):
    answerer, _ = env
    reply = answerer.answer(Query("", [], "ask_policy", item_ref="ningxiang-2021#13"))
    assert reply.kind == "answer" and reply.citations[0]["item"] == 13
    reply = answerer.answer(Query("", [], "ask_full_text", item_ref="ningxiang-2021#13"))
    assert reply.texts[0].startswith("第（十三）项") and "五统一" in reply.texts[0]
    reply = answerer.answer(Query("", [], "ask_policy", item_ref="ningxiang-2021#99"))
    assert reply.kind == "fallback" and not reply.citations


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_input(env, text):
    reply = ask(env, text)
    assert reply.kind == "fallback" and "没有输入内容" in reply.texts[0]


def test_over_long_input_is_refused_politely(env):
    reply = ask(env, "政务公开" * 200)
    assert reply.kind == "fallback" and "500" in reply.texts[0]


@pytest.mark.parametrize("text", ["<script>alert(1)</script>财政预决算公开吗", "预决算😀公开吗？", "Budget 预决算 public?"])
def test_markup_emoji_and_mixed_language(env, text):
    reply = ask(env, text)
    assert reply.kind == "answer" and reply.citations[0]["item"] == 5


# ------------------------------------ periods and durations, on a document made up for this test
DURATIONS = """\
某县人民政府办公室

某政办发〔2024〕2号

某县2024年政务公开工作要点

一、重点工作

1.做好重大决策公开。重大行政决策草案向社会公开征求意见，征求意见期限一般不少于30日。决策作出后及时公开。
责任单位：县司法局

2.做好财政资金公示。民生资金分配结果在村务公开栏公示，公示期不少于7天。每季度更新一次资金台账。
责任单位：县财政局
"""


@pytest.fixture(scope="module")
def durations_env(tmp_path_factory):
    return answerer_for(tmp_path_factory, {"mou-2024.txt": DURATIONS})


def test_periods_and_durations_are_time_requirements(durations_env):
    answerer, _ = durations_env
    item = answerer.kb.item("mou-2024", 2)
    assert "不少于7天" in item.deadlines and "每季度" in item.deadlines
    assert "不少于30日" in answerer.kb.item("mou-2024", 1).deadlines


@pytest.mark.parametrize("text,item,expected", [
    ("公示期多久？", 2, "不少于7天"),
    ("资金台账多长时间更新", 2, "每季度"),
    ("征求意见期限多长？", 1, "不少于30日"),
])
def test_a_duration_follow_up_answers_with_the_sentence_asked_about(durations_env, text, item, expected):
    reply = ask(durations_env, text, "ask_deadline", current_doc="mou-2024", current_item=item)
    assert reply.kind == "answer" and reply.citations[0]["item"] == item
    assert expected in reply.texts[0]


def test_a_details_follow_up_takes_the_item_in_context(env):
    reply = ask(env, "具体要求是什么？", current_doc="ningxiang-2021", current_item=12)
    assert reply.kind == "answer" and reply.citations[0]["item"] == 12


def test_a_word_of_the_item_in_context_is_asked_of_that_item(env):
    # 领域 is written in several items; right after item 16, "which fields" means its fields
    reply = ask(env, "具体包括哪些领域", current_doc="ningxiang-2021", current_item=16)
    assert reply.citations[0]["item"] == 16 and "供水" in reply.texts[0]


def test_what_about_another_items_heading_is_a_new_topic(env):
    # item 8 also speaks of 政策…解读, but item 9's heading names "政策解读回应"
    reply = ask(env, "那政策解读回应呢", current_doc="ningxiang-2021", current_item=8)
    assert reply.citations[0]["item"] == 9
    reply = ask(env, "那反垄断执法呢", current_doc="ningxiang-2021", current_item=2)
    assert reply.citations[0]["item"] == 3


SPACED = """某县2026年政务公开工作要点
一、平台建设
（一）推进网站改造。2026 年 6 月底前，县政府门户网站完成 IPv6 改造，全县 18 个乡镇同步上线。【县数据局牵头】
（二）做好预算公开。部门预算批复后20日内公开。【县财政局牵头】
"""


def test_answers_quote_the_document_as_it_is_written(tmp_path_factory):
    answerer, seg = answerer_for(tmp_path_factory, {"spaced-2026.txt": SPACED})
    reply = answerer.answer(Query("网站IPv6改造什么时候完成", seg.words("网站IPv6改造什么时候完成"), "ask_deadline"))
    assert reply.citations[0]["item"] == 1
    # the parsed text drops the spaces next to CJK; the answer shows the sentence as published
    assert "2026 年 6 月底前，县政府门户网站完成 IPv6 改造，全县 18 个乡镇同步上线。" in reply.texts[0]
    item = answerer.kb.item("spaced-2026", 1)
    assert "2026年6月底前" in item.body  # (what retrieval and the parser work on)
    full = answerer.answer(Query("查看全文", seg.words("查看全文"), "ask_full_text",
                                 current_doc="spaced-2026", current_item=1))
    assert "全县 18 个乡镇同步上线" in full.texts[0]
    plain = answerer.answer(Query("预算多久公开", seg.words("预算多久公开"), "ask_policy"))
    assert "部门预算批复后20日内公开" in plain.texts[0]  # written without spaces, shown without


LISTS_AND_CLAUSES = """某县2026年政务公开工作要点
一、重点领域
（一）做好社会救助信息公开。按季度更新救助对象统计。重点公开低保、特困供养、临时救助、医疗救助等领域的政策和结果。救助资金发放结果在村务公开栏公示。【县民政局牵头】
（二）加强公开工作指导。县政府办公室要履行主管部门职责，加强统筹协调；对乡镇政务公开专区建设要担负起主体责任，按月调度。【县政务公开办牵头】
"""


@pytest.fixture(scope="module")
def lists_env(tmp_path_factory):
    return answerer_for(tmp_path_factory, {"mou-lists.txt": LISTS_AND_CLAUSES})


def test_a_which_ones_question_gets_the_sentence_that_lists_them(lists_env):
    answerer, seg = lists_env
    text = "社会救助信息公开重点是哪几块"
    reply = answerer.answer(Query(text, seg.words(text), "ask_policy"))
    assert reply.citations[0]["item"] == 1 and "低保、特困供养、临时救助" in reply.texts[0]


def test_the_body_that_bears_a_duty_is_the_subject_of_the_clause_before_it(lists_env):
    answerer, seg = lists_env
    text = "乡镇政务公开专区建设谁担负主体责任"
    reply = answerer.answer(Query(text, seg.words(text), "ask_responsible"))
    assert reply.citations[0]["item"] == 2
    assert "县政府办公室要履行主管部门职责" in reply.texts[0] and "担负起主体责任" in reply.texts[0]


LISTED_CONCERNS = """某县2026年政务公开工作要点
一、回应关切
（一）做好舆情回应。密切关注涉及物价上涨、停车收费、噪声扰民、物业纠纷等方面的舆情，及时回应社会关切。【县委宣传部牵头】
（二）做好预算公开。部门预算批复后20日内公开，停车场建设资金的使用情况一并公开。【县财政局牵头】
（三）做好招商引资信息公开。及时公开招商引资优惠政策和项目进展。【县商务局牵头】
"""


@pytest.fixture(scope="module")
def listed_env(tmp_path_factory):
    return answerer_for(tmp_path_factory, {"mou-concerns.txt": LISTED_CONCERNS})


@pytest.mark.parametrize("text", ["噪声扰民有什么新政策", "物业纠纷的处理标准是多少", "物价上涨了政府怎么补"])
def test_a_policy_question_about_a_topic_an_item_only_lists_is_out_of_scope(listed_env, text):
    # the item names noise and property disputes among the concerns it responds to; what the noise
    # policy is, is not in the document
    answerer, seg = listed_env
    reply = answerer.answer(Query(text, seg.words(text), "ask_policy"))
    assert reply.kind == "out_of_scope" and not reply.citations
    assert "12345" in reply.texts[0] and "列为" in reply.texts[0]


@pytest.mark.parametrize("text, item", [("噪声扰民的舆情政府会回应吗", 1), ("物业纠纷这类热点有人出来回应吗", 1),
                                        ("招商引资有什么优惠政策", 3)])
def test_asking_about_the_response_or_a_topic_of_the_item_itself_is_answered(listed_env, text, item):
    answerer, seg = listed_env
    reply = answerer.answer(Query(text, seg.words(text), "ask_policy"))
    assert reply.kind == "answer" and reply.citations[0]["item"] == item


def test_listed_only_needs_every_matched_topic_word_inside_a_list(listed_env):
    answerer, seg = listed_env
    index = answerer.index
    listed = index.search("停车收费", seg.words("停车收费"))[0]
    assert listed.item == 1 and index.listed_only(listed)
    # 停车 is also written outside a list (item 2's 停车场), 预算 is item 2's heading word
    assert not index.listed_only(index.search("预算公开", seg.words("预算公开"))[0])


SPACED_TERM = """某县2026年政务公开工作要点
一、重点工作
（一）深化执法公开。全面落实“随机抽查、结果公开”制度，按季度公示抽查结果。【县市场监管局牵头】
（二）做好预算公开。部门预算批复后20日内公开。【县财政局牵头】
"""


@pytest.mark.parametrize("text", ["随机抽查结果公开制度是什么", "随机抽查 结果公开 在哪看", "随机抽查，结果公开是啥要求"])
def test_a_term_written_without_its_inner_punctuation_names_its_item(tmp_path_factory, text):
    answerer, seg = answerer_for(tmp_path_factory, {"mou-terms.txt": SPACED_TERM})
    assert answerer.kb.with_terms_as_written(text).startswith("随机抽查、结果公开")
    reply = answerer.answer(Query(text, seg.words(text), "ask_policy"))
    assert reply.kind == "answer" and reply.citations[0]["item"] == 1


LEAD_AS_GUIDE = """某县2026年政务公开工作要点
一、重点工作
（一）加强舆论引导。做好网站引导，引导社会预期。【县委宣传部牵头】
（二）推进网站集约。网站要集约，关停空壳网站。【县数据资源中心牵头】
"""


def test_an_english_who_leads_question_does_not_look_for_the_word_lead(tmp_path_factory):
    # CC-CEDICT's "to lead" is 引导 (to guide): in "Who leads …?" it says what is asked, not about what
    answerer, seg = answerer_for(tmp_path_factory, {"mou-lead.txt": LEAD_AS_GUIDE})
    text = "Who leads the websites?"
    reply = answerer.answer(Query(text, seg.words(text), "ask_responsible"))
    assert reply.kind == "answer" and reply.citations[0]["item"] == 2
    assert "县数据资源中心" in reply.texts[0]


LEADS = """某县2026年政务公开工作要点
一、重点工作
（一）做好规划公开。及时公开国土空间规划。【县自然资源局牵头】
（二）做好预算公开。部门预算批复后20日内公开。【县财政局牵头】
（三）做好地名信息公开。公开地名命名更名信息。【县自然资源局牵头】
"""


@pytest.mark.parametrize("text", ["第一项牵头的单位还负责哪些事", "第（一）项的牵头单位都管什么"])
def test_the_lead_unit_of_an_item_named_by_its_place_and_its_duties(tmp_path_factory, text):
    answerer, seg = answerer_for(tmp_path_factory, {"mou-leads.txt": LEADS})
    reply = answerer.answer(Query(text, seg.words(text), "ask_department_duties"))
    assert reply.kind == "answer" and {c["item"] for c in reply.citations} == {1, 3}
    assert "县自然资源局" in reply.texts[0]
    # the item itself, asked by its place, is still the item
    plain = answerer.answer(Query("第一项讲什么", seg.words("第一项讲什么"), "ask_policy"))
    assert [c["item"] for c in plain.citations] == [1]


@pytest.mark.parametrize("text", ["生育津贴是按什么标准算的", "家电以旧换新的补贴标准是怎样的", "契税优惠政策是怎么规定的"])
def test_what_a_policy_no_document_mentions_says_is_out_of_scope(listed_env, text):
    answerer, seg = listed_env
    reply = answerer.answer(Query(text, seg.words(text), "ask_policy"))
    assert reply.kind in ("out_of_scope", "fallback") and not reply.citations
    if reply.kind == "out_of_scope":  # not "the documents list it": they don't mention it
        assert "没有这项政策" in reply.texts[0] and "列为" not in reply.texts[0]


@pytest.mark.parametrize("text, item", [("预算公开按什么标准", 2), ("招商引资优惠政策是怎么规定的", 3),
                                        ("生育津贴的标准会公开吗", None)])
def test_a_standard_the_documents_cover_or_asked_whether_published_is_not_refused_as_unknown(listed_env, text, item):
    answerer, seg = listed_env
    reply = answerer.answer(Query(text, seg.words(text), "ask_policy"))
    assert reply.kind != "out_of_scope"
    if item:
        assert reply.kind == "answer" and reply.citations[0]["item"] == item


@pytest.mark.parametrize("text", ["Is the service hall open on Saturdays?", "Can I pay my property tax on the website?",
                                  "how to move my hukou to the city", "Any good restaurants near the government building?"])
def test_english_errands_and_recommendations_are_not_policy_answers(env, text):
    reply = ask(env, text)
    assert reply.kind != "answer" and not reply.citations


# A detail stated by one sentence of another item than the one whose heading the question echoes.
DETAIL = """\
某县人民政府办公室

某政办发〔2025〕4号

某县2025年政务公开工作要点

一、重点工作

1.推进村级事务公开标准化规范化。编制村级事务公开目录，统一公开栏的样式和更新频次，做到标准化规范化。
责任单位：县民政局

2.加强业务培训。县政府办公室要履行主管部门职责；对村级事务公开标准化规范化工作，组建工作专班推动落实。每年举办两期业务培训班。
责任单位：县政府办公室
"""


@pytest.fixture(scope="module")
def detail_env(tmp_path_factory):
    return answerer_for(tmp_path_factory, {"mou-2025.txt": DETAIL})


def test_the_item_whose_sentence_has_every_word_of_the_question_comes_first(detail_env):
    answerer, seg = detail_env
    text = "对村级事务公开标准化规范化，要组建什么"
    hits = answerer.index.search(text, question_words(seg, text))
    assert hits[0].item == 2, hits
    # a question of the heading's own words alone is still the heading's item
    text = "村级事务公开标准化规范化怎么推进"
    assert answerer.index.search(text, question_words(seg, text))[0].item == 1


EPIDEMIC = """\
某县人民政府办公室

某政办发〔2025〕5号

某县2025年政务公开工作要点

一、重点工作

1.做好疫情防控信息公开。继续做好常态化疫情防控信息发布工作，及时更新疫情防控措施。加大药品集中采购等方面信息公开力度。
责任单位：县卫生健康局

2.做好财政信息公开。公开财政预算决算，细化到功能分类。
责任单位：县财政局
"""


@pytest.fixture(scope="module")
def epidemic_env(tmp_path_factory):
    return answerer_for(tmp_path_factory, {"mou-2025e.txt": EPIDEMIC})


def test_english_detail_question_gets_the_sentence_of_that_detail(epidemic_env):
    # one English word glossed by several overlapping Chinese words (epidemic → 疫情, 疫情防控…)
    # counts once: the sentence with the asked detail (procurement → 采购) is the answer
    answerer, seg = epidemic_env
    text = "For the epidemic item, what procurement information will be disclosed more?"
    reply = answerer.answer(Query(text, question_words(seg, text), "ask_policy"))
    assert reply.kind == "answer" and reply.citations[0]["item"] == 1
    assert "集中采购" in reply.texts[0]


DETAIL_INSIDE_WORDS = """某县2026年政务公开工作要点
一、重点领域
（一）做好疫情防控信息公开。依法做好常态化疫情防控信息发布工作，更新发布防控形式和应对处置措施。立足预防预警，做好爱国卫生运动、全民健身行动等相关工作的信息公开，开展健康科普宣传。【县卫健局牵头】
（二）做好财政信息公开。按规定公开预算决算。【县财政局牵头】
"""


@pytest.fixture(scope="module")
def heading_env(tmp_path_factory):
    return answerer_for(tmp_path_factory, {"mou-detail.txt": DETAIL_INSIDE_WORDS})


def test_the_sentence_with_the_detail_asked_comes_before_the_one_restating_the_heading(heading_env, monkeypatch):
    # 疫情防控/信息公开 name the item (its heading), "运动" which of its sentences is asked
    from bot.retrieval import search

    answerer, seg = heading_env
    text = "疫情防控信息公开里要做哪些运动的信息公开"
    reply = answerer.answer(Query(text, seg.words(text), "ask_policy"))
    assert reply.citations[0]["item"] == 1 and "爱国卫生运动" in reply.texts[0], reply.texts
    monkeypatch.setattr(search, "SENTENCE_DETAIL", False)
    before = answerer.answer(Query(text, seg.words(text), "ask_policy"))
    assert "爱国卫生运动" not in before.texts[0]  # the heading's words alone chose the other sentence


CONTEXT_DOC = """某县2026年政务公开工作要点
一、重点领域
（一）做好政府网站专项检查。对政府网站开展专项检查，未按要求完成整改的，予以通报批评。【县数据中心牵头】
（二）做好基层公开目录编制。编制完成各领域基层政务公开事项目录，未按要求完成编制的限期补齐。【县政务服务局牵头】
（三）加强业务培训。每年组织政务公开业务培训，提高工作人员能力。【县政府办公室牵头】
"""


@pytest.fixture(scope="module")
def context_env(tmp_path_factory):
    return answerer_for(tmp_path_factory, {"mou-2026.txt": CONTEXT_DOC})


def _ask_after(env, text, item):
    answerer, seg = env
    return answerer.answer(Query(text, question_words(seg, text), "ask_policy",
                                 current_doc="mou-2026" if item else None, current_item=item))


@pytest.mark.parametrize("item", [1, 2])
def test_a_follow_up_two_items_answer_alike_is_asked_of_the_item_in_context(context_env, item):
    """"没按要求完成会怎样" fits items 1 and 2 alike: alone it is a choice, right after one of them
    it is asked of that one."""
    assert _ask_after(context_env, "没按要求完成会怎样", None).kind == "clarify"
    reply = _ask_after(context_env, "没按要求完成会怎样", item)
    assert reply.kind == "answer" and reply.citations[0]["item"] == item


@pytest.mark.parametrize("text, item", [("没按要求完成的会通报吗", 1), ("领域目录编完了吗", 2)])
def test_a_follow_up_another_item_answers_better_leaves_the_context(context_env, text, item):
    for current in (1, 2):
        reply = _ask_after(context_env, text, current)
        assert reply.kind == "answer" and reply.citations[0]["item"] == item


def test_the_kind_asked_for_after_what_picks_the_item_that_writes_it(env):
    # 班 (the one character asked for) is written by one item (工作推进专班); the heading-rich item
    # the other words reach as well must not answer
    answerer, seg = env
    text = "推进基层标准化规范化，市里要组建什么班？"
    assert answerer.index.asked_head(text, seg.words(text)) == "班"
    first = answerer.index.search(text, seg.words(text), [], top_k=3)[0]
    assert "专班" in answerer.kb.item(first.doc, first.item).text
    # a character many items write, or none after 什么, changes nothing
    for other in ("推进基层标准化规范化，市里要做什么？", "推进基层标准化规范化要达到什么样"):
        assert answerer.index.asked_head(other, seg.words(other)) is None
