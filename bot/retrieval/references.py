"""Questions that name a referenced document: by its number (国办发〔2020〕50号, written with any
bracket style) or by its title (《……办法》, with or without the title marks, in part).

The references come from the knowledge base (extracted per item by the parser), so this works
for any document loaded, not for a list typed here.
"""
from __future__ import annotations

import re
from typing import Iterable, List, Optional, Set, Tuple

DOC_NO_RE = re.compile(
    r"([\u4e00-\u9fff]{1,10}?[发函字办])\s*[〔\[\(（【［]?\s*((?:19|20)\d{2})\s*[〕\]\)）】］]?\s*第?\s*(\d{1,4})\s*号")
TITLE_MARK_RE = re.compile(r"[《》〈〉<>“”\"]")
CJK_RUN_RE = re.compile(r"[\u3400-\u9fff]+")


def doc_number_keys(text: str) -> Set[Tuple[str, int, int]]:
    """(issuer abbreviation, year, number) for every document number written in ``text``."""
    return {(m.group(1), int(m.group(2)), int(m.group(3))) for m in DOC_NO_RE.finditer(text or "")}


def _bigrams(text: str) -> Set[str]:
    out = set()
    for run in CJK_RUN_RE.findall(text):
        out.update(run[i:i + 2] for i in range(len(run) - 1))
    return out


# words every title shares; they say nothing about which document is meant
_GENERIC_TITLE = {"关于", "印发", "的通", "通知", "管理", "有关", "事项", "办法", "规定", "意见"}


def title_matches(title: str, text: str) -> bool:
    """Most of the title's distinctive bigrams appear in the question."""
    tb = _bigrams(TITLE_MARK_RE.sub("", title)) - _GENERIC_TITLE
    if len(tb) < 3:
        return False
    qb = _bigrams(TITLE_MARK_RE.sub("", text))
    shared = tb & qb
    return len(shared) >= 3 and len(shared) >= 0.6 * len(tb)


def is_doc_number(ref: str) -> bool:
    return bool(DOC_NO_RE.fullmatch(ref.strip()))


def reference_matches(refs: Iterable[str], text: str) -> List[str]:
    """The references (as the document writes them) that the question names."""
    keys = doc_number_keys(text)
    out = []
    for ref in refs:
        if is_doc_number(ref):
            if doc_number_keys(ref) & keys:
                out.append(ref)
        elif title_matches(ref, text):
            out.append(ref)
    return out


def items_naming(kb, text: str) -> List[Tuple[object, object, List[str]]]:
    """[(doc, item, matched references)] for items whose references the question names,
    best (most references matched, doc numbers first) first."""
    found = []
    for doc, item in kb.all_items():
        matched = reference_matches(item.references, text)
        if matched:
            found.append((doc, item, matched))
    found.sort(key=lambda x: (-sum(is_doc_number(r) for r in x[2]), -len(x[2])))
    return found


def document_named(kb, text: str) -> Optional[object]:
    """A loaded document whose own number the question writes."""
    keys = doc_number_keys(text)
    if not keys:
        return None
    for doc in kb.documents:
        if doc.doc_number and doc_number_keys(doc.doc_number) & keys:
            return doc
    return None
