"""Console accounts, login sessions, lock-out, CSRF tokens and the audit log.

* Passwords: argon2id (argon2-cffi), never stored in clear.
* Sessions: a random 256-bit cookie value; only its SHA-256 is stored. Idle timeout and
  absolute lifetime; logout deletes the row.
* Lock-out: `max_failures` wrong passwords within `failure_window` seconds lock the account
  for `lockout_seconds` — a right password is refused while locked.
* CSRF: one random token per session (synchronizer token), required on every POST.
* Audit: every staff action is one row of console_audit.

Accounts are the same people as the handoff `staff` table (bot/handoff/store.py): creating a
console user also creates (or links) the staff row of the same name and role, and the console
keeps that staff token server-side to call the handoff API for the person.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bot.console.db import Database, audit, sessions, users
from bot.handoff.store import ROLES, StoreError, get_store, hash_token, staff as staff_table

MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()  # argon2id, library defaults (time_cost=3, memory 64 MiB)
_DUMMY_HASH = _hasher.hash("zwzx-console-dummy-password")


class AuthError(Exception):
    """Refused; message in Chinese for staff."""


@dataclass
class AuthConfig:
    idle_timeout: float = 30 * 60          # seconds without a request before a session ends
    absolute_timeout: float = 12 * 3600    # longest session, however active
    max_failures: int = 5
    failure_window: float = 15 * 60
    lockout_seconds: float = 15 * 60


@dataclass
class User:
    id: int
    name: str
    role: str
    staff_token: Optional[str] = None

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"

    @property
    def role_label(self) -> str:
        return "班长" if self.is_supervisor else "坐席"


@dataclass
class Session:
    user: User
    csrf_token: str
    created_at: float
    last_seen: float


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def check_password_strength(password: str, name: str = "") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"密码至少需要 {MIN_PASSWORD_LENGTH} 个字符")
    if name and password.lower() == name.lower():
        raise AuthError("密码不能与用户名相同")


def _user(row) -> User:
    return User(id=row.id, name=row.name, role=row.role, staff_token=row.staff_token)


# ------------------------------------------------------------------ accounts
def create_user(db: Database, name: str, role: str, password: str,
                staff_token: Optional[str] = None, now: Optional[float] = None) -> Tuple[User, str]:
    """Create a console account and make sure the same person has a handoff staff account.

    Returns (user, how the staff account was linked: "created" | "linked" | "rotated").
    If a staff row of that name exists, `staff_token` (their current token) links it;
    without a token the staff token is rotated (the old one stops working)."""
    name = (name or "").strip()
    if not name or len(name) > 64:
        raise AuthError("用户名不能为空，且不超过64个字符")
    if role not in ROLES:
        raise AuthError(f"角色必须是 {' 或 '.join(ROLES)}")
    check_password_strength(password, name)
    with db.connect() as conn:
        if conn.execute(sa.select(users.c.id).where(users.c.name == name)).first():
            raise AuthError(f"控制台账号“{name}”已存在")
    handoff = get_store(db.url)
    existing = {s["name"]: s for s in handoff.list_staff()}.get(name)
    try:
        if existing is None:
            token, how = handoff.add_staff(name, role), "created"
        else:
            if existing["role"] != role:
                raise AuthError(f"人工转接系统中的“{name}”角色是 {existing['role']}，与 {role} 不一致")
            if staff_token:
                me = handoff.authenticate(staff_token)
                if not me or me["name"] != name:
                    raise AuthError(f"提供的令牌不属于人工转接系统中的“{name}”")
                token, how = staff_token, "linked"
            else:
                token, how = handoff.rotate_token(name), "rotated"
    except StoreError as e:
        raise AuthError(str(e)) from None
    now = now if now is not None else time.time()
    with db.begin() as conn:
        result = conn.execute(users.insert().values(
            name=name, role=role, password_hash=_hasher.hash(password), staff_token=token,
            active=True, failed_logins=0, created_at=now))
        user_id = result.inserted_primary_key[0]
    return User(user_id, name, role, token), how


def set_password(db: Database, name: str, password: str) -> None:
    check_password_strength(password, name)
    with db.begin() as conn:
        result = conn.execute(users.update().where(users.c.name == name).values(
            password_hash=_hasher.hash(password), failed_logins=0, first_failed_at=None, locked_until=None))
        if result.rowcount != 1:
            raise AuthError(f"没有名为“{name}”的控制台账号")
        conn.execute(sessions.delete().where(sessions.c.user_id.in_(
            sa.select(users.c.id).where(users.c.name == name))))


def set_active(db: Database, name: str, active: bool) -> None:
    values: Dict[str, Any] = dict(active=active, failed_logins=0, locked_until=None)
    if active:  # the staff account was disabled with the console account: reactivate it
        try:
            values["staff_token"] = get_store(db.url).rotate_token(name)
        except StoreError:
            values["staff_token"] = get_store(db.url).add_staff(name, _role_of(db, name))
    with db.begin() as conn:
        result = conn.execute(users.update().where(users.c.name == name).values(**values))
        if result.rowcount != 1:
            raise AuthError(f"没有名为“{name}”的控制台账号")
        if not active:
            conn.execute(sessions.delete().where(sessions.c.user_id.in_(
                sa.select(users.c.id).where(users.c.name == name))))
    if not active:
        try:
            get_store(db.url).deactivate_staff(name)
        except StoreError:
            pass


def _role_of(db: Database, name: str) -> str:
    with db.connect() as conn:
        row = conn.execute(sa.select(users.c.role).where(users.c.name == name)).first()
    if row is None:
        raise AuthError(f"没有名为“{name}”的控制台账号")
    return row.role


def list_users(db: Database) -> List[Dict[str, Any]]:
    with db.connect() as conn:
        return [{"name": r.name, "role": r.role, "active": bool(r.active), "created_at": r.created_at,
                 "last_login_at": r.last_login_at, "locked_until": r.locked_until}
                for r in conn.execute(sa.select(users).order_by(users.c.id))]


def _staff_active(db: Database, token: Optional[str]) -> bool:
    """The linked handoff staff account still exists and is active (disabling a person in
    `python -m bot.handoff disable-staff` also closes their console)."""
    if not token:
        return False
    get_store(db.url).ensure_tables()
    with db.engine.connect() as conn:
        row = conn.execute(sa.select(staff_table.c.active).where(
            staff_table.c.token_hash == hash_token(token))).first()
    return bool(row and row.active)


# --------------------------------------------------------------------- login
def authenticate(db: Database, cfg: AuthConfig, name: str, password: str,
                 now: Optional[float] = None) -> User:
    """The user, or AuthError with the message to show. Failures count towards lock-out."""
    now = now if now is not None else time.time()
    name = (name or "").strip()
    with db.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.name == name)).first() if name else None
    generic = "用户名或密码错误"
    if row is None:
        try:  # same work as for a real account: no user enumeration by timing
            _hasher.verify(_DUMMY_HASH, password or "-")
        except VerificationError:
            pass
        raise AuthError(generic)
    if row.locked_until and row.locked_until > now:
        minutes = max(1, int((row.locked_until - now + 59) // 60))
        raise AuthError(f"登录失败次数过多，账号已锁定，请 {minutes} 分钟后再试或联系班长")
    try:
        ok = _hasher.verify(row.password_hash, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok:
        window_start = row.first_failed_at if (row.first_failed_at and now - row.first_failed_at
                                               <= cfg.failure_window) else now
        count = (row.failed_logins or 0) + 1 if window_start == row.first_failed_at else 1
        values: Dict[str, Any] = dict(failed_logins=count, first_failed_at=window_start)
        locked = count >= cfg.max_failures
        if locked:
            values.update(locked_until=now + cfg.lockout_seconds, failed_logins=0, first_failed_at=None)
        with db.begin() as conn:
            conn.execute(users.update().where(users.c.id == row.id).values(**values))
        if locked:
            raise AuthError("登录失败次数过多，账号已锁定 {} 分钟".format(int(cfg.lockout_seconds // 60) or 1))
        raise AuthError(generic)
    if not row.active or not _staff_active(db, row.staff_token):
        raise AuthError("该账号已停用，请联系班长")
    values = dict(failed_logins=0, first_failed_at=None, locked_until=None, last_login_at=now)
    if _hasher.check_needs_rehash(row.password_hash):
        values["password_hash"] = _hasher.hash(password)
    with db.begin() as conn:
        conn.execute(users.update().where(users.c.id == row.id).values(**values))
    return _user(row)


def start_session(db: Database, user: User, ip: str = "", user_agent: str = "",
                  now: Optional[float] = None) -> Tuple[str, str]:
    """(cookie value, csrf token) of a new session."""
    now = now if now is not None else time.time()
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    with db.begin() as conn:
        conn.execute(sessions.insert().values(id_hash=sha256(cookie), user_id=user.id, csrf_token=csrf,
                                              created_at=now, last_seen=now, ip=(ip or "")[:64],
                                              user_agent=(user_agent or "")[:255]))
    return cookie, csrf


def load_session(db: Database, cfg: AuthConfig, cookie: Optional[str],
                 now: Optional[float] = None) -> Optional[Session]:
    """The live session for a cookie (touching last_seen), or None (also for expired ones,
    which are deleted)."""
    if not cookie or len(cookie) > 200:
        return None
    now = now if now is not None else time.time()
    key = sha256(cookie)
    with db.connect() as conn:
        row = conn.execute(sa.select(sessions, users.c.name, users.c.role, users.c.active, users.c.staff_token)
                           .join(users, users.c.id == sessions.c.user_id)
                           .where(sessions.c.id_hash == key)).first()
    if row is None:
        return None
    if (not row.active or now - row.last_seen > cfg.idle_timeout
            or now - row.created_at > cfg.absolute_timeout):
        end_session(db, cookie)
        return None
    if now - row.last_seen > 15:  # don't write on every request
        with db.begin() as conn:
            conn.execute(sessions.update().where(sessions.c.id_hash == key).values(last_seen=now))
    user = User(row.user_id, row.name, row.role, row.staff_token)
    return Session(user=user, csrf_token=row.csrf_token, created_at=row.created_at, last_seen=now)


def end_session(db: Database, cookie: Optional[str]) -> None:
    if not cookie:
        return
    with db.begin() as conn:
        conn.execute(sessions.delete().where(sessions.c.id_hash == sha256(cookie)))


def purge_sessions(db: Database, cfg: AuthConfig, now: Optional[float] = None) -> int:
    now = now if now is not None else time.time()
    with db.begin() as conn:
        result = conn.execute(sessions.delete().where(sa.or_(
            sessions.c.last_seen < now - cfg.idle_timeout,
            sessions.c.created_at < now - cfg.absolute_timeout)))
        return result.rowcount or 0


def csrf_ok(expected: Optional[str], given: Optional[str]) -> bool:
    return bool(expected and given) and hmac.compare_digest(str(expected), str(given))


# --------------------------------------------------------------------- audit
def log(db: Database, actor: str, action: str, target: Optional[str] = None,
        detail: Optional[Dict[str, Any]] = None, ip: str = "", now: Optional[float] = None) -> None:
    with db.begin() as conn:
        conn.execute(audit.insert().values(
            at=now if now is not None else time.time(), actor=actor or "-", action=action,
            target=(target or "")[:255] or None,
            detail=json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else None,
            ip=(ip or "")[:64]))


def audit_entries(db: Database, limit: int = 200, offset: int = 0, actor: str = "",
                  action: str = "") -> Tuple[List[Dict[str, Any]], int]:
    query = sa.select(audit)
    count = sa.select(sa.func.count()).select_from(audit)
    if actor:
        query, count = query.where(audit.c.actor == actor), count.where(audit.c.actor == actor)
    if action:
        query, count = query.where(audit.c.action == action), count.where(audit.c.action == action)
    with db.connect() as conn:
        rows = conn.execute(query.order_by(audit.c.id.desc()).limit(limit).offset(offset)).all()
        total = int(conn.execute(count).scalar() or 0)
    return [dict(r._mapping) for r in rows], total
