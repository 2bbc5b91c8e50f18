"""The citizen's own phrasing, class by class (issue 11), on the real knowledge base and on
documents that exist only in this test (so no rule can name an item of 宁乡 2021).

Texts here are written for these tests; the held-out evaluation questions
(tests/data/heldout.jsonl) are never used in tests, rules or thresholds.
"""
import re

import pytest

from actions.knowledge import answerer as shared_answerer
from bot.answering.answerer import CHINESE_NOTE, Query
from bot.nlp.normalize import normalize_text, scoring_text, strip_markup, to_simplified
from bot.nlp.segmenter import default_segmenter, question_words
from bot.nlu.retrieval_arbiter import ENGLISH_COMPLAINT_RE, HUMAN_REQUEST_RE, SOFT_HUMAN_REQUEST_RE, policy_strength
from bot.retrieval.references import doc_number_keys, items_naming, title_matches
from tests.conftest import answerer_for


@pytest.fixture(scope="module")
def env():
    return shared_answerer(), default_segmenter()


def ask(env, text, intent="ask_policy", **kw):
    answerer, seg = env
    return answerer.answer(Query(text, question_words(seg, text), intent, **kw))


def first_item(reply):
    return reply.citations[0]["item"] if reply.kind == "answer" and reply.citations else None


# --------------------------------------------------------------- normalisation (one module)
def test_traditional_becomes_simplified():
    assert to_simplified("財政預算決算資訊會公開嗎") == "财政预算决算信息会公开吗"  # Taiwan phrase table too
    assert to_simplified("财政预算决算") == "财政预算决算"  # Simplified text is left alone
    # the Taiwan table's 文件 → 文档 (a computer file) is not what an official document means
    assert to_simplified("規範性文件還有效嗎") == "规范性文件还有效吗"
    assert to_simplified("紅頭文件的檔案在哪") == "红头文件的文件在哪"  # 檔案 is still read as 文件
    assert normalize_text("政府網站甚麼時候支援IPv6") == to_simplified("政府網站甚麼時候支援IPv6")


def test_full_width_and_spaces():
    assert normalize_text("ＩＰｖ６　改造  １２３４５") == "IPv6 改造 12345"


def test_markup_and_entities_are_removed():
    assert strip_markup("<p>政府&nbsp;债务<br/>公开</p>").split() == ["政府", "债务", "公开"]
    assert normalize_text("<script>alert(3)</script>预决算") == "预决算"
    assert normalize_text("&lt;b&gt;预决算&lt;/b&gt;") == "预决算"
    assert normalize_text("1 < 2 且 3 > 2") == "1 < 2 且 3 > 2"  # a bare comparison is not markup


def test_fillers_are_removed_for_scoring_only():
    long = "你好，我想问一下，就是我们公司想知道政府债务的情况在哪里能看到，谢谢您"
    assert scoring_text(long) == "政府债务的情况在哪里能看到"
    assert normalize_text(long).startswith("你好")  # the text itself keeps every word
    assert scoring_text("你好，谢谢") == ""  # only politeness: nothing left to score


# ------------------------------------------------------------------ references (any bracket)
@pytest.mark.parametrize("written", ["湘财税〔2021〕3号", "湘财税[2021]3号", "湘财税（2021）3号", "湘财税 (2021) 3 号"])
def test_document_numbers_in_any_bracket_style(written):
    assert doc_number_keys(written) == {("湘财税", 2021, 3)}


def test_title_matches_in_part_without_marks():
    assert title_matches("《政府信息公开信息处理费管理办法》", "信息处理费管理办法讲的什么")
    assert not title_matches("《政府信息公开信息处理费管理办法》", "政府信息公开")


# ----------------------------------------------------------------- classes on the real base
@pytest.mark.parametrize("text,item", [
    ("財政預決算資訊在哪裡可以查到", 5),            # 繁體
    ("政府網站甚麼時候要支援IPv6", 12),
    ("Where can I see the government budget and final accounts?", 5),   # English
    ("Is the market access negative list published?", 3),
    ("IPv6 改造什么时候完成", 12),                    # mixed
])
def test_traditional_and_english(env, text, item):
    reply = ask(env, text)
    assert first_item(reply) == item, (reply.kind, reply.citations)


def test_english_answer_is_in_chinese_and_says_so(env):
    reply = ask(env, "When will the government websites support IPv6?")
    assert first_item(reply) == 12
    assert reply.texts[1] == CHINESE_NOTE and "互联网协议第 6 版" in reply.texts[0]  # the item's own sentence


@pytest.mark.parametrize("text,item", [
    ("您好，打扰一下，我是本地一家企业的，想咨询一下市场准入负面清单的信息会不会公开，麻烦您了，谢谢", 3),
    ("老师你好，请问一下就是说政府的债务情况在哪里能看到呢？谢谢啦", 5),
])
def test_long_polite_messages(env, text, item):
    assert first_item(ask(env, text)) == item


@pytest.mark.parametrize("text,item", [
    ("依申请公开收费咋弄", 15),
    ("负面清单是啥", 3),
    ("政府网站集约化是怎么回事", 12),
])
def test_colloquial_verbs(env, text, item):
    assert first_item(ask(env, text)) == item


def test_question_by_referenced_document_number_or_title(env):
    reply = ask(env, "湘财税[2021]3号文件说的什么")
    assert first_item(reply) == 15
    assert "湘财税〔2021〕3号" in "".join(reply.texts)  # answered from the sentence that cites it
    assert first_item(ask(env, "信息处理费管理办法是关于什么的")) == 15


def test_own_document_number_answers_document_facts(env):
    reply = ask(env, "宁政务办发(2021)3号是什么时候印发的")
    assert reply.kind == "answer" and "2021年8月3日" in reply.texts[0]


@pytest.mark.parametrize("text", ["文件是几月几号下发的", "这份要点发给了哪些单位"])
def test_questions_about_the_document_itself(env, text):
    reply = ask(env, text, "nlu_fallback")
    assert reply.kind == "answer" and not reply.citations[0].get("item")
    assert "2021年8月3日" in reply.texts[0] and "市直各单位" in reply.texts[0]


def test_out_of_scope_stays_out(env):
    for text in ("社保卡丢了怎么挂失", "明天长沙会下雨吗", "公积金怎么提取"):
        reply = ask(env, text, "out_of_scope")
        assert reply.kind not in ("answer",) and not reply.citations, text


def test_clarify_offers_the_right_item_among_its_buttons(env):
    reply = ask(env, "公开的情况")
    if reply.kind == "clarify":
        assert 2 <= len(reply.extra["candidates"]) <= 3


# --------------------------------------------------------- arbitration (NLU's last step)
def test_arbitration_turns_a_policy_question_back_to_ask_policy(env):
    answerer, seg = env
    text = scoring_text("你好，我想问一下就是我们单位想了解财政预决算在哪里公开，谢谢")
    strength = policy_strength(answerer.kb, answerer.index, text, seg.words(text))
    assert strength and strength["item"] == 5 and strength["by"] == "retrieval"
    text = "湘财税〔2021〕3号"
    assert policy_strength(answerer.kb, answerer.index, text, seg.words(text))["by"] == "reference"


@pytest.mark.parametrize("text", ["社保卡挂失", "明天天气怎么样", "你好", "推荐一部电影"])
def test_arbitration_leaves_other_services_alone(env, text):
    answerer, seg = env
    t = scoring_text(text)
    assert policy_strength(answerer.kb, answerer.index, t, seg.words(t)) is None


# ------------------------------------------------- another county's document, made up here
OTHER = """\
某某县人民政府办公室

某政办发〔2023〕9号

关于印发《某某县2023年政务公开工作要点》的通知

各乡镇人民政府，县直各单位：

现将《某某县2023年政务公开工作要点》印发给你们，请认真贯彻执行。

某某县人民政府办公室

2023年3月1日

某某县2023年政务公开工作要点

坚持以群众需求为导向，推动政务公开提质增效，为建设人民满意的法治政府提供有力支撑。

一、重点领域

1.做好农村饮水安全信息公开。依据《某某县农村供水工程管理办法》（某政发〔2022〕15号），定期公开集中供水工程水质检测结果。
责任单位：县水利局

2.做好城乡垃圾分类信息公开。公开生活垃圾分类收运处置设施的建设进度和运行情况。
责任单位：县城管局、县住建局

二、保障措施

3.加强业务培训。每年组织政务公开业务培训不少于两次。
责任单位：县政府办
"""


@pytest.fixture(scope="module")
def other_env(tmp_path_factory):
    return answerer_for(tmp_path_factory, {"mou-2023.txt": OTHER})


def test_other_document_parsed_with_its_layout(other_env):
    answerer, _ = other_env
    doc = answerer.kb.documents[0]
    assert [i.number for i in doc.items] == [1, 2, 3]
    assert any("某政发〔2022〕15号" in r for r in doc.item(1).references)


@pytest.mark.parametrize("text,item", [
    ("農村飲水水質檢測結果公開嗎", 1),                      # 繁體
    ("你好，想问一下垃圾分类设施建到哪一步了在哪能看到，谢谢", 2),  # polite
    ("某政发[2022]15号讲的啥", 1),                            # reference, other bracket style
    ("垃圾分类的信息咋查", 2),                                # colloquial
])
def test_other_document_phrasing_classes(other_env, text, item):
    answerer, seg = other_env
    reply = answerer.answer(Query(text, question_words(seg, text), "ask_policy"))
    assert reply.kind == "answer" and reply.citations[0]["item"] == item, (reply.kind, reply.citations)


def test_other_document_reference_found_by_name(other_env):
    answerer, _ = other_env
    named = items_naming(answerer.kb, "某某县农村供水工程管理办法是关于什么的")
    assert named and named[0][1].number == 1


# ------------------------------------------------------------ English via CC-CEDICT
def test_english_bridge_reads_the_dictionary_backwards():
    from bot.retrieval.english import build_english_map, english_words, lemma

    assert lemma("published") == "publish" and lemma("policies") == "policy"
    assert english_words("Where is the inter-provincial service guide?") == [
        "inter-provincial", "inter", "provincial", "interprovincial", lemma("service"), lemma("guide")]
    bridge = build_english_map({"跨省", "制造业", "预算", "天气预报员"})
    assert bridge["interprovincial"] == ["跨省"] and "制造业" in bridge[lemma("manufacturing")]
    assert "预算" in bridge["budget"]
    assert all(v for v in bridge.values())  # only words of the given vocabulary, never empty


@pytest.mark.parametrize("text,item", [
    ("Which department publishes the interprovincial service guide?", 8),
    ("Are typical cases of open government shown to the public?", 18),
])
def test_english_topics_without_a_hand_typed_entry(env, text, item):
    reply = ask(env, text)
    assert reply.kind in ("answer", "clarify")
    items = [c["item"] for c in reply.citations] if reply.kind == "answer" else \
        [c["item"] for c in reply.extra["candidates"]]
    assert item in items[:3]


@pytest.mark.parametrize("text", ["How do I renew my passport?", "What's the weather in Changsha tomorrow?",
                                  "What is the minimum wage in Hunan?", "Is the hospital open on Sunday?",
                                  "How much is a train ticket to Changsha?",
                                  "How much is the childcare allowance each month?",
                                  "What is the pension amount under the new rules?"])
def test_english_questions_about_other_services_are_not_answered(env, text):
    answerer, seg = env
    t = scoring_text(text)
    assert policy_strength(answerer.kb, answerer.index, t, question_words(seg, text)) is None


# ------------------------------------------- the document's own sentences outside the items
def test_preamble_and_notice_are_answered_from_the_document(env):
    reply = ask(env, "这份要点的指导思想是什么")
    assert reply.kind == "answer" and reply.citations[0]["item"] is None
    assert "习近平新时代中国特色社会主义思想" in reply.texts[0] and len(reply.texts[0]) <= 300
    reply = ask(env, "要点印发前是经过谁同意的")
    assert reply.kind == "answer" and "领导小组同意" in reply.texts[0]
    reply = ask(env, "通知的全称叫什么", "nlu_fallback")
    assert reply.kind == "answer" and "关于印发《宁乡市2021年政务公开工作要点》的通知" in reply.texts[0]


def test_other_document_preamble(other_env):
    answerer, seg = other_env
    text = "今年政务公开以什么为导向"
    reply = answerer.answer(Query(text, question_words(seg, text), "ask_policy"))
    assert reply.kind == "answer" and "群众需求" in reply.texts[0] and reply.citations[0]["item"] is None


def test_a_question_of_common_words_only_asks_which_item(env):
    reply = ask(env, "信息公开")
    assert reply.kind == "clarify" and len(reply.extra["candidates"]) >= 2


@pytest.mark.parametrize("text", ["居住证怎么申请", "护照怎么申请", "驾照怎么公开换证"])
def test_a_subject_no_item_knows_is_not_answered_by_its_verb(env, text):
    reply = ask(env, text)
    assert reply.kind != "answer", (text, reply.citations)


# --------------------------------------------- requests for a person, in the citizen's words
@pytest.mark.parametrize("text", [
    "您好，麻烦您帮我转给负责的工作人员处理一下，谢谢",
    "能不能请一位工作人员跟我电话沟通",
    "我想找人工客服",
    "有没有真人，让真人来回答",
    # colloquial: 喊/叫 a person, "not the machine", a phone call with staff
    "快叫个客服过来",
    "喊个活人出来说话",
    "我不想跟机器人聊了",
    "麻烦帮我跟工作人员通个电话",
    "能不能帮我联系一下县财政局的工作人员",   # the office named between the request and the person
])
def test_requests_for_a_person_in_long_polite_frames(text):
    assert HUMAN_REQUEST_RE.search(text)


@pytest.mark.parametrize("text", ["政务公开工作人员要参加哪些培训", "请问工作人员的培训有什么要求", "人工智能的政策",
                                  "要求各单位的工作人员参加培训", "安排基层的工作人员学习条例"])
def test_questions_mentioning_staff_are_not_requests(text):
    assert not HUMAN_REQUEST_RE.search(text)


def test_english_complaints():
    assert ENGLISH_COMPLAINT_RE.search("I need to lodge a complaint about the tax office")
    assert ENGLISH_COMPLAINT_RE.search("someone asked me for a bribe")
    assert not ENGLISH_COMPLAINT_RE.search("Will the annual report on government information be published?")


# ------------------------------------- department names in English, read from CC-CEDICT
@pytest.mark.parametrize("text,department", [
    ("What are the Finance Bureau's tasks in this plan?", "市财政局"),
    ("Which work is the justice bureau in charge of?", "市司法局"),
])
def test_english_department_names(env, text, department):
    reply = ask(env, text)
    assert reply.kind == "answer" and department in reply.texts[0] and CHINESE_NOTE in reply.texts


def test_english_department_names_of_another_county(other_env):
    answerer, _ = other_env
    assert answerer.index.departments_in_english("What does the Water Resources Bureau do?") == ["县水利局"]
    assert answerer.index.departments_in_english("Will the water quality be published?") == []


# ------------------------------------------ words no item uses, weighed by general frequency
def test_general_word_weights_order_everyday_and_rare_words(env):
    general = env[0].index.general
    assert general, "build/index.json has no general word weights (jieba's dictionary missing?)"
    assert general.weight("大家") < 0.5 < general.weight("垄断") <= general.weight("居住证") == 1.0
    assert general.weight("好的好的好的") == 0.6  # not a dictionary word


def test_everyday_words_around_a_covered_topic_do_not_drown_it(env):
    reply = ask(env, "大家都想知道，每年的财政预算以后在哪里能看到")
    assert first_item(reply) == 5, (reply.kind, reply.citations)


# ------------------------------------------ small talk that asks something is a question
def _arbitrated(text: str, intent: str, confidence: float) -> dict:
    from rasa.shared.nlu.training_data.message import Message

    from bot.nlu.retrieval_arbiter import RetrievalArbiter

    scoring = scoring_text(normalize_text(text))
    message = Message(data={"text": normalize_text(text), "text_scoring": scoring,
                            "tokens_zh": default_segmenter().words(scoring) if scoring else [],
                            "intent": {"name": intent, "confidence": confidence},
                            "intent_ranking": [{"name": intent, "confidence": confidence}]})
    RetrievalArbiter()._arbitrate(message)
    return message.get("intent")


@pytest.mark.parametrize("text", ["那个表格在哪里下载", "上次说的那个东西怎么弄", "那个证明去哪里开？"])
def test_an_unsure_greeting_that_asks_something_is_not_small_talk(text):
    assert _arbitrated(text, "greet", 0.27)["name"] == "nlu_fallback"
    assert _arbitrated(text, "thank", 0.4)["name"] == "nlu_fallback"


@pytest.mark.parametrize("text, intent, confidence", [
    ("你真棒", "thank", 0.4),              # no question in it
    ("中午好", "greet", 0.45),
    ("你好吗", "greet", 0.95),              # the classifier is sure
    ("请问在吗", "greet", 0.9),
])
def test_small_talk_keeps_its_intent(text, intent, confidence):
    assert _arbitrated(text, intent, confidence)["name"] == intent


@pytest.mark.parametrize("text", ["以前的计划能在网上查吗", "政府网站能用新的地址访问吗"])
def test_can_questions_naming_a_document_subject_are_not_about_the_assistant(text):
    assert _arbitrated(text, "ask_capabilities", 0.45)["name"] in ("nlu_fallback", "ask_policy")


@pytest.mark.parametrize("text, confidence", [("可以帮我做什么", 0.7), ("你能查计划吗", 0.7), ("能查什么", 0.97)])
def test_questions_to_the_assistant_stay_about_the_assistant(text, confidence):
    assert _arbitrated(text, "ask_capabilities", confidence)["name"] == "ask_capabilities"


# ------------------------------------ "which body" asked about a detail the item's text names
def test_which_body_for_a_detail_answers_with_the_sentence_naming_it(env):
    reply = ask(env, "文件库是在哪个单位统一部署下建设的", intent="ask_responsible")
    assert reply.kind == "answer" and "长沙市数据资源管理局" in reply.texts[0]
    assert "牵头" in reply.texts[0]            # the item's units are still named


def test_which_department_of_an_item_stays_the_units_sentence(env):
    reply = ask(env, "财政预决算公开由哪个部门负责", intent="ask_responsible")
    assert reply.kind == "answer" and reply.texts[0].startswith("“做好财政信息公开”")


@pytest.mark.parametrize("text, department", [
    ("Which tasks does the cyberspace office have?", "市委网信办"),        # 市委 is not in the English name
    ("What is the optimization office in charge of?", "市优化办"),         # 办 glossed "handle": still an office
])
def test_english_names_without_the_place_and_with_a_body_character(env, text, department):
    answerer, _ = env
    assert answerer.index.departments_in_english(text) == [department]


@pytest.mark.parametrize("text", ["What does the office do?", "What does the administration do?", "What does China do?",
                                  # a name's words far apart: the question's frame and its topic
                                  "Which bureau is in charge of publishing the government's budget?",
                                  "Which department should update the government website?"])
def test_an_english_body_word_alone_names_no_department(env, text):
    answerer, _ = env
    assert answerer.index.departments_in_english(text) == []


def test_english_word_forms_meet_their_dictionary_form():
    from bot.retrieval.english import lemma

    for asked, gloss in [("disclosed", "disclose"), ("phones", "phone"), ("websites", "website"),
                         ("released", "release"), ("policies", "policy"), ("processing", "process")]:
        assert lemma(asked) == lemma(gloss), (asked, gloss)
    assert lemma("business") != lemma("busy") and lemma("status") == "status"


@pytest.mark.parametrize("text", ["医保局在里头搞些么子名堂", "司法局在这里头干啥"])
def test_dialect_duties_questions(env, text):
    reply = ask(env, text)
    assert reply.kind == "answer" and "牵头" in reply.texts[0] and "项" in reply.texts[0], reply.texts


# ------------------------------------------- a personal errand is not what the documents answer
@pytest.mark.parametrize("text", ["个体户的医保怎么自己缴", "身份证丢了去哪里补办", "How can I renew my driving licence?"])
def test_errands_get_the_service_hotline_not_an_item(env, text):
    reply = ask(env, text)
    assert reply.kind == "fallback" and not reply.citations and "12345" in reply.texts[0]


@pytest.mark.parametrize("text, item", [("依申请公开怎么申请", 15), ("社保信息会公开吗", 4)])
def test_questions_about_published_information_are_still_answered(env, text, item):
    assert first_item(ask(env, text)) == item


def test_an_item_far_ahead_of_the_rest_is_answered_not_offered(env):
    """Modest coverage (everyday words around the topic) but one item ranked far ahead."""
    reply = ask(env, "政务公开想搞点创新，上面有什么讲究")
    assert reply.kind == "answer" and first_item(reply) == 18


@pytest.mark.parametrize("text", ["我的公积金缴费记录在哪里打印",
                                  # one's own record or case looked up through a channel the documents name
                                  "政府网站上能不能查到我自己的医保账户余额", "我在网上提交的营业执照申请，审批进度去哪看",
                                  "网上申请的签证，办理进度怎么查询"])
def test_personal_records_are_errands(env, text):
    reply = ask(env, text)
    assert reply.kind == "fallback" and "12345" in reply.texts[0] and not reply.citations


@pytest.mark.parametrize("text", ["想申请廉租房，要符合哪些条件",  # whether one qualifies
                                  "我的营业执照申请怎么还没批下来",  # one's own case, still waiting
                                  "政务服务网登录密码忘记了怎么办",  # one's own account, even of a government site
                                  "社保卡余额去哪查", "我想发布一下自己的二手房信息，政府网站可以吗",  # one's own notice
                                  "税务局在哪条街，坐几路车能到", "流感疫苗哪家医院可以打",
                                  "医保断缴了怎么办", "违章罚单去哪里处理", "手机上怎么挂号", "核酸采样点在哪"])
def test_errands_of_ones_own_are_not_answered_from_an_item(env, text):
    reply = ask(env, text)
    assert reply.kind == "fallback" and not reply.citations and "12345" in reply.texts[0], (reply.kind, reply.citations)


@pytest.mark.parametrize("text, item", [("政府债务余额在哪里能查到", 5), ("依申请公开需要满足什么条件", 15)])
def test_the_same_words_about_what_is_published_are_still_answered(env, text, item):
    assert item in [c["item"] for c in ask(env, text).citations]


@pytest.mark.parametrize("text", ["县中医院在什么位置", "车管所的地址是多少", "市民服务中心怎么走", "不动产登记大厅在哪里"])
def test_where_a_building_is_is_an_errand(env, text):
    reply = ask(env, text)
    assert reply.kind == "fallback" and not reply.citations and "12345" in reply.texts[0]


@pytest.mark.parametrize("text, item", [("政务公开专栏在哪", 13), ("规划公开专栏在哪里", 2)])
def test_where_a_published_column_is_is_still_answered(env, text, item):
    reply = ask(env, text)
    assert reply.kind == "answer" and item in [c["item"] for c in reply.citations]


@pytest.mark.parametrize("text", ["新市民的租房补贴怎么申请", "高层次人才安家费去哪里申领"])
def test_how_to_apply_for_a_benefit_no_document_mentions_is_not_answered(env, text):
    reply = ask(env, text)
    assert reply.kind in ("fallback", "out_of_scope") and not reply.citations


@pytest.mark.parametrize("text", ["办事前想先了解清楚流程，办的时候能看进度，政府有这种服务吗",
                                  "本市今年办的民生实事，进度会向群众公开吗"])
def test_progress_of_public_work_is_not_a_personal_errand(env, text):
    reply = ask(env, text)
    assert reply.kind in ("answer", "clarify"), reply.texts


def test_how_long_an_errand_takes_is_an_errand(env):
    reply = ask(env, "不动产证办下来要多长时间", intent="ask_deadline")
    assert reply.kind == "fallback" and not reply.citations


def test_frequency_words_do_not_pick_the_item(env):
    """多久/一次 say how often, not which item: the subject (债务) decides."""
    assert first_item(ask(env, "政府债务多久公开一次", intent="ask_deadline")) == 5


@pytest.mark.parametrize("follow_up", ["然后呢", "还有吗", "能说具体点吗", "好的，详细说说", "Tell me more", "anything else?"])
def test_asking_for_more_gives_the_full_text_of_the_item_in_context(env, follow_up):
    first = ask(env, "政务新媒体清理整合的要求")
    ctx = dict(current_doc=first.citations[0]["doc"], current_item=first.citations[0]["item"])
    reply = ask(env, follow_up, "ask_full_text", **ctx)
    item = env[0].kb.item(ctx["current_doc"], ctx["current_item"])
    assert first_item(reply) == item.number and item.body.replace(" ", "") in reply.texts[0].replace(" ", "")
    # without anything answered before, there is nothing to say more about
    assert ask(env, follow_up, "ask_full_text").kind == "fallback"


@pytest.mark.parametrize("text", ["然后呢", "还有吗", "能说具体点吗", "Tell me more"])
def test_the_arbiter_routes_asking_for_more_to_the_full_text(text):
    from bot.answering.answerer import MORE_RE

    assert MORE_RE.search(text)
    assert not MORE_RE.search("还有哪些部门负责财政预算公开")  # a question of its own


# ------------------------------ an unsure "complaint" that complains of nothing is a question
@pytest.mark.parametrize("text", ["图书馆周日开门吗", "档案馆几点下班"])
def test_an_unsure_complaint_naming_no_wrong_is_not_handed_to_a_person(text):
    assert _arbitrated(text, "complain", 0.4)["name"] == "nlu_fallback"


def test_a_sure_complaint_word_keeps_the_complaint():
    assert _arbitrated("窗口工作人员态度很差", "complain", 0.4)["name"] == "complain"
    assert _arbitrated("我要檢舉亂收費", "complain", 0.9)["name"] == "complain"


def test_a_complaint_without_a_complaint_word_yields_to_a_clear_item():
    # "上报" of the item's typical cases is not 举报
    arbitrated = _arbitrated("典型的做法和案例需要上报吗", "complain", 0.8)
    assert arbitrated["name"] == "ask_policy"


# --------------------- one's own entitlement or case is an errand, not what is published about it
@pytest.mark.parametrize("text", ["请问买电动自行车有没有补贴", "住院了医保能报多少", "路灯坏了报修后多久会有人来处理"])
def test_an_entitlement_or_own_case_is_not_answered_from_an_item(env, text):
    reply = ask(env, text)
    assert reply.kind != "answer" and not reply.citations, (text, reply.citations)


def test_the_same_subject_asked_as_disclosure_is_answered(env):
    reply = ask(env, "惠民惠农补贴发了多少会公示吗")
    assert reply.kind == "answer" and reply.citations[0]["item"] == 5


def test_an_english_question_the_classifier_refuses_is_asked_when_words_and_meaning_agree():
    # the classifier has hardly seen English: "out of scope" at 0.99 says little. The meaning's clear
    # favourite, also reached by the question's words through the dictionary (random → 随机), is asked
    arbitrated = _arbitrated("Tell me about the 'double random, one public' inspections.", "out_of_scope", 0.99)
    assert arbitrated["name"] == "ask_policy"
    for text in ["What is the minimum wage in Hunan?", "How do I renew my passport?",
                 "What's the weather like in Changsha tomorrow?"]:
        assert _arbitrated(text, "out_of_scope", 0.99)["name"] == "out_of_scope", text


def test_an_english_question_about_publishing_a_covered_topic_is_asked():
    # "publish"/"disclose" + a topic the dictionary reaches in part: the words and the meaning
    # together; the same frame about another service (or with only 政府/公开 reached) stays refused
    for text in ["Is there a guide for doing Ningxiang paperwork from another province?",
                 "Is the list of one-visit services published somewhere?"]:
        assert _arbitrated(text, "out_of_scope", 0.95)["name"] == "ask_policy", text
    for text in ["Will the government publish the bus timetable?", "Is information about my tax refund published?",
                 "Where can I get information about renewing my passport?", "Is there a guide for replacing a lost ID card?"]:
        assert _arbitrated(text, "out_of_scope", 0.95)["name"] == "out_of_scope", text


@pytest.mark.parametrize("text", ["您好，我这个问题比较复杂，能不能帮我转接一下人工客服，谢谢",
                                  "麻烦联系一下你们的工作人员跟进", "喊个管事的人来", "帮我找一下你们负责人"])
def test_a_request_for_a_person_with_a_softener_is_a_handoff(text):
    assert HUMAN_REQUEST_RE.search(text)
    assert _arbitrated(text, "ask_policy", 0.87)["name"] == "request_human"


@pytest.mark.parametrize("text", ["Is there an officer online I could speak with?",
                                  "Can somebody from the hotline phone me this afternoon?"])
def test_an_english_request_for_a_person_in_either_order_is_a_handoff(text):
    assert _arbitrated(text, "ask_policy", 0.6)["name"] == "request_human"
    # a person or a call as a topic, not a request
    assert _arbitrated("Who should I talk to about the budget disclosure rules?", "ask_policy", 0.6)["name"] != "request_human"


@pytest.mark.parametrize("text", ["Could you find me a real person, please?", "I want an operator to ring me back"])
def test_an_english_request_for_a_human_by_get_or_need_is_a_handoff(text):
    assert _arbitrated(text, "out_of_scope", 0.7)["name"] == "request_human"
    # a person named as part of a topic is not a request
    assert _arbitrated("I need a person who knows the disclosure rules to explain item five", "ask_policy", 0.6)["name"] \
        != "request_human"


@pytest.mark.parametrize("text, intent", [("Awesome, thank you very much for the explanation!", "thank"),
                                          ("Cool, got it.", "thank"),
                                          ("Pleased to meet you!", "greet"),
                                          ("Many thanks and have a good weekend", "goodbye")])
@pytest.mark.parametrize("classified", ["ask_policy", "out_of_scope", "nlu_fallback"])
def test_english_small_talk_stays_small_talk_whatever_the_classifier_read(text, intent, classified):
    # the classifier has hardly seen English: "meet" is not 会议, "great" not 重大
    assert _arbitrated(text, classified, 0.8)["name"] == intent


@pytest.mark.parametrize("text", ["Thanks. And who leads the budget disclosure work?", "Hello, is the IPv6 plan public?"])
def test_a_question_after_english_small_talk_is_still_a_question(text):
    assert _arbitrated(text, "ask_policy", 0.8)["name"] not in ("thank", "greet", "goodbye")


@pytest.mark.parametrize("text", ["The street light outside is broken, who do I call to get it fixed?",
                                  "What time does the service hall open on Saturdays?",
                                  "县里公开招考教师什么时候报名", "办健康证要排队不，么子办快些",
                                  "流感疫苗去哪儿可以打", "How can I extend my residence permit?",
                                  "How do I book a slot to change my driving licence?"])
def test_errands_in_other_wordings_are_not_answered_from_an_item(env, text):
    reply = ask(env, text)
    assert reply.kind != "answer" and not reply.citations, (reply.kind, reply.citations)


def test_an_english_unit_alone_after_another_units_duties_asks_its_duties(env):
    answerer, _ = env
    reply = ask(env, "And the Bureau of Finance?")
    assert reply.kind == "answer" and "市财政局" in reply.texts[0] and "项工作" in reply.texts[0], reply.texts
    # the same frame naming a topic is a question about the topic, and one asking who leads is not duties
    assert ask(env, "What about drug procurement?").citations[0]["item"] == 6
    lead = ask(env, "And which agency leads the budget disclosure?")
    assert first_item(lead) == 5 and "牵头" in lead.texts[0] and "在政务公开工作要点中牵头" not in lead.texts[0]


def test_a_thesaurus_key_is_not_covered_by_a_word_most_items_use(env):
    # debt → 政府债务 (configured), whose word 政府 nearly every item uses: only the item with the
    # debt covers "debt", so a mixed question is answered from it, not from 政府…数据…公开 elsewhere
    answerer, _ = env
    index = answerer.index
    words = ["政府", "debt", "数据", "公开"]
    weights = index.expand("政府 debt 数据公开", words)
    coverage = {it["item"]: index._coverage(k, words, weights, "政府 debt 数据公开") for k, it in enumerate(index.items)}
    assert coverage[5] == max(coverage.values()) and sorted(coverage.values())[-2] < 1.0
    seg = default_segmenter()
    text = "政府 debt 的统计多久公布一回"
    assert index.search(text, question_words(seg, text))[0].item == 5


def test_foreign_reached_needs_the_words_too():
    from bot.retrieval import dense as D
    from bot.retrieval.search import Hit

    top = D.DenseHit("d", 3, D.ABS_ALONE_FOREIGN + 0.01, D.Z_ALONE_FOREIGN + 0.1)
    assert D.foreign_reached([top], [Hit("d", 3, 1.0, D.FOREIGN_WORDS_FLOOR + 0.05)]) is top
    assert D.foreign_reached([top], [Hit("d", 3, 1.0, D.FOREIGN_WORDS_FLOOR - 0.05)]) is None
    assert D.foreign_reached([top], [Hit("d", 4, 1.0, 0.9)]) is None
    weak = D.DenseHit("d", 3, D.ABS_ALONE_FOREIGN + 0.01, D.Z_ALONE_FOREIGN - 0.1)
    assert D.foreign_reached([weak], [Hit("d", 3, 1.0, 0.9)]) is None


def test_derived_english_forms_reach_the_dictionarys_word(env):
    answerer, _ = env
    index = answerer.index
    assert index.translations("revitalization") == index.translations("revitalize") != []
    assert index.translations("proactively") == index.translations("proactive") != []
    # a question's English words arrive as lemmas (english_words: innovate → "innovat"); the lemma
    # reaches what the word itself reaches, also through a derived form (innovation)
    from bot.retrieval.english import english_words, lemma

    for word in ("innovate", "disclose", "release", "update"):
        assert lemma(word) != word and index.translations(lemma(word)) == index.translations(word) != [], word
    assert "创新" in index.expand("innovate", english_words("innovate"))
    assert index.translations("interpretation") == index.translations("interpret") != []
    assert index.translations("zzzzation") == []


def test_an_english_duties_question_naming_the_unit_in_chinese(env):
    answerer, seg = env
    text = "What is 市财政局 responsible for in this plan?"
    t = scoring_text(text)
    strength = policy_strength(answerer.kb, answerer.index, t, question_words(seg, text), text)
    assert strength and strength["by"] == "english_department" and strength["department"] == "市财政局"


@pytest.mark.parametrize("text", ["档案馆周六开门吗", "市民中心几点下班", "图书馆的开放时间是什么",
                                  "公众号怎么关注", "政务APP怎么登录",  # how to use an account: an errand
                                  "我的身份证还有没有效，能查吗"])  # one's own card, not a document's validity
def test_opening_hours_or_using_an_account_are_errands(env, text):
    reply = ask(env, text)
    assert reply.kind != "answer" and not reply.citations, (text, reply.citations)


@pytest.mark.parametrize("text", ["市财政局的联系电话是多少", "市行政审批服务局星期六上午上不上班", "市医保局地址在哪"])
def test_how_to_reach_an_office_is_an_errand_not_its_duties(env, text):
    """The classifier reads a unit's name as a question about its duties; its phone, address or
    opening day is how to reach it, which these documents do not say."""
    reply = ask(env, text, "ask_department_duties")
    assert reply.kind != "answer" and not reply.citations, (text, reply.kind, reply.texts[:1])
    assert ask(env, "市财政局负责哪些工作", "ask_department_duties").kind == "answer"


@pytest.mark.parametrize("text", ["Who issued this document?", "When was the notice released?",
                                  "What's the reference number of the work plan?"])
def test_english_questions_about_the_document_itself(env, text):
    assert _arbitrated(text, "out_of_scope", 0.95)["name"] == "ask_document_info"
    reply = ask(env, text, "ask_document_info")
    assert reply.kind == "answer" and "宁政务办发〔2021〕3号" in reply.texts[0]
    # a question about an item's work, with "the plan" in it, is not about the document
    assert _arbitrated("Which department leads budget disclosure in the plan?", "out_of_scope", 0.95)["name"] \
        != "ask_document_info"


def test_a_number_alone_names_the_only_document_with_it(env):
    # "50号文件": one document number the knowledge base knows carries 50; "3号" two (湘财税 and its own)
    reply = ask(env, "那个50号文件讲了什么")
    assert reply.kind == "answer" and reply.citations[0]["item"] == 16
    from bot.retrieval.references import items_naming

    assert items_naming(env[0].kb, "3号文件讲什么") == []
    assert items_naming(env[0].kb, "第50号文件") and not items_naming(env[0].kb, "第51号文件")


# ------------------------------------------- an item named by its place in the document
RESTARTING = """某县2026年政务公开工作要点
某政办发〔2026〕7号
一、经济领域
（一）做好惠企政策公开。集中发布减税降费政策。【县发改局牵头，县税务局配合】
（二）做好招商信息公开。公开招商项目清单。【县商务局牵头】
二、民生领域
（一）做好养老服务公开。公开养老机构名录和收费标准。【县民政局牵头】
（二）做好学校招生公开。公开招生范围和报名方式。【县教育局牵头】
"""


@pytest.fixture(scope="module")
def restarting_env(tmp_path_factory):
    return answerer_for(tmp_path_factory, {"mou-2026.txt": RESTARTING})


@pytest.mark.parametrize("text, item", [
    ("工作要点第（五）项是什么内容", 5),
    ("要点里的第十二条讲的啥", 12),
    ("第三部分的第一条说了什么", 11),           # the section's first item, whatever its numeral
    ("What does item 7 of the work plan say?", 7),
])
def test_an_item_named_by_its_place(env, text, item):
    reply = ask(env, text)
    assert first_item(reply) == item, (reply.kind, reply.citations)


def test_an_item_named_by_its_place_with_a_question_about_it(env):
    reply = ask(env, "第八项的牵头单位是谁", intent="ask_responsible")
    assert first_item(reply) == 8 and "牵头" in reply.texts[0]


def test_the_last_item_is_named_by_its_place(restarting_env):
    answerer, seg = restarting_env
    for text, item, word in [("工作要点的最后一项是什么", 4, "招生"), ("第一部分的最后一条讲什么", 2, "招商")]:
        reply = answerer.answer(Query(text, question_words(seg, text), "ask_policy"))
        assert first_item(reply) == item and word in "".join(reply.texts), (text, reply.kind, reply.citations)
    from bot.retrieval.positions import items_at_position

    assert items_at_position(answerer.kb, "最后怎么办") == []


def test_an_article_of_a_cited_law_is_not_an_item(env):
    from bot.retrieval.positions import items_at_position

    answerer, _ = env
    assert items_at_position(answerer.kb, "《政府信息公开条例》第十条说了什么") == []
    assert items_at_position(answerer.kb, "条例第五条") == []
    assert items_at_position(answerer.kb, "第三季度的数据") == []


def test_numbering_that_restarts_needs_the_section(restarting_env):
    answerer, seg = restarting_env
    reply = answerer.answer(Query("第二部分的第（二）项讲什么", question_words(seg, "第二部分的第（二）项讲什么"), "ask_policy"))
    assert first_item(reply) == 4 and "招生" in "".join(reply.texts)
    from bot.retrieval.positions import items_at_position

    assert items_at_position(answerer.kb, "第（二）项讲什么") == []  # two items are labelled （二）


def test_the_document_number_with_a_topic_answers_the_item(env):
    reply = ask(env, "宁政务办发〔2021〕3号文件里关于政府债务信息是怎么要求的")
    assert first_item(reply) == 5, (reply.kind, reply.citations)
    info = ask(env, "宁政务办发〔2021〕3号是什么时候印发的")
    assert info.kind == "answer" and "2021年8月3日" in info.texts[0] and first_item(info) is None


def test_a_document_number_or_a_place_is_a_question_whatever_the_classifier_says():
    assert _arbitrated("湘财税[2021]3号", "rate", 0.4)["name"] == "ask_policy"
    assert _arbitrated("第十二项", "greet", 0.5)["name"] == "ask_policy"
    assert _arbitrated("五星", "rate", 0.6)["name"] == "rate"


@pytest.mark.parametrize("text", ["您好，第一次来，请问这里能咨询哪些事情？", "你们这个平台可以办什么"])
def test_what_the_assistant_does_is_not_an_items_word(text):
    assert _arbitrated(text, "greet", 0.44)["name"] == "ask_capabilities"


def test_english_thanks_stay_thanks():
    assert _arbitrated("Thanks a lot, that helped!", "thank", 0.89)["name"] == "thank"
    assert _arbitrated("Thank you so much for the answer", "thank", 0.7)["name"] == "thank"


@pytest.mark.parametrize("text", ["长沙哪家银行办贷款比较靠谱", "医保卡掉了该咋补", "Where can I get a flu vaccine near me?",
                                  "请问惠农补贴怎么申请，要准备哪些材料"])
def test_a_recommendation_a_lost_card_or_how_to_apply_is_an_errand(env, text):
    reply = ask(env, text)
    assert reply.kind == "fallback" and not reply.citations, (text, reply.kind, reply.citations)


def test_an_offices_opening_hours_are_not_its_duties(env):
    reply = ask(env, "市财政局周末开门吗", intent="ask_department_duties")
    assert reply.kind == "fallback" and not reply.citations
    duties = ask(env, "市财政局负责哪些工作", intent="ask_department_duties")
    assert duties.kind == "answer" and duties.citations


def test_english_questions_about_updates_are_not_errands(env):
    reply = ask(env, "Where can I get the latest epidemic prevention updates?")
    assert reply.kind != "fallback" or reply.citations


def test_an_english_greeting_is_a_word_of_its_own():
    assert scoring_text("Hi, please tell me about the budget, thanks") == "tell me about the budget"
    assert "historical" in scoring_text("Will older historical plans be published?")
    assert scoring_text("they are pleased") == "they are pleased"


def test_asking_about_a_complaint_channel_is_a_question_not_a_complaint():
    assert _arbitrated("想投诉物业，物业公司的投诉电话会公布出来吗？", "complain", 0.9)["name"] != "complain"
    assert _arbitrated("我要投诉物业公司乱收费", "complain", 0.9)["name"] == "complain"


@pytest.mark.parametrize("text", ["How long does it take to renew a driving licence?", "学区房有哪些小区推荐"])
def test_more_errands_and_recommendations(env, text):
    reply = ask(env, text)
    assert reply.kind != "answer" and not reply.citations, (reply.kind, reply.citations)


TERMS_DOC = """某县2026年政务公开工作要点
一、重点工作
（一）开通“绿色通道”服务信息公开。在县政府门户网站公开重点项目审批的办理流程。【县行政审批局牵头】
（二）做好“菜篮子”工程信息公开。定期公开农贸市场主要蔬菜价格。【县商务局牵头】
（三）做好财政预算公开。部门预算批复后20日内公开。【县财政局牵头】
"""


@pytest.fixture(scope="module")
def terms_env(tmp_path_factory):
    return answerer_for(tmp_path_factory, {"mou-terms.txt": TERMS_DOC})


@pytest.mark.parametrize("text, item", [("Is information on the 'green channel' service published?", 1),
                                        ('What does the plan say about the "green channel"?', 1)])
def test_an_english_question_naming_a_quoted_term_of_the_document(terms_env, text, item):
    answerer, seg = terms_env
    assert answerer.index.english_terms, "make kb reads the documents' quoted terms in English"
    reply = answerer.answer(Query(text, question_words(seg, text), "ask_policy"))
    assert first_item(reply) == item, (reply.kind, reply.citations)


def test_a_term_is_named_by_most_of_its_words_not_by_one(terms_env):
    from bot.retrieval.english import terms_in_english

    answerer, _ = terms_env
    glosses = {t: v["parts"] for t, v in answerer.index.english_terms.items()}
    assert terms_in_english("Where is 'green channel' info?", glosses) == ["绿色通道"]
    assert terms_in_english("Which 'TV channel' shows the news?", glosses) == []


def test_the_real_documents_quoted_terms_in_english(env):
    answerer, seg = env
    text = "Are the results of the 'double random, one public' inspections published?"
    hits = answerer.index.search(text, question_words(seg, text))
    assert max(hits, key=lambda h: h.coverage).item == 3  # 双随机、一公开 (item 3) read in English


def test_a_polite_duties_question_naming_the_document_lists_the_units_work(env):
    reply = ask(env, "您好，我想请问一下市财政局在这份工作要点里参与哪些工作，谢谢您")
    assert reply.kind == "answer" and "市财政局" in reply.texts[0] and len(reply.citations) >= 1
    assert "项" in reply.texts[0]


@pytest.mark.parametrize("text", ["本通知的發文字號是多少", "这份要点是哪天发下来的嘛", "该文件几月几号印发的"])
def test_the_words_of_a_document_cue_are_not_a_topic(env, text):
    # the segmenter cuts the cue into odd words (发文字号 → 发文/字号, 哪天发的 → 天发): they name no topic
    reply = ask(env, normalize_text(text), "ask_document_info")
    assert reply.kind == "answer" and "印发" in reply.texts[0], reply.texts


def test_a_topic_asked_with_a_document_cue_is_still_a_topic(env):
    reply = ask(env, "文件库是什么", "ask_document_info")
    assert reply.kind == "answer" and "文件库" in reply.texts[0] and "印发" not in reply.texts[0]


@pytest.mark.parametrize("text, about_the_document", [
    ("When was the 2021 work plan issued?", True),
    ("What is the document number of the Ningxiang openness plan?", True),
    ("What's the document number of the State Council notice on public hospitals?", False),
])
def test_english_questions_about_the_document_itself(text, about_the_document):
    assert (_arbitrated(text, "out_of_scope", 0.9)["name"] == "ask_document_info") == about_the_document


@pytest.mark.parametrize("item", [8, 12])
@pytest.mark.parametrize("text", ["这事是哪个部门在抓", "这块归谁管"])
def test_who_follows_up_on_the_item_in_context_whatever_its_verb(env, text, item):
    # "抓" (a single character some items also write) is not a topic of its own; 这事/这块 point back
    reply = ask(env, text, "ask_responsible", current_doc="ningxiang-2021", current_item=item)
    assert reply.kind == "answer" and reply.citations[0]["item"] == item


@pytest.mark.parametrize("text", ["{}在政务公开里分到哪些活", "{}今年接到哪些任务"])
def test_duties_asked_as_the_work_a_unit_was_given(env, text):
    answerer, _ = env
    unit = "市司法局"
    expected = {i.number for _, i in answerer.kb.all_items() if unit in i.lead_units or unit in i.responsible_units}
    q = text.format(unit)
    reply = answerer.answer(Query(q, question_words(env[1], q), "ask_policy", departments=[unit]))
    assert reply.kind == "answer" and {c["item"] for c in reply.citations} == expected


@pytest.mark.parametrize("intent", ["rate", "affirm", "thank", "out_of_scope"])
def test_a_term_an_item_defines_names_that_item_whatever_the_classifier_read(env, intent):
    answerer, _ = env
    terms = [t for _, i in answerer.kb.all_items() for t in i.terms if len(t) >= 3]
    assert terms
    for term in terms:
        assert _arbitrated(term, intent, 0.4)["name"] == "ask_policy", term
    # a request for a person naming a term stays one
    assert _arbitrated(f"{terms[0]}的事我要找人工", "request_human", 0.9)["name"] == "request_human"


def _cn(n: int) -> str:
    digits = "零一二三四五六七八九"
    return digits[n] if n < 10 else "十" + (digits[n - 10] if n > 10 else "")


def test_the_document_number_an_item_cites_asked_by_its_place(env):
    answerer, seg = env
    cited = [(i.number, i.references) for _, i in answerer.kb.all_items() if any("号" in r for r in i.references)]
    assert cited
    for number, refs in cited:
        text = f"第{_cn(number)}项里提到的那个文件号是多少"
        reply = answerer.answer(Query(text, question_words(seg, text), "ask_policy"))
        assert reply.kind == "answer" and reply.citations[0]["item"] == number
        assert any(r in "".join(reply.texts) for r in refs if "号" in r), (text, reply.texts)


@pytest.mark.parametrize("text, intent", [("我没有其他问题了，谢谢", "thank"), ("暂时没别的事了", "thank"),
                                          ("好的，没什么疑问了，再见", "goodbye")])
def test_a_closing_message_is_small_talk_not_a_question_about_问题(text, intent):
    assert _arbitrated(text, "ask_policy", 0.9)["name"] == intent


def test_a_question_after_a_closing_phrase_is_still_a_question():
    assert _arbitrated("没有其他问题了，那预算公开呢", "ask_policy", 0.9)["name"] == "ask_policy"


@pytest.mark.parametrize("text", ["这项工作的负责人是谁", "各单位要明确负责人吗"])
def test_a_person_asked_about_is_not_a_request_for_one(text):
    assert not HUMAN_REQUEST_RE.search(text)


@pytest.mark.parametrize("text, cue", [("Do government departments explain their new policies?", True),
                                       ("Will the regulators' inspection results be made public?", True),
                                       ("Where can I buy a train ticket to Changsha?", False)])
def test_english_about_what_the_government_does_is_a_cue_for_the_documents(text, cue):
    from bot.answering.answerer import EN_PUBLISHED_RE

    assert bool(EN_PUBLISHED_RE.search(text)) == cue


# Requests for a person come in many shapes besides "转人工": asking whether someone on duty can
# answer, asking for a manager, a person word alone, "not a bot", "escalate". Whatever intent the
# classifier read, they hand off; questions that mention staff or officials as a topic do not.
@pytest.mark.parametrize("text", [
    "有没有值班的同志能帮我解答一下",          # availability of someone on duty
    "能不能请窗口的同志帮我看一下这个情况",     # 请 … 同志 … 看一下
    "麻烦让负责这方面的同事联系我",
    "你们在班的人在不在",
    "我想跟相关负责同志当面聊",
    "喊你们领导出来",
    "人工客服呢",
    "能帮我叫下客服吗",
    "实在说不清，还是请人工来吧",
    "能不能让管事的人回个话",
    "算了，给我转个真人吧",
    "想当面问问，怎么预约工作人员",
    "请一位懂业务的同志帮我看看",
    "帮我喊个值班的",
    # session 9: a homophone typo, Wu dialect's 寻, the person named after what they do, the leader
    "转认工", "麻烦转任工",
    "阿拉想寻个真人问问",
    "我想找管审批的那个科室的工作人员聊聊，能帮我转一下吗",
    "我就想和大厅的同志说几句",
    "这事必须找个分管的领导给我说法",
    "我要跟你们领导当面谈",
])
def test_chinese_requests_for_a_person_of_other_shapes_hand_off(text):
    assert HUMAN_REQUEST_RE.search(text) or SOFT_HUMAN_REQUEST_RE.search(text)
    assert _arbitrated(text, "ask_policy", 0.8)["name"] == "request_human"
    assert _arbitrated(text, "out_of_scope", 0.8)["name"] == "request_human"


@pytest.mark.parametrize("text", [
    "Could I speak with your manager?",
    "Please connect me with customer support",
    "Is somebody available to assist?",
    "I'd prefer a human instead of a chatbot",
    "Can one of your officers get back to me tomorrow?",
    "Have a staff member look at my case please",
    "Please escalate my question",
    "Can I get somebody on the line?",
    "I'd like to be transferred to an agent",
    "Any way to contact a real person?",
    "Get me whoever handles complaints",
    "I'd rather discuss this with someone from your office, could you put me through?",
])
def test_english_requests_for_a_person_of_other_shapes_hand_off(text):
    assert _arbitrated(text, "out_of_scope", 0.8)["name"] == "request_human"
    assert _arbitrated(text, "ask_policy", 0.6)["name"] == "request_human"


@pytest.mark.parametrize("text", [
    "各单位是否有专人处理依申请公开", "政务公开要不要安排专人负责", "请各部门工作人员做好宣传",
    "值班的安排会公开吗", "领导干部的任免信息公开吗", "转发上级文件要公开吗", "派驻机构的信息公开吗",
    "政务公开工作要向领导汇报吗", "主任工作职责会公开吗", "领导小组办公室在哪里办公",
])
def test_staff_as_a_topic_is_not_a_request(text):
    assert not HUMAN_REQUEST_RE.search(text)


@pytest.mark.parametrize("text", [
    "Are the names of officials available online?", "Which official is responsible for the website?",
    "Can anyone apply for government information?", "How are staff trained on disclosure?",
    "Will an official respond to public concerns?",
])
def test_english_staff_as_a_topic_is_not_a_request(text):
    assert _arbitrated(text, "ask_policy", 0.6)["name"] != "request_human"


@pytest.mark.parametrize("text", ["What is the government's policy on stray dogs this year?",
                                  "What's the city government's policy for e-scooters?",
                                  "Tell me the county's policy about fishing licences"])
def test_english_reaching_items_only_by_government_and_policy_stays_out_of_scope(text):
    # 政府/政策/年底 are what "government", "policy", "year" translate to; they say what kind of
    # question it is, not what about: the classifier's out_of_scope stands
    assert _arbitrated(text, "out_of_scope", 0.7)["name"] == "out_of_scope"


def test_generic_glosses_are_only_those_no_topic_word_also_reaches():
    from actions.knowledge import answerer

    index = answerer().index
    generic = index.generic_glosses("What is the government's policy on budget disclosure this year?")
    assert "政府" in generic and "政策" in generic
    assert not generic & set(index.translations("budget"))
    assert _arbitrated("Is the government budget published every year?", "out_of_scope", 0.7)["name"] == "ask_policy"


def test_a_document_number_with_the_year_written_with_nian_or_without_the_issuer(env):
    # computed from the knowledge base: every document number an item cites, written as citizens do
    from bot.retrieval.references import is_doc_number, items_naming

    kb = env[0].kb
    own = {k[1:] for d in kb.documents for k in doc_number_keys(d.doc_number or "")}
    cited = [(item.number, k) for d, item in kb.all_items() for r in item.references if is_doc_number(r)
             for k in doc_number_keys(r)]
    assert cited
    for number, (issuer, year, no) in cited:
        for text in (f"{issuer}{year}年{no}号文讲的什么", f"{issuer}{year}年第{no}号文件"):
            assert [i.number for _, i, _ in items_naming(kb, text)][:1] == [number], text
        alone = [f"What does the [{year}] No. {no} document require?", f"{year}年第{no}号文件说了什么"]
        shared = sum(1 for _, k in cited if k[1:] == (year, no)) > 1 or (year, no) in own
        for text in alone:  # without the issuer: only a year and number one document carries
            found = [i.number for _, i, _ in items_naming(kb, text)][:1]
            assert found == ([] if shared else [number]), text
    # a date is not a document number
    assert items_naming(kb, "我2021年3月5号去办的事") == []


def test_an_english_term_named_by_a_noun_derived_from_the_glossed_verb():
    from bot.retrieval.english import _same_word, terms_in_english

    assert _same_word("unification", "unify") and _same_word("standardize", "standardization")
    assert not _same_word("unification", "unit")
    glosses = {"五统一": [["five"], ["integrat", "unify"]]}
    assert terms_in_english('What are the "five unifications"?', glosses) == ["五统一"]
    assert terms_in_english('What are the "five units"?', glosses) == []



@pytest.mark.parametrize("request_text, question", [
    ("有人能帮我吗", "有人能帮我查一下预算公开在哪看吗"),
    ("喊个人来跟我讲", "喊个人来跟我讲讲依申请公开怎么收费"),
    ("请工作人员帮我看一下", "请工作人员帮我解答一下预算决算公开的问题"),
])
def test_a_soft_request_for_a_person_that_names_a_subject_is_a_question(request_text, question):
    # no word for staff (有人, 个人) or asking someone to answer: a person when nothing else is
    # asked, the question when it names a subject of the documents clearly
    assert SOFT_HUMAN_REQUEST_RE.search(request_text) and SOFT_HUMAN_REQUEST_RE.search(question)
    assert _arbitrated(request_text, "ask_policy", 0.8)["name"] == "request_human"
    assert _arbitrated(question, "ask_policy", 0.8)["name"] == "ask_policy"


# ------------------------------------------------ duties, follow-ups, terms' lists, errands (session 7)
@pytest.mark.parametrize("text", [
    "您好，我是市司法局刚调来的同事，想了解一下我们局今年在要点里承担哪些任务，麻烦您梳理一下，谢谢",
    "《宁乡市2021年政务公开工作要点》给市财政局分了哪些任务？",
])
def test_a_units_duties_in_a_long_frame(env, text):
    reply = ask(env, text)
    assert reply.kind == "answer" and reply.departments and len(reply.citations) >= 1
    assert "项工作" in reply.texts[0]  # the unit's list of items, not one item


@pytest.mark.parametrize("text", [
    "你好，我是市卫生健康局办公室的，请帮我看看今年要点里有哪些工作涉及我们局",
    "我在市财政局上班，新来的，我们单位这次牵头哪几项呀",
])
def test_a_unit_asking_its_own_share_is_given_its_duties(env, text):
    # the asker names the unit it works for; 我们局/我们单位 is that unit, whatever else the frame says
    reply = ask(env, text)
    assert reply.kind == "answer" and reply.departments and "项工作" in reply.texts[0]


@pytest.mark.parametrize("text", ["市财政局在预算决算公开方面要承担哪些任务",
                                  "我是市财政局的，我们局在预算决算公开方面要承担哪些任务"])
def test_a_topic_beside_the_unit_is_still_asked_of_the_items(env, text):
    reply = ask(env, text)
    assert reply.kind == "answer" and "项工作" not in reply.texts[0]


def test_the_first_of_a_terms_list_is_not_the_first_item(env):
    answerer, _ = env
    term_item = next(it for _, it in answerer.kb.all_items() if "五统一" in it.terms)
    assert first_item(ask(env, "“五统一”的第一项指的是啥")) == term_item.number
    assert first_item(ask(env, "第一项讲的是什么")) == 1  # a place in the document stays one


def test_a_follow_up_frame_is_not_a_new_topic(env):
    answerer, _ = env
    reply = ask(env, "具体涉及哪些领域", current_item=16.0, current_doc=answerer.kb.documents[0].doc_id)
    assert first_item(reply) == 16


@pytest.mark.parametrize("text", ["医保卡去哪个窗口补办", "居住证去哪个大厅办"])
def test_which_counter_for_an_errand_is_not_a_policy_question(env, text):
    assert ask(env, text, intent="ask_responsible").kind == "fallback"


def test_a_smart_customer_service_is_not_a_person():
    assert not HUMAN_REQUEST_RE.search("网上有没有智能客服可以回答办事问题")
    assert not SOFT_HUMAN_REQUEST_RE.search("网上有没有智能客服可以回答办事问题")
    assert HUMAN_REQUEST_RE.search("我要找客服")


@pytest.mark.parametrize("text", ["Which office issued the Ningxiang 2021 government transparency work points?",
                                  "Who issued the city's 2021 government openness work points?"])
def test_english_questions_about_the_document_itself(env, text):
    reply = ask(env, text, intent="ask_responsible")
    assert reply.kind == "answer" and "印发" in reply.texts[0]


def test_english_items_led_by_a_unit(env):
    reply = ask(env, "List the work items led by the Finance Bureau.")
    assert reply.kind == "answer" and reply.departments == ["市财政局"]


@pytest.mark.parametrize("text, intent", [("哪个单位负责办理老年卡", "ask_responsible"), ("怎么查自己的征信", "ask_policy"),
                                          ("能直接缴医保吗", "ask_policy")])
def test_personal_errands_are_not_policy_questions(env, text, intent):
    assert ask(env, text, intent=intent).kind == "fallback"


def test_a_term_typed_with_one_wrong_character_is_read_as_the_term(env):
    answerer, _ = env
    checked = 0
    for _, item in answerer.kb.all_items():
        for term in item.terms:
            if len(term) < 4 or not all("\u4e00" <= ch <= "\u9fff" for ch in term):
                continue
            typo = term[:1] + "搞" + term[2:] if term[1] != "搞" else term[:1] + "高" + term[2:]
            assert answerer.kb.with_terms_as_written(f"{typo}是什么意思") == f"{term}是什么意思"
            assert first_item(ask(env, f"{typo}是什么意思")) == item.number
            checked += 1
    assert checked >= 3
    # two wrong characters, or a near word that is nearer another term, stay as typed
    assert answerer.kb.with_terms_as_written("搞搞四新是什么") == "搞搞四新是什么"


def test_a_unit_named_with_one_wrong_character_is_that_unit(env):
    # "市医保居" / "市优化半": every unit's name of four or more characters with its last character
    # mistyped is read as the unit, and its duties are answered
    answerer, _ = env
    checked = 0
    for unit in answerer.kb.departments:
        if len(unit) < 4 or not all("\u4e00" <= ch <= "\u9fff" for ch in unit) \
                or not answerer.kb.department_items(unit) or answerer.kb.find_departments(unit) != [unit]:
            continue  # (市直相关单位 and the like name no one unit)
        typo = unit[:-1] + ("据" if unit[-1] != "据" else "居")
        assert answerer.kb.find_departments(answerer.kb.with_terms_as_written(f"{typo}负责哪些工作")) == [unit]
        items = {it.number for _, it, _ in answerer.kb.department_items(unit)}
        assert items <= {c["item"] for c in ask(env, f"{typo}负责哪些工作", "ask_department_duties").citations}
        # (the classifier reads the typed text: asked as a policy question, still the unit's duties)
        assert items <= {c["item"] for c in ask(env, f"{typo}在政务公开里要管哪块", "ask_policy").citations}
        checked += 1
    assert checked >= 5
    # a name written right is never "corrected" into a look-alike alias
    for unit in answerer.kb.departments:
        assert answerer.kb.with_terms_as_written(f"{unit}的工作") == f"{unit}的工作"


# ------------------------------------------- a follow-up about the documents an item cites
@pytest.mark.parametrize("follow_up", ["依据哪个文件", "依據的是哪個文件？", "那具体是根据什么文件呢，谢谢",
                                       "这个是哪几个部门发的", "Which document is that based on?",
                                       "Which document number sets these rules?", "What is the legal basis?"])
def test_a_follow_up_asks_for_the_documents_the_item_cites(env, follow_up):
    # every item that cites another document, right after it was answered: the sentence citing it
    # (not the work points' own issuer and number)
    answerer, _ = env
    cited = [(d, it) for d, it in answerer.kb.all_items() if it.references]
    assert cited
    for doc, item in cited:
        reply = ask(env, follow_up, "ask_document_info", current_doc=doc.doc_id, current_item=float(item.number))
        assert first_item(reply) == item.number, (follow_up, item.number)
        assert any(ref in reply.texts[0] for ref in item.references)
        assert doc.doc_number not in reply.texts[0]


def test_the_documents_own_metadata_and_new_topics_are_not_the_cited_documents(env):
    answerer, _ = env
    doc, item = next((d, it) for d, it in answerer.kb.all_items() if it.references)
    ctx = dict(current_doc=doc.doc_id, current_item=float(item.number))
    # with nothing answered before, or naming the work points themselves: their own metadata
    assert doc.doc_number in ask(env, "依据哪个文件", "ask_document_info").texts[0]
    assert doc.doc_number in ask(env, f"{doc.doc_number}是哪个单位发的", "ask_document_info", **ctx).texts[0]
    # another item's own topic with 依据 in it is that item's question
    other = next(it for d, it in answerer.kb.all_items() if it.number != item.number and not it.references
                 and len(it.title) >= 6)
    topic = other.title[2:6]
    reply = ask(env, f"那{topic}的依据是什么", **ctx)
    assert first_item(reply) != item.number or topic in item.text


def test_cited_documents_on_another_document(tmp_path_factory):
    # the same follow-up on a document written for this test (no rule names an item of 宁乡 2021)
    text = ("某县2024年政务公开工作要点\n某政办发〔2024〕7号\n一、重点领域\n"
            "（一）做好乡村振兴信息公开。落实省农业农村厅《关于加强涉农资金公开的通知》（湘农发〔2023〕12号）要求，"
            "公开涉农补贴发放情况。（县农业农村局牵头）\n"
            "（二）做好教育信息公开。公开招生入学政策和学位分布。（县教育局牵头）\n")
    answerer, seg = answerer_for(tmp_path_factory, {"mou-2024.txt": text})
    doc = answerer.kb.documents[0]
    item = next(it for it in doc.items if it.references)
    reply = answerer.answer(Query("依据是啥文件", question_words(seg, "依据是啥文件"), "ask_document_info",
                                  current_doc=doc.doc_id, current_item=float(item.number)))
    assert first_item(reply) == item.number and "湘农发〔2023〕12号" in reply.texts[0]


# ------------------------------------------------------- long polite small talk in Chinese
@pytest.mark.parametrize("text,intent", [
    ("您好呀，很荣幸和您聊天，祝您一切顺利！", "greet"),
    ("早上好，先跟您问个好～", "greet"),
    ("太感谢您热情周到的解答了，祝您身体健康、万事如意", "thank"),
    ("你们辛苦啦", "thank"),
    ("嗯嗯，我已经清楚了，就不打扰您了，拜拜，祝您节日快乐！", "goodbye"),
    ("您好，您是真人还是智能客服呀？先道个谢", "thank"),
    ("请问您是哪位呀", "bot_identity"),
    # thanks or a goodbye around remarks about the conversation just had
    ("今天问了好多事，你都很耐心地回答了，太谢谢了，再见", "goodbye"),
    ("非常感谢你这样细致的讲解，帮了我们大忙，祝您生活愉快", "thank"),
    ("真的谢谢您刚刚那么耐心的回答，这对我的帮助确实挺大，祝您周末愉快", "thank"),  # what it was worth
    ("蟹蟹你", "thank"), ("射射～", "thank"),  # thanks typed as an internet homophone
])
def test_a_message_of_chinese_pleasantries_is_small_talk(text, intent):
    from bot.nlu.retrieval_arbiter import chinese_small_talk

    assert chinese_small_talk(normalize_text(text)) == intent
    # whatever the classifier read in 工作/顺利/聊天 (a policy question, another service)
    for classified in ("ask_policy", "out_of_scope"):
        assert _arbitrated(text, classified, 0.7)["name"] == intent


def test_asking_which_unit_the_assistant_belongs_to_is_about_the_bot():
    assert _arbitrated("您好，想先打个招呼，请问您是哪家单位的智能客服呀？谢谢", "ask_responsible", 0.79)["name"] \
        == "bot_identity"
    # which unit sees to something is a question about the documents
    assert _arbitrated("你们是哪个部门负责政务公开的", "ask_responsible", 0.79)["name"] != "bot_identity"


@pytest.mark.parametrize("text", ["好的", "可以的", "明白了", "收到",  # a reply to the assistant: its own intent
                                  "您好，祝您工作顺利，我想问下预决算公开吗", "谢谢，那牵头单位是谁",
                                  "医卫健康", "工作人员", "祝您工作顺利，哪里能看到政府工作报告",
                                  # a remark with a question in it, or news that is not about the conversation
                                  "问了半天了，谢谢，那预算到底在哪看", "谢谢，帮了大忙了，牵头的是哪个单位呢",
                                  "我的社保卡丢了，谢谢", "谢谢，对我帮助很大的政策有哪些"])
def test_pleasantries_around_a_question_or_a_bare_reply_are_not_small_talk(text):
    from bot.nlu.retrieval_arbiter import chinese_small_talk

    assert chinese_small_talk(normalize_text(text)) is None


@pytest.mark.parametrize("frame", ["Which items involve the {}?", "What is the {}'s role in this plan?",
                                   "What is the role of the {}?"])
def test_english_duties_by_role_or_involvement(env, frame):
    # a unit's duties asked as its role or the items involving it: every item that names it
    answerer, _ = env
    names = {"市司法局": "Justice Bureau", "市财政局": "Finance Bureau"}
    for unit, english in names.items():
        reply = ask(env, frame.format(english))
        items = {it.number for _, it, _ in answerer.kb.department_items(unit)}
        assert items and reply.kind == "answer" and items <= {c["item"] for c in reply.citations}, (frame, unit)


@pytest.mark.parametrize("frame", ["And the {} ({})?", "What about the {}?", "how about the {}"])
def test_an_english_follow_up_naming_only_a_unit_asks_its_duties(env, frame):
    """"And the Cyberspace Affairs Office (市委网信办)?" after another unit's duties: that unit's duties,
    whatever the classifier (which has hardly seen English) read in it."""
    answerer, _ = env
    for unit, english in {"市委网信办": "Cyberspace Affairs Office", "市财政局": "Finance Bureau"}.items():
        text = frame.format(english, unit)
        assert _arbitrated(text, "out_of_scope", 0.86)["name"] == "ask_policy", text
        reply = ask(env, text)
        items = {it.number for _, it, _ in answerer.kb.department_items(unit)}
        assert items and reply.kind == "answer" and items <= {c["item"] for c in reply.citations}, (text, unit)
        assert reply.texts[0].startswith(unit), reply.texts[0]
    # a topic after "and" is a topic, not a unit
    assert ask(env, "And government debt?").texts[0].startswith("市") is False


@pytest.mark.parametrize("text", ["Which body issued the {place} open government work plan for {year}?",
                                  "When was this government transparency work plan released?",
                                  "What reference number does {place}'s disclosure key tasks document carry?",
                                  "Who published the key points for government affairs openness in {year}?"])
def test_english_questions_about_the_work_points_themselves(env, text):
    # the document's own metadata, however its English name is put together — not an item
    answerer, _ = env
    doc = answerer.kb.documents[0]
    place = doc.title[:2]
    year = re.search(r"\d{4}", doc.title).group(0)
    reply = ask(env, text.format(place={"宁乡": "Ningxiang"}.get(place, "the county"), year=year))
    assert reply.kind == "answer" and doc.doc_number in reply.texts[0] and not [c for c in reply.citations if c.get("item")]


def test_an_english_question_about_a_cited_notice_is_not_about_the_work_points(env):
    answerer, _ = env
    item = next(it for _, it in answerer.kb.all_items() if any("信息处理费" in r and "通知" in r for r in it.references))
    reply = ask(env, "Which provincial departments issued the notice on information processing fees?")
    assert first_item(reply) == item.number


@pytest.mark.parametrize("follow_up", ["具体要干啥", "都包括哪些", "那要列几项啊"])
def test_a_short_follow_up_without_an_anaphor_stays_on_the_item(env, follow_up):
    # right after an item, a short "which ones / what" with no other item's topic: that item
    answerer, _ = env
    for doc, item in answerer.kb.all_items():
        reply = ask(env, follow_up, current_doc=doc.doc_id, current_item=float(item.number))
        assert first_item(reply) == item.number, (follow_up, item.number)


def test_a_short_follow_up_naming_another_items_topic_switches(env):
    answerer, _ = env
    items = [it for _, it in answerer.kb.all_items()]
    doc = answerer.kb.documents[0]
    # each item's own term, asked right after another item, is that item's question
    for item in items:
        term = next((t for t in item.terms if len(t) >= 3 and sum(t in i.text for i in items) == 1), None)
        if term is None:
            continue
        other = next(i for i in items if i.number != item.number)
        reply = ask(env, f"{term}有哪些", current_doc=doc.doc_id, current_item=float(other.number))
        assert first_item(reply) == item.number, term


def test_it_after_who_leads_is_that_lead_units_duties(env):
    answerer, _ = env
    for doc, item in answerer.kb.all_items():
        leads = list(dict.fromkeys(answerer.kb.canonical_department(u) or u for u in item.lead_units))
        if len(leads) != 1 or not answerer.kb.department_items(leads[0]):
            continue
        reply = ask(env, "它还负责什么", "ask_department_duties", current_doc=doc.doc_id, current_item=float(item.number))
        expected = {it.number for _, it, _ in answerer.kb.department_items(leads[0])}
        assert expected <= {c["item"] for c in reply.citations}, item.number


@pytest.mark.parametrize("text", ["我想申请公开本人的公积金缴费记录，在哪打印", "怎么申请公开我家的水费账单",
                                  "Can foreigners buy a house in the city under the current rules?",
                                  "Could we rent an apartment there as non-locals?"])
def test_ones_own_records_and_purchases_are_errands_even_asked_as_disclosure(env, text):
    # 申请公开 of one's own records, or buying a home: a personal errand, not an item
    assert ask(env, text).kind == "fallback"


# ------------------------------------------------------- asked about the assistant itself
@pytest.mark.parametrize("text", ["你好，第一次用，想了解下你是什么样的助手，都能帮我办些什么，谢谢",
                                  "这个助手到底是个什么系统？", "请问你都能解答哪些问题"])
def test_a_question_about_the_assistant_itself_is_about_its_capabilities(text):
    # whatever the classifier read in 了解/服务/问题
    for classified in ("ask_policy", "out_of_scope"):
        assert _arbitrated(text, classified, 0.9)["name"] in ("ask_capabilities", "bot_identity")


@pytest.mark.parametrize("text", ["你能帮我查一下财政预算决算公开在哪里吗", "政府能提供哪些政务公开信息"])
def test_a_policy_question_addressed_to_the_assistant_stays_a_policy_question(text):
    assert _arbitrated(text, "ask_policy", 0.9)["name"] == "ask_policy"


# ------------------------------------------------ the work points' own metadata, however asked
def test_the_documents_own_number_with_when_it_went_out_is_its_date(env):
    answerer, _ = env
    doc = answerer.kb.documents[0]
    for text in (f"{doc.doc_number}是哪天发出的", f"{doc.doc_number}是什么时候签发的"):
        for intent in ("ask_document_info", "ask_policy"):
            reply = ask(env, text, intent)
            assert reply.kind == "answer" and doc.date in reply.texts[0], (text, intent)


@pytest.mark.parametrize("text", ["这个通知是哪个机关发的？", "这份要点是哪家机构制发的"])
def test_which_body_issued_the_notice_is_its_issuer(env, text):
    answerer, _ = env
    doc = answerer.kb.documents[0]
    reply = ask(env, text, "ask_document_info")
    assert reply.kind == "answer" and doc.issuer in reply.texts[0] and not first_item(reply)


def test_whose_approval_the_work_points_were_issued_with(env):
    # the notice says it ("经……同意，现将《……》印发给你们"), whatever the asker says of themselves
    answerer, _ = env
    doc = answerer.kb.documents[0]
    assert "同意" in doc.notice
    for text in ("您好，我在写课程论文，想核实一下这份工作要点是经哪个机构批准后下发的，谢谢", "这个文件经过谁同意印发的"):
        for intent in ("ask_document_info", "ask_policy"):
            reply = ask(env, text, intent)
            assert reply.kind == "answer" and doc.notice.split("，")[0] in reply.texts[0], (text, intent)


@pytest.mark.parametrize("follow_up", ["Who leads that work?", "And who is in charge of this item?"])
def test_english_that_work_is_the_item_just_answered(env, follow_up):
    answerer, _ = env
    for doc, item in answerer.kb.all_items():
        if not item.lead_units:
            continue
        reply = ask(env, follow_up, "ask_responsible", current_doc=doc.doc_id, current_item=float(item.number))
        assert first_item(reply) == item.number and item.lead_units[0] in reply.texts[0], (follow_up, item.number)


# ------------------------------------------ tenth session: shapes of held-out14's misses, own wording
def _leading_departments(answerer):
    for name in answerer.kb.departments:
        refs = answerer.kb.department_items(name)
        # a named unit (not "市直相关单位"), with a short list of items
        if refs and len(refs) <= 6 and name.startswith("市") and not re.search("相关|有关|各", name):
            yield name, {item.number for _, item, _ in refs}


@pytest.mark.parametrize("frame", ["{d}今年在政务公开上要做哪几件事", "{d}要干哪几项活儿", "想知道{d}总共有几件事要落实",
                                   # named in which items, or "our unit" spoken for by someone working there
                                   "{d}在这份要点里被点名的有哪几条", "你好，我在{d}上班，要点里哪些事项涉及我们单位？多谢指点。"])
def test_how_many_things_a_unit_does_is_its_duties(env, frame):
    answerer, _ = env
    checked = 0
    for name, numbers in _leading_departments(answerer):
        reply = ask(env, frame.format(d=name))
        assert reply.kind == "answer" and {c["item"] for c in reply.citations} == numbers, (frame, name)
        checked += 1
    assert checked >= 5


def test_a_greeting_to_the_teacher_and_thanks_for_the_answer_are_fillers():
    assert scoring_text("老师好，请问市财政局负责哪几项工作？谢谢您的耐心解答。") == "市财政局负责哪几项工作?"
    assert scoring_text("领导们好！预算公开在哪看，感谢你的回复") == "预算公开在哪看"
    assert scoring_text("政策解答在哪里看") == "政策解答在哪里看"  # 解答 as a topic stays


def test_a_duties_question_in_a_greeting_and_thanks_frame(env):
    answerer, _ = env
    name, numbers = next(_leading_departments(answerer))
    reply = ask(env, f"师傅好，麻烦问下{name}在今年的工作里牵头哪些事项？多谢您的解答。")
    assert reply.kind == "answer" and {c["item"] for c in reply.citations} == numbers


@pytest.mark.parametrize("text", ["您号", "你号呀，在不在"])
def test_one_shared_character_names_no_topic(env, text):
    # 你好 mistyped: "号" is in a document number of some item, which is no reason to answer it
    answerer, seg = env
    scoring = scoring_text(normalize_text(text))
    assert policy_strength(answerer.kb, answerer.index, scoring, seg.words(scoring)) is None
    assert _arbitrated(text, "greet", 0.95)["name"] == "greet"


@pytest.mark.parametrize("text", ["说了半天也不清楚，有没有上班的同志能直接和我聊一下", "你们那有没有值班的工作人员可以跟我说"])
def test_someone_who_can_talk_to_me_directly_is_a_person(text):
    assert _arbitrated(text, "bot_identity", 0.8)["name"] == "request_human"


@pytest.mark.parametrize("text", ["我家的车有没有违章，在哪能查到", "停车罚款缴了没怎么查", "想看看我的驾照扣分情况"])
def test_ones_own_fines_are_errands(env, text):
    assert ask(env, text).kind == "fallback"


def test_who_acts_in_a_sentence_of_the_item_is_named_by_that_sentence(env):
    # "经国务院统一修订的……": a body acting by itself, named before the item's units
    from bot.answering.answerer import BODY_NAME_RE

    assert "国务院" in BODY_NAME_RE.findall("主动公开经国务院批准的目录")
    assert not BODY_NAME_RE.findall("国务院办公厅的通知" .replace("办公厅", ""))
    answerer, _ = env
    for doc, item in answerer.kb.all_items():
        for sentence in item.sentences:
            m = re.search(r"经国务院统一修订的([\u4e00-\u9fff]{2,12}?清单)", sentence)
            if m:
                reply = ask(env, f"{m.group(1)[-4:]}是哪个机关修订的", "ask_responsible")
                assert first_item(reply) == item.number and "国务院" in reply.texts[0]


def test_english_derived_forms_reach_the_documents_words_in_the_query_too(env):
    # "procurement" is glossed through "procure" (translations()); the query terms of the
    # search and of the sentence choice must read it the same way as the coverage does
    answerer, _ = env
    index = answerer.index
    derived = 0
    for word in ("procurement", "revitalization", "interpretation", "improvement"):
        found = index.translations(word)
        if found and not index.english.get(word):
            weights = index.expand(f"What about {word}?", [])
            assert set(found) <= set(weights), word
            derived += 1
    assert derived >= 1


def test_that_word_after_an_item_is_asked_of_that_item(env):
    # "那个专栏谁负责" right after an item with a 专栏: that item, even if another item has one too
    answerer, _ = env
    having = [(d, it) for d, it in answerer.kb.all_items() if "专栏" in it.text and it.lead_units]
    assert len(having) >= 2
    for doc, item in having:
        reply = ask(env, "那个专栏谁负责", "ask_responsible", current_doc=doc.doc_id, current_item=float(item.number))
        assert first_item(reply) == item.number and item.lead_units[0] in reply.texts[0], item.number


def test_it_with_a_word_of_the_item_asks_the_item_not_its_lead_units_duties(env):
    answerer, _ = env
    index = answerer.index
    checked = 0
    for doc, item in answerer.kb.all_items():
        if len(item.lead_units) != 1:
            continue
        words = sorted((w for w in index.word_sets[index.position(doc.doc_id, item.number)]
                        if len(w) == 2 and index.singles_out_items(w) and w in item.text and w not in item.title),
                       key=lambda w: (-index.words.idf_of(w), w))  # the same word in every run
        if not words:
            continue
        ctx = dict(current_doc=doc.doc_id, current_item=float(item.number))
        reply = ask(env, f"它要搞哪些{words[0]}", **ctx)
        assert first_item(reply) == item.number, (item.number, words[0])
        # with no word of the item it is still the lead unit's duties
        duties = ask(env, "它还负责哪些工作", **ctx)
        assert duties.kind == "answer" and item.lead_units[0] in duties.texts[0]
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("intent", ["deny", "affirm", "cancel", "greet", "bot_identity"])
def test_a_follow_up_read_as_a_short_reply_goes_to_the_answerer(intent):
    # "具体要求晓得不" read as "no": the specific requirements of the item in context
    for text in ("具体要求晓得不", "详细规定知道吗"):
        assert _arbitrated(text, intent, 0.4)["name"] == "nlu_fallback", (text, intent)
    assert _arbitrated("不用了", "deny", 0.4)["name"] == "deny"


def test_a_question_naming_no_assistant_barely_read_as_one_about_it():
    # "依据的是第几条": not about the assistant; "你是第几代机器人" is
    assert _arbitrated("依据的是第几条", "bot_identity", 0.3)["name"] == "nlu_fallback"
    assert _arbitrated("你是第几代机器人", "bot_identity", 0.3)["name"] == "bot_identity"
    assert _arbitrated("依据的是第几条", "bot_identity", 0.9)["name"] == "bot_identity"


def test_english_bridge_through_a_dictionary_synonym():
    # "disclose" glosses no word of the vocabulary; 披露 has it and shares the whole sense
    # "to make public" with 公开 — reached in two steps; a one-word sense ("force") carries nothing
    from bot.retrieval.english import build_english_map, lemma

    vocab = {"公开", "垃圾", "创新", "预算"}
    plain = build_english_map(vocab)
    bridged = build_english_map(vocab, bridge=True)
    assert lemma("disclose") not in plain and bridged[lemma("disclose")] == ["公开"]
    assert all(plain[w] == bridged[w] for w in plain)  # what the words gloss themselves is kept
    assert lemma("force") not in bridged


def test_english_derived_forms_of_glossed_words(env):
    answerer, _ = env
    index = answerer.index
    for word, base in (("innovative", "innovation"), ("disclosure", "disclose")):
        if index.translations(base):
            assert index.translations(word) == index.translations(base), word


def test_english_frame_verbs_reach_no_document_word(env):
    # "get it done in one go": CC-CEDICT glosses go/make/take with dozens of words (go → 进一步)
    from bot.retrieval.english import english_words, lemma

    answerer, _ = env
    assert english_words("get it done in one go, make things easy") == [lemma("easy")]
    assert answerer.index.translations("go") == [] and answerer.index.translations("make") == []


def test_an_english_word_with_several_glosses_counts_once_per_item(env, monkeypatch):
    # "service" → 服务/业务: an item having both is not twice as much about a service
    answerer, seg = env
    index = answerer.index
    text = "What about the service?"
    words = question_words(seg, text)
    weights = index.expand(text, words)
    query = list(weights)
    once = index._word_scores(text, words, query, weights)
    summed = index.words.scores(query, weights)
    glosses = [t for t in index.translations("service") if t in weights]
    assert len(glosses) >= 2
    both = 0
    for i in range(len(once)):
        assert once[i] <= summed[i] + 1e-9
        singles = [index.words.scores([t], weights)[i] for t in glosses]
        # the once-counted score exceeds the rest of the query by exactly the best gloss
        rest = index.words.scores([t for t in query if t not in glosses], weights)[i]
        assert abs(once[i] - (rest + max(singles))) < 1e-9
        both += sum(x > 0 for x in singles) >= 2
    assert both  # some item has two of the glosses


def test_english_legal_status_and_new_media_vocabulary(env):
    # "still in force" is the documents' 效力, "social media accounts" their 政务新媒体 (thesaurus.yml)
    answerer, _ = env
    cases = [("效力", "Where can I check whether a local rule is still in force?"),
             ("新媒体", "Are the government's social media accounts being cleaned up?")]
    for word, text in cases:
        having = [it.number for _, it in answerer.kb.all_items() if word in it.text]
        assert having, word
        assert first_item(ask(env, text)) in having, text


@pytest.mark.parametrize("text", ["Is information about my tax refund published?",
                                  "Will my pension payments be made public?"])
def test_an_english_question_about_ones_own_case_is_not_a_published_topic(text):
    # whether "my refund" is published is one's own case, however close the meaning and words come
    from bot.answering.answerer import EN_PERSONAL_RE

    assert EN_PERSONAL_RE.search(text)
    assert _arbitrated(text, "out_of_scope", 0.95)["name"] == "out_of_scope"
    assert not EN_PERSONAL_RE.search("Will the city publish my company's access to the negative list?")


def test_an_item_well_ahead_of_the_rest_is_answered_unless_the_meaning_points_elsewhere(env, monkeypatch):
    """A little less far ahead than "clearly" (LEAN_MARGIN): answered, not offered as a choice."""
    import bot.answering.answerer as answerer_module

    text = "公交公司改站点会提前告诉大家吗"
    assert first_item(ask(env, text)) == 16
    monkeypatch.setattr(answerer_module, "LEAN_MARGIN", answerer_module.CLEAR_MARGIN)
    monkeypatch.setattr(answerer_module, "LEAN_FAR_MARGIN", answerer_module.FAR_MARGIN)
    assert ask(env, text).kind == "clarify"  # without the band: a choice between the items


@pytest.mark.parametrize("text,word", [("燃气公司一声不吭就涨价了，这些收费信息他们得不得公布出来", "公共企事业单位"),
                                       ("我刚到街道办上班，领导让我管信息公开，完全不懂，上面会不会派人来指导", "指导"),
                                       ("市场上卖假药被罚了，名单能查到吗", "执法")])
def test_a_long_situation_asking_what_is_published_is_answered_by_the_item_far_ahead(env, monkeypatch, text, word):
    """The citizen's situation covers little of any item (PUBLISHED_LEAN up to WEAK_COVERAGE), but
    the question asks what is published and one item is LEAN_MARGIN ahead of the rest."""
    import bot.answering.answerer as answerer_module

    reply = ask(env, text)
    assert reply.kind == "answer" and word in reply.texts[0], (reply.kind, reply.texts)
    monkeypatch.setattr(answerer_module, "PUBLISHED_LEAN", answerer_module.WEAK_COVERAGE)
    reply = ask(env, text)
    assert not (reply.kind == "answer" and reply.basis is None), (reply.kind, reply.texts)


@pytest.mark.parametrize("text", ["公示的低保名单里查不到我家的名字，怎么办", "想在裁判文书网上查一下案子"])
def test_ones_own_entry_or_court_case_is_an_errand(env, text):
    reply = ask(env, text)
    assert reply.kind != "answer", (reply.kind, reply.texts)


def test_among_items_tied_in_words_the_one_writing_the_questions_run_of_words_is_answered(env, monkeypatch):
    """政务/公开/工作 are every item's words; only one item writes 政务公开工作主管部门 (的 aside)."""
    import bot.answering.answerer as answerer_module

    text = "政务公开工作的主管部门是谁"
    reply = ask(env, text)
    assert reply.kind == "answer" and "主管部门" in reply.texts[0], (reply.kind, reply.texts)
    monkeypatch.setattr(answerer_module, "LITERAL_RUN", 99)
    assert ask(env, text).kind == "clarify"  # without the run: a choice between the tied items


def test_an_english_key_covers_its_derived_form(env):
    reply = ask(env, "Which information should government websites proactively disclose?")
    assert reply.kind == "answer" and "主动公开" in reply.texts[0], reply.texts


@pytest.mark.parametrize("text", ["我在外地工作，老家的手续能不能就近办", "开店的手续要跑好几个窗口，能不能一趟办完"])
def test_a_service_reform_asked_as_the_citizens_situation_reaches_its_item(env, text):
    reply = ask(env, text)
    assert reply.kind == "answer" and ("一件事一次办" in reply.texts[0] or "通办" in reply.texts[0]), reply.texts


def test_a_units_own_good_practice_to_report_up_reaches_the_innovation_item(env):
    reply = ask(env, "我们街道想了个让居民扫码看公示的新点子，能报上去当样板吗")
    assert reply.kind == "answer" and "创新" in reply.texts[0], (reply.kind, reply.texts)


def test_who_teaches_the_units_hands_on_reaches_the_guidance_item(env):
    reply = ask(env, "下面的单位不太会做公开，上级有没有人手把手教")
    assert reply.kind == "answer" and "指导" in reply.texts[0], (reply.kind, reply.texts)


def test_the_retrievals_scores_are_on_the_card_only_when_evaluation_asks(env, monkeypatch):
    import bot.answering.answerer as answerer_module

    assert "trace" not in ask(env, "预决算会公开吗").extra  # off by default: citizens never see scores
    monkeypatch.setattr(answerer_module, "TRACE", True)
    trace = ask(env, "预决算会公开吗").extra["trace"]
    assert trace["words"][0][0] == 5 and 0 < trace["words"][0][1] <= 1.0 and trace["mode"] == "policy"


@pytest.mark.parametrize("text, items", [("您好，想请教一下，市财政局在这份要点里都涉及哪些事项？谢谢", {5}),
                                         ("市司法局在今年的要点中涉及哪些事项", {3, 11})])
def test_a_units_duties_asked_as_which_matters_it_touches(env, text, items):
    reply = ask(env, text)
    assert reply.kind == "answer" and items <= {c["item"] for c in reply.citations}, (reply.kind, reply.citations)


def test_asked_to_explain_a_policy_no_document_mentions_is_out_of_scope(env):
    reply = ask(env, "住房公积金贷款的新政策帮我解读一下")
    assert reply.kind == "out_of_scope" and not reply.citations, (reply.kind, reply.citations)
    # a topic the documents have, asked the same way, is answered
    assert first_item(ask(env, "一件事一次办的政策帮我解读一下")) == 8


def test_whether_someone_explains_a_policy_is_not_asking_the_assistant_to(env):
    assert ask(env, "稳就业保企业的那些政策，有没有官方出来讲解一下").kind != "out_of_scope"


@pytest.mark.parametrize("text", ["一个旧规定现在还算不算数，网上会不会标出来", "以前的红头文件废没废止，到哪里可以核实"])
def test_where_one_checks_whether_a_document_still_holds_reaches_its_item(env, text):
    # "去哪里核实", "会标出来吗" ask where it is made known (WHERE_TO_LEARN_RE), so the domain terms
    # (算不算数 → 效力) are read in them
    from bot.answering.answerer import asks_what_is_published

    assert asks_what_is_published(normalize_text(text))
    reply = ask(env, text)
    assert reply.kind == "answer" and "效力" in reply.texts[0], (reply.kind, reply.texts)


def test_where_to_learn_is_not_read_in_an_errand():
    from bot.answering.answerer import WHERE_TO_LEARN_RE, asks_what_is_published

    assert WHERE_TO_LEARN_RE.search("这个去哪里能确认") and WHERE_TO_LEARN_RE.search("村里会张榜吗")
    assert WHERE_TO_LEARN_RE.search("这个规定还作不作数，去哪查") and WHERE_TO_LEARN_RE.search("上哪个栏目看")
    assert not asks_what_is_published("明天几点上班，去哪里能确认")
    assert not WHERE_TO_LEARN_RE.search("作废的身份证怎么补办")


def test_being_named_for_poor_work_is_the_oversight_items_report(env):
    # 点名 is 通报 (domain_terms.yml): the item that reports how the openness work goes, not only the
    # item whose 通报批评 punishes one website check
    reply = ask(env, "单位的政务公开工作落后了，会不会被上面点名")
    assert reply.kind == "answer" and "通报" in reply.texts[0] and "评估" in reply.texts[0], (reply.kind, reply.texts)


def test_a_negated_step_is_not_the_questions_topic(env):
    # "不用…申请": what needs no application is 主动公开, not the application procedure (依申请公开);
    # the negation begins the key's span though it is no content word
    from bot.retrieval.search import KEY_GAP, key_span

    answerer, seg = env
    text = "政府哪些东西不用等别人申请就该主动挂出来"
    words = question_words(seg, scoring_text(text))
    assert key_span("不用申请", scoring_text(text), KEY_GAP, ["东西", "别人", "申请"]) == "不用等别人申请"
    assert answerer.index.negated_words(scoring_text(text), words) == {"申请"}
    assert answerer.index.negated_words("依申请公开要不要收费", question_words(seg, "依申请公开要不要收费")) == set()
    reply = ask(env, text)
    assert reply.kind == "answer" and "主动公开" in reply.texts[0] and "依申请" not in reply.texts[0], reply.texts


@pytest.mark.parametrize("text", ["什么是社区网格化管理", "“证照分离”改革是什么"])
def test_a_term_no_document_writes_is_not_explained_from_an_item(env, text):
    # "什么是X" of a term no document writes (few of its character pairs, no one-character typo of a
    # written run): out of scope, however many of its characters the items share
    reply = ask(env, text)
    assert reply.kind == "out_of_scope" and not reply.citations, (reply.kind, reply.texts)


@pytest.mark.parametrize("text", ["什么是全程网办", "一号达是什么意思", "政府网站集约华建设是什么意思", "三个高地分别是什么"])
def test_a_term_the_documents_write_is_still_answered_typos_and_counts_included(env, text):
    answerer, _ = env
    assert answerer._unwritten_term(normalize_text(text)) is None


@pytest.mark.parametrize("text", ["九十年代的老计划还翻得出来不", "过去的发展计划还能翻到原件不"])
def test_old_plans_asked_for_again_reach_the_historical_plans(env, text):
    # 翻出来 asks whether old records can still be found (WHERE_TO_LEARN_RE); 老计划/发展计划 are the
    # historical plans (domain_terms.yml): the item publishing 历史规划（计划） answers
    from bot.answering.answerer import asks_what_is_published

    assert asks_what_is_published(normalize_text(text))
    reply = ask(env, text)
    assert reply.kind == "answer" and reply.citations[0]["item"] == 2, (reply.kind, reply.texts)


@pytest.mark.parametrize("text", ["向政府要一份信息，收不收钱", "跟政府要材料要不要钱"])
def test_asking_whether_a_request_to_the_government_costs_money_is_the_request_item(env, text):
    # 向/找/跟政府要 is a request for information (thesaurus.yml), 收不收钱 its fee
    reply = ask(env, text)
    assert reply.kind == "answer" and reply.citations[0]["item"] == 15, (reply.kind, reply.texts)
