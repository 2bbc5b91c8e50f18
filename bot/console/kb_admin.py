"""Console page 知识库 (issue 13, supervisors): the documents the bot knows, upload → preview
with the validation report → publish, withdraw, with the background job's progress.
The work is done by :class:`bot.kb.publish.KbManager`; this module is only its pages.

Uploads are limited to 20 MB and .txt/.docx/.pdf/.html, stored under a random name outside
the web root (``build/kb_uploads/``, mode 0600), parsed only as data and never served back.
A larger upload answers 413 with a Chinese message (JSON for API clients, else this page):
above the route's body limit (21 MB) from its ``Content-Length`` before the body is read
(bot/ops/limits.py, ``zwzx_refusal_page``), between the two by the loader's size check.
Every upload, publish, withdraw and discard is in the audit log.
"""
from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode

from sanic import response
from sanic.request import Request

from bot.console import auth
from bot.kb.loaders import MAX_BYTES, LoadError
from bot.kb.publish import KbManager, PublishError
from bot.kb.store import DEFAULT_POLICY_DIR, BuildError
from bot.ops import limits

UPLOAD_PATH = "/kb/upload"
UPLOAD_MAX_BODY = MAX_BYTES + 1024 * 1024  # the file + multipart overhead; the file itself ≤ 20 MB


def _wants_json(request: Request) -> bool:
    from bot.console.app import _wants_json as wants
    return wants(request)


def manager_from_env() -> KbManager:
    env = os.environ
    return KbManager(
        policy_dir=Path(env["ZWZX_POLICY_DIR"]) if env.get("ZWZX_POLICY_DIR") else DEFAULT_POLICY_DIR,
        build_dir=Path(env["ZWZX_BUILD_DIR"]) if env.get("ZWZX_BUILD_DIR") else None,
        nlu_out=Path(env["ZWZX_NLU_OUT"]) if env.get("ZWZX_NLU_OUT") else None,
        rasa_url=env.get("ZWZX_RASA_URL"),
        model_dir=Path(env["ZWZX_MODEL_DIR"]) if env.get("ZWZX_MODEL_DIR") else None,
    )


def register(app, render: Callable, error_page: Callable, audit: Callable, supervisor_only: Callable,
             manager: KbManager = None) -> KbManager:
    mgr = manager or manager_from_env()
    app.ctx.kb_manager = mgr
    run = asyncio.to_thread

    async def page(request: Request, status: int = 200, error: str = None, notice: str = None):
        docs = await run(mgr.documents)
        job = await run(mgr.job)
        return render(request, "kb.html", status=status, docs=docs, job=job, running=job.get("state") in
                      ("building", "training", "loading"), error=error, notice=notice,
                      max_mb=MAX_BYTES // 1048576)

    @app.get("/kb")
    @supervisor_only
    async def kb_page(request: Request):
        return await page(request, error=request.args.get("error"), notice=request.args.get("notice"))

    async def too_large(request: Request, message: str):
        """413 for an upload over the limit: JSON for API clients, else the 知识库 page with the
        message (only for a supervisor's session; anyone else gets the bare error page)."""
        if _wants_json(request):
            return limits.json_error(413, message)
        sess = getattr(request.ctx, "session", None)
        if sess is None:  # refused by the edge: the session middleware did not run
            from bot.console.app import SESSION_COOKIE
            sess = await run(auth.load_session, app.ctx.console_db, app.ctx.console_config.auth,
                             request.cookies.get(SESSION_COOKIE))
            request.ctx.session = sess
        if sess is None or not sess.user.is_supervisor:
            return error_page(request, 413, message)
        return await page(request, status=413, error=message)

    async def refused_by_edge(request: Request, refusal: "limits.Refusal"):
        # The body was refused from its Content-Length (or cut at the limit) before anything read
        # it — no form, no CSRF token, nothing stored; the live KB is untouched.
        if request.path != UPLOAD_PATH or refusal.status != 413:
            return None
        length = request.headers.get("content-length") or ""
        size = f"约 {int(length) / 1048576:.1f} MB" if length.isdigit() else \
            f"超过 {UPLOAD_MAX_BODY // 1048576} MB"
        return await too_large(request, f"文件过大（{size}），上限 {MAX_BYTES // 1048576} MB，"
                                        "未上传，知识库未改变。请压缩或拆分后重新上传。")

    app.ctx.zwzx_refusal_page = refused_by_edge  # bot/ops/limits.py: install_edge

    @app.get("/api/kb/job")
    @supervisor_only
    async def kb_job(request: Request):
        return response.json(await run(mgr.job))

    @app.post(UPLOAD_PATH)
    @supervisor_only
    async def kb_upload(request: Request):
        f = (request.files or {}).get("file")
        if not f or not f.body:
            return _back(error="请选择要上传的文件（文件不能为空）")
        try:
            meta = await run(mgr.upload, f.name, f.body, request.ctx.session.user.name)
        except LoadError as exc:
            await audit(request, "kb_upload_refused", Path(f.name or "").name[:200], {"reason": str(exc)})
            if len(f.body) > MAX_BYTES:  # within the body limit, over the file limit
                return await too_large(request, f"{exc}，未上传，知识库未改变。")
            return _back(error=str(exc))
        await audit(request, "kb_upload", meta["filename"], {"id": meta["id"], "size": meta["size"],
                                                             "sha256": meta["sha256"]})
        return response.redirect("/kb/preview?" + urlencode({"id": meta["id"]}))

    @app.get("/kb/preview")
    @supervisor_only
    async def kb_preview(request: Request):
        try:
            pv = await run(mgr.preview, request.args.get("id") or "", request.args.get("doc_id") or None)
        except PublishError as exc:
            return error_page(request, 404, str(exc))
        return render(request, "kb_preview.html", pv=pv, meta=pv["meta"], doc=pv["doc"], report=pv["report"],
                      busy=mgr.busy())

    @app.post("/kb/publish")
    @supervisor_only
    async def kb_publish(request: Request):
        upload_id = (request.form.get("id") or "") if request.form else ""
        doc_id = ((request.form.get("doc_id") or "") if request.form else "").strip()
        try:
            meta = await run(mgr.upload_meta, upload_id)
            await run(mgr.publish, upload_id, doc_id, request.ctx.session.user.name)
        except (PublishError, LoadError) as exc:
            return _back(error=str(exc))
        except BuildError as exc:
            await audit(request, "kb_publish_refused", doc_id, {"file": meta["filename"]})
            return render(request, "kb_preview.html", status=422, pv=None, meta=meta, doc=None,
                          report=None, build_report=str(exc), busy=False)
        await audit(request, "kb_publish", doc_id, {"file": meta["filename"], "sha256": meta["sha256"]})
        return _back(notice=f"已开始发布 {doc_id}")

    @app.post("/kb/withdraw")
    @supervisor_only
    async def kb_withdraw(request: Request):
        doc_id = ((request.form.get("doc_id") or "") if request.form else "").strip()
        try:
            job = await run(mgr.withdraw, doc_id, request.ctx.session.user.name)
        except (PublishError, LoadError) as exc:
            return _back(error=str(exc))
        except BuildError as exc:
            return _back(error=str(exc).splitlines()[-1])
        await audit(request, "kb_withdraw", doc_id, job.get("detail"))
        return _back(notice=f"已开始撤下 {doc_id}")

    @app.post("/kb/discard")
    @supervisor_only
    async def kb_discard(request: Request):
        upload_id = (request.form.get("id") or "") if request.form else ""
        try:
            await run(mgr.discard, upload_id)
        except PublishError as exc:
            return _back(error=str(exc))
        await audit(request, "kb_discard", upload_id)
        return _back(notice="已放弃该上传文件")

    def _back(**params):
        return response.redirect("/kb?" + urlencode({k: v[:500] for k, v in params.items() if v}))

    return mgr
