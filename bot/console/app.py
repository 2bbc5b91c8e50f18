"""The staff console: a Sanic app with server-rendered pages (Jinja2, autoescaped) and a small
JSON API for the live handoff queue.

Every route but /login and /static needs a session; every POST needs the session's CSRF
token (form field `csrf_token` or header `X-CSRF-Token`); supervisor-only routes answer 403
to agents. Every staff action is written to the audit log.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sanic import Sanic, response
from sanic.exceptions import NotFound, MethodNotSupported, SanicException
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.console import annotations as notes_mod
from bot.console import auth, dashboard, exports, gaps, queue
from bot.console.conversations import (CARD_KINDS, KIND_LABELS, fmt_ts, get_index, load_transcript,
                                       local_tz)
from bot.console.db import Database, get_db
from bot.console.filters import Filter, FilterError, paginate
from bot.ops import limits

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web" / "console"
SESSION_COOKIE = "zwzx_console"
LOGIN_CSRF_COOKIE = "zwzx_console_login"
PER_PAGE = 25
REASON_LABELS = {"requested": "市民要求", "complaint": "投诉", "repeated_fallback": "多次未能回答",
                 "negative_feedback": "多次差评"}
STATUS_LABELS = {"waiting": "等待中", "active": "处理中", "callback": "待回电", "closed": "已关闭",
                 "cancelled": "已取消"}
PUBLIC_PATHS = ("/login", "/static/", "/favicon.ico", "/healthz", "/readyz")

_app_counter = itertools.count(1)


@dataclass
class ConsoleConfig:
    db_url: Optional[str] = None
    rasa_url: Optional[str] = None
    kb_path: Optional[str] = None
    secure_cookies: bool = False       # force the Secure flag (e.g. TLS terminated elsewhere)
    auth: auth.AuthConfig = field(default_factory=auth.AuthConfig)

    @classmethod
    def from_env(cls) -> "ConsoleConfig":
        env = os.environ
        a = auth.AuthConfig()
        if env.get("ZWZX_CONSOLE_IDLE_MINUTES"):
            a.idle_timeout = float(env["ZWZX_CONSOLE_IDLE_MINUTES"]) * 60
        if env.get("ZWZX_CONSOLE_MAX_HOURS"):
            a.absolute_timeout = float(env["ZWZX_CONSOLE_MAX_HOURS"]) * 3600
        if env.get("ZWZX_CONSOLE_MAX_FAILURES"):
            a.max_failures = int(env["ZWZX_CONSOLE_MAX_FAILURES"])
        if env.get("ZWZX_CONSOLE_LOCKOUT_MINUTES"):
            a.lockout_seconds = float(env["ZWZX_CONSOLE_LOCKOUT_MINUTES"]) * 60
        return cls(db_url=env.get("ZWZX_DB_URL"), rasa_url=env.get("ZWZX_RASA_URL"),
                   kb_path=env.get("ZWZX_KB_PATH"),
                   secure_cookies=env.get("ZWZX_CONSOLE_SECURE_COOKIE", "") in ("1", "true", "yes"),
                   auth=a)


# ------------------------------------------------------------------ knowledge base
class KbItems:
    """Item texts from build/kb.json for the citation links (re-read when the file changes)."""

    def __init__(self, path: Optional[str]):
        self.path = Path(path) if path else ROOT / "build" / "kb.json"
        self._mtime = None
        self._items: Dict[str, Dict[str, Any]] = {}

    def get(self, doc: str, item: str) -> Optional[Dict[str, Any]]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            return None
        if mtime != self._mtime:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            items = {}
            for d in data.get("documents") or []:
                for it in d.get("items") or []:
                    items[f"{d.get('doc_id')}#{it.get('number')}"] = dict(
                        it, doc_id=d.get("doc_id"), doc_title=d.get("title"), doc_number=d.get("doc_number"))
            self._items, self._mtime = items, mtime
        return self._items.get(f"{doc}#{item}")


# ----------------------------------------------------------------------- helpers
def _today() -> dt.date:
    from bot.handoff.config import system_clock
    return system_clock().astimezone(local_tz()).date()


def _safe_next(value: Optional[str]) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value \
            and not value.startswith("/login"):
        return value
    return "/conversations"


def _wants_json(request: Request) -> bool:
    return request.path.startswith("/api/") or "application/json" in (request.headers.get("accept") or "") \
        or request.headers.get("x-requested-with") == "fetch"


def _ip(request: Request) -> str:
    return request.remote_addr or request.ip or ""


def _form(request: Request, name: str, default: str = "") -> str:
    value = request.form.get(name) if request.form else None
    return value if isinstance(value, str) else default


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}秒"
    if seconds < 3600:
        return f"{seconds // 60}分{seconds % 60}秒"
    if seconds < 86400:
        return f"{seconds // 3600}小时{seconds % 3600 // 60}分"
    return f"{seconds // 86400}天{seconds % 86400 // 3600}小时"


def create_app(config: Optional[ConsoleConfig] = None) -> Sanic:
    cfg = config or ConsoleConfig.from_env()
    app = Sanic(f"zwzx_console_{next(_app_counter)}")
    app.config.REQUEST_MAX_SIZE = 2 * 1024 * 1024
    app.config.FALLBACK_ERROR_FORMAT = "json"
    # 413/408 as Chinese JSON, /login bodies at most 16 KB, bodies at the minimum pace (16 KB/s after
    # 0.8 s, no 2 s pause: a 20 MB upload gets time in proportion to its size; bot/ops/limits.py)
    from bot.console import kb_admin
    limits.install_edge(app, [limits.Rule(kb_admin.UPLOAD_PATH, kb_admin.UPLOAD_MAX_BODY, ("POST",))]
                        + limits.console_rules(), start_monitor=False, default_max=limits.CONSOLE_MAX_BODY)
    if os.environ.get("ZWZX_CONSOLE_PROXIES"):
        app.config.PROXIES_COUNT = int(os.environ["ZWZX_CONSOLE_PROXIES"])
    db: Database = get_db(cfg.db_url)
    db.ensure_tables()
    index = get_index(db)
    kb = KbItems(cfg.kb_path)
    env = Environment(loader=FileSystemLoader(str(WEB / "templates")),
                      autoescape=select_autoescape(["html", "xml"], default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["ts"] = fmt_ts
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.globals.update(KIND_LABELS=KIND_LABELS, CARD_KINDS=CARD_KINDS, REASON_LABELS=REASON_LABELS,
                       STATUS_LABELS=STATUS_LABELS, PRESET_TAGS=notes_mod.PRESET_TAGS)
    app.ctx.console_db = db
    app.ctx.console_config = cfg
    run = asyncio.to_thread

    def render(request: Request, template: str, status: int = 200, **context) -> HTTPResponse:
        sess = getattr(request.ctx, "session", None)
        context.setdefault("me", sess.user if sess else None)
        context.setdefault("csrf_token", sess.csrf_token if sess else "")
        context.setdefault("path", request.path)
        html = env.get_template(template).render(**context)
        return response.html(html, status=status)

    def error_page(request: Request, status: int, message: str) -> HTTPResponse:
        if _wants_json(request):
            return response.json({"error": message}, status=status)
        return render(request, "error.html", status=status, status_code=status, message=message)

    def audit(request: Request, action: str, target: Optional[str] = None,
              detail: Optional[Dict[str, Any]] = None, actor: Optional[str] = None):
        sess = getattr(request.ctx, "session", None)
        name = actor or (sess.user.name if sess else "-")
        return run(auth.log, db, name, action, target, detail, _ip(request))

    def set_cookie(request: Request, resp: HTTPResponse, name: str, value: str, path: str = "/") -> None:
        resp.cookies[name] = value
        resp.cookies[name]["httponly"] = True
        resp.cookies[name]["samesite"] = "Strict"
        resp.cookies[name]["path"] = path
        if cfg.secure_cookies or request.scheme == "https":
            resp.cookies[name]["secure"] = True

    def clear_cookie(request: Request, resp: HTTPResponse, name: str, path: str = "/") -> None:
        set_cookie(request, resp, name, "", path=path)
        resp.cookies[name]["max-age"] = 0

    # ---------------------------------------------------------------- middleware
    @app.middleware("request")
    async def authenticate(request: Request):
        request.ctx.session = None
        path = request.path
        if any(path == p or (p.endswith("/") and path.startswith(p)) for p in PUBLIC_PATHS):
            return None
        origin = request.headers.get("origin")
        if request.method not in ("GET", "HEAD", "OPTIONS") and origin and origin != "null":
            host = request.headers.get("host") or ""
            if re.sub(r"^https?://", "", origin) != host:
                return error_page(request, 403, "请求来源不符（跨站请求被拒绝）")
        sess = await run(auth.load_session, db, cfg.auth, request.cookies.get(SESSION_COOKIE))
        if sess is None:
            if _wants_json(request) or request.method != "GET":
                return response.json({"error": "未登录或登录已过期，请重新登录"}, status=401)
            target = request.path + (("?" + request.query_string) if request.query_string else "")
            return response.redirect("/login?" + urlencode({"next": target}))
        request.ctx.session = sess
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            given = request.headers.get("x-csrf-token")
            if not given and request.form:
                given = request.form.get("csrf_token")
            if not auth.csrf_ok(sess.csrf_token, given):
                await audit(request, "csrf_rejected", request.path)
                return error_page(request, 403, "安全校验失败（CSRF 令牌缺失或无效），请刷新页面后重试")
        return None

    @app.middleware("response")
    async def security_headers(request: Request, resp: HTTPResponse):
        resp.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "same-origin"
        if not request.path.startswith("/static/"):
            resp.headers["Cache-Control"] = "no-store"

    def supervisor_only(handler: Callable):
        async def wrapped(request: Request, *args, **kwargs):
            sess = request.ctx.session
            if not sess.user.is_supervisor:
                await audit(request, "forbidden", request.path)
                return error_page(request, 403, "此功能仅限班长（supervisor）使用")
            return await handler(request, *args, **kwargs)
        wrapped.__name__ = handler.__name__
        return wrapped

    @app.exception(NotFound)
    async def not_found(request: Request, exc):
        return error_page(request, 404, "页面不存在")

    @app.exception(MethodNotSupported)
    async def bad_method(request: Request, exc):
        return error_page(request, 405, "不支持该请求方法")

    @app.exception(Exception)
    async def server_error(request: Request, exc):
        if isinstance(exc, SanicException) and 400 <= getattr(exc, "status_code", 500) < 500:
            return error_page(request, exc.status_code, "请求无效")
        logger.exception("console error on %s", request.path)
        return error_page(request, 500, "服务器内部错误，请稍后重试")

    app.static("/static", str(WEB / "static"), name="console_static")

    @app.listener("after_server_start")
    async def warm_up(app_, loop):
        # build the conversation index in the background so the first page is fast
        loop.run_in_executor(None, index.refresh)

    # -------------------------------------------------------------------- login
    @app.get("/healthz")
    async def healthz(request: Request):
        return response.json({"status": "ok"})

    @app.get("/readyz")
    async def readyz(request: Request):
        """200 when the database (sessions, the shared conversation index) answers."""
        def ping():
            import sqlalchemy as sa
            with db.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        try:
            await run(ping)
        except Exception as e:  # noqa: BLE001
            return response.json({"ready": False, "error": type(e).__name__}, status=503)
        return response.json({"ready": True})

    @app.get("/login")
    async def login_page(request: Request):
        token = secrets.token_urlsafe(24)
        resp = render(request, "login.html", login_csrf=token, next=_safe_next(request.args.get("next")),
                      error=None, name="")
        set_cookie(request, resp, LOGIN_CSRF_COOKIE, token, path="/login")
        return resp

    @app.post("/login")
    async def login(request: Request):
        given = _form(request, "csrf_token")
        if not auth.csrf_ok(request.cookies.get(LOGIN_CSRF_COOKIE), given):
            await audit(request, "csrf_rejected", "/login", actor="-")
            return error_page(request, 403, "安全校验失败（CSRF 令牌缺失或无效），请刷新登录页后重试")
        name = _form(request, "name").strip()[:64]
        password = _form(request, "password")[:1024]
        nxt = _safe_next(_form(request, "next"))
        try:
            user = await run(auth.authenticate, db, cfg.auth, name, password)
        except auth.AuthError as e:
            await audit(request, "login_failed", name or "-", {"reason": str(e)}, actor=name or "-")
            token = secrets.token_urlsafe(24)
            resp = render(request, "login.html", status=401, login_csrf=token, next=nxt, error=str(e), name=name)
            set_cookie(request, resp, LOGIN_CSRF_COOKIE, token, path="/login")
            return resp
        cookie, _csrf = await run(auth.start_session, db, user, _ip(request),
                                  request.headers.get("user-agent", ""))
        await audit(request, "login", user.name, actor=user.name)
        resp = response.redirect(nxt)
        set_cookie(request, resp, SESSION_COOKIE, cookie)
        clear_cookie(request, resp, LOGIN_CSRF_COOKIE, path="/login")
        return resp

    @app.post("/logout")
    async def logout(request: Request):
        await run(auth.end_session, db, request.cookies.get(SESSION_COOKIE))
        await audit(request, "logout")
        resp = response.redirect("/login")
        clear_cookie(request, resp, SESSION_COOKIE)
        return resp

    @app.get("/")
    async def home(request: Request):
        return response.redirect("/conversations")

    kb_admin.register(app, render, error_page, audit, supervisor_only)  # 知识库 page (issue 13)

    # ------------------------------------------------------------ conversations
    async def filtered(request: Request, args) -> tuple:
        f = Filter.from_args(args)
        convs = await run(index.all)
        ann = await run(notes_mod.load_annotations, db)
        return f, f.apply(convs, ann), ann, convs

    def filter_options(convs) -> Dict[str, List]:
        channels, intents, depts, items = set(), set(), set(), {}
        for c in convs:
            channels |= c.channels
            intents |= c.intents
            depts |= c.departments
            items.update(c.items)
        return {"channels": sorted(channels), "intents": sorted(intents), "departments": sorted(depts),
                "cited": sorted(items.items(), key=lambda kv: (kv[0].split("#")[0], _num(kv[0])))}

    @app.get("/conversations")
    async def conversations(request: Request):
        try:
            f, matched, ann, convs = await filtered(request, request.args)
        except FilterError as e:
            return error_page(request, 400, str(e))
        try:
            page = int(request.args.get("page") or 1)
        except ValueError:
            page = 1
        rows, page, pages, total = paginate(matched, page, PER_PAGE)
        tag_names = await run(notes_mod.all_tag_names, db)
        return render(request, "conversations.html", f=f, rows=rows, page=page, pages=pages, total=total,
                      ann=ann, options=filter_options(convs), tag_names=tag_names,
                      low_threshold=f.low_confidence)

    @app.get("/api/conversations")
    async def api_conversations(request: Request):
        try:
            f, matched, ann, _ = await filtered(request, request.args)
        except FilterError as e:
            return response.json({"error": str(e)}, status=400)
        try:
            page = int(request.args.get("page") or 1)
        except ValueError:
            return response.json({"error": "页码必须是整数"}, status=400)
        rows, page, pages, total = paginate(matched, page, PER_PAGE)
        return response.json({"total": total, "page": page, "pages": pages, "conversations": [
            {"sender_id": c.sender_id, "started": fmt_ts(c.first_ts), "last": fmt_ts(c.last_ts),
             "first_question": c.first_question, "citizen_messages": c.n_citizen,
             "channels": sorted(c.channels), "kinds": sorted(c.kinds),
             "feedback": {"up": c.feedback_up, "down": c.feedback_down},
             "tags": sorted(ann.tags.get(c.sender_id, ())), "reviewed": c.sender_id in ann.reviewed}
            for c in rows]})

    @app.get("/conversation")
    async def conversation(request: Request):
        sid = request.args.get("sid") or ""
        conv = await run(index.get, sid) if sid else None
        if conv is None:
            return error_page(request, 404, "没有找到该会话")
        messages = await run(load_transcript, db, sid)
        tag_rows = await run(notes_mod.tags_of, db, sid)
        conv_tags = [t for t in tag_rows if t["event_id"] is None]
        msg_tags: Dict[int, List[Dict]] = {}
        for t in tag_rows:
            if t["event_id"] is not None:
                msg_tags.setdefault(t["event_id"], []).append(t)
        note_rows = await run(notes_mod.notes_of, db, sid)
        reviewed = await run(notes_mod.reviewed_of, db, sid)
        tag_names = await run(notes_mod.all_tag_names, db)
        from bot.handoff.store import get_store
        try:
            ticket_rows = await run(get_store(db.url).list_tickets, None, sid)
        except Exception:  # the ticket table may not exist yet
            ticket_rows = []
        await audit(request, "view_conversation", sid)
        return render(request, "conversation.html", conv=conv, sid=sid, messages=messages, conv_tags=conv_tags,
                      msg_tags=msg_tags, notes=note_rows, reviewed=reviewed, tag_names=tag_names,
                      tickets=ticket_rows, back=request.args.get("back") or "")

    def _redirect_back(sid: str, anchor: str = "") -> HTTPResponse:
        return response.redirect("/conversation?" + urlencode({"sid": sid}) + (f"#{anchor}" if anchor else ""))

    async def _known(sid: str) -> bool:
        return bool(sid) and (await run(index.get, sid)) is not None

    @app.post("/conversation/tag")
    async def tag(request: Request):
        sid = _form(request, "sid")
        if not await _known(sid):
            return error_page(request, 404, "没有找到该会话")
        raw_event = _form(request, "event_id")
        event_id = None
        if raw_event:
            if not raw_event.isdigit() or not await run(_event_in, db, sid, int(raw_event)):
                return error_page(request, 400, "消息编号无效（该会话中没有这条消息）")
            event_id = int(raw_event)
        tag_value = _form(request, "custom_tag").strip() or _form(request, "tag").strip()
        remove = _form(request, "remove") == "1"
        try:
            if remove:
                changed = await run(notes_mod.remove_tag, db, sid, tag_value, event_id)
            else:
                changed = await run(notes_mod.add_tag, db, sid, tag_value, request.ctx.session.user.name, event_id)
        except notes_mod.AnnotationError as e:
            return error_page(request, 400, str(e))
        await audit(request, "untag" if remove else "tag", sid,
                    {"tag": tag_value, "event_id": event_id, "changed": changed})
        if _wants_json(request):
            return response.json({"ok": True, "changed": changed})
        return _redirect_back(sid, f"m{event_id}" if event_id else "tags")

    @app.post("/conversation/note")
    async def note(request: Request):
        sid = _form(request, "sid")
        if not await _known(sid):
            return error_page(request, 404, "没有找到该会话")
        body = _form(request, "body")
        try:
            await run(notes_mod.add_note, db, sid, body, request.ctx.session.user.name)
        except notes_mod.AnnotationError as e:
            return error_page(request, 400, str(e))
        await audit(request, "note", sid, {"chars": len(body.strip())})
        return _redirect_back(sid, "notes")

    @app.post("/conversation/reviewed")
    async def mark_reviewed(request: Request):
        sid = _form(request, "sid")
        if not await _known(sid):
            return error_page(request, 404, "没有找到该会话")
        value = _form(request, "value") != "0"
        await run(notes_mod.set_reviewed, db, sid, request.ctx.session.user.name, value)
        await audit(request, "reviewed" if value else "unreviewed", sid)
        return _redirect_back(sid)

    @app.get("/kb/item")
    async def kb_item(request: Request):
        item = await run(kb.get, request.args.get("doc") or "", request.args.get("item") or "")
        if item is None:
            return error_page(request, 404, "知识库中没有该条目（可能知识库已更新）")
        return render(request, "kb_item.html", item=item)

    # ------------------------------------------------------------------- export
    @app.post("/export")
    async def export(request: Request):
        args = {k: v for k, v in (request.form or {}).items() if k != "csrf_token"}
        fmt = (_form(request, "format") or "csv").lower()
        if fmt not in ("csv", "jsonl"):
            return error_page(request, 400, "导出格式只能是 csv 或 jsonl")
        masked = _form(request, "unmasked") not in ("1", "on", "true")
        user = request.ctx.session.user
        try:
            f, matched, ann, _ = await filtered(request, args)
        except FilterError as e:
            return error_page(request, 400, str(e))
        if not masked and not user.is_supervisor:
            await audit(request, "export_unmasked_denied", None, {"filters": f.to_args(), "format": fmt})
            return error_page(request, 403, "只有班长（supervisor）可以导出未脱敏的数据")
        body = await run(exports.export, db, matched, ann, fmt, masked)
        await audit(request, "export" if masked else "export_unmasked", None,
                    {"filters": f.to_args(), "format": fmt, "masked": masked, "conversations": len(matched)})
        stamp = dt.datetime.now(local_tz()).strftime("%Y%m%d-%H%M%S")
        name = f"conversations-{stamp}{'' if masked else '-unmasked'}.{fmt}"
        ctype = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson; charset=utf-8"
        return response.raw(body.encode("utf-8"), content_type=ctype,
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})

    # --------------------------------------------------------------- dashboard
    def _range(request: Request, days: int = 30):
        today = _today()
        try:
            start = dt.date.fromisoformat(request.args.get("date_from")) if request.args.get("date_from") \
                else today - dt.timedelta(days=days - 1)
            end = dt.date.fromisoformat(request.args.get("date_to")) if request.args.get("date_to") else today
        except ValueError:
            raise FilterError("日期格式应为 YYYY-MM-DD") from None
        if start > end:
            raise FilterError("开始日期不能晚于结束日期")
        if (end - start).days > 366:
            raise FilterError("日期范围不能超过一年")
        return start, end

    @app.get("/dashboard")
    async def dashboard_page(request: Request):
        try:
            start, end = _range(request)
        except FilterError as e:
            return error_page(request, 400, str(e))
        convs = await run(index.all)
        tz = local_tz()
        t0 = dt.datetime.combine(start, dt.time.min, tzinfo=tz).timestamp()
        t1 = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz).timestamp()
        ratings = await run(dashboard.ticket_ratings, db, t0, t1)
        data = await run(dashboard.compute, convs, start, end, ratings)
        return render(request, "dashboard.html", data=data, date_from=start.isoformat(), date_to=end.isoformat())

    # -------------------------------------------------------------------- gaps
    @app.get("/gaps")
    @supervisor_only
    async def gaps_page(request: Request):
        try:
            start, end = _range(request)
            threshold = float(request.args.get("threshold") or 0.3)
            if not 0.05 <= threshold <= 1.0:
                raise ValueError
        except FilterError as e:
            return error_page(request, 400, str(e))
        except ValueError:
            return error_page(request, 400, "相似度阈值必须是 0.05 到 1 之间的数字")
        convs = await run(index.all)
        tz = local_tz()
        t0 = dt.datetime.combine(start, dt.time.min, tzinfo=tz).timestamp()
        t1 = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz).timestamp()
        turns = await run(gaps.gap_turns, convs, t0, t1)
        groups = await run(gaps.group_turns, turns, threshold)
        return render(request, "gaps.html", groups=groups[:100], n_groups=len(groups), n_turns=len(turns),
                      date_from=start.isoformat(), date_to=end.isoformat(), threshold=threshold)

    @app.post("/gaps/export")
    @supervisor_only
    async def gaps_export(request: Request):
        ids = request.form.getlist("turn") if request.form else []
        if not ids:
            return error_page(request, 400, "请至少选择一条消息")
        wanted = {int(i) for i in ids if str(i).isdigit()}
        convs = await run(index.all)
        texts = [t.text for c in convs for t in c.turns if t.event_id in wanted]
        try:
            body = gaps.nlu_yaml(_form(request, "intent"), texts, masked=True)
        except gaps.ExportError as e:
            return error_page(request, 400, str(e))
        await audit(request, "export_nlu", _form(request, "intent"), {"messages": len(texts)})
        return response.raw(body.encode("utf-8"), content_type="application/x-yaml; charset=utf-8",
                            headers={"Content-Disposition":
                                     f'attachment; filename="nlu-{_form(request, "intent")}.yml"'})

    # -------------------------------------------------------------------- audit
    @app.get("/audit")
    @supervisor_only
    async def audit_page(request: Request):
        try:
            page = max(1, int(request.args.get("page") or 1))
        except ValueError:
            page = 1
        actor = (request.args.get("actor") or "")[:64]
        action = (request.args.get("action") or "")[:64]
        rows, total = await run(auth.audit_entries, db, 100, (page - 1) * 100, actor, action)
        pages = max(1, (total + 99) // 100)
        return render(request, "audit.html", rows=rows, page=page, pages=pages, total=total,
                      actor=actor, action=action)

    # -------------------------------------------------------------------- queue
    @app.get("/queue")
    async def queue_page(request: Request):
        return render(request, "queue.html", rasa_url=cfg.rasa_url or queue.rasa_url())

    async def staff_call(request: Request, method: str, path: str, body=None):
        return await queue.call(method, path, request.ctx.session.user.staff_token, body,
                                base_url=cfg.rasa_url)

    @app.get("/api/queue")
    async def api_queue(request: Request):
        status, data = await staff_call(request, "GET", "/tickets?status=" + ",".join(queue.QUEUE_STATUSES))
        if status != 200:
            return response.json(data, status=status)
        now = time.time()
        out = []
        for t in data.get("tickets") or []:
            t = dict(t)
            t["age"] = _age(now - float(t.get("created_at") or now))
            t["created"] = fmt_ts(t.get("created_at"))
            t["status_label"] = STATUS_LABELS.get(t.get("status"), t.get("status"))
            t["reason_label"] = REASON_LABELS.get(t.get("reason"), t.get("reason"))
            t["mine"] = t.get("assignee") == request.ctx.session.user.name
            out.append(t)
        return response.json({"tickets": out, "now": now, "me": request.ctx.session.user.name,
                              "supervisor": request.ctx.session.user.is_supervisor})

    def _tid(raw: str) -> Optional[int]:
        return int(raw) if raw.isdigit() and int(raw) > 0 else None

    @app.get("/api/queue/<ticket_id>/transcript")
    async def api_queue_transcript(request: Request, ticket_id: str):
        tid = _tid(ticket_id)
        if tid is None:
            return response.json({"error": f"工单 {ticket_id} 不存在"}, status=404)
        status, data = await staff_call(request, "GET", f"/tickets/{tid}/transcript")
        if status == 200 and request.args.get("open") == "1":
            await audit(request, "queue_read", f"ticket:{tid}")
        if status == 200:
            for e in data.get("events") or []:
                e["time_text"] = fmt_ts(e.get("time"))
        return response.json(data, status=status)

    @app.post("/api/queue/<ticket_id>/<op>")
    async def api_queue_action(request: Request, ticket_id: str, op: str):
        tid = _tid(ticket_id)
        if tid is None:
            return response.json({"error": f"工单 {ticket_id} 不存在"}, status=404)
        if op not in ("accept", "messages", "close"):
            return response.json({"error": "不支持的操作"}, status=404)
        body = None
        if op == "messages":
            try:
                payload = request.json
            except SanicException:
                payload = None
            if not isinstance(payload, dict):
                return response.json({"error": "请求体必须是 JSON 对象，例如 {\"text\": \"您好\"}"}, status=400)
            body = {"text": payload.get("text")}
        status, data = await staff_call(request, "POST", f"/tickets/{tid}/{op}", body)
        detail = {"status": status}
        if op == "messages" and isinstance(body.get("text"), str):
            detail["chars"] = len(body["text"])
        if status >= 400:
            detail["error"] = data.get("error")
        await audit(request, f"queue_{op}", f"ticket:{tid}", detail)
        return response.json(data, status=status)

    return app


def _event_in(db: Database, sender_id: str, event_id: int) -> bool:
    """The event exists and belongs to this conversation."""
    import sqlalchemy as sa
    from bot.console.db import events

    with db.engine.connect() as conn:
        return conn.execute(sa.select(events.c.id).where(events.c.id == event_id,
                                                         events.c.sender_id == sender_id)).first() is not None


def _num(key: str) -> int:
    try:
        return int(key.split("#", 1)[1])
    except (IndexError, ValueError):
        return 0


def serve(host: str = "127.0.0.1", port: int = 5080, config: Optional[ConsoleConfig] = None) -> None:
    app = create_app(config)
    logger.info("staff console on http://%s:%s/", host, port)
    app.run(host=host, port=port, workers=1, access_log=False, debug=False)
