"""Questions that name a referenced document: by its number (国办发〔2020〕50号, written with any
bracket style) or by its title (《……办法》, with or without the title marks, in part).

The references come from the knowledge base (extracted per item by the parser), so this works
for any document loaded, not for a list typed here.
"""
from __future__ import annotations

import re
from typing import Iterable, List, Optional, Set, Tuple

DOC_NO_RE = re.compile(
    r"([\u4e00-\u9fff]{1,10})\s*[〔\[\(（【［]\s*((?:19|20)\d{2})\s*[〕\]\)）】］]\s*第?\s*(\d{1,4})\s*号"
    r"|([\u4e00-\u9fff]{1,10}?[发函字办])\s*((?:19|20)\d{2})\s*年?\s*第?\s*(\d{1,4})\s*号"
    # "湘财税2021年3号文": any issuer, the year written with 年
    r"|([\u4e00-\u9fff]{2,10}?)\s*((?:19|20)\d{2})\s*年\s*第?\s*(\d{1,4})\s*号")
TITLE_MARK_RE = re.compile(r"[《》〈〉<>“”\"]")
CJK_RUN_RE = re.compile(r"[\u3400-\u9fff]+")


def doc_number_keys(text: str) -> Set[Tuple[str, int, int]]:
    """(issuer abbreviation as written, year, number) for every document number in ``text``.
    The issuer is the run of characters before the year, so it may carry leading words
    ("依据湘财税"); :func:`same_document_number` compares issuers by suffix."""
    out = set()
    for m in DOC_NO_RE.finditer(text or ""):
        g = m.groups()
        issuer, year, num = next((g[k], g[k + 1], g[k + 2]) for k in (0, 3, 6) if g[k])
        out.add((issuer, int(year), int(num)))
    return out


def same_document_number(a: Set[Tuple[str, int, int]], b: Set[Tuple[str, int, int]]) -> bool:
    for ia, ya, na in a:
        for ib, yb, nb in b:
            short, long_ = sorted((ia, ib), key=len)
            if ya == yb and na == nb and len(short) >= 2 and long_.endswith(short):
                return True
    return False


def _bigrams(text: str) -> Set[str]:
    out = set()
    for run in CJK_RUN_RE.findall(text):
        out.update(run[i:i + 2] for i in range(len(run) - 1))
    return out


# words every title shares; they say nothing about which document is meant
_GENERIC_TITLE = {"关于", "印发", "的通", "通知", "管理", "有关", "事项", "办法", "规定", "意见"}


def _longest_common_run(a: str, b: str) -> int:
    best = 0
    prev = [0] * (len(b) + 1)
    for ca in a:
        cur = [0] * (len(b) + 1)
        for j, cb in enumerate(b, 1):
            if ca == cb:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def title_matches(title: str, text: str) -> bool:
    """The question names the title: most of its distinctive bigrams, or a run of it at
    least half its length (and six characters) written as it is ("信息处理费管理办法")."""
    bare = TITLE_MARK_RE.sub("", title)
    tb = _bigrams(bare) - _GENERIC_TITLE
    if len(tb) < 3:
        return False
    question = TITLE_MARK_RE.sub("", text)
    shared = tb & _bigrams(question)
    if len(shared) >= 3 and len(shared) >= 0.6 * len(tb):
        return True
    return _longest_common_run(bare, question) >= max(6, len(bare) / 2)


def is_doc_number(ref: str) -> bool:
    return bool(DOC_NO_RE.fullmatch(ref.strip()))


def reference_matches(refs: Iterable[str], text: str) -> List[str]:
    """The references (as the document writes them) that the question names."""
    keys = doc_number_keys(text)
    out = []
    for ref in refs:
        if is_doc_number(ref):
            if same_document_number(doc_number_keys(ref), keys):
                out.append(ref)
        elif title_matches(ref, text):
            out.append(ref)
    return out


SHORT_NO_RE = re.compile(r"(?<![\d〔\[\(（【［〕\]\)）】］])(\d{1,4})\s*号\s*(?:文件|文|令|通知)")


def items_naming(kb, text: str) -> List[Tuple[object, object, List[str]]]:
    """[(doc, item, matched references)] for items whose references the question names,
    best (most references matched, doc numbers first) first."""
    found = []
    for doc, item in kb.all_items():
        matched = reference_matches(item.references, text)
        if matched:
            found.append((doc, item, matched))
    found.sort(key=lambda x: (-sum(is_doc_number(r) for r in x[2]), -len(x[2])))
    if not found and not doc_number_keys(text):
        found = _by_number_alone(kb, text) or _by_year_and_number(kb, text)
    return found


# "[2020] No. 50", "(2020) 50号", "2020年第50号": a year and a number without the issuer (an English
# question, or the issuer's abbreviation not remembered)
YEAR_NO_RE = re.compile(
    r"[〔\[\(（【［]\s*((?:19|20)\d{2})\s*[〕\]\)）】］]\s*(?:No\.?\s*|第\s*)?(\d{1,4})(?!\d)"
    r"|(?<!\d)((?:19|20)\d{2})\s*年?\s*(?:No\.?|第)\s*(\d{1,4})(?!\d)"
    r"|(?<!\d)((?:19|20)\d{2})\s*年\s*(\d{1,4})\s*号", re.I)


def _by_year_and_number(kb, text: str) -> List[Tuple[object, object, List[str]]]:
    """The one item citing a document of that year and number, when the knowledge base knows
    exactly one such document number (its own document's number counts: then none is named)."""
    pairs = set()
    for m in YEAR_NO_RE.finditer(text or ""):
        g = m.groups()
        year, num = next((g[k], g[k + 1]) for k in (0, 2, 4) if g[k])
        pairs.add((int(year), int(num)))
    if len(pairs) != 1:
        return []
    (pair,) = pairs
    return _the_one_item_citing(kb, lambda key: key[1:] == pair)


def _by_number_alone(kb, text: str) -> List[Tuple[object, object, List[str]]]:
    """"50号文件说了啥": a number alone names a document when exactly one document number the
    knowledge base knows (an item's reference or a document's own) carries it."""
    numbers = {int(n) for n in SHORT_NO_RE.findall(text or "")}
    if len(numbers) != 1:
        return []
    (number,) = numbers
    return _the_one_item_citing(kb, lambda key: key[2] == number)


def _the_one_item_citing(kb, carries) -> List[Tuple[object, object, List[str]]]:
    """[(doc, item, refs)] for the first item citing the document whose number ``carries`` says
    yes to ((issuer, year, number) → bool), when exactly one document number the knowledge base
    knows does — an item's reference or a document's own (then it is that document, no item)."""
    owners = []
    for doc in kb.documents:
        if any(carries(k) for k in doc_number_keys(doc.doc_number or "")):
            owners.append((doc, None, [doc.doc_number]))
    for doc, item in kb.all_items():
        refs = [r for r in item.references if is_doc_number(r) and any(carries(k) for k in doc_number_keys(r))]
        if refs and not any(o[2] == refs[:1] for o in owners):
            owners.append((doc, item, refs))
    distinct = {o[2][0] for o in owners}
    if len(distinct) == 1 and owners[0][1] is not None:
        return owners[:1]
    return []


def document_named(kb, text: str) -> Optional[object]:
    """A loaded document whose own number the question writes."""
    keys = doc_number_keys(text)
    if not keys:
        return None
    for doc in kb.documents:
        if doc.doc_number and same_document_number(doc_number_keys(doc.doc_number), keys):
            return doc
    return None
