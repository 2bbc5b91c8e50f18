"""Console page 知识库 (issue 13, supervisors): the documents the bot knows, upload → preview
with the validation report → publish, withdraw, with the background job's progress.
The work is done by :class:`bot.kb.publish.KbManager`; this module is only its pages.

Uploads are limited to 20 MB and .txt/.docx/.pdf/.html, stored under a random name outside
the web root (``build/kb_uploads/``, mode 0600), parsed only as data and never served back.
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

from bot.kb.loaders import MAX_BYTES, LoadError
from bot.kb.publish import KbManager, PublishError
from bot.kb.store import DEFAULT_POLICY_DIR, BuildError

UPLOAD_PATH = "/kb/upload"
UPLOAD_MAX_BODY = MAX_BYTES + 1024 * 1024  # the file + multipart overhead; the file itself ≤ 20 MB


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

    @app.get("/kb")
    @supervisor_only
    async def kb_page(request: Request):
        docs = await run(mgr.documents)
        job = await run(mgr.job)
        return render(request, "kb.html", docs=docs, job=job, running=job.get("state") in
                      ("building", "training", "loading"), error=request.args.get("error"),
                      notice=request.args.get("notice"), max_mb=MAX_BYTES // 1048576)

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
