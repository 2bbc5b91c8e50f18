"""Parse a 政务公开工作要点 document (plain text) into a structured :class:`Document`.

The parser works on the document's own structure, not on this particular file:
header block (issuer, document number, notice title, recipients, date), the main
title, a preamble, sections ``一、…`` and numbered items ``（一）…`` whose last
paragraph ends with a bracket naming the lead (``…牵头``) and responsible units.

Page-break artefacts (a word split over a blank line) are rejoined: a paragraph
that does not end with closing punctuation is glued to the next one unless the
next one starts a new section or item.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import List, Optional

CN_DIGITS = {"零": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
CN_NUMERAL = r"[一二三四五六七八九十百零]+"

SECTION_RE = re.compile(rf"^({CN_NUMERAL})、(.+)$")
ITEM_RE = re.compile(rf"^（({CN_NUMERAL})）(.+)$", re.S)
DOC_NUMBER_RE = re.compile(r"^\S+?〔\d{4}〕\d+号$")
DATE_RE = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日")
TERMINAL = tuple("。！？；：」』”\"]）〕)】")
OPEN_FOR = {"]": "[", "〕": "〔", "）": "（", ")": "(", "】": "【"}
REFERENCE_NUMBER_RE = re.compile(r"[\u4e00-\u9fff]{1,8}〔\d{4}〕\d+号")
BOOK_TITLE_RE = re.compile(r"《([^《》]+(?:〈[^〈〉]*〉[^《》]*)*)》")
QUOTED_TERM_RE = re.compile(r"“([^“”]{2,12})”")
DEADLINE_RE = re.compile(
    r"(\d{4}年(?:\d{1,2}月(?:\d{1,2}日)?)?(?:底|年底|月底)?前|\d{4}年底|\d{4}年\d{1,2}月\d{1,2}日"
    r"|法定时限|定期|及时|适时|不定期|动态更新|事前|事中|事后)"
)
COUNT_RE = re.compile(r"(?<!第)(\d+|[一二三四五六七八九十]+)(个|类)([\u4e00-\u9fff]{0,2})")
SENTENCE_SPLIT_RE = re.compile(r"(?<=[。！？；])")


def cn_to_int(text: str) -> int:
    """Convert a Chinese numeral up to 999 (一, 十, 十九, 二十三, 一百零五) to int."""
    if text.isdigit():
        return int(text)
    total, current = 0, 0
    for ch in text:
        if ch == "百":
            total += (current or 1) * 100
            current = 0
        elif ch == "十":
            total += (current or 1) * 10
            current = 0
        else:
            current = CN_DIGITS[ch]
    return total + current


def normalize_spaces(text: str) -> str:
    """Drop whitespace next to CJK characters ("宁乡市 2021 年" -> "宁乡市2021年")."""
    cjk = r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef“”《》〔〕]"
    text = re.sub(rf"(?<={cjk})[ \t\u3000]+", "", text)
    text = re.sub(rf"[ \t\u3000]+(?={cjk})", "", text)
    return text.strip()


@dataclass
class Item:
    number: int
    numeral: str
    section: int
    title: str
    body: str
    text: str
    sentences: List[str]
    units_text: str
    lead_units: List[str]
    responsible_units: List[str]
    references: List[str] = field(default_factory=list)
    deadlines: List[str] = field(default_factory=list)
    counts: List[str] = field(default_factory=list)
    terms: List[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"第（{self.numeral}）项 {self.title}"


@dataclass
class Section:
    number: int
    numeral: str
    title: str
    items: List[int]


@dataclass
class Document:
    doc_id: str
    title: str
    issuer: str
    doc_number: str
    notice_title: str
    recipients: List[str]
    date: str
    date_iso: str
    preamble: str
    sections: List[Section]
    items: List[Item]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Document":
        data = dict(data)
        data["sections"] = [Section(**s) for s in data["sections"]]
        data["items"] = [Item(**i) for i in data["items"]]
        return cls(**data)

    def item(self, number: int) -> Optional[Item]:
        for it in self.items:
            if it.number == number:
                return it
        return None


class ParseError(ValueError):
    """The text does not look like a work-points document."""


def _paragraphs(text: str) -> List[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    paras = [normalize_spaces(p) for p in re.split(r"\n\s*\n", text)]
    return [p for p in paras if p]


def _starts_block(para: str) -> bool:
    return bool(SECTION_RE.match(para) or ITEM_RE.match(para))


def rejoin_paragraphs(paras: List[str]) -> List[str]:
    """Glue page-break fragments: a paragraph without closing punctuation continues
    in the next one, unless the next one opens a section or item, or is itself a heading."""
    out: List[str] = []
    for para in paras:
        if (
            out
            and not out[-1].endswith(TERMINAL)
            and not SECTION_RE.match(out[-1])
            and not _starts_block(para)
        ):
            out[-1] = out[-1] + para
        else:
            out.append(para)
    return out


def split_sentences(text: str) -> List[str]:
    sentences: List[str] = []
    for line in text.split("\n"):
        sentences.extend(s for s in SENTENCE_SPLIT_RE.split(line) if s.strip())
    return [s.strip() for s in sentences]


def _trailing_bracket(text: str):
    """Return (body_without_bracket, bracket_content) if the text ends with a bracket
    group that names responsible units; nested brackets are balanced."""
    text = text.rstrip()
    if not text or text[-1] not in OPEN_FOR:
        return text, None
    close = text[-1]
    open_ = OPEN_FOR[close]
    depth = 0
    # Treat full-width and ascii square/round brackets of the same kind as one pair type.
    for pos in range(len(text) - 1, -1, -1):
        ch = text[pos]
        if ch == close:
            depth += 1
        elif ch == open_:
            depth -= 1
            if depth == 0:
                content = text[pos + 1 : -1]
                if "负责" in content or "牵头" in content:
                    return text[:pos].rstrip(), content
                return text, None
    return text, None


def _split_units(part: str) -> List[str]:
    part = re.sub(r"(按职责分工负责|按职责负责|负责)$", "", part.strip())
    part = re.sub(r"按职责$", "", part)
    units: List[str] = []
    for chunk in re.split(r"[，,、；;]", part):
        chunk = chunk.strip()
        if not chunk:
            continue
        # "市直相关单位和各乡镇（街道）人民政府（办事处）" -> two units
        pieces = re.split(r"和(?=各|市)", chunk)
        units.extend(p.strip() for p in pieces if p.strip())
    return units


def split_units(content: str):
    """Split the bracket text into (lead_units, responsible_units)."""
    content = content.strip()
    if "牵头" in content:
        before, after = content.split("牵头", 1)
        lead = _split_units(before)
        responsible = _split_units(after.lstrip("，,、"))
        return lead, responsible
    return [], _split_units(content)


def _item_facts(body: str):
    references: List[str] = []
    for m in BOOK_TITLE_RE.finditer(body):
        references.append(f"《{m.group(1)}》")
    for m in REFERENCE_NUMBER_RE.finditer(body):
        references.append(m.group(0))
    deadlines = list(dict.fromkeys(m.group(0) for m in DEADLINE_RE.finditer(body)))
    counts = list(dict.fromkeys("".join(m.groups()) for m in COUNT_RE.finditer(body)))
    terms = list(dict.fromkeys(m.group(1) for m in QUOTED_TERM_RE.finditer(body)))
    return list(dict.fromkeys(references)), deadlines, counts, terms


def parse_document(text: str, doc_id: str) -> Document:
    raw = _paragraphs(text)
    first_block = next((i for i, p in enumerate(raw) if _starts_block(p)), len(raw))
    # Header lines carry no punctuation by nature; only the body has page-break artefacts.
    paras = raw[:first_block] + rejoin_paragraphs(raw[first_block:])
    if not paras:
        raise ParseError("文档为空")

    issuer = doc_number = notice_title = date = ""
    recipients: List[str] = []
    title = ""
    idx = 0
    # Header block: everything before the first paragraph that ends with "工作要点"
    # after the date line (the main title) or before the first section heading.
    while idx < len(paras):
        p = paras[idx]
        if SECTION_RE.match(p) or ITEM_RE.match(p):
            break
        if DOC_NUMBER_RE.match(p) and not doc_number:
            doc_number = p
        elif p.startswith("关于") and not notice_title:
            notice_title = p
        elif p.endswith("：") and not recipients:
            recipients = [r for r in re.split(r"[，,、]", p[:-1]) if r]
        elif DATE_RE.fullmatch(p) and not date:
            date = p
        elif not issuer and not doc_number and not p.endswith("。"):
            issuer = p
        elif p.endswith("工作要点") or (date and not title and len(p) < 40 and not p.endswith("。")
                                       and re.search(r"要点|计划|方案", p)):
            title = p
        idx += 1

    if not title:
        m = re.search(r"《([^》]+)》", notice_title)
        title = m.group(1) if m else doc_id
    date_iso = ""
    if date:
        y, mo, d = DATE_RE.fullmatch(date).groups()
        date_iso = f"{int(y):04d}-{int(mo):02d}-{int(d):02d}"

    # Preamble: paragraphs after the title and before the first section.
    preamble_parts: List[str] = []
    start = 0
    for j, p in enumerate(paras):
        if p == title:
            start = j + 1
    for p in paras[start:idx]:
        preamble_parts.append(p)

    sections: List[Section] = []
    items: List[Item] = []
    current_section = 0
    current: Optional[dict] = None

    def flush():
        if current is None:
            return
        full = "\n".join(current["paras"])
        body, content = _trailing_bracket(full)
        lead, responsible = split_units(content) if content else ([], [])
        m = ITEM_RE.match(body)
        rest = m.group(2)
        head, _, _ = rest.partition("。")
        item_title = head.strip()
        refs, deadlines, counts, terms = _item_facts(body)
        items.append(
            Item(
                number=current["number"],
                numeral=current["numeral"],
                section=current["section"],
                title=item_title,
                body=rest.strip(),
                text=full,
                sentences=split_sentences(rest),
                units_text=content or "",
                lead_units=lead,
                responsible_units=responsible,
                references=refs,
                deadlines=deadlines,
                counts=counts,
                terms=terms,
            )
        )

    for p in paras[idx:]:
        sm = SECTION_RE.match(p)
        im = ITEM_RE.match(p)
        if sm and not p.endswith("。"):
            flush()
            current = None
            current_section = cn_to_int(sm.group(1))
            sections.append(Section(current_section, sm.group(1), sm.group(2).strip(), []))
        elif im:
            flush()
            numeral = im.group(1)
            current = {"number": cn_to_int(numeral), "numeral": numeral,
                       "section": current_section, "paras": [p]}
            if sections:
                sections[-1].items.append(current["number"])
        elif current is not None:
            current["paras"].append(p)  # an item running over several paragraphs
        else:
            preamble_parts.append(p)
    flush()

    if not items:
        raise ParseError(f"{doc_id}: 没有找到（一）（二）…格式的工作事项")
    return Document(
        doc_id=doc_id,
        title=title,
        issuer=issuer,
        doc_number=doc_number,
        notice_title=notice_title,
        recipients=recipients,
        date=date,
        date_iso=date_iso,
        preamble="\n".join(preamble_parts),
        sections=sections,
        items=items,
    )
