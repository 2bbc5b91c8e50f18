"""Turn the bot's collected messages into plain WeChat text, and split long text.

WeChat text messages (passive replies and customer-service messages) carry plain text of at
most 2048 bytes (UTF-8). Every bot turn carries one answer card (``custom`` with ``kind``);
the card itself is never shown to the citizen: its citation and units are rendered as text
when the bot's own texts don't already say them. Buttons become numbered choices; the
payloads are returned so the channel can map a reply of "1", "2", ... back to a payload.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

WECHAT_TEXT_LIMIT = 2048  # bytes, UTF-8

_FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
_CHOICE_RE = re.compile(r"^\s*(?:第\s*)?([0-9]{1,2})\s*(?:项|个|号)?\s*[。.]?\s*$")


@dataclass
class Rendered:
    text: str
    choices: List[Dict[str, str]] = field(default_factory=list)  # [{"title", "payload"}]
    card: Optional[Dict[str, Any]] = None


def _is_card(custom: Any) -> bool:
    return isinstance(custom, dict) and "kind" in custom


def _choice_prompt(text: str) -> str:
    """Web-style prompts ("点击条目…") make no sense in WeChat: reply with the number instead."""
    text = text.replace("点击条目", "回复条目序号")
    text = text.replace("点击", "回复序号")
    return text


def render_messages(messages: List[Dict[str, Any]]) -> Rendered:
    """Render the messages of one bot turn (CollectingOutputChannel format) as one text."""
    parts: List[str] = []
    choices: List[Dict[str, str]] = []
    card: Optional[Dict[str, Any]] = None
    for m in messages:
        if _is_card(m.get("custom")):
            card = m["custom"]
        text = (m.get("text") or "").strip()
        buttons = [b for b in (m.get("buttons") or []) if isinstance(b, dict) and b.get("title")]
        if buttons:
            text = _choice_prompt(text) if text else "请回复序号选择："
        if text:
            parts.append(text)
        if m.get("image"):
            parts.append(str(m["image"]))
        if buttons:
            lines = []
            for b in buttons:
                choices.append({"title": str(b["title"]), "payload": str(b.get("payload") or b["title"])})
                lines.append(f"{len(choices)}. {b['title']}")
            parts.append("\n".join(lines))
        # any other custom payload / attachment is for rich clients only: never dump JSON here
    body = "\n".join(parts)
    if card:
        extra = _card_lines(card, body)
        if extra:
            parts.extend(extra)
    if choices and "序号" not in "\n".join(parts):
        parts.append("请回复序号选择。")
    text = "\n".join(parts).strip()
    if not text:
        text = "抱歉，暂时没有找到相关答复。您可以换个说法再问，或拨打12345政务服务便民热线咨询。"
    return Rendered(text=text, choices=choices, card=card)


def citation_line(citation: Dict[str, Any]) -> str:
    doc_title = citation.get("doc_title") or ""
    label = citation.get("label") or ""
    if citation.get("item") is None or not label:
        return f"依据：《{doc_title}》" if doc_title else ""
    if label.startswith("《"):
        return f"依据：{label}"
    return f"依据：《{doc_title}》{label}"


def _card_lines(card: Dict[str, Any], body: str) -> List[str]:
    lines: List[str] = []
    citations = [c for c in (card.get("citations") or []) if isinstance(c, dict)]
    if citations and "依据" not in body:
        first = citations[0]
        # a list answer already names its items ("第（八）项 …"): no single 依据 line then
        named = first.get("item") is not None and (first.get("label") or "").split(" ")[0] in body
        line = citation_line(first)
        if line and not named:
            lines.append(line)
    departments = [d for d in (card.get("departments") or []) if isinstance(d, str) and d]
    if card.get("kind") == "answer" and departments and not any(d in body for d in departments):
        lines.append("相关单位：" + "、".join(departments))
    ticket = card.get("ticket")
    if card.get("kind") == "handoff" and ticket and str(ticket) not in body:
        lines.append(f"工单编号：{ticket}")
    return lines


def parse_choice(text: str, n_choices: int) -> Optional[int]:
    """1-based number the citizen replied with, or None if the text isn't a bare number."""
    if not text or n_choices <= 0:
        return None
    m = _CHOICE_RE.match(text.translate(_FULLWIDTH_DIGITS))
    if not m:
        return None
    return int(m.group(1))


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


_BREAK_AFTER = "。！？；!?;"


def split_utf8(text: str, limit: int = WECHAT_TEXT_LIMIT) -> List[str]:
    """Split ``text`` into chunks of at most ``limit`` UTF-8 bytes.

    Breaks at the last line break in a chunk if there is one in its second half, else after
    the last sentence end (。！？；), else at the last character that fits. Characters are never
    cut in the middle. The line breaks used as split points are dropped; nothing else is.
    """
    if limit < 4:
        raise ValueError("limit must be at least 4 bytes (one UTF-8 character)")
    chunks: List[str] = []
    rest = text.strip("\n")
    while rest:
        if utf8_len(rest) <= limit:
            chunks.append(rest)
            break
        # longest prefix that fits
        size, cut = 0, 0
        for i, ch in enumerate(rest):
            size += len(ch.encode("utf-8"))
            if size > limit:
                break
            cut = i + 1
        prefix = rest[:cut]
        nl = prefix.rfind("\n")
        if nl >= cut // 2 and nl > 0:
            chunks.append(prefix[:nl])
            rest = rest[nl + 1:]
        else:
            end = max(prefix.rfind(p) for p in _BREAK_AFTER)
            if end >= cut // 2:
                cut = end + 1
            chunks.append(rest[:cut])
            rest = rest[cut:]
        rest = rest.lstrip("\n")
    return [c for c in chunks if c]
