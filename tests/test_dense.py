"""Dense item scores (bot/retrieval/dense.py) and where they decide (issue 11: indirect and
English wording), on the real knowledge base and on a document that exists only in this test.

Every question here is written for these tests; no evaluation question (tests/data/*.jsonl,
../shared/eval) is used, and no rule or threshold names an item of 宁乡 2021.
"""
import asyncio
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from actions.knowledge import answerer as shared_answerer
import bot.answering.answerer as A
from bot.answering.answerer import Query
from bot.kb.store import kb_path
from bot.nlp.normalize import scoring_text
from bot.nlp.segmenter import default_segmenter, question_words
from bot.retrieval import dense as D
from bot.retrieval.search import Hit, document_words
from tests.conftest import answerer_for

BUILD = Path(kb_path()).parent


@pytest.fixture(scope="module")
def env():
    answerer = shared_answerer()
    index = D.DenseIndex.load(answerer.kb, BUILD)
    assert index is not None, "make kb builds build/dense.npy"
    return answerer, default_segmenter(), index


def ask(env, text, intent="ask_policy", dense=True, **kw):
    answerer, seg, index = env
    q = Query(text, question_words(seg, text), intent, **kw)
    if dense:
        q.dense = index.item_scores(scoring_text(text))
    return answerer.answer(q)


def first_item(reply):
    return reply.citations[0]["item"] if reply.kind == "answer" and reply.citations else None


# ------------------------------------------------------------------------- the index itself

def test_every_item_is_scored_best_first_with_its_standing(env):
    answerer, _, index = env
    hits = index.item_scores("疫情期间的防控消息会及时发布吗")
    assert len(hits) == sum(1 for _ in answerer.kb.all_items())
    # ranked by each item's two best passages together; each keeps its best passage's score
    pair = {}
    for (doc, item), k in zip(index.keys, range(len(index.keys))):
        sims = np.sort(index.vectors[index.groups[k]] @ D.embed_query("疫情期间的防控消息会及时发布吗"))[::-1]
        pair[(doc, item)] = sims[:2].mean()
        hit = next(h for h in hits if (h.doc, h.item) == (doc, item))
        assert hit.score == pytest.approx(float(sims[0]), abs=1e-5)
    ranked = [pair[(h.doc, h.item)] for h in hits]
    assert ranked == sorted(ranked, reverse=True)
    # the standing is against all passages (each item's best passage stands above their mean)
    vector = D.embed_query("疫情期间的防控消息会及时发布吗")
    sims = index.vectors @ vector
    assert hits[0].z == pytest.approx((hits[0].score - sims.mean()) / sims.std(), rel=1e-4)
    assert hits[0].z > 2 > hits[-1].z
    item = answerer.kb.item(hits[0].doc, hits[0].item)
    assert "疫情" in item.text


def test_each_sentence_is_also_embedded_under_its_heading(env):
    # a sentence that names its subject only through the heading ("要细化公开内容") is read as
    # about that subject: every sentence is a passage of its item twice, alone and after the heading
    answerer, _, index = env
    passages = D.passages_of(answerer.kb)
    owned = {}
    for doc, item, text in passages:
        owned.setdefault(text, set()).add((doc, item))
    for doc, item in answerer.kb.all_items():
        for sentence in item.sentences:
            assert (doc.doc_id, item.number) in owned[sentence]
            assert owned[f"{item.title}：{sentence}"] == {(doc.doc_id, item.number)}
    assert len(index.vectors) == len(passages)


def test_vectors_are_cached_and_the_query_is_bounded():
    long = "政务公开" * 100
    first = D.embed_query(long)
    assert D.cached_vector(long) is first
    assert D.query_text(long) == long[:D.MAX_QUERY_CHARS]
    assert D.cached_vector(long[:D.MAX_QUERY_CHARS]) is first  # the same question, once


def test_an_index_of_another_build_or_model_is_not_used(tmp_path, env):
    answerer = env[0]
    for name in (D.VECTORS, D.META):
        shutil.copy(BUILD / name, tmp_path / name)
    assert D.DenseIndex.load(answerer.kb, tmp_path) is not None
    meta = json.loads((tmp_path / D.META).read_text(encoding="utf-8"))
    (tmp_path / D.META).write_text(json.dumps(dict(meta, fingerprint="another-build")), encoding="utf-8")
    assert D.DenseIndex.load(answerer.kb, tmp_path) is None
    (tmp_path / D.META).write_text(json.dumps(dict(meta, model="another-model")), encoding="utf-8")
    assert D.DenseIndex.load(answerer.kb, tmp_path) is None
    (tmp_path / D.VECTORS).unlink()
    assert D.DenseIndex.load(answerer.kb, BUILD / "no-such-dir") is None


def test_the_setting_turns_it_off(monkeypatch, env):
    monkeypatch.setenv("ZWZX_DENSE", "off")
    assert not D.enabled()
    assert D.DenseIndex.load(env[0].kb, BUILD) is None


def test_texts_too_short_to_compare_are_not_embedded():
    assert not D.worth_embedding("好的")
    assert not D.worth_embedding("ok thanks")
    assert D.worth_embedding("自来水公司的信息")
    assert D.worth_embedding("Will the budget be published?")


# ------------------------------------------------------------------ the decision rules

def _hit(item, z, score=0.9):
    return D.DenseHit("d", item, score, z)


def test_alone_needs_a_clear_standing_and_closeness():
    assert D.confident_alone([_hit(1, D.Z_ALONE + 0.1, D.ABS_ALONE + 0.01)], foreign=False).item == 1
    assert D.confident_alone([_hit(1, D.Z_ALONE - 0.1, 0.95)], foreign=False) is None
    assert D.confident_alone([_hit(1, 3.5, D.ABS_ALONE - 0.01)], foreign=False) is None
    # English questions sit lower in this model's cosine scale
    assert D.confident_alone([_hit(1, 3.5, D.ABS_ALONE_FOREIGN + 0.01)], foreign=True).item == 1
    assert D.confident_alone([], foreign=False) is None


def test_agreement_is_among_the_best_covered_items_only():
    lexical = [Hit("d", 4, 1.0, 0.2), Hit("d", 7, 0.9, 0.19), Hit("d", 9, 0.5, 0.12)]
    clear = max(D.Z_PICK, D.Z_AGREE)
    assert D.agreeing(lexical, [_hit(7, clear + 0.1)]).item == 7      # tied with the best
    assert D.agreeing(lexical, [_hit(9, clear + 0.5)]) is None        # covered clearly less
    assert D.agreeing(lexical, [_hit(4, clear - 0.1)]) is None        # meaning not clear enough
    # among items the words offer (a clarify), a less clear favourite is enough
    assert D.pick_among([_hit(4, D.Z_PICK + 0.01)], [("d", 4), ("d", 7)]).item == 4
    assert D.agreeing([Hit("d", 4, 1.0, D.AGREE_FLOOR / 2)], [_hit(4, 3.0)]) is None  # words found nothing


def test_english_fuses_words_and_meaning():
    # each reading alone would pick another item: the words item 4, the meaning item 9
    lexical = [Hit("d", 4, 2.0, 0.5), Hit("d", 7, 1.5, 0.45), Hit("d", 9, 1.0, 0.3)]
    meaning = [_hit(9, 2.2), _hit(7, 2.1), _hit(2, 1.5)]
    best = D.fused_best(lexical, meaning)
    assert best.item == 7 and best.score == pytest.approx(0.45 + D.Z_FUSE * 2.1)
    # an item the words do not reach is never chosen, however clear the meaning (it never answers alone)
    assert D.fused_best([Hit("d", 4, 1.0, D.FOREIGN_WORDS_FLOOR - 0.01)], [_hit(4, 5.0)]) is None
    # an item outside the meaning's top few stands below all of them
    lone = D.fused_best([Hit("d", 5, 2.0, 0.5)], meaning)
    assert lone.item == 5 and lone.z == pytest.approx(1.5 - D.OUTSIDE_PENALTY)
    assert D.fused_best([], meaning) is None and D.fused_best(lexical, []) is None


@pytest.mark.parametrize("text,word", [
    ("Will the government release details about medicine bulk-buying?", "集中采购"),
    ("Do utility companies have to publish their information?", "公共企事业单位"),
])
def test_english_is_answered_from_the_item_both_readings_favour(env, text, word):
    reply = ask(env, text)
    assert reply.kind == "answer", (reply.kind, reply.citations)
    assert word in env[0].kb.item(reply.citations[0]["doc"], reply.citations[0]["item"]).text
    assert reply.extra.get("basis") == "words_and_meaning"


# ------------------------------------------------- answers, phrasing class by phrasing class

@pytest.mark.parametrize("text,word", [
    # indirect: everyday words for what the document names formally ("市场上卖假药被罚了，名单能查到吗",
    # once here, is now answered by its words: tests/test_phrasing.py, PUBLISHED_LEAN)
    ("政府在外面欠的账有多少，每年还多少，老百姓能查到吗", "债务"),
])
def test_indirect_wording_is_answered_by_meaning(env, text, word):
    words_only = ask(env, text, dense=False)
    reply = ask(env, text)
    assert reply.kind == "answer", reply.texts
    item = env[0].kb.item(reply.citations[0]["doc"], reply.citations[0]["item"])
    assert word in item.text
    assert words_only.kind != "answer"  # the words alone found no item


@pytest.mark.parametrize("text,word", [
    # no word of the finance item, only its meaning, and nothing like a question about another service
    ("政府每年的开支明细账，老百姓能看吗", "预算"),
    ("政府借了多少外债，每年付多少利息，群众查得到吗", "债务"),
])
def test_a_clear_meaning_far_from_refused_questions_is_answered(env, text, word):
    assert ask(env, text, dense=False).kind == "fallback"
    reply = ask(env, text)
    assert reply.kind == "answer" and reply.extra.get("basis") == "meaning", reply.texts
    assert word in env[0].kb.item(reply.citations[0]["doc"], reply.citations[0]["item"]).text
    # less sure than words: the next items the meaning points at are offered beside the answer
    related = [b for b in reply.buttons if b["title"].startswith("相关：")]
    assert len(related) == 2 and all(b["payload"].startswith("/ask_policy") for b in related)


def test_a_meaning_as_near_a_refused_question_is_offered_not_answered(env):
    # the same question, had it been as close to one of the NLU's out-of-scope examples as to the
    # documents: the favourite is offered first among buttons, nothing is cited
    # (not asked whether it is published — "…能看吗" would be answered: see
    # test_a_fair_favourite_is_answered_when_asked_whether_something_is_published)
    answerer, seg, index = env
    text = "政府每年的开支明细账，老百姓都想了解一下"
    q = Query(text, question_words(seg, text), "ask_policy")
    q.dense = [D.DenseHit(h.doc, h.item, h.score, h.z, h.score - D.CONTRAST_MARGIN / 2)
               for h in index.item_scores(scoring_text(text))]
    reply = answerer.answer(q)
    assert reply.kind == "clarify" and not reply.citations and reply.extra.get("basis") == "meaning"
    first = reply.extra["candidates"][0]
    assert "预算" in answerer.kb.item(first["doc"], first["item"]).text
    assert any(b["payload"] == "/request_human" for b in reply.buttons)


def test_the_meaning_alone_needs_the_contrast_examples():
    top = _hit(1, D.Z_CONTRAST + 0.1, D.ABS_CONTRAST + 0.01)
    top.contrast = top.score - D.CONTRAST_MARGIN - 0.001
    assert D.answers_alone([top], foreign=False) is top
    assert D.answers_alone([top], foreign=True) is None      # the examples are Chinese
    top.contrast = top.score - D.CONTRAST_MARGIN + 0.001     # about as near a refused question
    assert D.answers_alone([top], foreign=False) is None
    top.contrast = None                                       # a build without them: only offered
    assert D.answers_alone([top], foreign=False) is None
    low = _hit(1, D.Z_CONTRAST - 0.1, 0.95)
    low.contrast = 0.5
    assert D.answers_alone([low], foreign=False) is None
    far = _hit(1, 3.5, D.ABS_CONTRAST - 0.01)
    far.contrast = 0.5
    assert D.answers_alone([far], foreign=False) is None
    assert D.answers_alone([], foreign=False) is None


def test_contrast_examples_are_built_from_the_nlu_file_and_travel_with_the_scores(tmp_path, env):
    answerer, _, _ = env
    nlu = tmp_path / "oos.yml"
    nlu.write_text('version: "3.1"\nnlu:\n- intent: out_of_scope\n  examples: |\n'
                   '    - 明天会下雨吗\n    - 帮我订一张去[长沙](city)的火车票\n', encoding="utf-8")
    assert D.contrast_examples(nlu) == ["明天会下雨吗", "帮我订一张去长沙的火车票"]
    listed = tmp_path / "other.yml"
    listed.write_text("questions:\n  - 护照怎么办\n", encoding="utf-8")
    assert D.contrast_examples(listed) == ["护照怎么办"]
    D.build_dense(answerer.kb, tmp_path, contrast_files=[nlu])
    index = D.DenseIndex.load(answerer.kb, tmp_path)
    assert index.contrast.shape == (2, index.vectors.shape[1])
    hits = index.item_scores("明天会下雨吗")
    assert abs(hits[0].contrast - 1.0) < 1e-3  # the very example
    assert D.DenseHit.from_dict(hits[0].as_dict()).contrast == round(hits[0].contrast, 4)
    D.build_dense(answerer.kb, tmp_path, contrast_files=[])  # none: nothing stale is left behind
    assert not (tmp_path / D.CONTRAST).exists()
    assert D.DenseIndex.load(answerer.kb, tmp_path).contrast is None


@pytest.mark.parametrize("text", [
    "身份证丢了怎么补办", "今天天气怎么样", "推荐一部好看的电影", "公积金怎么提取到银行卡",
    "Where can I renew my passport?",
    # an errand no word of the documents matches: refused before the meaning is asked
    "您好，我家老人的结婚证弄丢了，补办需要什么手续呀，谢谢", "驾照科目一考试什么时候报名",
])
def test_other_services_are_still_refused(env, text):
    reply = ask(env, text)
    assert reply.kind != "answer" and not reply.citations


def test_english_answer_from_meaning_is_in_chinese(env):
    reply = ask(env, "Will the city publish how much debt it owes?")
    assert reply.kind == "answer"
    assert "债务" in env[0].kb.item(reply.citations[0]["doc"], reply.citations[0]["item"]).text
    assert any("This service answers in Chinese" in t for t in reply.texts)


def test_english_follow_ups_take_the_item_in_context(env):
    first = ask(env, "How is epidemic prevention information published?")
    assert first.kind == "answer"
    ctx = dict(current_doc=first.citations[0]["doc"], current_item=first.citations[0]["item"])
    who = ask(env, "Who leads it?", "ask_responsible", **ctx)
    when = ask(env, "What about the deadline?", "ask_deadline", **ctx)
    assert first_item(who) == first_item(when) == first_item(first)
    assert "牵头" in who.texts[0]


# -------------------------------------------------- another county's document, no code change

OTHER = """某某县人民政府办公室

某政办发〔2023〕2号

某某县2023年政务公开工作要点

一、重点领域

1.做好农村饮水安全信息公开。定期公开集中供水工程水质检测结果和水费标准。
责任单位：县水利局

2.做好城乡垃圾分类信息公开。公开生活垃圾分类收运处置设施的建设进度和运行情况。
责任单位：县城管局、县住建局

3.做好义务教育招生信息公开。及时公布学区划分、招生计划和入学条件。
责任单位：县教育局

4.做好城镇保障性住房信息公开。公开保障性住房的分配对象、分配房源、分配程序和分配结果。
责任单位：县住建局

5.做好食品药品抽检信息公开。按季度公开食品安全监督抽检结果和不合格产品的处置情况。
责任单位：县市场监管局

二、保障措施

6.加强业务培训。每年组织政务公开业务培训不少于两次，把政务公开纳入干部教育培训内容。
责任单位：县政府办

7.规范政府信息公开申请办理。严格按照法定时限答复，规范答复文书格式，畅通网上申请渠道。
责任单位：县政府办、县司法局

8.加强政府网站管理。开展政府网站和政务新媒体常态化监测，及时整改错链、断链和内容长期不更新问题。
责任单位：县数据中心
"""


@pytest.fixture(scope="module")
def other_env(tmp_path_factory):
    answerer, seg = answerer_for(tmp_path_factory, {"mou-2023.txt": OTHER})
    build = tmp_path_factory.mktemp("dense")
    D.build_dense(answerer.kb, build, words=document_words({"items": answerer.index.items}))
    index = D.DenseIndex.load(answerer.kb, build)
    assert index is not None and len(index.keys) == 8
    return answerer, seg, index


@pytest.mark.parametrize("text,item", [
    ("孩子上小学划片的情况会公布吗", 3),      # indirect: 划片 / 上小学 for 学区划分 / 义务教育招生
    ("Is tap water quality in the villages made public?", 1),  # English
])
def test_other_document_answers_by_meaning(other_env, text, item):
    reply = ask(other_env, text)
    assert first_item(reply) == item, reply.texts


# ------------------------------------------------ the Rasa server embeds off its event loop

def test_parse_embeds_in_a_worker_thread_and_keeps_the_result(agent, monkeypatch):
    from bot.nlu import dense_prefetch
    from bot.nlu.retrieval_arbiter import DENSE_KEY

    assert dense_prefetch._installed  # installed when the model's graph was loaded
    text = "村里的大工程建得怎么样了，进度会公开吗"
    data, calls, loop_thread = _parse_spying(agent, monkeypatch, text, [D.query_text(scoring_text(text))])
    assert dense_prefetch.WANTED_KEY not in data
    assert calls and all(th is not loop_thread for _, th in calls)  # never on the event loop
    assert data.get(DENSE_KEY) and len(data[DENSE_KEY]) == 5
    # the same parse as computing the vector in place (rasa test, scripts)
    again = asyncio.run(agent.processor.parse_message.__wrapped__(agent.processor, _message(text)))
    assert again[DENSE_KEY] == data[DENSE_KEY] and again["intent"] == data["intent"]


def _parse_spying(agent, monkeypatch, text, uncached):
    """Parse ``text`` as the server does, with ``uncached`` vectors forgotten first; returns the
    parse, every (text, thread) the engine was asked to embed, and the event loop's thread."""
    for key in uncached:
        D._vectors.pop(key, None)
    calls, real, loop_thread = [], D.embed_query, []

    def spy(t):
        calls.append((t, threading.current_thread()))
        return real(t)

    monkeypatch.setattr(D, "embed_query", spy)

    async def parse():
        loop_thread.append(threading.current_thread())
        return await agent.parse_message(text)

    return asyncio.run(parse()), calls, loop_thread[0]


def _message(text):
    from rasa.core.channels.channel import UserMessage

    return UserMessage(text)


@pytest.mark.parametrize("text", ["好的知道了", "谢谢你的解答", "嗯嗯"])
def test_small_talk_is_not_looked_up_by_meaning(agent, text):
    data = asyncio.run(agent.parse_message(text))
    assert data["intent"]["name"] != "ask_policy"


def test_a_failing_engine_never_costs_the_message(agent, monkeypatch):
    # the vectors are an improvement: if the engine fails, the words still answer
    def broken(text):
        raise RuntimeError("engine unavailable")

    monkeypatch.setattr(D, "embed_query", broken)
    text = "市场上卖假药被罚了，执法信息能查到吗"
    D._vectors.pop(D.query_text(scoring_text(text)), None)
    data = asyncio.run(agent.parse_message(text))
    assert data["intent"]["name"] and "dense" not in data


def test_a_publish_between_its_renames_keeps_the_old_pair(tmp_path, monkeypatch, env):
    # a new index.json next to the old kb.json (a publish between its two renames) never reaches
    # a citizen as an error: the last complete knowledge base keeps answering
    import actions.knowledge as K
    from bot.kb.store import load_kb

    for name in ("kb.json", "index.json", D.VECTORS, D.META):
        shutil.copy(BUILD / name, tmp_path / name)
    monkeypatch.setenv("ZWZX_BUILD_DIR", str(tmp_path))
    K.reset()
    first = K.answerer()
    index = json.loads((tmp_path / "index.json").read_text(encoding="utf-8"))
    (tmp_path / "index.json").write_text(json.dumps(dict(index, fingerprint="the-next-build")), encoding="utf-8")
    assert K.answerer() is first
    assert load_kb(tmp_path / "kb.json").fingerprint == first.kb.fingerprint
    K.reset()


@pytest.mark.parametrize("z,answered", [(D.Z_OVER_WORDS + 0.2, True), (D.Z_OVER_WORDS - 0.1, False)])
def test_a_clear_meaning_outside_the_words_weak_matches(env, z, answered):
    # "信息公开" alone: the words match many items weakly and ask which one. Had the meaning pointed
    # clearly at an item the words did not offer (far from every refused question), it is answered
    # with the words' items beside it; less clearly, the citizen still chooses.
    answerer, seg, _ = env
    text = "信息公开"
    words_only = answerer.answer(Query(text, question_words(seg, text), "ask_policy"))
    assert words_only.kind == "clarify"
    offered = [(c["doc"], c["item"]) for c in words_only.extra["candidates"]]
    other = next((d.doc_id, i.number) for d, i in answerer.kb.all_items() if (d.doc_id, i.number) not in offered)
    q = Query(text, question_words(seg, text), "ask_policy")
    q.dense = [D.DenseHit(other[0], other[1], 0.91, z, 0.86)] + \
        [D.DenseHit(doc, item, 0.88, 1.5, 0.86) for doc, item in offered]
    reply = answerer.answer(q)
    if answered:
        assert reply.kind == "answer" and reply.extra.get("basis") == "meaning"
        assert (reply.citations[0]["doc"], reply.citations[0]["item"]) == other
        assert [b["title"] for b in reply.buttons if b["title"].startswith("相关：")]
    else:
        assert reply.kind == "clarify" and not reply.citations


def test_the_documents_place_names_are_not_contrast(tmp_path, env, other_env):
    assert D.place_names(env[0].kb) == ["宁乡市", "宁乡"]
    assert D.place_names(other_env[0].kb)[-1:] and all(len(n) >= 2 for n in D.place_names(other_env[0].kb))
    nlu = tmp_path / "oos.yml"
    nlu.write_text("questions:\n  - 明天宁乡会下雨吗\n  - 宁乡\n", encoding="utf-8")
    computed = D.compute_dense(env[0].kb, [nlu])
    assert computed["meta"]["contrast"] == 1  # "明天会下雨吗"; a name alone is dropped
    assert np.allclose(computed["contrast"][0], D.model().query("明天会下雨吗"), atol=1e-6)


@pytest.mark.parametrize("contrast,offered", [(0.85, True), (0.95, False)])
def test_a_fair_favourite_is_offered_only_when_nearer_the_documents(env, contrast, offered):
    # words find nothing; the meaning's favourite stands only fairly (below Z_SUGGEST): offered as a
    # button when the question is nearer the documents than any refused question, else 没有找到
    answerer, seg, index = env
    text = "那个事情后来怎么样了呢大家都想知道"
    q = Query(text, question_words(seg, text), "ask_policy")
    first = next(iter(answerer.kb.all_items()))
    q.dense = [D.DenseHit(first[0].doc_id, first[1].number, 0.9, D.Z_SUGGEST_NEAR + 0.1, contrast)]
    reply = answerer.answer(q)
    assert not reply.citations
    assert (reply.kind == "clarify" and reply.extra.get("basis") == "meaning") == offered
    if not offered:
        assert reply.kind == "fallback"


@pytest.mark.parametrize("z,contrast,answered", [(A.Z_AGREE_WORDS + 0.2, 0.86, True),
                                                 (A.Z_AGREE_WORDS - 0.1, 0.86, False),   # not clear enough
                                                 (A.Z_AGREE_WORDS + 0.2, 0.95, False)])  # nearer a refused question
def test_the_words_best_item_confirmed_by_the_meaning_is_answered(env, z, contrast, answered):
    # "信息公开" alone: the words match several items weakly and would ask which one. When the
    # meaning's best item is the words' best too, two readings agree: that item is answered
    answerer, seg, _ = env
    text = "信息公开"
    words_only = answerer.answer(Query(text, question_words(seg, text), "ask_policy"))
    assert words_only.kind == "clarify"
    offered = [(c["doc"], c["item"]) for c in words_only.extra["candidates"]]
    q = Query(text, question_words(seg, text), "ask_policy")
    q.dense = [D.DenseHit(offered[0][0], offered[0][1], 0.9, z, contrast)] + \
        [D.DenseHit(doc, item, 0.88, 1.0, contrast) for doc, item in offered[1:]]
    reply = answerer.answer(q)
    if answered:
        assert reply.kind == "answer" and reply.extra.get("basis") == "words_and_meaning"
        assert (reply.citations[0]["doc"], reply.citations[0]["item"]) == offered[0]
        assert [b for b in reply.buttons if b["title"].startswith("相关：")]
    else:
        assert reply.kind == "clarify" and not reply.citations


@pytest.mark.parametrize("text,answered", [
    ("上头答应的那几桩心愿，进展会不会公布", True),     # asks whether it is published
    ("上头答应的那几桩心愿，进展咋样了", False),         # asks nothing of the kind: offered only
    ("那几桩心愿怎么申请，会不会公布", False),           # an errand
])
def test_a_fair_favourite_is_answered_when_asked_whether_something_is_published(env, text, answered):
    answerer, seg, _ = env
    target = next(i for d, i in answerer.kb.all_items() if i.number == 4)
    others = [i for d, i in answerer.kb.all_items() if i.number != 4][:2]
    q = Query(text, question_words(seg, text), "ask_policy")
    doc = answerer.kb.documents[0].doc_id
    q.dense = [D.DenseHit(doc, target.number, 0.90, D.Z_SUGGEST_NEAR + 0.1, 0.88)] + \
        [D.DenseHit(doc, o.number, 0.87, 1.5, 0.88) for o in others]
    reply = answerer.answer(q)
    if answered:
        assert reply.kind == "answer" and reply.citations[0]["item"] == 4
        assert reply.extra.get("basis") == "meaning_disclosure"
    else:
        assert reply.kind != "answer" and not reply.citations


# ------------------------------- words no item uses, read by the documents' words near them

def _near(answerer, seg, index, text):
    """The parse's near_words as the NLU computes them (bot/nlu/retrieval_arbiter.py)."""
    words = question_words(seg, text)
    near = {w: index.near_words(w, D.embed_query(w)) for w in words if answerer.index.unknown_word(w)}
    return words, {w: v for w, v in near.items() if v}


def test_near_words_are_the_documents_words_close_to_it_sharing_a_character(env):
    answerer, seg, index = env
    for word in ("燃气", "停电"):
        near = index.near_words(word, D.embed_query(word))
        assert near and len(near) <= D.NEAR_PER_WORD
        assert all(v in index.words and set(v) & set(word) for v in near)
    # a word of the documents, or an everyday word, is not read by others
    assert not answerer.index.unknown_word("公开")
    assert not answerer.index.unknown_word("以后") and not answerer.index.unknown_word("公司")
    assert answerer.index.unknown_word("燃气")


def test_a_read_word_covers_part_of_itself_unless_an_unread_one_outweighs_it(env, monkeypatch):
    answerer, _, _ = env
    index = answerer.index
    # 燃气 as a word no item uses and no domain term reads (domain_terms.yml does read it: tests/test_domain_terms.py)
    monkeypatch.setattr(index, "domain_terms", {})
    monkeypatch.setattr(index, "_expansions_for", (None, [], set()))
    i = next(k for k, ws in enumerate(index.word_sets) if "供气" in ws)
    words = ["燃气", "公司", "信息", "公开"]
    weights = {w: 1.0 for w in words}
    plain = index._coverage(i, words, weights, "".join(words))
    read = index._coverage(i, words, weights, "".join(words), {"燃气": ["供气"]})
    assert read > plain
    # a second word no item uses, as heavy and read by nothing: the reading does not count
    both = ["燃气", "牌照", "公开"]
    w2 = {w: 1.0 for w in both}
    assert index._coverage(i, both, w2, "".join(both), {"燃气": ["供气"]}) == \
        index._coverage(i, both, w2, "".join(both))


def test_a_published_question_in_everyday_words_is_answered_through_near_words(other_env):
    answerer, seg, index = other_env
    # 廉租房 → 住房 (保障性住房的分配结果); the nearest word of an everyday verb (分给 → 分配 or 划分) differs
    # with the CPU's arithmetic in e5's 4-bit kernels, so the question turns on the noun alone
    text = "廉租房的名单会公示吗"
    words, near = _near(answerer, seg, index, text)
    assert near
    q = Query(text, words, "ask_policy", near=near)
    q.dense = index.item_scores(scoring_text(text))
    reply = answerer.answer(q)
    assert reply.kind == "answer"
    item = answerer.kb.item(reply.citations[0]["doc"], reply.citations[0]["item"])
    assert any(v in item.text for vs in near.values() for v in vs)
    without = Query(text, words, "ask_policy", dense=q.dense)
    assert answerer.answer(without).kind != "answer"  # the words alone did not reach it


@pytest.mark.parametrize("text", ["家里停电了找谁来修", "燃气费怎么交"])
def test_an_errand_is_not_read_through_near_words(env, text):
    answerer, seg, index = env
    words, near = _near(answerer, seg, index, text)
    assert near  # the errand's subject has near words, but an errand is not a question about what is published
    q = Query(text, words, "ask_policy", near=near)
    q.dense = index.item_scores(scoring_text(text))
    assert answerer.answer(q).kind != "answer"


def test_near_words_travel_in_the_parse_and_are_embedded_off_the_loop(agent, monkeypatch):
    from bot.nlu.retrieval_arbiter import NEAR_KEY

    text = "燃气公司、供暖公司的收费信息要不要公开"
    data, calls, loop_thread = _parse_spying(agent, monkeypatch, text, [D.query_text(scoring_text(text)), "燃气", "供暖"])
    near = data.get(NEAR_KEY) or {}
    assert "燃气" in near and all(set(v) & set("燃气") for v in near["燃气"])
    assert "燃气" in [t for t, _ in calls] and all(th is not loop_thread for _, th in calls)
    again = asyncio.run(agent.processor.parse_message.__wrapped__(agent.processor, _message(text)))
    assert again[NEAR_KEY] == near


def test_near_words_are_shed_with_the_other_bulky_parse_data():
    from bot.ops.limits import lean_event_data

    event = {"event": "user", "text": "问" * 50, "parse_data": {
        "text": "问" * 50, "intent": {"name": "ask_policy", "confidence": 0.9},
        "near_words": {f"词{k}": ["供气", "供热"] for k in range(200)}}}
    lean, changed = lean_event_data(event, max_bytes=2000)
    assert changed and "near_words" not in lean["parse_data"] and lean["text"] == "问" * 50
