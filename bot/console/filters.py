"""Conversation filters: parsed from query parameters (with Chinese error messages for bad
values), applied to the summaries of conversations.py plus the console's own annotations
(tags, reviewed flags)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Dict, Iterable, List, Mapping, Optional, Set
from urllib.parse import urlencode

from bot.console.conversations import CARD_KINDS, Conversation, local_tz


class FilterError(ValueError):
    """A filter value that cannot be used; the message is shown to staff (Chinese)."""


@dataclass
class Annotations:
    """The console's own data about conversations."""
    tags: Dict[str, Set[str]]          # sender_id → tags (conversation or message level)
    reviewed: Set[str]                 # sender_ids marked reviewed


EMPTY = Annotations({}, set())


def _date(value: str, label: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise FilterError(f"{label}“{value}”不是有效日期，请使用 YYYY-MM-DD 格式") from None


@dataclass
class Filter:
    date_from: Optional[dt.date] = None
    date_to: Optional[dt.date] = None
    channel: str = ""
    intent: str = ""
    kind: str = ""
    low_confidence: Optional[float] = None   # some citizen message below this NLU confidence
    negative: bool = False                   # at least one 👎
    item: str = ""                           # cited item key "doc#item"
    department: str = ""
    tag: str = ""
    reviewed: str = ""                       # "yes" / "no" / "" (any)
    q: str = ""                              # full-text search over citizen messages

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> "Filter":
        def get(name: str) -> str:
            value = args.get(name)
            if isinstance(value, list):
                value = value[0] if value else ""
            return (value or "").strip()

        f = cls()
        if get("date_from"):
            f.date_from = _date(get("date_from"), "开始日期")
        if get("date_to"):
            f.date_to = _date(get("date_to"), "结束日期")
        if f.date_from and f.date_to and f.date_from > f.date_to:
            raise FilterError("开始日期不能晚于结束日期")
        f.channel = get("channel")[:64]
        f.intent = get("intent")[:255]
        f.kind = get("kind")
        if f.kind and f.kind not in CARD_KINDS:
            raise FilterError(f"未知的回答类型“{f.kind}”；可选：{'、'.join(CARD_KINDS)}")
        if get("low_confidence"):
            try:
                f.low_confidence = float(get("low_confidence"))
            except ValueError:
                raise FilterError("置信度阈值必须是 0 到 1 之间的数字，例如 0.5") from None
            if not 0.0 <= f.low_confidence <= 1.0:
                raise FilterError("置信度阈值必须是 0 到 1 之间的数字，例如 0.5")
        neg = get("negative").lower()
        if neg not in ("", "0", "1", "true", "false", "on", "yes", "no"):
            raise FilterError("“差评”筛选只能是 1 或 0")
        f.negative = neg in ("1", "true", "on", "yes")
        f.item = get("item")[:255]
        f.department = get("department")[:255]
        f.tag = get("tag")[:64]
        f.reviewed = get("reviewed")
        if f.reviewed not in ("", "yes", "no"):
            raise FilterError("“已复核”筛选只能是 yes、no 或留空")
        f.q = get("q")[:200]
        return f

    def to_args(self) -> Dict[str, str]:
        out: Dict[str, str] = {}
        for fd in fields(self):
            value = getattr(self, fd.name)
            if value in (None, "", False):
                continue
            if isinstance(value, bool):
                value = "1"
            out[fd.name] = str(value)
        return out

    def query_string(self, **extra) -> str:
        args = self.to_args()
        args.update({k: str(v) for k, v in extra.items() if v not in (None, "")})
        return urlencode(args)

    def is_empty(self) -> bool:
        return not self.to_args()

    # ---------------------------------------------------------------- matching
    def _range(self):
        tz = local_tz()
        start = dt.datetime.combine(self.date_from, dt.time.min, tzinfo=tz).timestamp() if self.date_from else None
        end = (dt.datetime.combine(self.date_to + dt.timedelta(days=1), dt.time.min, tzinfo=tz).timestamp()
               if self.date_to else None)
        return start, end

    def matches(self, conv: Conversation, ann: Annotations = EMPTY, _range=None) -> bool:
        start, end = _range if _range is not None else self._range()
        if start is not None and conv.last_ts < start:
            return False
        if end is not None and conv.first_ts >= end:
            return False
        if self.channel and self.channel not in conv.channels:
            return False
        if self.intent and self.intent not in conv.intents:
            return False
        if self.kind and self.kind not in conv.kinds:
            return False
        if self.low_confidence is not None and (conv.min_confidence is None
                                                or conv.min_confidence >= self.low_confidence):
            return False
        if self.negative and conv.feedback_down == 0:
            return False
        if self.item and self.item not in conv.items:
            return False
        if self.department and self.department not in conv.departments:
            return False
        if self.tag and self.tag not in ann.tags.get(conv.sender_id, set()):
            return False
        if self.reviewed == "yes" and conv.sender_id not in ann.reviewed:
            return False
        if self.reviewed == "no" and conv.sender_id in ann.reviewed:
            return False
        if self.q:
            words = [w.lower() for w in self.q.split() if w]
            texts = [t.lower() for t in conv.citizen_texts()]
            if not all(any(w in t for t in texts) for w in words):
                return False
        return True

    def apply(self, conversations: Iterable[Conversation], ann: Annotations = EMPTY) -> List[Conversation]:
        rng = self._range()
        out = [c for c in conversations if self.matches(c, ann, rng)]
        out.sort(key=lambda c: (c.last_ts, c.sender_id), reverse=True)
        return out


def paginate(items: List, page: int, per_page: int):
    total = len(items)
    pages = max(1, (total + per_page - 1) // per_page)
    page = min(max(1, page), pages)
    return items[(page - 1) * per_page: page * per_page], page, pages, total
