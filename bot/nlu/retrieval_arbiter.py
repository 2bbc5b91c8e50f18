"""Last NLU step: retrieval-first arbitration.

The intent classifier fits the wording of its examples; a long polite message ("你好，我想问一下
……谢谢") or a short new topic ("我想问下依申请公开") can come out as a greeting, a thank-you,
out_of_scope or nlu_fallback although the knowledge base clearly answers it. This component asks
the retrieval index (the same one the action server answers from, built from the knowledge
base) about the question without its greetings and fillers; when one item covers the question
strongly, or the question names a document an item cites, the intent becomes ``ask_policy``.

Requests for a person, complaints, feedback and ratings are never overridden; a message that
is only greetings and fillers keeps its intent, and so does a confident question to the
assistant itself ("你有哪些功能"). Short form answers (affirm/deny/cancel: "好的", "不用了") carry
no topic, so retrieval finds nothing strong in them and they keep their intent too. Questions
about other services (社保卡挂失, 天气) have no item covering them, so they stay out of scope.
"""
from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.nlp.segmenter import content_words

logger = logging.getLogger(__name__)

OVERRIDABLE = {"greet", "goodbye", "thank", "bot_identity", "ask_capabilities", "out_of_scope", "nlu_fallback",
               "affirm", "deny", "cancel"}
ABOUT_THE_BOT = {"bot_identity", "ask_capabilities"}
ADDRESSED_TO_BOT_RE = re.compile(r"你|您|机器人|助手|\byou\b", re.I)
# An English request for a person: the classifier has almost no English examples (adding some
# pulls every English question to them), so the words decide.
ENGLISH_HANDOFF_RE = re.compile(
    r"\b(talk|speak|chat|transfer|connect|put me through|get me)\b.{0,30}\b(human|person|people|agent|staff|"
    r"someone|somebody|operator|officer|representative)\b|\b(human|real person|live agent|operator)\s*(please)?\s*[.!?]*$",
    re.I)
TARGET_INTENT = "ask_policy"
ARBITRATION_KEY = "arbitration"

_lock = threading.Lock()
_cached: Dict[str, Any] = {}


def _index():
    """(kb, PolicyIndex) from build/, reloaded when the build changes."""
    from bot.kb.store import kb_path, load_kb
    from bot.retrieval.search import PolicyIndex

    path = Path(kb_path())
    try:
        stamp = (path.stat().st_mtime_ns, (path.parent / "index.json").stat().st_mtime_ns)
    except OSError:
        return None
    with _lock:
        if _cached.get("stamp") != stamp:
            kb = load_kb(path)
            _cached.update(stamp=stamp, kb=kb, index=PolicyIndex.load(kb, path.parent / "index.json"))
        return _cached["kb"], _cached["index"]


def policy_strength(kb, index, text: str, tokens: List[str]) -> Optional[dict]:
    """How strongly the knowledge base answers the question, or None."""
    from bot.answering.answerer import ANSWER_COVERAGE
    from bot.retrieval.references import items_naming

    named = items_naming(kb, text)
    if named:
        doc, item, refs = named[0]
        return {"doc": doc.doc_id, "item": item.number, "coverage": 1.0, "by": "reference"}
    words = content_words(tokens)
    if not words:
        return None
    departments = kb.find_departments(text)
    hits = index.search(text, tokens, departments)
    if hits and hits[0].coverage >= ANSWER_COVERAGE:
        return {"doc": hits[0].doc, "item": hits[0].item, "coverage": round(hits[0].coverage, 3), "by": "retrieval"}
    return None


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class RetrievalArbiter(GraphComponent):
    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "RetrievalArbiter":
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            try:
                self._arbitrate(message)
            except Exception:  # arbitration is an improvement, never a reason to lose a message
                logger.exception("retrieval arbitration failed; keeping the classifier's intent")
        return messages

    def _arbitrate(self, message: Message) -> None:
        intent = (message.get(INTENT) or {}).get("name")
        if intent != "request_human" and ENGLISH_HANDOFF_RE.search(message.get(TEXT) or ""):
            self._set(message, {"name": "request_human", "confidence": 0.9},
                      {"by": "english_handoff", "overridden": intent})
            return
        if intent not in OVERRIDABLE:
            return
        scoring = message.get("text_scoring")
        if scoring is None:
            scoring = message.get(TEXT) or ""
        tokens = message.get("tokens_zh") or []
        confidence = float((message.get(INTENT) or {}).get("confidence") or 0.0)
        if intent in ABOUT_THE_BOT and ADDRESSED_TO_BOT_RE.search(scoring) and confidence >= 0.6:
            return  # "你有哪些功能": a question to the assistant, not about a policy's 功能
        if not scoring.strip():
            return
        loaded = _index()
        if loaded is None:
            return
        kb, index = loaded
        strength = policy_strength(kb, index, scoring, tokens)
        if not strength:
            return
        new = {"name": TARGET_INTENT, "confidence": max(float(strength["coverage"]), 0.5)}
        self._set(message, new, dict(strength, overridden=intent))

    @staticmethod
    def _set(message: Message, new: dict, why: dict) -> None:
        ranking = [new] + [r for r in (message.get(INTENT_RANKING_KEY) or []) if r.get("name") != new["name"]]
        message.set(INTENT, new, add_to_output=True)
        message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        message.set(ARBITRATION_KEY, why, add_to_output=True)
