"""CSV and JSONL export of filtered conversations, personal data masked unless a supervisor
asked for (and was audited for) the unmasked text."""
from __future__ import annotations

import csv
import io
import json
from typing import Any, Dict, Iterable, List

from bot.console.conversations import Conversation, fmt_ts, load_transcript
from bot.console.db import Database
from bot.console.filters import Annotations
from bot.console.masking import masker

SPEAKERS = {"citizen": "市民", "bot": "机器人", "staff": "工作人员", "card": "回答卡片", "feedback": "评价"}
CSV_COLUMNS = ["会话ID", "事件ID", "时间", "发言方", "内容", "意图", "置信度", "回答类型", "引用条目",
               "涉及部门", "评价", "工作人员"]


def _cell(value: Any) -> str:
    """Text for a CSV cell; a leading = + - @ is quoted so spreadsheets don't run it."""
    text = "" if value is None else str(value)
    if text and text[0] in "=+-@\t\r":
        text = "'" + text
    return text


def message_record(m: Dict[str, Any], mask) -> Dict[str, Any]:
    out: Dict[str, Any] = {"id": m["id"], "time": m["time"], "timestamp": m.get("ts"), "from": m["who"]}
    if m["who"] in ("citizen", "bot", "staff"):
        out["text"] = mask(m.get("text") or "")
    if m["who"] == "citizen":
        out.update(intent=m.get("intent"), confidence=m.get("confidence"),
                   entities=[dict(e, value=mask(e["value"]) if isinstance(e.get("value"), str) else e.get("value"))
                             for e in m.get("entities") or []],
                   channel=m.get("channel"))
    if m["who"] == "staff":
        out["staff"] = m.get("staff")
    if m["who"] == "card":
        out.update(kind=m.get("kind"), citations=m.get("citations"), departments=m.get("departments"),
                   feedback=m.get("feedback"))
    if m["who"] == "feedback":
        out["feedback"] = m.get("value")
    return out


def conversation_records(db: Database, convs: Iterable[Conversation], ann: Annotations,
                         masked: bool = True) -> Iterable[Dict[str, Any]]:
    mask = masker(masked)
    for conv in convs:
        messages = load_transcript(db, conv.sender_id)
        yield {
            "sender_id": mask(conv.sender_id),
            "started": fmt_ts(conv.first_ts),
            "last": fmt_ts(conv.last_ts),
            "channels": sorted(conv.channels),
            "card_kinds": sorted(conv.kinds),
            "tags": sorted(ann.tags.get(conv.sender_id, ())),
            "reviewed": conv.sender_id in ann.reviewed,
            "feedback": {"up": conv.feedback_up, "down": conv.feedback_down},
            "masked": masked,
            "messages": [message_record(m, mask) for m in messages],
        }


def to_jsonl(records: Iterable[Dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def to_csv(records: Iterable[Dict[str, Any]]) -> str:
    buf = io.StringIO()
    buf.write("\ufeff")  # Excel opens UTF-8 CSV correctly with a BOM
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for r in records:
        for m in r["messages"]:
            cites = "；".join(f"{c.get('doc_title') or c.get('doc') or ''}{c.get('label') or c.get('title') or ''}"
                             for c in m.get("citations") or [])
            w.writerow([_cell(v) for v in (
                r["sender_id"], m["id"], m["time"], SPEAKERS.get(m["from"], m["from"]), m.get("text", ""),
                m.get("intent") or "", "" if m.get("confidence") is None else f"{m['confidence']:.3f}",
                m.get("kind") or "", cites, "、".join(m.get("departments") or []),
                {"up": "👍", "down": "👎"}.get(m.get("feedback") or "", ""), m.get("staff") or "")])
    return buf.getvalue()


def export(db: Database, convs: List[Conversation], ann: Annotations, fmt: str, masked: bool) -> str:
    records = conversation_records(db, convs, ann, masked)
    return to_csv(records) if fmt == "csv" else to_jsonl(records)
