"""Questions that name an item by its place in a document: "第（五）项是什么", "第八条的牵头单位",
"第三部分的第一条", "Item 12". The numbering comes from the knowledge base (each item's own
numeral and section), so a document whose numbers restart in every section ("第二部分第（一）项")
works the same way as one numbered straight through.
"""
from __future__ import annotations

import re
from typing import List, Optional, Tuple

from bot.kb.parser import cn_to_int

NUM = r"[一二三四五六七八九十百零两\d]{1,4}"
# "第（五）项", "第5条", "第十二点", "（五）项"; not an article of a law ("条例第十条")
ITEM_POS_RE = re.compile(rf"(?:第\s*[（(]?\s*({NUM})\s*[）)]?|[（(]\s*({NUM})\s*[）)])\s*(?:项|条|点|个事项|大项工作)")
SECTION_POS_RE = re.compile(rf"第\s*({NUM})\s*(?:部分|大项|方面|板块|章|节)")
# "最后一项", "最后那条", "末尾一条": the document's (or the section's) last item
LAST_POS_RE = re.compile(r"(?:最后|末尾|最末)\s*(?:一|那|这)?\s*(?:个)?\s*(?:项|条|点)")
LAST = -1
EN_ITEM_RE = re.compile(r"\b(?:item|point|task)\s*(?:no\.?\s*|number\s*|#\s*)?(\d{1,2})\b", re.I)
# the words that say where the item is, taken out to see whether anything else is asked of it
POSITION_WORDS_RE = re.compile(rf"{ITEM_POS_RE.pattern}|{SECTION_POS_RE.pattern}|{EN_ITEM_RE.pattern}|{LAST_POS_RE.pattern}|《[^《》]*》|"
                               r"工作要点|要点|文件", re.I)
LAW_BEFORE_RE = re.compile(r"(?:条例|法|办法|规定|规则|意见|决定)\s*》?\s*(?:的)?\s*$")
TITLE_BEFORE_RE = re.compile(r"《([^《》]+)》\s*(?:的|里|中)?\s*$")


def _int(numeral: str) -> int:
    return int(numeral) if numeral.isdigit() else cn_to_int(numeral.replace("两", "二"))


def _section_before(text: str, end: int) -> Optional[int]:
    """The section the question names before ``end`` ("第三部分的第一条"), the last one if several."""
    sm = None
    for sm in SECTION_POS_RE.finditer(text[:end]):
        pass
    return _int(sm.group(1)) if sm is not None else None


def _item_and_section(text: str, own_titles=()) -> Tuple[Optional[int], Optional[int]]:
    item_no = section_no = None
    for m in ITEM_POS_RE.finditer(text):
        before = text[:m.start()]
        title = TITLE_BEFORE_RE.search(before)
        if LAW_BEFORE_RE.search(before) or (title and not any(title.group(1) in t for t in own_titles)):
            continue  # "《条例》第十条": an article of the law the item cites, not one of our items
        item_no = _int(m.group(1) or m.group(2))
        section_no = _section_before(text, m.start())
        break
    if item_no is None:
        m = EN_ITEM_RE.search(text)
        if m:
            item_no = int(m.group(1))
    if item_no is None:
        m = LAST_POS_RE.search(text)
        if m:
            item_no, section_no = LAST, _section_before(text, m.start())
    return item_no, section_no


OF_A_TERM_RE = re.compile(r"[”」』\"']?\s*的\s*第\s*[（(]?[一二三四五六七八九十两\d]")


def items_at_position(kb, text: str, doc_id: Optional[str] = None) -> List[Tuple[object, object]]:
    """[(doc, item)] that the question names by position; several when documents differ."""
    item_no, section_no = _item_and_section(text or "", [d.title for d in kb.documents])
    if not item_no:
        return []
    of = OF_A_TERM_RE.search(text or "")
    if of and any(len(t) >= 2 and t in text[:of.start()] for _, it in kb.all_items() for t in it.terms):
        return []  # "“五统一”的第一项是什么": the first of what a term lists, not the document's first item
    found = []
    for doc in kb.documents:
        if doc_id and doc.doc_id != doc_id:
            continue
        item = None
        if section_no is not None:
            # "第三部分的第一条": the section's Nth item, whatever its numbering
            section = next((s for s in doc.sections if s.number == section_no), None)
            if section is not None and section.items and item_no == LAST:
                item = doc.item(section.items[-1])
            elif section is not None and 0 < item_no <= len(section.items):
                item = doc.item(section.items[item_no - 1])
        elif item_no == LAST:
            item = doc.items[-1] if doc.items else None
        else:
            numerals = [it.numeral for it in doc.items]
            restarts = len(set(numerals)) < len(numerals)
            if not restarts:  # numbered straight through: the item's own numeral
                item = next((it for it in doc.items if it.numeral and _int(it.numeral) == item_no), None)
        if item is not None:
            found.append((doc, item))
    return found
