"""Write a built knowledge base's files: ``kb.json``, ``index.json``, the pkuseg user
dictionary and ``data/nlu/generated_kb.yml``. Each file is written to a temporary name
and renamed over the old one, so a running process reads either the old or the new
file, never half of one; ``kb.json`` is renamed last (readers key their reload on it)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from bot.kb.generate import write_nlu_files, write_user_dict
from bot.kb.store import KnowledgeBase, save_kb


def _atomic_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_artifacts(kb: KnowledgeBase, kb_file: Path, nlu_out: Path) -> dict:
    """Segment, index and write everything; returns {"index": path, "nlu": path, ...}."""
    from bot.nlp.segmenter import Segmenter
    from bot.retrieval.search import build_index, document_words

    kb_file, nlu_out = Path(kb_file), Path(nlu_out)
    build = kb_file.parent
    build.mkdir(parents=True, exist_ok=True)
    dict_tmp = build / f".pkuseg_user_dict.{os.getpid()}.tmp"
    words = write_user_dict(kb, dict_tmp)
    dict_tmp.replace(build / "pkuseg_user_dict.txt")
    index = build_index(kb, Segmenter(words))
    from bot.retrieval.dense import compute_dense, write_dense

    dense = None
    try:
        # the items' sentence vectors (meaning, not words) and the documents' words': seconds
        dense = compute_dense(kb, words=document_words(index))
    except Exception as exc:  # noqa: BLE001 — the bot still answers from words (bot/retrieval/dense.py)
        print(f"警告：未能生成语义向量（{exc}），将仅按字词检索。", file=sys.stderr)
    # everything slow is done: the files follow each other within milliseconds, kb.json last, so a
    # running server never pairs a new index with the old knowledge base for longer than that
    _atomic_text(build / "index.json", json.dumps(index, ensure_ascii=False))
    write_dense(dense, build)
    nlu_tmp = nlu_out.with_name(f".{nlu_out.name}.{os.getpid()}.tmp")
    write_nlu_files(kb, nlu_tmp)
    nlu_tmp.replace(nlu_out)
    save_kb(kb, kb_file)
    return {"kb": kb_file, "index": build / "index.json", "dense": build / "dense.npy", "nlu": nlu_out}
