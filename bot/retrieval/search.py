"""Retrieval over the knowledge base: BM25 on pkuseg words and on character bigrams,
item titles and sentences, thesaurus expansion, boosts for recognised departments.

Token lists for every item and sentence are computed at build time
(:func:`build_index`) so the serving process needs no segmenter: query tokens come
from the NLU parse result.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set

from bot.kb.store import KnowledgeBase
from bot.nlp.segmenter import CJK_RE, STOPWORDS, content_words
from bot.retrieval.bm25 import BM25
from bot.retrieval.general_words import GeneralWords, build_general_words
from bot.retrieval.english import (build_department_glosses, build_english_map, build_term_glosses,
                                   QUESTION_FRAME_WORDS, QUOTED_RE, departments_in_english, terms_in_english,
                                   english_words, lemma)

RUN_RE = re.compile(r"[\u3400-\u9fff]+")
REFERENCE_Q_RE = re.compile(r"依据|根据|哪个文件|什么文件|文件依据|办法|文号|文件号|字号|规定")
DEADLINE_Q_RE = re.compile(r"时间|时限|期限|什么时候|何时|多久|截止|年底|节点|啥时候|几时|哪天|哪年")
RANK_COVERAGE_FLOOR = 0.1
TOP_K = 5  # hits a search returns unless asked for more
LATIN_RE = re.compile(r"[A-Za-z]{3,}")
COUNT_Q_RE = re.compile(r"多少个|几个|几类|多少类|哪几|多少项")
# "重点是哪几块", "包括哪些领域": the sentence that lists them ("就业、教育、医卫健康、社会保障等")
LIST_Q_RE = re.compile(r"哪(?:几|些)(?:块|个|类|方面|领域|项|种|部分)?|包括(?:哪些|什么|啥)|都有(?:啥|什么)|重点是(?:什么|啥)"
                       r"|\b(?:which|what) (?:areas|fields|sectors|kinds|types)\b", re.I)
ENUMERATION_RE = re.compile(r"[^、，。；]{1,12}、[^、，。；]{1,12}、")


def bigrams_of_text(text: str) -> List[str]:
    out = []
    for run in RUN_RE.findall(text):
        out.extend(run[i : i + 2] for i in range(len(run) - 1))
    return out


def bigrams_of_words(words: Sequence[str]) -> List[str]:
    out = []
    for w in words:
        if CJK_RE.search(w) and len(w) >= 2:
            out.extend(w[i : i + 2] for i in range(len(w) - 1))
    return out


def build_index(kb: KnowledgeBase, segmenter) -> dict:
    items = []
    for doc, item in kb.all_items():
        sentences = []
        for s in item.sentences:
            sentences.append({"text": s, "tokens": [t.lower() for t in segmenter.words(s)]})
        items.append({
            "doc": doc.doc_id,
            "item": item.number,
            "title_tokens": [t.lower() for t in segmenter.words(item.title)],
            "sentences": sentences,
        })
    def expansion_words(table: Dict[str, List[str]]) -> Dict[str, List[str]]:
        """Each key's configured phrases and their words."""
        return {key: sorted({t for v in values for t in content_words(segmenter.words(v))} | set(values))
                for key, values in table.items()}

    thesaurus, domain_terms = expansion_words(kb.thesaurus), expansion_words(kb.domain_terms)
    # every 2-4 character run of the items' text: the dictionary decides which are words
    vocabulary = set()
    for it in items:
        for run in RUN_RE.findall(" ".join(s["text"] for s in it["sentences"]) + " " + "".join(it["title_tokens"])):
            for n in (2, 3, 4):
                vocabulary.update(run[k:k + n] for k in range(len(run) - n + 1))
    english = build_english_map(vocabulary, bridge=True)
    # the documents' own sentences outside any item (notice, preamble), clause by clause
    passages = []
    for doc in kb.documents:
        for sentence in doc.passages():
            for clause in passage_clauses(sentence):
                passages.append({"doc": doc.doc_id, "sentence": sentence, "text": clause,
                                 "tokens": [t.lower() for t in segmenter.words(clause)]})
    # department names read in English ("Justice Bureau" → 市司法局), from their forms in the KB
    forms = {d: kb.department_forms(d) for d, v in kb.departments.items() if not v.get("generic")}
    return {"fingerprint": kb.fingerprint, "items": items, "thesaurus": thesaurus, "domain_terms": domain_terms,
            "english": english,
            "passages": passages, "english_departments": build_department_glosses(forms) if english else {},
            # the documents' quoted terms read in English ("double random, one public" → 双随机、一公开)
            "english_terms": {t: {"parts": parts, "words": [w.lower() for w in content_words(segmenter.words(t))]}
                              for t, parts in (build_term_glosses(
                                  [t for d, i in kb.all_items() for t in i.terms]) if english else {}).items()},
            "general_words": build_general_words()}


KEY_GAP = int(os.environ.get("ZWZX_KEY_GAP", "3"))  # characters a domain key's characters may stand apart
GAP_FILL = "[^，。；！？、,.;!?：:（）()]{0,%d}?"
_gap_patterns: Dict[tuple, "re.Pattern"] = {}
# a key that begins with a negation ("不用申请"): "不用我专门去申请", "不等老百姓申请"
NEGATION_KEY_RE = re.compile(r"^(不用|不必|无需|无须|不需要|不等|用不着|不经)(.{2,})$")
NEGATION_SCOPE = 6


def key_span(key: str, text: str, gap: int = 0, words: Sequence[str] = ()) -> Optional[str]:
    """Where ``text`` writes ``key``: the key itself, or (``gap`` > 0) its characters in order within
    one clause with at most ``gap`` characters between two of them ("欠了好多钱" for 欠钱, "网上都在传"
    for 网传): a citizen rewords a key as often as he writes it. Such a span must begin and end with
    one of the question's ``words`` ("开栏以后会" of 公开栏 is no 开会)."""
    if key in text:
        return key
    if not gap or not 2 <= len(key) <= (6 if NEGATION_KEY_RE.match(key) else 4) or not all(c in text for c in key):
        return None
    pattern = _gap_patterns.get((key, gap))
    if pattern is None:
        negated = NEGATION_KEY_RE.match(key)  # "不用…申请": a negation governs a verb a few words on
        head, rest = (negated.group(1), negated.group(2)) if negated else ("", key)
        pattern = re.escape(head) + (GAP_FILL % NEGATION_SCOPE if head else "") + \
            (GAP_FILL % gap).join(map(re.escape, rest))
        pattern = _gap_patterns[(key, gap)] = re.compile(pattern)
    negation = NEGATION_KEY_RE.match(key)
    for m in pattern.finditer(text):
        span = m.group(0)
        # (a negation — 不用, 不需要 — is no content word: it begins the span by itself)
        if (any(span.startswith(w) for w in words) or (negation and span.startswith(negation.group(1)))) \
                and any(span.endswith(w) for w in words):
            return span
    return None


def document_words(index: dict) -> List[str]:
    """The items' Chinese words of two or more characters (``build_index``'s tokens): the words a
    question's unknown word may be read as (bot.retrieval.dense.DenseIndex.near_words)."""
    words = set()
    for it in index["items"]:
        for toks in [it["title_tokens"]] + [s["tokens"] for s in it["sentences"]]:
            words.update(w for w in content_words(toks) if len(w) >= 2 and CJK_RE.search(w))
    return sorted(words)


def passage_clauses(sentence: str, short: int = 60) -> List[str]:
    """A long sentence (a preamble is often one) is searched clause by clause."""
    if len(sentence) <= short:
        return [sentence]
    return [c for c in re.split(r"(?<=[，；。])", sentence) if len(c.strip("，；。 ")) >= 4]


@dataclass
class Passage:
    doc: str
    sentence: str
    clause: str
    coverage: float


DERIVED_SUFFIXES = (("ly", ""), ("ization", "ize"), ("isation", "ise"), ("ation", ""), ("ation", "ate"),
                    ("ation", "e"), ("ment", ""), ("ness", ""), ("ency", "ent"), ("ancy", "ant"), ("ity", ""),
                    ("ity", "e"), ("ure", "e"), ("ive", "ion"), ("ate", "ation"))
GENERAL_WEIGHTS = True   # weigh words no item uses by their general frequency (general_words.py)
DISTINCTIVE_IDF = 2.0    # idf of a word at most two items of a document of ~20 use
UNKNOWN_DISCOUNT = 0.5   # share of an unknown word's weight dropped when a distinctive word matched
SENTENCE_DETAIL = os.environ.get("ZWZX_SENTENCE_DETAIL", "on") != "off"  # best_sentences
LITERAL_BONUS = 2.0      # best_sentences: a question word the sentence writes inside other words
TITLE_COVERAGE_BONUS = 0.5  # a question word in the item's heading counts this much extra
NEAR_WEIGHT = 0.5        # a document word near in meaning to a question's unknown word weighs this much ...
NEAR_COVER = 0.5         # ... and covers this share of it


# English words of a question's frame, not its topic (their glosses 政府/政策/部门 reach many items)
EN_GENERIC = {lemma(w) for w in """government policy policies official officials department bureau office agency
    authority authorities city county town municipal local state citizen citizens resident residents people
    year years month months week today now time""".split()}
LIST_CLAUSE_SPLIT_RE = re.compile(r"[，。；：！？（）()〔〕\[\]]")


@dataclass
class Hit:
    doc: str
    item: int
    score: float
    coverage: float
    sentences: List[str] = field(default_factory=list)
    matched: List[str] = field(default_factory=list)

    @property
    def rank(self) -> float:
        """Score weighted by coverage: an item that matches many query terms weakly (a frequent
        single character, a broad thesaurus expansion) does not outrank one that covers the
        question."""
        return self.score * (RANK_COVERAGE_FLOOR + self.coverage) ** 2


# "政府网站要建个什么库", "要成立什么班": the one character after 什么 at the end of the question is the
# kind of thing asked for; written by at most this many items, it singles them out
ASKED_HEAD_RE = re.compile(r"(?:什么|啥|哪种|哪类|哪一类)(?:样的)?([\u4e00-\u9fff])(?=[？?。！!呢吗啊呀]*$|[，,])")
HEAD_MAX_ITEMS = 2
HEAD_MARGIN = 0.05  # ... among the items whose coverage is this close to the best


class PolicyIndex:
    def __init__(self, kb: KnowledgeBase, data: dict):
        self.kb = kb
        self.items = data["items"]
        self.thesaurus: Dict[str, List[str]] = data.get("thesaurus", {})
        # citizens' words for the domain's terms: only in a question about what is published (below)
        self.domain_terms: Dict[str, List[str]] = data.get("domain_terms", {}) \
            if os.environ.get("ZWZX_DOMAIN_TERMS", "on") != "off" else {}
        self.english: Dict[str, List[str]] = data.get("english", {})
        self._text_idf: Dict[str, float] = {}
        self._expansions_for: tuple = (None, [], set(), None)
        word_docs, bigram_docs, self.sent_ref = [], [], []
        sent_docs = []
        self.title_sets = []
        self.title_bigrams = []
        self.texts: List[str] = []
        for i, it in enumerate(self.items):
            words = list(it["title_tokens"])
            text = ""
            for j, s in enumerate(it["sentences"]):
                words.extend(s["tokens"])
                text += s["text"]
                sent_docs.append(content_words(s["tokens"]))
                self.sent_ref.append((i, j))
            word_docs.append(content_words(words))
            bigram_docs.append(bigrams_of_text(text))
            self.title_sets.append(set(content_words(it["title_tokens"])))
            self.title_bigrams.append(set(bigrams_of_text("".join(it["title_tokens"]))))
            self.texts.append("".join(it["title_tokens"]) + text)
        self.words = BM25(word_docs)
        self.bigrams = BM25(bigram_docs)
        self.sents = BM25(sent_docs)
        self.word_sets = [set(d) for d in word_docs]
        self.bigram_sets = [set(d) for d in bigram_docs]
        self.english_departments = data.get("english_departments", {})
        self.english_terms = data.get("english_terms", {})
        self._term_glosses = {t: v["parts"] for t, v in self.english_terms.items()}
        self.general = GeneralWords(data.get("general_words"))
        self.passages = data.get("passages", [])
        self.passage_words = [set(content_words(p["tokens"])) for p in self.passages]

    @classmethod
    def load(cls, kb: KnowledgeBase, path: Path) -> "PolicyIndex":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("fingerprint") != kb.fingerprint:
            raise ValueError("检索索引与知识库版本不一致，请重新运行 python -m bot.kb build")
        return cls(kb, data)

    # -- query analysis --------------------------------------------------------
    def expand(self, text: str, words: List[str], near: Optional[Dict[str, List[str]]] = None) -> Dict[str, float]:
        """Query term weights: the citizen's own words 1.0, thesaurus expansions 0.6, the documents'
        words nearest in meaning to a word no item uses (``near``, from the NLU) ``NEAR_WEIGHT``."""
        weights = {w: 1.0 for w in words}
        for w in words:
            for v in (near or {}).get(w, ()):
                weights.setdefault(v, NEAR_WEIGHT)
        negated = self.negated_words(text, words)
        for _, values, _, span in self.expansions_in(text, words):
            if span in negated:
                continue  # (申请 of "不用…申请" read as 依申请公开)
            for v in values:
                weights.setdefault(v.lower(), 0.6)
        for w in negated:
            weights[w] = 0.0  # "不用申请就公开的": not about applications (依申请公开), only through its key
        if self.english:
            for w in english_words(text):  # English words → the documents' Chinese words (CC-CEDICT)
                # (a derived form — procurement → procure — as translations() reads it)
                for t in self.english.get(w) or self.translations(w):
                    weights.setdefault(t, 0.6)
        return weights

    def negated_words(self, text: str, words: Sequence[str] = ()) -> set:
        """The question's words a negation key governs (申请 of "不等老百姓申请就该挂出来的"): the
        question is about what needs no such step, so they match an item only through the key.
        Found with the expansions (``expansions_in``), once per question."""
        return self._expansions(text, words)[2]

    def expansions_in(self, text: str, words: Sequence[str] = ()) -> List[tuple]:
        """(key, its words, as configured, the text's span) of the thesaurus entries whose key the text
        writes (spaces aside), and of the domain terms' (``key_span``: also reworded) when the question
        asks what is published or who sees to it ("欠的钱…老百姓能知道吗"): in an errand ("停水了找哪个",
        "疫苗在哪打") the citizen's word is the subject of another service, not a published topic. Kept for
        the last text and words asked (a search reads them once per item)."""
        return self._expansions(text, words)[1]

    def _expansions(self, text: str, words: Sequence[str]) -> tuple:
        """((text, words), ``expansions_in``'s list, ``negated_words``' set), for the last question."""
        cached = self._expansions_for  # one tuple, replaced whole: safe between threads
        if cached[0] != (text, tuple(words)):
            bare = text.lower().replace(" ", "")
            found = [(k, vs, self.kb.thesaurus.get(k, ()), k) for k, vs in self.thesaurus.items()
                     if k.replace(" ", "") in bare]
            domain = [(k, vs, self.kb.domain_terms.get(k, ()), span) for k, vs in self.domain_terms.items()
                      for span in [key_span(k.replace(" ", ""), bare, KEY_GAP, words)] if span]
            if domain:
                from bot.answering.answerer import asks_what_is_published

                if asks_what_is_published(text):
                    found += domain
            negated = set()
            for key, _, _, span in found:
                negation = NEGATION_KEY_RE.match(key.replace(" ", ""))
                if negation:
                    negated.update(w for w in words if w in negation.group(2) and len(w) >= 2 and w in span)
            head = ASKED_HEAD_RE.search(text)
            head = head.group(1) if head and head.group(1) in words and \
                0 < sum(head.group(1) in t for t in self.texts) <= HEAD_MAX_ITEMS else None
            cached = ((text, tuple(words)), found, negated, head)
            self._expansions_for = cached
        return cached

    def asked_head(self, text: str, words: Sequence[str] = ()) -> Optional[str]:
        """The one character asked for after 什么 ("政府网站要建个什么库": 库), when at most
        HEAD_MAX_ITEMS items write it: the kind of thing the answer names (文件库)."""
        return self._expansions(text, words)[3]

    def english_terms_named(self, text: str) -> List[str]:
        """The documents' quoted terms an English question names ('double random, one public' →
        双随机、一公开), best first (CC-CEDICT glosses, bot.retrieval.english.terms_in_english)."""
        return terms_in_english(text, self._term_glosses) if self._term_glosses else []

    def with_english_terms(self, text: str, words: List[str]) -> List[str]:
        """``words`` and, when an English question names one of the documents' quoted terms
        ('double random, one public'), that term's own words, as if the citizen had written it."""
        if not self._term_glosses or not LATIN_RE.search(text):
            return words
        for term in self.english_terms_named(text)[:1]:
            words = words + [w for w in self.english_terms[term]["words"] if w not in words]
        return words

    def text_idf(self, phrase: str) -> float:
        """idf of a phrase by the items whose text contains it (dictionary words need not be tokens)."""
        if phrase not in self._text_idf:
            f = sum(phrase in t for t in self.texts)
            n = len(self.texts)
            self._text_idf[phrase] = math.log(1 + (n - f + 0.5) / (f + 0.5))
        return self._text_idf[phrase]

    def unknown_word(self, word: str) -> bool:
        """A Chinese word of two or more characters that no item uses or writes, and that is not
        an everyday word (以后, 公司): worth reading by its meaning (``DenseIndex.near_words``)."""
        from bot.retrieval.dense import NEAR_GENERAL

        return len(word) >= 2 and bool(CJK_RE.search(word)) and word not in self.words.idf \
            and not any(word in t for t in self.texts) and self.general.weight(word) >= NEAR_GENERAL

    def _item_df(self, word: str) -> int:
        """How many items use ``word``: as one of their words, else anywhere in their text."""
        return sum(word in ws for ws in self.word_sets) or sum(word in t for t in self.texts)

    def is_topic_word(self, word: str) -> bool:
        """Used by at most 40 % of the items: it says which item is meant."""
        df = self._item_df(word)
        return df == 0 or df <= max(1, 0.4 * len(self.word_sets))

    def singles_out_items(self, word: str) -> bool:
        """Some items use it, at most 40 % of them (unlike ``is_topic_word``, a word no item
        uses — 入职, 梳理 — singles out nothing)."""
        return 0 < self._item_df(word) <= max(1, 0.4 * len(self.word_sets))

    def names_a_topic_of(self, hit: "Hit", generic: Set[str] = frozenset()) -> bool:
        """The question reaches this item by a word that singles out a few items (not only by
        政府/公开/信息, which every item uses, nor only by ``generic``: what the question's generic
        English words translate to): for English, whose dictionary words reach loosely."""
        return any(len(w) >= 2 and w not in generic and self.is_topic_word(w) for w in hit.matched)

    def generic_glosses(self, text: str) -> Set[str]:
        """The Chinese words only the question's generic English words reach ("the government's
        policy on …": 政府, 政策): they say what kind of question it is, not what it is about."""
        if not self.english:
            return set()
        generic: Set[str] = set()
        specific: Set[str] = set()
        for w in english_words(text):
            (generic if w in EN_GENERIC else specific).update(self.translations(w))
        return generic - specific

    def listed_only(self, hit: "Hit", frame: Optional[re.Pattern] = None) -> bool:
        """The question reaches this item only by words the item names as one of a list of examples
        ("疫情防控、工资拖欠、教育医疗养老等方面的舆情": 养老, 工资): a question about the pension or
        the wage itself, not about what the item asks to publish. Generic words (政府, 政策) aside,
        every word it matched stands in a clause of three or more 、-joined parts, never in the
        heading or in another clause."""
        topic = [w for w in hit.matched if len(w) >= 2 and self.is_topic_word(w) and not (frame and frame.search(w))]
        if not topic:
            return False
        k = self.position(hit.doc, hit.item)
        if any(w in "".join(self.items[k]["title_tokens"]) for w in topic):
            return False
        clauses = [c for c in LIST_CLAUSE_SPLIT_RE.split(self.texts[k]) if c]
        for w in topic:
            places = [c for c in clauses if w in c]
            if not places or any(c.count("、") < 2 for c in places):
                return False
        return True

    def position(self, doc: str, item: int) -> int:
        """Index of an item in ``self.items`` (and ``title_sets``, ``texts``…)."""
        return next(k for k, it in enumerate(self.items) if it["doc"] == doc and it["item"] == item)

    def translations(self, word: str) -> List[str]:
        if not self.english or word.lower() in QUESTION_FRAME_WORDS:
            return []
        found = self.english.get(lemma(word)) or self.english.get(word)
        if found:
            return found
        # a derived form of a word the dictionary glosses: proactively → proactive,
        # revitalization → revitalize, interpretation → interpret, improvement → improve
        w = word.lower()
        for suffix, repl in DERIVED_SUFFIXES:
            if w.endswith(suffix) and len(w) - len(suffix) >= 4:
                found = self.english.get(lemma(w[: -len(suffix)] + repl))
                if found:
                    return found
        if lemma(w + "e") == w:
            # a question's words arrive as lemmas (english_words): "innovat" is innovate, whose
            # derived form (innovation) the dictionary glosses
            return self.translations(w + "e")
        return []

    def _coverage(self, i: int, words: List[str], weights: Dict[str, float], text: str,
                  near: Optional[Dict[str, List[str]]] = None) -> float:
        if not words:
            return 0.0
        total = matched = unknown = read_mass = 0.0
        distinctive = 0.0
        expansions = self.expansions_in(text, words)
        negated = self.negated_words(text, words)
        head = self.asked_head(text, words)
        for w in set(words):
            idf = self.words.idf_of(w)
            if len(w) == 1:
                idf *= 0.4  # stray single characters ("欠", "债") say little on their own
            trans = [] if CJK_RE.search(w) or w in self.words.idf else self.translations(w)
            if trans:  # an English word: as informative as the rarest of its Chinese words
                idf = max(self.text_idf(t) for t in trans)
            elif CJK_RE.search(w) and w not in self.words.idf and GENERAL_WEIGHTS:
                # a word no item uses: as informative as it is in Chinese in general (大家 < 居住证)
                idf *= self.general.weight(w)
            elif not CJK_RE.search(w) and w not in self.words.idf and w not in self.thesaurus:
                # a foreign word neither the documents nor the dictionary bridge know ("passport")
                idf *= 0.6 if self.english else 0.2
            if w == head:
                idf = self.text_idf(w)  # the kind asked for (什么库): as rare as the items writing it
            total += idf
            hit = w not in negated and (w in self.word_sets[i] or any(t in self.word_sets[i] or t in self.texts[i]
                                                                     for t in trans) or (w == head and w in self.texts[i]))
            if not hit and CJK_RE.search(w) and len(w) >= 2 and w not in negated:
                bgs = bigrams_of_words([w])
                hit = sum(b in self.bigram_sets[i] for b in bgs) * 2 >= len(bgs) + (len(bgs) > 1)
            if not hit:
                # covered by a thesaurus expansion whose key contains this word
                # (the configured phrase in the item's text, or one of its words that few items use:
                # 政府 of 政府债务 says nothing about an item)
                for key, values, raw, span in expansions:
                    if w in negated and (span in negated or not NEGATION_KEY_RE.match(key.replace(" ", ""))):
                        continue  # a negated word is covered only by its negation's key
                    # (an English key covers its derived forms too: "proactive" of "proactively")
                    if (w in span or (span.isascii() and span.isalpha() and w.startswith(span))) and (
                            any(v.lower() in self.texts[i] for v in raw)
                            or any(v.lower() in self.word_sets[i] and self.is_topic_word(v.lower()) for v in values)):
                        hit = True
                        break
            # read by a document word near it in meaning (燃气 → 供气): covered in part
            read = not hit and bool(near) and any(v in self.word_sets[i] for v in near.get(w, ()))
            if read:
                read_mass += idf
            elif not hit and w not in self.words.idf and not trans and CJK_RE.search(w) \
                    and not any(w in t for t in self.texts):
                unknown += idf  # a word no item uses ("小区", "这块")
            if hit:
                matched += idf
                if len(w) >= 2 and idf >= DISTINCTIVE_IDF and w in self.words.idf:
                    distinctive += idf
                if w in self.title_sets[i] and len(w) >= 2:
                    matched += TITLE_COVERAGE_BONUS * idf  # the heading names the item's subject
        if read_mass > unknown:
            # words no item uses, read by document words near them in meaning (燃气 → 供气), cover in
            # part — only when they outweigh the unknown words nobody could read ("房贷利率": 利率 is
            # as much the subject as 房贷 → 房地产)
            matched += NEAR_COVER * read_mass
            unknown += (1 - NEAR_COVER) * read_mass
        else:
            unknown += read_mass
        if unknown and distinctive >= unknown and len(set(words)) >= 4:
            # the item shares a word only one or two items use ("供气", "共性"): words that no
            # item uses at all weigh half, so a long question's asides do not drown it (a short
            # one's unknown word is its subject: "居住证怎么申请" stays unanswered)
            total -= UNKNOWN_DISCOUNT * unknown
            unknown *= 1 - UNKNOWN_DISCOUNT
        if not total:
            return 0.0
        # heading bonuses never cover a word no item uses ("居住证怎么申请": 居住证 is the subject)
        return min(1.0, matched / total, (total - unknown) / total)

    # -- search ------------------------------------------------------------------
    def search(
        self,
        text: str,
        tokens: Sequence[str],
        departments: Sequence[str] = (),
        top_k: int = TOP_K,
        doc: Optional[str] = None,
        near: Optional[Dict[str, List[str]]] = None,
    ) -> List[Hit]:
        words = [w for w in content_words(tokens) if w not in STOPWORDS]
        for d in departments:  # department names are not topic words
            for form in self.kb.department_forms(d):
                words = [w for w in words if w not in form.lower() or len(w) > len(form)]
        words = self.with_english_terms(text, words)
        weights = self.expand(text, words, near)
        query = list(weights)
        qbigrams = bigrams_of_words([w for w in query if weights[w] > 0])
        word_scores = self._word_scores(text, words, query, weights)
        bigram_scores = self.bigrams.scores(qbigrams)
        raw_bigrams = set(bigrams_of_text(text))
        hits: List[Hit] = []
        for i, it in enumerate(self.items):
            if doc and it["doc"] != doc:
                continue
            title_score = sum(self.words.idf_of(w) * weights[w] for w in query if w in self.title_sets[i])
            # the heading phrased like the question ("主动公开哪些内容" ~ "加强规范主动公开内容")
            title_bg = sum(self.bigrams.idf_of(b) for b in raw_bigrams & self.title_bigrams[i])
            score = word_scores[i] + 0.3 * bigram_scores[i] + 0.6 * title_score + 0.3 * title_bg
            if score <= 0:
                continue
            item = self.kb.item(it["doc"], it["item"])
            for d in departments:
                if d in item.lead_units:
                    score *= 1.3
                elif d in item.responsible_units:
                    score *= 1.1
            cov = self._coverage(i, words, weights, text, near)
            hits.append(Hit(it["doc"], it["item"], score, cov,
                            matched=[w for w in query if w in self.word_sets[i]]))
        hits.sort(key=lambda h: -h.rank)
        if len(hits) > 1 and os.environ.get("ZWZX_SENTENCE_PICK", "on") != "off":
            self._whole_sentence_first(hits, words)
        head = self.asked_head(text, words)
        if head and len(hits) > 1 and head not in self.kb.item(hits[0].doc, hits[0].item).text:
            # "政府网站要建个什么库": of the items the words reach about as well, the one that writes
            # the kind asked for (文件库) answers, not the one whose heading has the question's words
            best = max(h.coverage for h in hits)
            writes = next((h for h in hits if h.coverage >= best - HEAD_MARGIN
                           and head in self.kb.item(h.doc, h.item).text), None)
            if writes is not None:
                hits.remove(writes)
                hits.insert(0, writes)
        return hits[:top_k]

    def _word_scores(self, text: str, words: Sequence[str], query: List[str], weights: Dict[str, float]) -> List[float]:
        """BM25 of the query's words per item; an English word glossed by several of the documents'
        words ("guide" → 引导/指南/指导) counts once per item, by its best gloss there."""
        if not self.english or not LATIN_RE.search(text) or os.environ.get("ZWZX_EN_ONCE", "on") == "off":
            return self.words.scores(query, weights)
        grouped: Set[str] = set()
        groups = []
        for w in english_words(text):
            g = [t for t in (self.english.get(w) or self.translations(w)) if t in weights and t not in grouped]
            if len(g) > 1:
                groups.append(g)
                grouped.update(g)
        if not groups:
            return self.words.scores(query, weights)
        total = self.words.scores([t for t in query if t not in grouped], weights)
        for g in groups:
            per = [self.words.scores([t], weights) for t in g]
            total = [a + max(p[i] for p in per) for i, a in enumerate(total)]
        return total

    def _whole_sentence_first(self, hits: List[Hit], words: Sequence[str]) -> None:
        """"对基层政务公开标准化规范化工作，要成立什么来推进": when the favourite item has no
        sentence with every word of the question and a close runner-up (as much coverage) has
        one, that sentence is the answer — the question is about a detail the runner-up states."""
        asked = {w for w in words if len(w) >= 2 and CJK_RE.search(w)}
        if len(asked) < 3:
            return

        def whole(h: Hit) -> bool:
            return any(all(w in s.lower() for w in asked) for s in self.kb.item(h.doc, h.item).sentences)

        top = hits[0]
        if whole(top):
            return
        for j in (1, 2):
            if j < len(hits) and hits[j].coverage >= top.coverage - 1e-9 and whole(hits[j]):
                hits.insert(0, hits.pop(j))
                return

    def departments_in_english(self, text: str) -> List[str]:
        if not self.english_departments:
            return []
        if self._term_glosses:  # "the 'double random, one public' disclosure": a term, not the 公共…部门
            text = QUOTED_RE.sub(lambda m: " " if self.english_terms_named(m.group(0)) else m.group(0), text)
        return departments_in_english(text, self.english_departments)

    def passage_search(self, text: str, tokens: Sequence[str]) -> Optional[Passage]:
        """The clause of a document's notice or preamble that covers the question best
        ("以什么思想为指导"), by the same idf-weighted coverage as items; None if no clause
        shares a distinctive word with the question."""
        words = [w for w in content_words(tokens) if w not in STOPWORDS]
        if not words or not self.passages:
            return None
        best: Optional[Passage] = None
        for k, p in enumerate(self.passages):
            total = matched = 0.0
            strong = False
            for w in set(words):
                idf = self.words.idf_of(w) * (0.4 if len(w) == 1 else 1.0)
                total += idf
                hit = w in self.passage_words[k] or (len(w) >= 2 and w in p["text"])
                if not hit and CJK_RE.search(w) and len(w) >= 3:
                    bgs = bigrams_of_words([w])
                    hit = sum(b in p["text"] for b in bgs) * 2 >= len(bgs) + 1
                if hit:
                    matched += idf
                    strong = strong or (len(w) >= 2 and idf >= 1.0)
            cov = matched / total if total else 0.0
            if strong and (best is None or cov > best.coverage):
                best = Passage(p["doc"], p["sentence"], p["text"], cov)
        return best

    def literal_hits(self, text: str, tokens: Sequence[str], top_k: int = 5) -> List[Hit]:
        """When no topic word is left ("主管部门": both words are also question words), the
        longest run of the question's words that some items write literally (at least three
        characters). Coverage is the run's share of the question's characters."""
        toks = [t for t in tokens if CJK_RE.search(t)]
        total = sum(len(t) for t in toks)
        best: List[Hit] = []
        best_len = 0
        for a in range(len(toks)):
            for b in range(len(toks), a, -1):
                run = "".join(toks[a:b])
                if len(run) < max(3, best_len + 1):
                    break
                found = [i for i, t in enumerate(self.texts) if run in t]
                if found:
                    best_len = len(run)
                    best = [Hit(self.items[i]["doc"], self.items[i]["item"], 1.0, len(run) / total, matched=[run])
                            for i in found]
                    break
        return best[:top_k]

    def best_sentences(self, hit: Hit, text: str, tokens: Sequence[str], limit: int = 300,
                       max_sentences: int = 2) -> List[str]:
        """The one or two sentences of the item that best answer the question, in
        document order, together at most ``limit`` characters."""
        words = self.with_english_terms(text, content_words(tokens))
        weights = self.expand(text, words)
        query = list(weights)
        qbigrams = set(bigrams_of_words(query))
        i = self.position(hit.doc, hit.item)
        item = self.kb.item(hit.doc, hit.item)
        scored = []
        literal = [w for w in words if len(w) >= 3 and CJK_RE.search(w)]
        if SENTENCE_DETAIL:
            # the heading's words name the item, not which of its sentences ("疫情防控…要做哪些运动":
            # 运动 is what is asked): half, as for English below
            weights = {w: v * (0.5 if w in self.title_sets[i] else 1.0) for w, v in weights.items()}
        wants_ref = bool(REFERENCE_Q_RE.search(text))
        wants_deadline = bool(DEADLINE_Q_RE.search(text))
        wants_count = bool(COUNT_Q_RE.search(text))
        wants_list = bool(LIST_Q_RE.search(text))
        # English: each English word counts once, by the rarest of its Chinese words the sentence
        # has ("epidemic" → 疫情/疫情防控/防控 is one word of the question, not three), and a word of
        # the item's heading counts half (the detail asked is what the heading does not say)
        glossed = [g for g in (self.translations(w) for w in english_words(text)) if g] \
            if LATIN_RE.search(text) and os.environ.get("ZWZX_EN_SENTENCE", "on") != "off" else []
        for k, (ii, j) in enumerate(self.sent_ref):
            if ii != i:
                continue
            sentence = self.items[i]["sentences"][j]["text"]
            if glossed:
                # a word the heading already has names the item, not which of its sentences: half
                s = sum(max((self.words.idf_of(t) * (0.5 if t in self.title_sets[i] else 1.0)
                             for t in g if t in sentence), default=0.0) for g in glossed)
            else:
                s = self.sents.score(query, k, weights)
            s += 0.2 * len(qbigrams & set(bigrams_of_text(sentence)))
            # a longer word of the question written inside the sentence's own words ("一网通" in
            # 一网通查、一网通办): the segmenter split it differently, the sentence still says it
            stoks = self.items[i]["sentences"][j]["tokens"]
            s += LITERAL_BONUS * sum(1 for w in literal if w in sentence and w not in stoks)
            if wants_ref and any(r in sentence for r in item.references):
                s += 3.0
            if wants_deadline and any(d in sentence for d in item.deadlines):
                s += 3.0
            if wants_count and any(c in sentence for c in item.counts):
                s += 3.0
            if wants_list and s > 0 and ENUMERATION_RE.search(sentence):
                s += 1.5
            if j == 0:
                s *= 0.8  # the title sentence restates the heading
            scored.append((s, j, sentence))
        scored.sort(key=lambda x: (-x[0], x[1]))
        chosen = []
        if scored:
            best = scored[0]
            chosen.append(best)
            for cand in scored[1:max_sentences]:
                if cand[0] >= 0.5 * best[0] and cand[0] > 0 and \
                        sum(len(c[2]) for c in chosen) + len(cand[2]) <= limit:
                    chosen.append(cand)
        chosen.sort(key=lambda x: x[1])
        out = [c[2] for c in chosen]
        if out and len(out[0]) > limit:
            out = [out[0][: limit - 1] + "…"]
        return out
