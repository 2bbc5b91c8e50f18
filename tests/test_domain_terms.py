"""Citizens' words for the domain's official terms (data/kb_config/domain_terms.yml): read only in a
question about what is published, never as a key the documents write themselves, and on any
document (a document and a word list that exist only in this test)."""
import shutil

import pytest
import yaml

from bot.answering.answerer import Answerer, Query, asks_what_is_published
from bot.kb.generate import write_user_dict
from bot.kb.store import DEFAULT_CONFIG_DIR, build_kb
from bot.nlp.segmenter import Segmenter
from bot.retrieval.search import PolicyIndex, build_index

DOC = """某县2026年政务公开工作要点
一、重点领域
（一）做好政府债务信息公开。及时公开政府债务限额、余额和还本付息情况，接受社会监督。【县财政局牵头】
（二）推进重大建设项目信息公开。公开项目批准、实施进度和竣工验收信息。【县发改局牵头】
（三）加强业务培训。每年组织政务公开业务培训，提高工作人员能力。【县政府办公室牵头】
"""

TERMS = {"expansions": {"欠款": ["政府债务", "债务"], "修大桥": ["重大建设项目"], "业务培训": ["政府债务"]}}


def _answerer(tmp_path_factory, terms):
    config = tmp_path_factory.mktemp("config")
    for name in ("departments.yml", "thesaurus.yml"):
        shutil.copy(DEFAULT_CONFIG_DIR / name, config / name)
    if terms is not None:
        (config / "domain_terms.yml").write_text(yaml.safe_dump(terms, allow_unicode=True), encoding="utf-8")
    policies = tmp_path_factory.mktemp("policies")
    (policies / "mou-2026.txt").write_text(DOC, encoding="utf-8")
    kb = build_kb(policies, config)
    seg = Segmenter(write_user_dict(kb, tmp_path_factory.mktemp("build") / "dict.txt"))
    return Answerer(kb, PolicyIndex(kb, build_index(kb, seg))), seg


@pytest.fixture(scope="module")
def with_terms(tmp_path_factory):
    return _answerer(tmp_path_factory, TERMS)


@pytest.fixture(scope="module")
def without_terms(tmp_path_factory):
    return _answerer(tmp_path_factory, None)


def ask(env, text):
    answerer, seg = env
    return answerer.answer(Query(text, seg.words(text), "ask_policy"))


def test_a_key_the_documents_write_is_not_read_as_another_term(with_terms):
    answerer, _ = with_terms
    assert set(answerer.kb.domain_terms) == {"欠款", "修大桥"}  # 业务培训 is the document's own word


@pytest.mark.parametrize("text, item", [
    ("县里的欠款到底有多少，老百姓能知道吗", 1),
    ("家门口修大桥，这类信息会公开吗", 2),
])
def test_a_citizens_word_reaches_the_official_term_in_a_question_about_publishing(with_terms, without_terms,
                                                                                   text, item):
    reply = ask(with_terms, text)
    assert reply.kind == "answer" and reply.citations[0]["item"] == item, (reply.kind, reply.citations)
    # without the word list the same question finds no item in words
    before = ask(without_terms, text)
    assert not (before.kind == "answer" and before.citations and before.citations[0]["item"] == item)


def test_in_an_errand_the_word_is_not_read_as_a_published_topic(with_terms):
    answerer, _ = with_terms
    errand = "欠款怎么办理还款"
    assert not asks_what_is_published(errand)
    assert "政府债务" not in answerer.index.expand(errand, ["欠款", "办理", "还款"])
    asked = "欠款会公开吗"
    assert asks_what_is_published(asked) and "政府债务" in answerer.index.expand(asked, ["欠款"])


@pytest.mark.parametrize("text, item", [
    ("县里欠下的款老百姓能知道吗", 1),             # 欠款 with two characters between
    ("家门口要修一座大桥，这类信息会公开吗", 2),   # 修大桥 with 一座 between
])
def test_a_key_reworded_within_a_clause_still_reaches_its_term(with_terms, without_terms, text, item):
    reply = ask(with_terms, text)
    assert reply.kind == "answer" and reply.citations[0]["item"] == item, (reply.kind, reply.citations)
    before = ask(without_terms, text)
    assert not (before.kind == "answer" and before.citations and before.citations[0]["item"] == item)


def test_key_span_keeps_to_one_clause_few_characters_and_the_questions_words():
    from bot.retrieval.search import key_span

    assert key_span("欠款", "县里欠了多少款", 3, ["县里", "欠", "了", "多少", "款"]) == "欠了多少款"
    assert key_span("欠款", "县里欠了多少款", 0, ["欠", "款"]) is None           # gaps not allowed
    assert key_span("欠款", "欠的，款项", 3, ["欠", "款项"]) is None              # across a comma
    assert key_span("欠款", "欠了好多年的水电款", 3, ["欠", "了", "好多年", "的", "水电", "款"]) is None  # too far
    # the span must begin and end with a word of the question: 公开栏 …会 is no 开会
    assert key_span("开会", "公开栏以后会统一吗", 3, ["公开栏", "以后", "会", "统一"]) is None
    assert key_span("开会", "公开栏以后会统一吗", 3, ["公开", "栏", "以后", "会"]) is None
    assert key_span("开会", "开完会定的事", 3, ["开", "完", "会", "定", "的", "事"]) == "开完会"


def test_a_negated_key_reaches_over_the_words_between_the_negation_and_its_verb():
    from bot.retrieval.search import key_span

    assert key_span("不用申请", "不用我专门去申请，政府就该公开的信息", 3,
                    ["不用", "我", "专门", "去", "申请", "政府"]) == "不用我专门去申请"
    assert key_span("不等申请", "不等老百姓申请就公开", 3, ["不等", "老百姓", "申请", "就", "公开"]) == "不等老百姓申请"
    # an ordinary key keeps its short gaps; a negation does not reach into the next clause
    assert key_span("欠款", "欠我专门去拿的款", 3, ["欠", "我", "专门", "去", "拿", "的", "款"]) is None
    assert key_span("不用申请", "不用了，申请表在哪", 3, ["不用", "了", "申请表", "在", "哪"]) is None


@pytest.mark.parametrize("text", ["网上骂得凶的事，政府会不会站出来说句话", "欠款的事闹这么大，政府咋不吭声",
                                  "欠款问题政府会出个说法吗"])
def test_whether_the_government_answers_in_public_is_a_published_question(with_terms, text):
    answerer, seg = with_terms
    assert asks_what_is_published(text)
    assert "政府债务" in answerer.index.expand(text, seg.words(text)) or "欠款" not in text


def test_an_errand_about_the_same_word_is_still_an_errand():
    assert not asks_what_is_published("欠款怎么办理还款")
    assert not asks_what_is_published("自来水停了找哪个")


@pytest.mark.parametrize("text", ["欠款的事有没有人盯着", "欠款这事政府会搭理不", "欠款拖着不还的单位会不会被通报"])
def test_whether_someone_oversees_it_is_a_published_question(with_terms, text):
    answerer, seg = with_terms
    assert asks_what_is_published(text)
    assert "政府债务" in answerer.index.expand(text, seg.words(text))


def test_an_errand_with_an_oversight_word_is_still_an_errand():
    assert not asks_what_is_published("欠款怎么办理还款，有没有人管")  # (怎么办理: an errand first)


@pytest.mark.parametrize("text", ["老家的户口证明能不能在外地办", "办事要跑好几个窗口，能不能一趟办完", "这几样手续能不能合在一起办"])
def test_whether_a_service_reform_lets_it_be_done_elsewhere_or_at_once_is_a_published_question(text):
    assert asks_what_is_published(text)
    assert not asks_what_is_published("户口证明在哪个窗口补办")  # an errand stays an errand


@pytest.mark.parametrize("text", ["欠款的事情办到哪一步了", "修大桥的事搞得怎么样了", "欠款答应还的，落实了没有"])
def test_how_far_the_governments_work_has_got_is_a_published_question(with_terms, text):
    answerer, seg = with_terms
    assert asks_what_is_published(text)
    assert set(answerer.index.expand(text, seg.words(text))) & {"政府债务", "重大建设项目"}


def test_how_far_ones_own_case_has_got_is_still_an_errand():
    assert not asks_what_is_published("我的护照办到哪一步了")


@pytest.mark.parametrize("text", ["我们科室想了个好主意，能报上去吗", "这个办法能不能当成样板让别的单位借鉴"])
def test_whether_a_units_own_practice_is_reported_up_or_spread_is_a_published_question(text):
    assert asks_what_is_published(text)
