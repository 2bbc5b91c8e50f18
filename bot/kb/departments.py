"""Canonical department names and the aliases citizens type.

Canonical names are the units the documents themselves name (lead / responsible
units and "市…局" mentions in item bodies). Aliases come from
``data/kb_config/departments.yml`` (the one place they are maintained) plus an
automatic prefix-stripped form ("市财政局" -> "财政局").
"""
from __future__ import annotations

import re
from typing import Dict, Iterable, List

PREFIX_RE = re.compile(r"^(市委|县委|区委|市|县|区)(?=[\u4e00-\u9fff]{2,})")
CORE_SUFFIX_RE = re.compile(r"(?:办公室|中心|局|办|委|部门)$")
BODY_FRAME = r"(?=(?:那边|那块|这边|这块|部门|口子|条线))"


def auto_aliases(name: str) -> List[str]:
    out = []
    stripped = PREFIX_RE.sub("", name, count=1)
    if stripped != name and len(stripped) >= 2:
        out.append(stripped)
    return out


def _prefix(name: str) -> str:
    m = PREFIX_RE.match(name)
    return m.group(1) if m else ""


def aliases_for(name: str, configured: Dict[str, List[str]]) -> List[str]:
    """The configured aliases of ``name``; for a unit of another city or county (县发改局) those
    of the configured unit of the same kind (市发改局), their 市 prefix read as 县 (市发改委 →
    县发改委): the alias table is written once, not per county."""
    if name in configured:
        return list(configured[name])
    family = PREFIX_RE.sub("", name, count=1)
    own = _prefix(name)
    for other, aliases in configured.items():
        if other != name and PREFIX_RE.sub("", other, count=1) == family and own:
            theirs = _prefix(other)
            out = []
            for a in aliases:
                if theirs and a.startswith(theirs):
                    a = own + a[len(theirs):]
                elif theirs and a.startswith(theirs[0]) and PREFIX_RE.match(a):
                    a = own[0] + a[1:]    # 市网信办 → 县网信办
                out.append(a)
            return out
    return []


def build_department_index(documents: Iterable, config: dict) -> Dict[str, dict]:
    """Return {canonical: {"aliases": [...], "generic": bool, "items": [{doc,item,role}]}}."""
    configured: Dict[str, List[str]] = config.get("departments", {}) or {}
    generic = set(config.get("generic_units", []) or [])
    generic_aliases: Dict[str, List[str]] = config.get("generic_aliases", {}) or {}
    index: Dict[str, dict] = {}
    documents = list(documents)

    def entry(name: str) -> dict:
        if name not in index:
            aliases = aliases_for(name, configured) + list(generic_aliases.get(name, []))
            for a in ([] if name in generic else auto_aliases(name)):
                if a not in aliases:
                    aliases.append(a)
            index[name] = {"aliases": aliases, "generic": name in generic, "items": []}
        return index[name]

    for doc in documents:
        for item in doc.items:
            for role, units in (("lead", item.lead_units), ("responsible", item.responsible_units)):
                for unit in units:
                    entry(unit)["items"].append({"doc": doc.doc_id, "item": item.number, "role": role})
    # Departments named in the configuration are known even if no item names them as a unit
    # (e.g. 市人民政府办公室 in an item body): citizens may still ask about them, as long as a
    # document mentions them (another county's documents do not bring 宁乡's offices along).
    texts = [doc.preamble + doc.notice + "".join(i.text for i in doc.items) for doc in documents]
    for name in configured:
        if any(name in t for t in texts):
            entry(name)
    return index


def alias_map(index: Dict[str, dict]) -> Dict[str, str]:
    """Every surface form (canonical or alias) -> canonical name."""
    out: Dict[str, str] = {}
    for canonical, data in index.items():
        out.setdefault(canonical, canonical)
        for alias in data["aliases"]:
            out.setdefault(alias, canonical)
    return out


def surface_forms_longest_first(index: Dict[str, dict]) -> List[tuple]:
    """[(surface form, canonical)], longest form first (the matching order)."""
    return sorted(alias_map(index).items(), key=lambda kv: -len(kv[0]))


def unit_core(canonical: str) -> str:
    """A unit's name without its place and kind of body: 医保 of 市医保局, 行政审批服务 of 市行政审批服务局."""
    return CORE_SUFFIX_RE.sub("", PREFIX_RE.sub("", canonical, count=1))


def unit_cores(index: Dict[str, dict]) -> List[tuple]:
    """[(pattern, canonical)]: each unit's core (医保 of 市医保局) followed by a word pointing at a body."""
    out = []
    for canonical in index:
        core = unit_core(canonical)
        if len(core) >= 2 and core != canonical:
            out.append((re.compile(re.escape(core.lower()) + BODY_FRAME), canonical))
    return out


def _one_character_off(lowered: str, index: Dict[str, dict], forms: List[tuple], include_generic: bool) -> List[tuple]:
    """A unit's name written with one wrong character inside it ("市发该局" for 市发改局, a
    homophone typed by pinyin): forms of 4+ characters whose first and last characters (the place,
    the kind of body) are right and exactly one between them differs."""
    found: List[tuple] = []
    for form, canonical in forms:
        f = form.lower()
        if len(f) < 4 or (index[canonical]["generic"] and not include_generic):
            continue
        start = lowered.find(f[0])
        while start != -1 and start + len(f) <= len(lowered):
            window = lowered[start:start + len(f)]
            if window[-1] == f[-1]:
                diff = [k for k in range(1, len(f) - 1) if window[k] != f[k]]
                if len(diff) == 1 and "\u4e00" <= window[diff[0]] <= "\u9fff":
                    found.append((start, canonical))
            start = lowered.find(f[0], start + 1)
    return found


# "管医保报销的那个局", "专门负责审批办事的那个局": a unit named by what it sees to
DESCRIBED_RE = re.compile(r"(?:管|负责|主管|分管|专管|管理)(?:全市|全县|咱们|我们|大家)?([\u4e00-\u9fff]{2,8}?)的?"
                          r"(?:那个|哪个|那家|哪家|这个)(?:局|部门|单位|机构|中心)")


def _described(lowered: str, index: Dict[str, dict], include_generic: bool) -> List[tuple]:
    """The unit whose core (``unit_core``) shares the longest run of two or more characters with what a
    "管…的那个局" phrase says it sees to; none when two units tie."""
    found: List[tuple] = []
    for m in DESCRIBED_RE.finditer(lowered):
        said = m.group(1)
        best, length = [], 1
        for canonical in index:
            if index[canonical]["generic"] and not include_generic:
                continue
            core = unit_core(canonical).lower()
            run = max((n for n in range(2, min(len(core), len(said)) + 1)
                       if any(core[k:k + n] in said for k in range(len(core) - n + 1))), default=0)
            if run > length:
                best, length = [canonical], run
            elif run == length and run:
                best.append(canonical)
        if len(best) == 1:
            found.append((m.start(), best[0]))
    return found


def find_departments(text: str, index: Dict[str, dict], include_generic: bool = False,
                     forms: List[tuple] = None, cores: List[tuple] = None) -> List[str]:
    """Canonical departments mentioned in ``text``, longest surface form first, no overlaps.
    ``forms``, ``cores``: a precomputed :func:`surface_forms_longest_first` and :func:`unit_cores`
    (the KB caches them)."""
    forms = forms if forms is not None else surface_forms_longest_first(index)
    taken = [False] * len(text)
    found: List[tuple] = []
    lowered = text.lower()
    for form, canonical in forms:
        if not include_generic and index[canonical]["generic"]:
            continue
        start = lowered.find(form.lower())
        while start != -1:
            end = start + len(form)
            if not any(taken[start:end]):
                for k in range(start, end):
                    taken[k] = True
                found.append((start, canonical))
            start = lowered.find(form.lower(), end)
    # "医保那边", "财政那块的部门", "市场监管这边": a unit's own core (医保 of 市医保局) with a word
    # that points at a body
    for pattern, canonical in (cores if cores is not None else unit_cores(index)):
        if index[canonical]["generic"] and not include_generic:
            continue
        for m in pattern.finditer(lowered):
            if not any(taken[m.start():m.end()]):
                for k in range(m.start(), m.end()):
                    taken[k] = True
                found.append((m.start(), canonical))
    if not found:
        found = _one_character_off(lowered, index, forms, include_generic)
    if not found:
        found = _described(lowered, index, include_generic)
    seen, ordered = set(), []
    for _, canonical in sorted(found):
        if canonical not in seen:
            seen.add(canonical)
            ordered.append(canonical)
    return ordered
