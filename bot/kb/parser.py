"""Parse a 政务公开工作要点 document (plain text) into a structured :class:`Document`.

The parser works on the document's own structure, not on this particular file:
header block (issuer, document number, notice title, recipients, date), the main
title, a preamble, sections ``一、…`` and numbered items. Documents vary, and so does
what the parser accepts:

* items numbered ``（一）`` / ``(一)``, or, when a document has none of those, ``1.`` /
  ``1、`` / ``（1）``; items are numbered 1, 2, … in document order (numbering that starts
  again in every section is kept in the label: ``第二部分第（一）项``); a document with
  no such items but full-sentence ``一、…`` paragraphs has those as its items;
* units in a closing bracket of any style (``（…牵头）``, ``〔…负责〕``, ``[…]``, ``【…】``)
  or on a line of their own (``责任单位：…``, ``牵头单位：…；配合单位：…``);
* ``附件`` at the end: the attachments are kept as text, not read as items.

Page-break artefacts (a word split over a blank line) are rejoined: a paragraph
that does not end with closing punctuation is glued to the next one unless the
next one starts a new section or item.
"""
from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import asdict, dataclass, field
from typing import List, Optional

CN_DIGITS = {"零": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
CN_NUMERAL = r"[一二三四五六七八九十百零]+"

SECTION_RE = re.compile(rf"^({CN_NUMERAL})、(.+)$")
OPEN, CLOSE = "[（(【\\[〔［]", "[）)】\\]〕］]"   # （一） (一) 【一】 [一] 〔一〕 ［一］
ITEM_RE = re.compile(rf"^{OPEN}\s*({CN_NUMERAL})\s*{CLOSE}\s*(.+)$", re.S)
ARABIC_ITEM_RE = re.compile(rf"^(?:(\d{{1,2}})\s*[.．、）)](?!\d)|{OPEN}\s*(\d{{1,2}})\s*{CLOSE})\s*(.+)$", re.S)
TOP_ITEM_RE = re.compile(rf"^({CN_NUMERAL})、(.+[。；].*)$", re.S)
DOC_NUMBER_RE = re.compile(r"^\S+?[〔\[\(（【［]\s*\d{4}\s*[〕\]\)）】］]\s*第?\d+号$")
UNIT_LABEL = r"(?:牵头|主要|主办|责任|配合|协办|参与|协同)(?:单位|部门)"  # 牵头单位, 配合部门…
LABEL_END = r"[:：】\]］]"  # a label ends with a colon, or is itself bracketed: "【责任单位】A、B"
UNIT_LINE_RE = re.compile(rf"^[（(〔\[【［]?\s*(?:{UNIT_LABEL}|责任人)\s*{LABEL_END}")
INLINE_UNITS_RE = re.compile(rf"(?<=[。；;])\s*({UNIT_LABEL}\s*[:：][^。]+)$")
UNIT_LABEL_RE = re.compile(rf"^\s*[【\[［]?\s*({UNIT_LABEL})\s*{LABEL_END}\s*")
# where a labelled list ends: before "；" and the next label, or right at the next label ("牵头单位：A　责任单位：B")
NEXT_LABEL_RE = re.compile(rf"[；;，,\s]*(?<![【\[［])(?=[【\[［]?{UNIT_LABEL}\s*{LABEL_END})")
FIRST_IS_LEAD_RE = re.compile(r"(?:排在|列在|排|列)(?:首位|第一位|最前面?)的?(?:单位|部门)?(?:为|是)牵头")
ATTACHMENT_RE = re.compile(r"^附\s*件\s*\d*\s*[:：]?")
DATE_RE = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日")
TERMINAL = tuple("。！？；：」』”\"]）〕)】")
OPEN_FOR = {"]": "[", "〕": "〔", "）": "（", ")": "(", "】": "【"}
REFERENCE_NUMBER_RE = re.compile(r"[\u4e00-\u9fff]{1,8}〔\d{4}〕\d+号")
BOOK_TITLE_RE = re.compile(r"《([^《》]+(?:〈[^〈〉]*〉[^《》]*)*)》")
QUOTED_TERM_RE = re.compile(r"“([^“”]{2,12})”")
DEADLINE_RE = re.compile(
    r"(\d{4}年(?:\d{1,2}月(?:\d{1,2}日)?)?(?:底|年底|月底)?前|\d{4}年底|\d{4}年\d{1,2}月\d{1,2}日"
    r"|法定时限|定期|及时|适时|不定期|动态更新|事前|事中|事后"
    # periods and durations: "公示期不少于7天", "5个工作日内", "每季度"
    r"|(?:不少于|不超过|不得超过|不得少于|至少|最长)?\d+个?(?:工作日|日|天|周|个月)(?:内|以上)?"
    r"|每(?:年|半年|季度|月|周)(?:至少)?)"
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
    marker: str = ""  # how the document numbers it: "第（五）项", "第3项", "第二部分第（一）项"

    @property
    def label(self) -> str:
        return f"{self.marker or f'第（{self.numeral}）项'} {self.title}"


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
    attachments: List[str] = field(default_factory=list)
    notice: str = ""  # the cover letter's own sentences ("经……同意，现将……印发给你们")
    closing: str = ""  # after the last item's units line: "各单位要高度重视……" (no item's text)
    source: str = ""  # the text as published, spaces and all: answers quote it as written

    def as_written(self, passage: str) -> str:
        """``passage`` (parsed text: spaces next to CJK dropped, broken lines joined) as the
        document writes it ("2021年底前" -> "2021 年底前"), or unchanged when not found."""
        return _as_written(self.source, passage) if self.source and passage else passage

    def to_dict(self) -> dict:
        return asdict(self)

    def passages(self) -> List[str]:
        """Sentences of the document that belong to no item: the notice's title and text and
        the preamble (guiding ideas, aims). Questions about them are answered from them."""
        out = [self.notice_title] if self.notice_title else []
        for block in (self.notice, self.preamble, self.closing):
            out += [x for x in re.split(r"(?<=[。！？；])", block.replace("\n", "")) if x.strip()]
        return out

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


SPACE_CHARS = " \t\u3000\xa0"


@lru_cache(maxsize=16)
def _flat(source: str):
    """The source without whitespace, and where each of its characters stands in the source."""
    keep = [i for i, c in enumerate(source) if c not in SPACE_CHARS and c != "\n"]
    return "".join(source[i] for i in keep), keep


def _as_written(source: str, passage: str) -> str:
    flat, where = _flat(source)
    wanted = "".join(c for c in passage if c not in SPACE_CHARS and c != "\n")
    at = flat.find(wanted) if wanted else -1
    if at < 0:
        return passage
    raw = source[where[at]:where[at + len(wanted) - 1] + 1]
    return re.sub(rf"[{SPACE_CHARS}]+", " ", raw.replace("\n", ""))


def _paragraphs(text: str) -> List[str]:
    """Lines of the text (blank lines or not), spaces next to CJK dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    paras = [normalize_spaces(p) for p in text.split("\n")]
    return [p for p in paras if p]


def _starts_block(para: str) -> bool:
    return bool(SECTION_RE.match(para) or ITEM_RE.match(para) or ARABIC_ITEM_RE.match(para)
                or UNIT_LINE_RE.match(para) or ATTACHMENT_RE.match(para))


def _is_heading_line(para: str) -> bool:
    """A short numbered line without closing punctuation is a heading, not a broken line."""
    return bool((ITEM_RE.match(para) or ARABIC_ITEM_RE.match(para)) and len(para) <= 40
                and not re.search(r"[。；，,]", para))


def rejoin_paragraphs(paras: List[str]) -> List[str]:
    """Glue page-break fragments: a paragraph without closing punctuation continues
    in the next one, unless the next one opens a section or item, or is itself a heading."""
    out: List[str] = []
    for para in paras:
        if (
            out
            and not out[-1].endswith(TERMINAL)
            and not SECTION_RE.match(out[-1])
            and not UNIT_LINE_RE.match(out[-1])
            and not _is_heading_line(out[-1])
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
                if "负责" in content or "牵头" in content or UNIT_LABEL_RE.match(content):
                    return text[:pos].rstrip(), content
                return text, None
    return text, None


ROLE_SUFFIX_RE = re.compile(r"(?:按职责分工负责|按职责负责|分工负责|共同负责|负责|配合|协助|协同|参与|协办)$")
LIST_TAIL_RE = re.compile(r"等(?:相关)?(?:主管部门|部门|单位)$")  # "县卫健局等主管部门" -> 县卫健局


def _split_units(part: str) -> List[str]:
    part = ROLE_SUFFIX_RE.sub("", part.strip())
    part = re.sub(r"按职责$", "", part)
    units: List[str] = []
    for chunk in re.split(r"[，,、；;]", part):
        chunk = chunk.strip()
        if not chunk:
            continue
        # "市直相关单位和各乡镇（街道）人民政府（办事处）", "…等主管部门及各乡镇人民政府" -> two units
        pieces = re.split(r"(?:和|及|以及)(?=各|市|县|区)", chunk)
        units.extend(u for u in (LIST_TAIL_RE.sub("", p.strip()) for p in pieces) if u)
    return units


def split_units(content: str):
    """Split the bracket text (or a unit line) into (lead_units, responsible_units)."""
    content = content.strip()
    if UNIT_LABEL_RE.match(content):
        return _labelled_units(content)
    if "牵头" in content:
        before, after = content.split("牵头", 1)
        lead = _split_units(before)
        responsible = _split_units(after.lstrip("，,、"))
        return lead, responsible
    return [], _split_units(content)


def _labelled_units(content: str):
    """"牵头单位：A；配合单位：B" / "责任单位：A（牵头）、B" / "责任单位：A、B"."""
    lead: List[str] = []
    responsible: List[str] = []
    parts = [p for p in NEXT_LABEL_RE.split(content) if p.strip()]
    for part in parts:
        m = UNIT_LABEL_RE.match(part)
        label, units_text = (m.group(1), part[m.end():]) if m else ("", part)
        units_text = units_text.strip().rstrip("。；;")
        if label.startswith(("牵头", "主要", "主办")):
            lead += _split_units(units_text)
            continue
        for unit in _split_units(units_text):
            um = re.match(r"^(.+?)[（(]?牵头[）)]?$", unit)
            if um:
                lead.append(um.group(1))
            else:
                responsible.append(unit)
    return lead, responsible


def _unwrap(line: str) -> str:
    """A units line without the bracket pair around all of it ("（牵头单位：A；配合单位：B、各镇（街道））");
    brackets inside it, and a bracketed label ("【责任单位】A"), stay."""
    line = line.strip().rstrip("。")
    if len(line) > 1 and line[-1] in OPEN_FOR and line[0] == OPEN_FOR[line[-1]]:
        depth = 0
        for pos, ch in enumerate(line):
            depth += ch == line[0]
            depth -= ch == line[-1]
            if depth == 0 and pos < len(line) - 1:
                return line  # "（一）… （二）": the first bracket closes before the end
        return line[1:-1].strip()
    return line


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
    first_block = next((i for i, p in enumerate(raw) if SECTION_RE.match(p) or ITEM_RE.match(p)
                        or ARABIC_ITEM_RE.match(p)), len(raw))
    # Header lines carry no punctuation by nature; only the body has page-break artefacts.
    paras = raw[:first_block] + rejoin_paragraphs(raw[first_block:])
    if not paras:
        raise ParseError("文档为空")

    issuer = doc_number = notice_title = date = ""
    recipients: List[str] = []
    notice_parts: List[str] = []
    title = ""
    title_first = False    # the main title above the cover letter (portal pages, some counties)
    header: set = set()    # paragraphs read as header fields: never preamble
    idx = 0
    # Header block: everything before the first paragraph that ends with "工作要点"
    # after the date line (the main title) or before the first section heading.
    while idx < len(paras):
        p = paras[idx]
        if SECTION_RE.match(p) or ITEM_RE.match(p) or ARABIC_ITEM_RE.match(p):
            break
        if DOC_NUMBER_RE.match(p) and not doc_number:
            doc_number = p
            header.add(p)
        elif p.startswith("关于") and not notice_title:
            notice_title = p
            header.add(p)
        elif p.endswith("：") and not recipients:
            recipients = [r for r in re.split(r"[，,、]", p[:-1]) if r]
            header.add(p)
        elif DATE_RE.fullmatch(p) and not date:
            date = p
            header.add(p)
        elif p.endswith("工作要点") and not title and not p.startswith("关于"):
            title = p  # the main title, wherever the header puts it (first line, after the date)
            title_first = not recipients
        elif not issuer and not doc_number and not p.endswith("。"):
            issuer = re.sub(r"(?<=[办室局委府])文件$", "", p)  # the red-head banner "XX人民政府办公室文件"
            header.add(p)
        elif p.endswith("。") and recipients and (not title or (title_first and not date)):
            notice_parts.append(p)  # the cover letter's text, between its addressees and the title (or date)
            header.add(p)
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
        if p not in header:
            preamble_parts.append(p)

    body_paras = paras[idx:]
    attachments: List[str] = []
    for j, p in enumerate(body_paras):
        if ATTACHMENT_RE.match(p) and j > 0:
            attachments, body_paras = body_paras[j:], body_paras[:j]
            break
    item_re = _item_pattern(body_paras)

    sections: List[Section] = []
    items: List[Item] = []
    current_section = 0
    current: Optional[dict] = None
    seen_numerals: set = set()
    restarts = False
    closing_parts: List[str] = []

    def flush():
        if current is None:
            return
        unit_lines = [p for p in current["paras"] if UNIT_LINE_RE.match(p)]
        text_paras = [p for p in current["paras"] if not UNIT_LINE_RE.match(p)]
        full = "\n".join(text_paras)
        body, content = _trailing_bracket(full)
        if not content:
            # "……政策。责任单位：县发改局、县税务局" — the units' label closing the item's last sentence
            m = INLINE_UNITS_RE.search(body)
            if m:
                unit_lines.append(m.group(1))
                body = body[:m.start(1)].rstrip()
        lead, responsible = split_units(content) if content else ([], [])
        for line in unit_lines:
            more_lead, more_resp = split_units(_unwrap(line))
            lead += [u for u in more_lead if u not in lead]
            responsible += [u for u in more_resp if u not in responsible]
        rest = body[len(current["paras"][0]) - len(current["rest"]):]
        first_line = current["rest"]
        if len(current["paras"]) > 1 and _is_heading_line(current["paras"][0]):
            item_title = first_line.strip()  # a heading line of its own
        else:
            item_title = rest.partition("。")[0].strip()
        refs, deadlines, counts, terms = _item_facts(body)
        items.append(
            Item(
                number=current["number"],
                numeral=current["numeral"],
                section=current["section"],
                title=item_title,
                body=rest.strip(),
                text="\n".join(current["paras"]),
                sentences=split_sentences(rest),
                units_text=content or "；".join(unit_lines),
                lead_units=lead,
                responsible_units=responsible,
                references=refs,
                deadlines=deadlines,
                counts=counts,
                terms=terms,
                marker=current["marker"],
            )
        )

    # "1." items with "（1）…（3）" points inside one of them (or the other way round): a number
    # written the other way is a new item only where it continues the items' numbering
    first_arabic = next((ARABIC_ITEM_RE.match(p) for p in body_paras if ARABIC_ITEM_RE.match(p)), None)
    dotted = first_arabic is not None and first_arabic.group(1) is not None
    for p in body_paras:
        sm = SECTION_RE.match(p)
        im = item_re.match(p) if item_re is not None else None
        if im is not None and item_re is ARABIC_ITEM_RE and current is not None \
                and (im.group(1) is not None) != dotted and current["numeral"].isdigit() \
                and int(im.group(1) or im.group(2)) != int(current["numeral"]) + 1:
            im = None  # a point of the current item
        if sm and not p.endswith("。") and item_re is not TOP_ITEM_RE:
            flush()
            current = None
            current_section = cn_to_int(sm.group(1))
            sections.append(Section(current_section, sm.group(1), sm.group(2).strip(), []))
        elif im:
            flush()
            groups = [g for g in im.groups() if g is not None]
            numeral, rest = groups[0], groups[-1]
            restarts = restarts or numeral in seen_numerals
            seen_numerals.add(numeral)
            number = len(items) + 1
            current = {"number": number, "numeral": numeral, "section": current_section, "paras": [p],
                       "rest": rest, "marker": _marker(item_re, numeral)}
            if sections:
                sections[-1].items.append(number)
        elif current is not None and not UNIT_LINE_RE.match(p) and any(UNIT_LINE_RE.match(q) for q in current["paras"]):
            closing_parts.append(p)  # the item ended with its units line: what follows is the document's
        elif current is not None:
            current["paras"].append(p)  # an item running over several paragraphs
        else:
            preamble_parts.append(p)
    flush()
    if FIRST_IS_LEAD_RE.search(text):
        # "标注责任单位的事项，排在首位的单位为牵头单位": the document's own convention
        for it in items:
            if not it.lead_units and it.responsible_units:
                it.lead_units, it.responsible_units = it.responsible_units[:1], it.responsible_units[1:]
    if restarts:  # "（一）" in every section: say which section
        by_number = {s.number: s for s in sections}
        for it in items:
            sec = by_number.get(it.section)
            if sec is not None:
                it.marker = f"第{sec.numeral}部分{it.marker}"

    if not items:
        raise ParseError(f"{doc_id}: 没有找到编号的工作事项（如“（一）”“1.”）")
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
        attachments=attachments,
        notice="\n".join(notice_parts),
        closing="\n".join(closing_parts),
        source=text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff"),
    )


def _item_pattern(paras: List[str]):
    """Which numbering marks the items: （一）, else 1. / （1）, else full-sentence 一、."""
    for pattern in (ITEM_RE, ARABIC_ITEM_RE):
        if any(pattern.match(p) for p in paras):
            return pattern
    if any(TOP_ITEM_RE.match(p) for p in paras):
        return TOP_ITEM_RE
    return None


def _marker(pattern, numeral: str) -> str:
    if pattern is ITEM_RE:
        return f"第（{numeral}）项"
    if pattern is TOP_ITEM_RE:
        return f"第{numeral}项"
    return f"第{numeral}项"
