"""Reading a conversation for staff (transcript, summary, REST outbox) from tracker events.

Works on events as dicts (`Event.as_dict()` on the Rasa server, `tracker.events` in the
action server), so both processes share it.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

EXTERNAL_PREFIX = "EXTERNAL: "
STAFF = "staff"
BOT = "bot"
CITIZEN = "citizen"


def _is_external(event: Dict[str, Any]) -> bool:
    text = event.get("text") or ""
    return bool((event.get("metadata") or {}).get("is_external")) or text.startswith(EXTERNAL_PREFIX)


def speaker(event: Dict[str, Any]) -> Optional[str]:
    """citizen / bot / staff for a message event, None for everything else."""
    kind = event.get("event")
    if kind == "user" and not _is_external(event):
        return CITIZEN
    if kind == "bot":
        return STAFF if (event.get("metadata") or {}).get("from") == STAFF else BOT
    return None


def transcript(events: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Every message with text, in tracker order: {"from", "text", "time", "staff"?}."""
    out = []
    for e in events:
        who = speaker(e)
        text = e.get("text")
        if who is None or text is None or (who != CITIZEN and not text):
            continue
        item: Dict[str, Any] = {"from": who, "text": text, "time": e.get("timestamp")}
        if who == STAFF:
            item["staff"] = (e.get("metadata") or {}).get("staff")
        out.append(item)
    return out


def outbox(events: Iterable[Dict[str, Any]], since: float = 0.0) -> List[Dict[str, Any]]:
    """Messages pushed to the citizen outside a request/response turn (staff messages and the
    bot's resume notice) newer than `since`: what a REST client polls for."""
    out = []
    for e in events:
        if e.get("event") != "bot" or not e.get("text"):
            continue
        meta = e.get("metadata") or {}
        ts = float(e.get("timestamp") or 0.0)
        if ts <= since:
            continue
        if meta.get("from") == STAFF:
            out.append({"text": e["text"], "from": STAFF, "staff": meta.get("staff"), "time": ts})
        elif meta.get("push"):
            item = {"text": e["text"], "from": BOT, "time": ts}
            buttons = (e.get("data") or {}).get("buttons")
            if buttons:
                item["buttons"] = buttons
            out.append(item)
    return out


# Messages that are not questions about the citizen's matter.
NOT_QUESTIONS = frozenset({"request_human", "cancel", "greet", "goodbye", "thank", "affirm", "deny",
                           "feedback", "rate", "request_callback", "bot_identity", "ask_capabilities"})


def summarize(events: Iterable[Dict[str, Any]], questions: int = 3, max_chars: int = 500) -> str:
    """'市民最近的问题：“…”；“…”。机器人引用的条目：《…》第（五）项 …' for the ticket."""
    asked: List[str] = []
    cited: List[str] = []
    for e in events:
        who = speaker(e)
        if who == CITIZEN:
            text = (e.get("text") or "").strip()
            intent = (((e.get("parse_data") or {}).get("intent") or {}).get("name"))
            if text and not text.startswith("/") and intent not in NOT_QUESTIONS:
                asked.append(text[:100])
        elif who == BOT:
            custom = (e.get("data") or {}).get("custom") or {}
            for c in custom.get("citations") or []:
                label = c.get("label") or c.get("title") or ""
                doc = c.get("doc_title")
                ref = f"《{doc}》{label}" if doc and c.get("item") is not None else label
                if ref and ref in cited:
                    cited.remove(ref)
                if ref:
                    cited.append(ref)
    parts = []
    if asked:
        parts.append("市民最近的问题：" + "；".join(f"“{q}”" for q in asked[-questions:]) + "。")
    else:
        parts.append("市民直接要求人工服务，未提出具体问题。")
    if cited:
        parts.append("机器人引用的条目：" + "；".join(cited[-questions:]) + "。")
    else:
        parts.append("机器人未引用任何条目。")
    summary = "".join(parts)
    return summary if len(summary) <= max_chars else summary[: max_chars - 1] + "…"
