"""Questions about a whole document rather than one of its items.

- ``other_document``: "长沙市2022年政务公开工作要点有哪些内容", "2022年的工作要点出来了吗" name a
  document of the kind loaded (its title without place and year: 政务公开工作要点) for a place or a
  year no loaded document is for. No item answers that; the citizen is told which documents the
  service has, not given an item of another year's document.
- ``CONTENTS_RE`` + ``outline``: "这份工作要点主要讲了什么": the document's parts and items, read
  from the parsed sections (nothing here names a document, a place or a year: all come from titles).
"""
from __future__ import annotations

import re
from typing import List, Optional, Tuple

# "宁乡市2021年政务公开工作要点", "某某县2023年度政务公开工作要点": place, year, kind
TITLE_RE = re.compile(r"^(?P<place>[\u4e00-\u9fff]{2,8}?(?:省|市|县|区|州|旗|盟))?(?P<year>\d{4})\s*年度?(?P<kind>[\u4e00-\u9fff]{4,})$")
# a place just before what is asked about: "长沙市", "浏阳市的", "湖南省" (the two to four characters
# before 省/市/县/区; not 本市, 全县, 我区, and not 市直, 县级)
PLACE_END_RE = re.compile(r"(?<=[\u4e00-\u9fff]{2})(?:省|市|县|区)(?!直|级|委|里|场|民|区|县)")
OWN_PLACE_CHARS = "本我全该此咱这各"
# ... nor a verb or particle before 市 ("请问市发改局", "列出市…"): no place name ends so
NOT_PLACE_END = OWN_PLACE_CHARS + "问出看查在是的里了到说和与跟及把对向给为从"
YEAR_RE = re.compile(r"(?P<year>(?:19|20)\d{2})\s*年(?!底|前|内|末|初|中|上半|下半|\d|月)")
# the words before the kind that may name its place and year: "长沙市2022年的", "浏阳那边"
LOOK_BACK = 14
CONTENTS_RE = re.compile(r"(?:包括|包含|涵盖|分为|分成)(?:了)?(?:哪些|哪几|什么|啥|几)(?:个)?(?:内容|方面|部分|工作|事|东西|板块)?"
                         r"|有(?:哪些|哪几|什么|啥|几)(?:个)?(?:内容|方面|部分|工作|事|东西|板块)"
                         r"|(?:主要|都|大概|具体)?(?:讲|说|写|规定|涉及|提)(?:了)?(?:些)?(?:什么|啥|哪些)"
                         r"|(?:主要|具体)?内容(?:是什么|是啥|有哪些|有啥)|目录|提纲|大纲|概要|框架|结构"
                         r"|\bwhat(?:'s| is| does)\b.{0,40}\b(?:about|cover|contain|say)\b|\boverview\b|\bsummar", re.I)

# the document itself, asked of in English: "What is this document about?"
EN_THIS_DOC_RE = re.compile(r"\b(?:this|the|your|that)\s+(?:whole\s+)?(?:document|work\s*plan|work\s+points|key\s+points|file|notice)\b", re.I)


def _kinds(kb) -> List[Tuple[str, str, str]]:
    """(place, year, kind) of each loaded document whose title has that form."""
    out = []
    for doc in kb.documents:
        m = TITLE_RE.match(re.sub(r"\s+", "", doc.title))
        if m:
            place = re.sub(r"(?:省|市|县|区|州|旗|盟)$", "", m.group("place") or "")
            out.append((place, m.group("year"), m.group("kind")))
    return out


def _kind_keys(kind: str) -> List[str]:
    """How a question names the kind: whole, or by its last four characters (工作要点)."""
    return list(dict.fromkeys([kind, kind[-4:]]))


def _other_place(before: str, places) -> bool:
    """Whether ``before`` names a place (…省/市/县/区) that no loaded document is for."""
    for m in PLACE_END_RE.finditer(before):
        name = before[max(0, m.start() - 4):m.start()]
        if name[-1] in NOT_PLACE_END:
            continue
        if not any(name.endswith(p) or p.endswith(name[-2:]) for p in places):
            return True
    return False


def other_document(kb, text: str, units: Optional[List[str]] = None) -> bool:
    """Whether the question names a document of a loaded kind for a place or a year that no loaded
    document is for ("长沙市2022年政务公开工作要点", "2022年的工作要点"). ``units``: the departments the
    question names, when the caller has found them already."""
    loaded = _kinds(kb)
    if not loaded:
        return False
    for unit in kb.find_departments(text) if units is None else units:
        # "市发改局", "长沙市数据资源管理局": a unit, not a place asked of
        for form in sorted(kb.department_forms(unit), key=len, reverse=True):
            text = text.replace(form, "＃")
    places = {p for p, _, _ in loaded if p}
    years = {y for _, y, _ in loaded}
    for kind in {k for _, _, k in loaded}:
        for key in _kind_keys(kind):
            for m in re.finditer(re.escape(key), text):
                before = text[max(0, m.start() - LOOK_BACK):m.start()]
                if (places and _other_place(before, places)) or \
                        any(y.group("year") not in years for y in YEAR_RE.finditer(before)):
                    return True
    return False


def outline(doc) -> List[str]:
    """Two messages: the parts with their items' places, then every item's title."""
    parts = []
    for s in doc.sections:
        items = [i for i in doc.items if i.number in s.items]
        where = ""
        if items:
            first, last = items[0].label.split()[0], items[-1].label.split()[0]
            where = f"（{first}）" if first == last else f"（{first}至{last}）"
        parts.append(f"{s.numeral}、{s.title}{where}")
    head = f"《{doc.title}》共{len(doc.sections)}个部分、{len(doc.items)}项工作：" if doc.sections else \
        f"《{doc.title}》共{len(doc.items)}项工作："
    first = head + "；".join(parts) + "。" if parts else head
    titles = "；".join(i.label for i in doc.items)
    return [first, f"各项工作：{titles}。您可以问其中任何一项，例如“{doc.items[0].label.split()[0]}讲什么”。"] \
        if doc.items else [first]
