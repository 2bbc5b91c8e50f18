"""Retention of conversations (issue 16): conversation logs hold citizens' words, phone numbers
(callback requests) and WeChat openids, so they are not kept for ever.

    python -m bot.ops.retention --days 180                 # delete conversations idle > 180 days
    python -m bot.ops.retention --days 180 --anonymise     # keep them for statistics, without personal data
    python -m bot.ops.retention --days 180 --dry-run       # only count
    make retention RETENTION_DAYS=180                      # the same (delete)

A conversation is *old* when its latest event is older than the cutoff. The database is
``--db-url`` or ``ZWZX_DB_URL`` (default ``sqlite:///build/tracker.db``; the production profile's
PostgreSQL URL is what ``bot.ops.settings.db_url()`` builds).

* **delete** (default): every row of those conversations in every table with a ``sender_id``
  column (Rasa's ``events``, ``handoff_tickets``, the console's tags/notes/…), and WeChat users
  (``wechat_users``) whose last message is older than the cutoff.
* **anonymise**: the conversations stay (intents, answer cards, timestamps — the console's
  statistics still count them) but user texts become ``〔已匿名〕``, parse data keeps only the
  intent, user metadata is dropped, runs of 7+ digits in bot texts and slot values are masked,
  the conversation id becomes ``anon-<sha256 prefix>`` in every table, ticket phone numbers
  and summaries are cleared; ``wechat_users`` rows are deleted.

Safe to repeat; schedule it daily (cron / systemd timer). Prints what it did as JSON.
The staff console's conversation index (shared by its workers, in the same database) is reset
in the same transaction when anything changed; every console worker rebuilds it from the events
that are left at its next request.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from typing import Any, Dict, Iterable, List, Optional

import sqlalchemy as sa

ANON_TEXT = "〔已匿名〕"
DIGITS_RE = re.compile(r"\d{7,}")
BATCH = 500
INDEX_TABLE = "console_conv_index"


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return DIGITS_RE.sub(lambda m: "*" * len(m.group(0)), value)
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    return value


def anon_id(sender_id: str) -> str:
    if sender_id.startswith("anon-"):
        return sender_id
    return "anon-" + hashlib.sha256(sender_id.encode("utf-8")).hexdigest()[:16]


def anonymise_event(data: Dict[str, Any]) -> Dict[str, Any]:
    kind = data.get("event")
    data = dict(data)
    if kind == "user":
        pd = data.get("parse_data") or {}
        data["text"] = ANON_TEXT
        data["parse_data"] = {"intent": pd.get("intent") or {}, "entities": [], "text": ANON_TEXT}
        data["metadata"] = {}
        if "input_channel" in data:
            data["input_channel"] = data["input_channel"]
    elif kind == "bot":
        data["text"] = _mask(data.get("text"))
        data["data"] = _mask(data.get("data"))
        data["metadata"] = _mask(data.get("metadata"))
    elif kind == "slot":
        data["value"] = _mask(data.get("value"))
    else:
        for key in ("metadata", "value"):
            if key in data:
                data[key] = _mask(data[key])
    if data.get("sender_id"):
        data["sender_id"] = anon_id(str(data["sender_id"]))
    return data


def _chunks(items: List[str], n: int = BATCH) -> Iterable[List[str]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def old_conversations(conn: Any, events: sa.Table, cutoff: float) -> List[str]:
    q = (sa.select(events.c.sender_id).group_by(events.c.sender_id)
         .having(sa.func.max(events.c.timestamp) < cutoff))
    return [r[0] for r in conn.execute(q)]


def run(db_url: Optional[str] = None, days: float = 180, anonymise: bool = False,
        dry_run: bool = False, now: Optional[float] = None) -> Dict[str, Any]:
    from bot.db import db_url as resolve, engine_for

    url = resolve(db_url)
    engine = engine_for(url)
    cutoff = (time.time() if now is None else now) - days * 86400
    meta = sa.MetaData()
    meta.reflect(bind=engine)
    report: Dict[str, Any] = {"mode": "anonymise" if anonymise else "delete", "days": days,
                              "cutoff": cutoff, "dry_run": dry_run, "conversations": 0, "rows": {}}
    events = meta.tables.get("events")
    if events is None:
        report["note"] = "no events table"
        return report
    with engine.begin() as conn:
        senders = [s for s in old_conversations(conn, events, cutoff)
                   if not (anonymise and str(s).startswith("anon-"))]
        report["conversations"] = len(senders)
        # the console's shared conversation index is derived from `events`: emptied below and
        # rebuilt by the console (it holds texts that anonymising must not leave behind)
        with_sender = [t for t in meta.sorted_tables if "sender_id" in t.c and t.name != INDEX_TABLE]
        for table in with_sender:
            n = 0
            for chunk in _chunks(senders):
                cond = table.c.sender_id.in_(chunk)
                if dry_run:
                    n += conn.execute(sa.select(sa.func.count()).select_from(table).where(cond)).scalar() or 0
                elif not anonymise:
                    n += conn.execute(sa.delete(table).where(cond)).rowcount or 0
                else:
                    n += _anonymise_rows(conn, table, cond)
            report["rows"][table.name] = n
        if senders and not dry_run and INDEX_TABLE in meta.tables:
            from bot.console.conversations import reset_index

            reset_index(conn)
            report["console_index"] = "reset"
        users = meta.tables.get("wechat_users")
        if users is not None and "last_message_at" in users.c:
            cond = users.c.last_message_at < cutoff
            if dry_run:
                n = conn.execute(sa.select(sa.func.count()).select_from(users).where(cond)).scalar() or 0
            else:
                n = conn.execute(sa.delete(users).where(cond)).rowcount or 0
            report["rows"]["wechat_users"] = n
    return report


def _anonymise_rows(conn: Any, table: sa.Table, cond: Any) -> int:
    pk = list(table.primary_key.columns)
    rows = conn.execute(sa.select(table).where(cond)).mappings().all()
    for row in rows:
        values: Dict[str, Any] = {"sender_id": anon_id(str(row["sender_id"]))}
        if table.name == "events" and "data" in table.c and row.get("data"):
            try:
                values["data"] = json.dumps(anonymise_event(json.loads(row["data"])))
            except ValueError:
                values["data"] = json.dumps({"event": row.get("type_name"), "timestamp": row.get("timestamp")})
        for col in ("phone", "callback_time"):
            if col in table.c:
                values[col] = None
        for col in ("summary", "text", "note", "body"):
            if col in table.c and row.get(col):
                values[col] = ANON_TEXT if table.name != "events" else row[col]
        where = sa.and_(*[c == row[c.name] for c in pk]) if pk else cond
        conn.execute(sa.update(table).where(where).values(**values))
    return len(rows)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bot.ops.retention", description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=float, default=180, help="keep conversations active in the last N days (180)")
    p.add_argument("--anonymise", "--anonymize", action="store_true",
                   help="anonymise old conversations instead of deleting them")
    p.add_argument("--dry-run", action="store_true", help="only count what would change")
    p.add_argument("--db-url", default=None, help="SQLAlchemy URL (default ZWZX_DB_URL / build/tracker.db)")
    args = p.parse_args(argv)
    if args.days < 1:
        p.error("--days must be at least 1")
    report = run(args.db_url, args.days, args.anonymise, args.dry_run)
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
