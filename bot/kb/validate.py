"""Validation report for every build: what the parser found in each document and what
looks wrong, in Chinese, for the person who publishes the document.

Per document: items found, items without units, units the department configuration
(``data/kb_config/departments.yml``) does not know (they get only the automatic
prefix-stripped alias, so citizens' other names for them will not be recognised),
references and deadlines extracted, and warnings: a gap in the numbering as the document
writes it (（一）（二）（四）), an item without body text. A document that yields no items
is an error: the build stops with the report.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from bot.kb.parser import Document, cn_to_int


@dataclass
class DocumentReport:
    doc_id: str
    source: str = ""
    title: str = ""
    items: int = 0
    items_without_units: List[int] = field(default_factory=list)
    unknown_units: List[str] = field(default_factory=list)
    references: int = 0
    deadlines: int = 0
    warnings: List[str] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def known_units(config: dict) -> set:
    cfg = config or {}
    known = set((cfg.get("departments") or {}).keys()) | set(cfg.get("generic_units") or [])
    known |= set((cfg.get("generic_aliases") or {}).keys())
    return known


def validate_document(doc: Document, config: dict, source: str = "") -> DocumentReport:
    rep = DocumentReport(doc_id=doc.doc_id, source=source, title=doc.title, items=len(doc.items))
    known = known_units(config)
    unknown: List[str] = []
    for item in doc.items:
        units = item.lead_units + item.responsible_units
        if not units:
            rep.items_without_units.append(item.number)
        unknown.extend(u for u in units if u not in known)
        rep.references += len(item.references)
        rep.deadlines += len(item.deadlines)
        # nothing beyond the item's title: "（四）丁事项。"
        if item.body.strip().rstrip("。；;.： ") in ("", item.title.strip()):
            rep.warnings.append(f"{item.marker or item.number} “{item.title[:20]}”没有正文")
    rep.unknown_units = list(dict.fromkeys(unknown))
    rep.warnings[:0] = numbering_gaps(doc)
    if not doc.items:
        rep.error = "没有找到编号的工作事项（如“（一）”“1.”）"
    return rep


def numbering_gaps(doc: Document) -> List[str]:
    """Gaps in the numbering the document itself writes; restarted numbering (（一） in
    every section) is checked section by section."""
    out: List[str] = []
    groups: Dict[int, List] = {}
    restarts = len({i.numeral for i in doc.items}) < len(doc.items)
    for item in doc.items:
        groups.setdefault(item.section if restarts else 0, []).append(item)
    for section, items in groups.items():
        try:
            numbers = [cn_to_int(i.numeral) for i in items]
        except (KeyError, ValueError):
            continue
        expected = numbers[0] if numbers else 1
        if numbers and numbers[0] != 1 and (not restarts and section == 0):
            out.append(f"编号从 {items[0].numeral} 开始，不是从一开始")
        for item, n in zip(items, numbers):
            if n != expected:
                where = f"第{section}部分" if restarts else ""
                if n > expected:
                    out.append(f"{where}编号不连续：{_fmt(items, expected)}之后是 {item.numeral}（缺 {n - expected} 项）")
                else:
                    out.append(f"{where}编号重复或倒退：{item.numeral}")
            expected = n + 1
    return out


def _fmt(items, expected: int) -> str:
    prev = [i for i in items if _safe_int(i.numeral) == expected - 1]
    return prev[0].numeral if prev else str(expected - 1)


def _safe_int(numeral: str) -> Optional[int]:
    try:
        return cn_to_int(numeral)
    except (KeyError, ValueError):
        return None


def failed_report(doc_id: str, source: str, message: str) -> DocumentReport:
    return DocumentReport(doc_id=doc_id, source=source, error=message)


def format_report(reports: List[DocumentReport]) -> str:
    lines = ["知识库校验报告"]
    for r in reports:
        head = f"【{r.doc_id}】{('《' + r.title + '》') if r.title else ''}"
        if r.source:
            head += f"（{r.source}）"
        lines.append(head)
        if r.error:
            lines.append(f"  错误：{r.error}")
            if not r.items:
                continue
        lines.append(f"  工作事项：{r.items} 项")
        lines.append("  无责任单位的事项：" + ("、".join(str(n) for n in r.items_without_units)
                                       if r.items_without_units else "无"))
        lines.append("  部门配置中没有的单位：" + ("、".join(r.unknown_units) if r.unknown_units else "无"))
        lines.append(f"  引用文件：{r.references} 处；时限要求：{r.deadlines} 处")
        for w in r.warnings:
            lines.append(f"  警告：{w}")
    failed = [r for r in reports if r.error]
    lines.append(f"结果：{'失败，' + str(len(failed)) + ' 个文档有错误' if failed else '通过'}")
    return "\n".join(lines)
