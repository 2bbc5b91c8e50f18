"""Numbers behind the dashboard, over citizen turns in a date range (local time zone)."""
from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any, Dict, Iterable, List, Optional

import sqlalchemy as sa

from bot.console import charts
from bot.console.conversations import CARD_KINDS, KIND_LABELS, Conversation, local_dt, local_tz
from bot.console.db import Database
from bot.handoff.store import tickets


def ticket_ratings(db: Database, start: float, end: float) -> List[int]:
    """Ratings (1–5) citizens gave to staff after a handoff closed in the range."""
    try:
        with db.engine.connect() as conn:
            if not sa.inspect(conn).has_table("handoff_tickets"):
                return []
            rows = conn.execute(sa.select(tickets.c.rating).where(
                tickets.c.rating.isnot(None), tickets.c.closed_at >= start, tickets.c.closed_at < end))
            return [int(r[0]) for r in rows]
    except sa.exc.SQLAlchemyError:
        return []


def compute(conversations: Iterable[Conversation], date_from: dt.date, date_to: dt.date,
            ratings: Optional[List[int]] = None) -> Dict[str, Any]:
    tz = local_tz()
    start = dt.datetime.combine(date_from, dt.time.min, tzinfo=tz).timestamp()
    end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min, tzinfo=tz).timestamp()
    days = [date_from + dt.timedelta(days=i) for i in range((date_to - date_from).days + 1)]
    conv_per_day: Dict[dt.date, set] = {d: set() for d in days}
    msgs_per_day: Counter = Counter()
    hours: Counter = Counter()
    kinds: Counter = Counter()
    items: Counter = Counter()
    item_labels: Dict[str, str] = {}
    depts: Counter = Counter()
    up = down = 0
    n_turns = 0
    senders = set()
    for conv in conversations:
        for t in conv.turns:
            if not (start <= t.ts < end):
                continue
            n_turns += 1
            senders.add(conv.sender_id)
            d = local_dt(t.ts, tz)
            conv_per_day.setdefault(d.date(), set()).add(conv.sender_id)
            msgs_per_day[d.date()] += 1
            hours[d.hour] += 1
            if t.kind:
                kinds[t.kind] += 1
            for key, label in t.items:
                items[key] += 1
                item_labels[key] = label
            for dep in t.departments:
                depts[dep] += 1
            if t.feedback == "up":
                up += 1
            elif t.feedback == "down":
                down += 1
    ratings = ratings or []
    day_labels = [d.strftime("%m-%d") for d in days]
    kind_rows = [(k, KIND_LABELS.get(k, k), float(kinds.get(k, 0))) for k in CARD_KINDS if kinds.get(k)]
    top_items = [(item_labels[k], float(v)) for k, v in items.most_common(10)]
    top_depts = [(k, float(v)) for k, v in depts.most_common(10)]
    answered = kinds.get("answer", 0)
    total_cards = sum(kinds.values())
    stats = {
        "conversations": len(senders),
        "messages": n_turns,
        "answer_rate": (answered / total_cards) if total_cards else None,
        "fallback": kinds.get("fallback", 0),
        "handoff": kinds.get("handoff", 0),
        "feedback_up": up,
        "feedback_down": down,
        "satisfaction": (up / (up + down)) if (up + down) else None,
        "ratings": len(ratings),
        "rating_avg": (sum(ratings) / len(ratings)) if ratings else None,
    }
    return {
        "stats": stats,
        "per_day": {"labels": day_labels,
                    "conversations": [len(conv_per_day.get(d, ())) for d in days],
                    "messages": [msgs_per_day.get(d, 0) for d in days]},
        "kinds": {k: kinds.get(k, 0) for k in CARD_KINDS},
        "hours": [hours.get(h, 0) for h in range(24)],
        "top_items": top_items,
        "top_departments": top_depts,
        "charts": {
            "per_day": charts.line_chart(day_labels, [
                ("会话数", [len(conv_per_day.get(d, ())) for d in days]),
                ("市民消息数", [msgs_per_day.get(d, 0) for d in days])], "每日会话数与消息数",
                width=1200, height=260),
            "kinds": charts.share_chart(kind_rows, "回答类型占比"),
            "feedback": charts.hbar_chart([("👍 有帮助", float(up)), ("👎 没帮助", float(down))]
                                          if (up or down) else [], "市民对回答的评价", label_width=120,
                                          color=charts.PALETTE[2]),
            "ratings": charts.hbar_chart([r for r in charts.rating_rows(ratings)] if ratings else [],
                                         "人工服务评分（1–5分）", label_width=120, color=charts.PALETTE[4]),
            "cited": charts.hbar_chart(top_items, "被引用最多的条目", color=charts.PALETTE[0]),
            "departments": charts.hbar_chart(top_depts, "涉及最多的部门", color=charts.PALETTE[1]),
            "hours": charts.bar_chart([f"{h}时" for h in range(24)], [hours.get(h, 0) for h in range(24)],
                                      "市民消息的时段分布", color=charts.PALETTE[0],
                                      width=1200, height=220),
        },
    }
