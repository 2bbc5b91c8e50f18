"""Tags, notes and reviewed flags that staff put on conversations and messages."""
from __future__ import annotations

import re
import time
from typing import Any, Dict, List, Optional

import sqlalchemy as sa

from bot.console.db import Database, notes, reviewed, tags
from bot.console.filters import Annotations

PRESET_TAGS = ("答错", "知识库缺失", "需转人工", "敏感")
MAX_NOTE_CHARS = 2000
_TAG_OK = re.compile(r"^[^\s<>\"'&]{1,32}$")


class AnnotationError(ValueError):
    """Bad tag or note; message in Chinese."""


def clean_tag(tag: str) -> str:
    tag = (tag or "").strip()
    if not _TAG_OK.match(tag):
        raise AnnotationError("标签需为1到32个字符，不能包含空格或 < > \" ' & 等符号")
    return tag


def add_tag(db: Database, sender_id: str, tag: str, by: str, event_id: Optional[int] = None) -> bool:
    """True when added, False when the conversation/message already had it."""
    tag = clean_tag(tag)
    cond = [tags.c.sender_id == sender_id, tags.c.tag == tag,
            tags.c.event_id.is_(None) if event_id is None else tags.c.event_id == event_id]
    try:
        with db.begin() as conn:
            # (NULL event ids are distinct to a UNIQUE constraint, so check conversation tags here)
            if conn.execute(sa.select(tags.c.id).where(*cond)).first():
                return False
            conn.execute(tags.insert().values(sender_id=sender_id, event_id=event_id, tag=tag,
                                              created_by=by, created_at=time.time()))
    except sa.exc.IntegrityError:
        return False
    return True


def remove_tag(db: Database, sender_id: str, tag: str, event_id: Optional[int] = None) -> bool:
    cond = [tags.c.sender_id == sender_id, tags.c.tag == tag]
    cond.append(tags.c.event_id.is_(None) if event_id is None else tags.c.event_id == event_id)
    with db.begin() as conn:
        return conn.execute(tags.delete().where(*cond)).rowcount > 0


def tags_of(db: Database, sender_id: str) -> List[Dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(sa.select(tags).where(tags.c.sender_id == sender_id).order_by(tags.c.id)).all()
    return [dict(r._mapping) for r in rows]


def all_tag_names(db: Database) -> List[str]:
    with db.connect() as conn:
        used = [r[0] for r in conn.execute(sa.select(tags.c.tag).distinct())]
    return list(PRESET_TAGS) + sorted(t for t in set(used) if t not in PRESET_TAGS)


def add_note(db: Database, sender_id: str, body: str, by: str) -> None:
    body = (body or "").strip()
    if not body:
        raise AnnotationError("备注不能为空")
    if len(body) > MAX_NOTE_CHARS:
        raise AnnotationError(f"备注不能超过 {MAX_NOTE_CHARS} 个字")
    with db.begin() as conn:
        conn.execute(notes.insert().values(sender_id=sender_id, body=body, author=by, created_at=time.time()))


def notes_of(db: Database, sender_id: str) -> List[Dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(sa.select(notes).where(notes.c.sender_id == sender_id).order_by(notes.c.id)).all()
    return [dict(r._mapping) for r in rows]


def set_reviewed(db: Database, sender_id: str, by: str, value: bool) -> None:
    with db.begin() as conn:
        conn.execute(reviewed.delete().where(reviewed.c.sender_id == sender_id))
        if value:
            conn.execute(reviewed.insert().values(sender_id=sender_id, reviewed_by=by, reviewed_at=time.time()))


def reviewed_of(db: Database, sender_id: str) -> Optional[Dict[str, Any]]:
    with db.connect() as conn:
        row = conn.execute(sa.select(reviewed).where(reviewed.c.sender_id == sender_id)).first()
    return dict(row._mapping) if row else None


def load_annotations(db: Database) -> Annotations:
    by_sender: Dict[str, set] = {}
    with db.connect() as conn:
        for sender_id, tag in conn.execute(sa.select(tags.c.sender_id, tags.c.tag)):
            by_sender.setdefault(sender_id, set()).add(tag)
        done = {r[0] for r in conn.execute(sa.select(reviewed.c.sender_id))}
    return Annotations(tags=by_sender, reviewed=done)
