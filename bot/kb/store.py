"""The knowledge base: documents + department index, saved as one versioned JSON file.

Built by ``python -m bot.kb build`` from every ``*.txt`` in ``data/policies/`` and
loaded once per process with :func:`load_kb`.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from bot.kb.departments import (alias_map, build_department_index, find_departments,
                                 surface_forms_longest_first)
from bot.kb.parser import Document, Item, parse_document

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_POLICY_DIR = ROOT / "data" / "policies"
DEFAULT_CONFIG_DIR = ROOT / "data" / "kb_config"
DEFAULT_BUILD_DIR = ROOT / "build"
KB_FORMAT_VERSION = 1


@dataclass
class KnowledgeBase:
    documents: List[Document]
    departments: Dict[str, dict]
    thesaurus: Dict[str, List[str]] = field(default_factory=dict)
    fingerprint: str = ""

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
        found = find_departments(name, self.departments, include_generic=True, forms=self._forms)
        return found[0] if found else None

    def find_departments(self, text: str, include_generic: bool = False) -> List[str]:
        return find_departments(text, self.departments, include_generic, forms=self._forms)

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

    # -- (de)serialisation -----------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": KB_FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "documents": [d.to_dict() for d in self.documents],
            "departments": self.departments,
            "thesaurus": self.thesaurus,
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
        )


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def build_kb(policy_dir: Path = DEFAULT_POLICY_DIR, config_dir: Path = DEFAULT_CONFIG_DIR) -> KnowledgeBase:
    policy_dir, config_dir = Path(policy_dir), Path(config_dir)
    files = sorted(policy_dir.glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"{policy_dir} 下没有 .txt 政策文件")
    digest = hashlib.sha256()
    documents = []
    for path in files:
        raw = path.read_text(encoding="utf-8")
        digest.update(path.name.encode() + raw.encode())
        documents.append(parse_document(raw, doc_id=path.stem))
    dept_cfg = _read_yaml(config_dir / "departments.yml")
    thesaurus_cfg = _read_yaml(config_dir / "thesaurus.yml")
    for cfg in (dept_cfg, thesaurus_cfg):
        digest.update(json.dumps(cfg, ensure_ascii=False, sort_keys=True).encode())
    departments = build_department_index(documents, dept_cfg)
    thesaurus = {str(k).lower(): [str(v) for v in vs] for k, vs in
                 (thesaurus_cfg.get("expansions") or {}).items()}
    return KnowledgeBase(documents, departments, thesaurus, digest.hexdigest()[:16])


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
    key = str(path)
    if key not in _CACHE:
        if not path.exists():
            raise FileNotFoundError(f"未找到知识库 {path}，请先运行 python -m bot.kb build")
        _CACHE[key] = KnowledgeBase.from_dict(json.loads(path.read_text(encoding="utf-8")))
    return _CACHE[key]
