"""The knowledge base: documents + department index, saved as one versioned JSON file.

Built by ``python -m bot.kb build`` from every document in ``data/policies/`` (.txt, .docx,
.pdf, .html — :mod:`bot.kb.loaders`) and
loaded once per process with :func:`load_kb`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from bot.kb.departments import (alias_map, build_department_index, find_departments,
                                 surface_forms_longest_first, unit_cores)
from bot.kb.loaders import LoadError, load_text
from bot.kb.parser import Document, Item, ParseError, parse_document
from bot.kb.validate import failed_report, format_report, validate_document

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_POLICY_DIR = ROOT / "data" / "policies"
DEFAULT_CONFIG_DIR = ROOT / "data" / "kb_config"
DEFAULT_BUILD_DIR = ROOT / "build"
KB_FORMAT_VERSION = 1


TERM_INNER_PUNCT_RE = re.compile(r"[、，,·\s]")  # inside a term: 双随机、一公开 (also bot/retrieval/english.py)
CJK_ONLY_RE = re.compile(r"[\u4e00-\u9fff]+")  # a term a typo of which is read as the term (Chinese characters only)


@dataclass
class KnowledgeBase:
    documents: List[Document]
    departments: Dict[str, dict]
    thesaurus: Dict[str, List[str]] = field(default_factory=dict)
    fingerprint: str = ""
    # citizens' words for the domain's official terms (data/kb_config/domain_terms.yml), used only in
    # questions about what is published (bot/retrieval/search.py); none the documents write themselves
    domain_terms: Dict[str, List[str]] = field(default_factory=dict)

    # -- lookups -------------------------------------------------------------
    def document(self, doc_id: str) -> Optional[Document]:
        return next((d for d in self.documents if d.doc_id == doc_id), None)

    def item(self, doc_id: str, number: int) -> Optional[Item]:
        doc = self.document(doc_id)
        return doc.item(int(number)) if doc else None

    def all_items(self):
        for doc in self.documents:
            for item in doc.items:
                yield doc, item

    # The department index never changes once loaded: derived lookups are computed once,
    # not on every message.
    @cached_property
    def _alias_map(self) -> Dict[str, str]:
        return alias_map(self.departments)

    @cached_property
    def _forms(self) -> List[tuple]:
        return surface_forms_longest_first(self.departments)

    @cached_property
    def _cores(self) -> List[tuple]:
        return unit_cores(self.departments)

    def alias_map(self) -> Dict[str, str]:
        return self._alias_map

    def department_forms(self, canonical: str) -> List[str]:
        """The canonical name and every alias of a department."""
        return [canonical] + list(self.departments.get(canonical, {}).get("aliases", []))

    def canonical_department(self, name: str) -> Optional[str]:
        if not name:
            return None
        amap = self.alias_map()
        if name in amap:
            return amap[name]
        found = find_departments(name, self.departments, include_generic=True, forms=self._forms, cores=self._cores)
        return found[0] if found else None

    def find_departments(self, text: str, include_generic: bool = False) -> List[str]:
        return find_departments(text, self.departments, include_generic, forms=self._forms, cores=self._cores)

    def department_items(self, canonical: str):
        """[(doc, item, role)] for every item the department leads or shares, leads first
        within document order."""
        data = self.departments.get(canonical)
        if not data:
            return []
        out = []
        for ref in data["items"]:
            doc = self.document(ref["doc"])
            item = doc.item(ref["item"]) if doc else None
            if item:
                out.append((doc, item, ref["role"]))
        return out

    def terms(self) -> List[str]:
        """Domain terms for the segmenter dictionary and topic lookup: quoted terms,
        referenced document names and numbers."""
        out: List[str] = []
        for _, item in self.all_items():
            out.extend(item.terms)
            out.extend(r.strip("《》") for r in item.references)
        for doc in self.documents:
            out.append(doc.title)
        return list(dict.fromkeys(t for t in out if t))

    def with_terms_as_written(self, text: str) -> str:
        """``text`` with the items' terms that have punctuation inside ("双随机、一公开") written as
        the documents write them when the question leaves it out or spaces it ("双随机一公开",
        "双随机 一公开"): the segmenter then reads the term as one word, as in the documents."""
        if not text:
            return text
        for term, pattern in self._spaced_terms:
            if term not in text:
                text = pattern.sub(term, text)
        return self._typos_of_terms_corrected(text)

    # what follows a unit's name in a question ("市医保居负责…", "…在政务公开里", "…的任务"), or its end
    UNIT_FOLLOWERS = set("负在有要的牵管承干做是主都这和与及还今，,。？?！! ") | {""}

    def _typos_of_terms_corrected(self, text: str) -> str:
        """A term of four or more characters typed with one character wrong ("三搞四新" for 三高四新,
        "跨省同办" for 跨省通办) is read as the term, when it is the only term that close."""
        # what is already written right ("市委网信办", "市场监管部门") is not a typo of another name
        known = None
        for term, bare, owner, is_unit in self._typo_terms:
            if bare in text or term in text or sum(c in text for c in bare) < len(bare) - 1:
                continue  # (written right, or too few of its characters to be one typo away)
            if known is None:  # (again after each correction)
                known = [(m.start(), m.end()) for _, b, _, _ in self._typo_terms for m in re.finditer(re.escape(b), text)]
            n = len(bare)
            spans = [i for i in range(len(text) - n + 1)
                     if sum(a != b for a, b in zip(text[i:i + n], bare)) == 1 and CJK_ONLY_RE.fullmatch(text[i:i + n])
                     and not any(a < i + n and i < b for a, b in known)
                     # a unit's name ends where the sentence goes on ("市医保居有什么…"), not inside a
                     # word ("市场监管执法", "市政府网站" are no typos of 市场监管局/市政府办)
                     and (not is_unit or text[i + n:i + n + 1] in self.UNIT_FOLLOWERS)]
            if len(spans) != 1:
                continue
            window = text[spans[0]:spans[0] + n]
            # another term or unit as close (forms of the same unit — 市发改局/市发改委 — are no rivals)
            rivals = [b for _, b, o, _ in self._typo_terms if b != bare and o != owner and len(b) == n
                      and sum(x != y for x, y in zip(window, b)) <= 1]
            if not rivals:
                text = text[:spans[0]] + term + text[spans[0] + n:]
                known = None
        return text

    @cached_property
    def _typo_terms(self) -> List[tuple]:
        """(term as written, its characters without punctuation, what it names, whether it is a unit's
        name) for terms of four or more characters, and the units' names and aliases of four or more
        ("市医保居" is 市医保局, "市优化半" 市优化办), each naming its unit."""
        out = []
        for _, item in self.all_items():
            for term in item.terms:
                bare = TERM_INNER_PUNCT_RE.sub("", term)
                if len(bare) >= 4 and CJK_ONLY_RE.fullmatch(bare):
                    out.append((term, bare, term, False))
        seen = {b for _, b, _, _ in out}
        for form, unit in self._forms:
            if len(form) >= 4 and CJK_ONLY_RE.fullmatch(form) and form not in seen:
                out.append((form, form, unit, True))
                seen.add(form)
        return out

    @cached_property
    def _spaced_terms(self) -> List[tuple]:
        """(term as written, pattern of its characters with the punctuation optional) for the
        items' terms with punctuation inside."""
        out = []
        for _, item in self.all_items():
            for term in item.terms:
                bare = TERM_INNER_PUNCT_RE.sub("", term)
                if bare != term and len(bare) >= 4:
                    out.append((term, re.compile(f"{TERM_INNER_PUNCT_RE.pattern}?".join(map(re.escape, bare)))))
        return out

    # -- (de)serialisation -----------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": KB_FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "documents": [d.to_dict() for d in self.documents],
            "departments": self.departments,
            "thesaurus": self.thesaurus,
            "domain_terms": self.domain_terms,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "KnowledgeBase":
        if data.get("format") != KB_FORMAT_VERSION:
            raise ValueError("知识库格式版本不符，请重新运行 python -m bot.kb build")
        return cls(
            documents=[Document.from_dict(d) for d in data["documents"]],
            departments=data["departments"],
            thesaurus=data.get("thesaurus", {}),
            fingerprint=data.get("fingerprint", ""),
            domain_terms=data.get("domain_terms", {}),
        )


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def policy_files(policy_dir: Path) -> List[Path]:
    """Every file in ``policy_dir`` is a document (hidden files and ``*.md`` notes aside),
    sorted: one of another type (.doc, .exe …) fails the build with its name rather than
    being left out unnoticed. The file name without its extension is the document id, so
    two files with the same id are refused."""
    files = sorted(p for p in Path(policy_dir).iterdir() if p.is_file()
                   and not p.name.startswith(".") and p.suffix.lower() != ".md")
    seen: Dict[str, Path] = {}
    for path in files:
        if path.stem in seen:
            raise LoadError(f"{seen[path.stem].name} 和 {path.name} 的文件名相同（文档编号 {path.stem}），"
                            f"请只保留一个")
        seen[path.stem] = path
    return files


def parse_file(path: Path, data: bytes = None) -> Document:
    """One file → Document (id = file name without extension). LoadError / ParseError."""
    path = Path(path)
    return parse_document(load_text(path, data), doc_id=path.stem)


class BuildError(ValueError):
    """A document could not be loaded or yielded no items; ``str()`` is the full report."""

    def __init__(self, report):
        self.report = report
        super().__init__(format_report(report))


def build_kb(policy_dir: Path = DEFAULT_POLICY_DIR, config_dir: Path = DEFAULT_CONFIG_DIR,
             report: list = None) -> KnowledgeBase:
    """Parse every document; ``report`` (a list) receives one
    :class:`bot.kb.validate.DocumentReport` per file. Raises :class:`BuildError` (with the
    report) when any document cannot be read or yields no items."""
    policy_dir, config_dir = Path(policy_dir), Path(config_dir)
    files = policy_files(policy_dir)
    if not files:
        raise FileNotFoundError(f"{policy_dir} 下没有政策文件（.txt、.docx、.pdf、.html）")
    dept_cfg = _read_yaml(config_dir / "departments.yml")
    digest = hashlib.sha256()
    documents = []
    report = [] if report is None else report
    for path in files:
        try:
            raw = load_text(path)
            doc = parse_document(raw, doc_id=path.stem)
        except (LoadError, ParseError) as exc:
            report.append(failed_report(path.stem, path.name, str(exc)))
            continue
        digest.update(path.name.encode() + raw.encode())
        documents.append(doc)
        report.append(validate_document(doc, dept_cfg, path.name))
    if any(not r.ok for r in report):
        raise BuildError(report)
    thesaurus_cfg = _read_yaml(config_dir / "thesaurus.yml")
    domain_cfg = _read_yaml(config_dir / "domain_terms.yml")
    for cfg in (dept_cfg, thesaurus_cfg, domain_cfg):
        digest.update(json.dumps(cfg, ensure_ascii=False, sort_keys=True).encode())
    departments = build_department_index(documents, dept_cfg)
    thesaurus = {str(k).lower(): [str(v) for v in vs] for k, vs in
                 (thesaurus_cfg.get("expansions") or {}).items()}
    # a word the documents write themselves is matched as written, not read as another term
    written = "\n".join(f"{d.title}\n{i.title}\n{i.text}" for d in documents for i in d.items)
    domain = {str(k).lower(): [str(v) for v in vs] for k, vs in (domain_cfg.get("expansions") or {}).items()
              if vs and str(k).lower() not in thesaurus and str(k) not in written}
    return KnowledgeBase(documents, departments, thesaurus, digest.hexdigest()[:16], domain)


def kb_path(build_dir: Path = None) -> Path:
    build_dir = Path(build_dir or os.environ.get("ZWZX_BUILD_DIR", DEFAULT_BUILD_DIR))
    return build_dir / "kb.json"


def save_kb(kb: KnowledgeBase, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(kb.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)


_CACHE: Dict[str, KnowledgeBase] = {}


def load_kb(path: Path = None) -> KnowledgeBase:
    """Load the built knowledge base once per process (cached by path)."""
    path = Path(path or kb_path())
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        raise FileNotFoundError(f"未找到知识库 {path}，请先运行 python -m bot.kb build") from None
    # Keyed by path and modification time: a rebuilt (atomically replaced) file is read
    # again, so a process that reloads after a publish never gets the previous build.
    key = f"{path}\0{stamp}"
    if key not in _CACHE:
        kb = KnowledgeBase.from_dict(json.loads(path.read_text(encoding="utf-8")))
        for old in [k for k in _CACHE if k.startswith(f"{path}\0")]:
            del _CACHE[old]
        _CACHE[key] = kb
    return _CACHE[key]
