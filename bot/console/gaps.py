"""The improvement loop: citizen messages the bot handled badly (fallback, clarify, or rated 👎),
grouped by similarity so a supervisor sees the biggest gaps first, and exported as Rasa NLU
training data.

Similarity is cosine over character bigrams (plus single characters at half weight) after
dropping function characters (的、了、吗、怎么…): no word segmentation needed, and it works on
short Chinese questions. Grouping is greedy single-linkage: each distinct message (longest
first) joins the group holding its most similar message if that similarity reaches
`threshold`, else starts a new group.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence

from bot.console.conversations import Conversation, Turn
from bot.console.masking import mask_text

GAP_KINDS = ("fallback", "clarify")
_NOISE = re.compile(r"[\s\u3000，。！？、,.!?~～…;；:：\"'“”‘’（）()【】\[\]《》<>]+")


def normalize(text: str) -> str:
    return _NOISE.sub("", text or "").lower()


# Function characters that carry no topic in a citizen's question.
STOP_CHARS = frozenset("的了吗呢吧啊呀嘛哦么是在哪怎什谁我你您他她它有没会能可要想请问一下那这个些和与及或等都也就"
                       "还又再对把被给从向到为以于之其该此各每让使由里中不啦哈嗯好样如何啥多少几应")


def features(text: str) -> Dict[str, float]:
    t = "".join(c for c in normalize(text) if c not in STOP_CHARS) or normalize(text)
    grams: Dict[str, float] = dict(Counter(t[i:i + 2] for i in range(len(t) - 1)))
    for c in t:  # unigrams keep one- and two-character questions comparable
        grams[c] = grams.get(c, 0.0) + 0.5
    return grams


def reason_of(turn: Turn) -> List[str]:
    out = []
    if turn.kind in GAP_KINDS:
        out.append(turn.kind)
    if turn.feedback == "down":
        out.append("down")
    return out


def gap_turns(conversations: Iterable[Conversation], start: Optional[float] = None,
              end: Optional[float] = None) -> List[Turn]:
    out = []
    for conv in conversations:
        for t in conv.turns:
            if t.is_payload or not normalize(t.text):
                continue
            if start is not None and t.ts < start or end is not None and t.ts >= end:
                continue
            if reason_of(t):
                out.append(t)
    return out


@dataclass
class Group:
    turns: List[Turn] = field(default_factory=list)
    members: List[int] = field(default_factory=list)
    representative: Optional[Turn] = None

    @property
    def size(self) -> int:
        return len(self.turns)

    @property
    def reasons(self) -> Dict[str, int]:
        c: Counter = Counter()
        for t in self.turns:
            c.update(reason_of(t))
        return dict(c)

    @property
    def conversations(self) -> int:
        return len({t.sender_id for t in self.turns})


def _norm(v: Dict[str, float]) -> float:
    return math.sqrt(sum(x * x for x in v.values()))


def _cos(a: Dict[str, float], na: float, b: Dict[str, float], nb: float) -> float:
    if not na or not nb:
        return 0.0
    if len(a) > len(b):
        a, b = b, a
    return sum(x * b.get(g, 0.0) for g, x in a.items()) / (na * nb)


def similarity(a: str, b: str) -> float:
    fa, fb = features(a), features(b)
    return _cos(fa, _norm(fa), fb, _norm(fb))


def group_turns(turns: Sequence[Turn], threshold: float = 0.3) -> List[Group]:
    """Groups, largest first (ties: most recent first).

    Identical questions (after normalisation) are clustered once; candidates for a message are
    found through an inverted index of character bigrams, so only messages sharing a bigram
    (or, for one-character questions, a character) are compared."""
    by_text: Dict[str, List[int]] = {}
    for i, t in enumerate(turns):
        by_text.setdefault(normalize(t.text), []).append(i)
    texts = sorted(by_text, key=lambda k: (-len(k), min(turns[i].event_id for i in by_text[k])))
    vectors = [features(k) for k in texts]
    norms = [_norm(v) for v in vectors]
    group_of: List[int] = []
    postings: Dict[str, List[int]] = {}
    groups: List[Group] = []
    for u, vec in enumerate(vectors):
        keys = [g for g in vec if len(g) == 2] or list(vec)
        candidates = {j for g in keys for j in postings.get(g, ())}
        best, best_sim = None, 0.0
        for j in candidates:
            sim = _cos(vec, norms[u], vectors[j], norms[j])
            if sim > best_sim:
                best, best_sim = group_of[j], sim
        if best is None or best_sim < threshold:
            best = len(groups)
            groups.append(Group())
        group_of.append(best)
        groups[best].members.append(u)
        for g in keys:
            postings.setdefault(g, []).append(u)
    for g in groups:
        # the text closest to the others represents the group (ties: the longer text)
        sample = g.members[:50]
        rep = max(sample, key=lambda u: (round(sum(_cos(vectors[u], norms[u], vectors[v], norms[v])
                                                   * len(by_text[texts[v]]) for v in sample), 6),
                                         len(texts[u])))
        g.representative = turns[by_text[texts[rep]][0]]
        g.turns = sorted((turns[i] for u in g.members for i in by_text[texts[u]]), key=lambda t: t.ts,
                         reverse=True)
    groups.sort(key=lambda g: (-g.size, -max(t.ts for t in g.turns)))
    return groups


_INTENT_OK = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_ENTITY_SYNTAX = re.compile(r"\[[^\]]*\]\s*[({]")


class ExportError(ValueError):
    """Bad NLU export request; message in Chinese."""


def check_intent_name(name: str) -> str:
    name = (name or "").strip()
    if not _INTENT_OK.match(name):
        raise ExportError("意图名需以英文字母开头，只能包含英文字母、数字和下划线（例如 ask_subsidy），最长64个字符")
    return name


def clean_example(text: str, masked: bool = True) -> str:
    """One line, personal data masked, no accidental Rasa entity annotation syntax."""
    text = " ".join((text or "").split())
    if masked:
        text = mask_text(text)
    if _ENTITY_SYNTAX.search(text):
        text = text.replace("[", "［").replace("]", "］")
    return text


def nlu_yaml(intent: str, texts: Iterable[str], masked: bool = True) -> str:
    """Rasa 3 NLU training data with one intent and the given examples (deduplicated)."""
    intent = check_intent_name(intent)
    seen = []
    for t in texts:
        ex = clean_example(t, masked)
        if ex and ex not in seen:
            seen.append(ex)
    if not seen:
        raise ExportError("请至少选择一条消息")
    lines = ['version: "3.1"', "nlu:", f"- intent: {intent}", "  examples: |"]
    lines += [f"    - {ex}" for ex in seen]
    return "\n".join(lines) + "\n"
