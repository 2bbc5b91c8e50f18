"""Process-wide access to the built knowledge base and retrieval index for actions."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import List, Optional

from bot.answering.answerer import Answerer, Query
from bot.kb.store import kb_path, load_kb
from bot.retrieval.search import PolicyIndex

_lock = threading.Lock()
_answerer: Optional[Answerer] = None
_stamp: Optional[tuple] = None


def _build_stamp(path: Path) -> Optional[tuple]:
    try:
        return (path.stat().st_mtime_ns, (path.parent / "index.json").stat().st_mtime_ns)
    except OSError:
        return None


def answerer() -> Answerer:
    """The answerer over the current build. A publish (bot/kb/publish.py) renames a new
    ``index.json`` and then ``kb.json`` into place; the next call sees the new stamp, builds a
    complete new Answerer and swaps the reference — a request already running keeps the one
    it started with, none sees a half-loaded knowledge base, and the server never restarts."""
    global _answerer, _stamp
    path = Path(kb_path())
    stamp = _build_stamp(path)
    if _answerer is None or (stamp is not None and stamp != _stamp):
        with _lock:
            stamp = _build_stamp(path)
            if _answerer is None or (stamp is not None and stamp != _stamp):
                try:
                    kb = load_kb(path)
                    new = Answerer(kb, PolicyIndex.load(kb, path.parent / "index.json"))
                except (ValueError, OSError):
                    # a publish between its renames (new index, old kb.json): keep answering from
                    # the complete old one; the next call sees both new files
                    if _answerer is None:
                        raise
                    return _answerer
                _answerer, _stamp = new, stamp
    return _answerer


def reset() -> None:
    """Forget the loaded knowledge base (tests that build their own)."""
    global _answerer, _stamp
    _answerer = None
    _stamp = None


def query_tokens(message: dict) -> List[str]:
    """Tokens the NLU's PkusegTokenizer put in the parse result; segment here only when
    they are missing (e.g. a message injected without NLU)."""
    tokens = message.get("tokens_zh")
    if tokens is None:
        from bot.nlp.segmenter import default_segmenter, question_words

        # the words the NLU would have seen (bot.nlp.normalize: markup, 繁→简, fillers)
        tokens = question_words(default_segmenter(), message.get("text") or "")
    return list(tokens)


def query_from_tracker(tracker) -> Query:
    msg = tracker.latest_message or {}
    entities = msg.get("entities") or []
    departments = [e.get("value") for e in entities if e.get("entity") == "department" and e.get("value")]
    item_ref = next((e.get("value") for e in entities if e.get("entity") == "item_ref"), None)
    intent = (msg.get("intent") or {}).get("name")
    current_item = tracker.get_slot("current_item")
    text = msg.get("text") or ""
    if text.startswith("/"):
        text = ""  # a button payload, not words the citizen typed
    q = Query(
        text=text,
        tokens=query_tokens(msg) if text else [],
        intent=intent,
        departments=departments,
        item_ref=str(item_ref) if item_ref else None,
        current_doc=tracker.get_slot("current_doc"),
        current_item=int(current_item) if current_item else None,
    )
    if text and msg.get("dense"):  # the items' dense scores from the NLU (bot.retrieval.dense)
        from bot.retrieval.dense import DenseHit

        q.dense = [DenseHit.from_dict(d) for d in msg["dense"] if isinstance(d, dict)]
    near = msg.get("near_words")
    if text and isinstance(near, dict):  # the documents' words near a question's unknown word (the NLU's)
        q.near = {str(w): [str(v) for v in vs][:3] for w, vs in list(near.items())[:8] if isinstance(vs, list)}
    if not text and not item_ref and tracker.get_slot("department") and intent == "ask_department_duties":
        q.departments = [tracker.get_slot("department")]
    return q
