"""Adding and withdrawing documents while the bot runs (issue 13, console page 知识库).

* **Upload**: the bytes are checked (type, size — :mod:`bot.kb.loaders`) and stored under a
  random name with mode 0600 in ``build/kb_uploads/`` — outside every web root, never
  executed, never served back; a JSON file beside them keeps the original name.
* **Preview**: parse + validation report, nothing published.
* **Publish**: the candidate set (the live documents + the new one) is built and validated
  first; only when that succeeds is the file moved into ``data/policies/`` and the build
  written (``bot/kb/artifacts.py``: temp files renamed, ``kb.json`` last). The action server
  and the Rasa server's retrieval re-read the KB when ``kb.json`` changes (atomic swap of
  the answerer, ``actions/knowledge.py``). If the generated NLU file changed (new department
  names / topics), the model is retrained in a background process and loaded into the
  running Rasa server with ``PUT /model``; Rasa keeps serving with the old model meanwhile
  and the tracker store is shared, so no conversation is dropped.
* **Withdraw**: the document is moved to ``build/kb_withdrawn/`` and the same rebuild runs.

One job at a time (a lock); its state is in ``build/kb_job.json`` for the progress display.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from bot.kb.loaders import MAX_BYTES, SUFFIXES, LoadError, load_text
from bot.kb.parser import ParseError, parse_document
from bot.kb.store import (DEFAULT_CONFIG_DIR, DEFAULT_POLICY_DIR, ROOT, BuildError, _read_yaml, build_kb,
                          kb_path, policy_files)
from bot.kb.validate import failed_report, format_report, validate_document

DOC_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")


class JobLock:
    """One publish/withdraw at a time on this host, whichever console process asks: a thread
    lock for this process plus ``flock`` on ``build/kb_job.lock`` for the others (the policy
    files and build/ are this host's; the lock goes away with a process that dies)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._thread = threading.Lock()
        self._fh = None

    def acquire(self, blocking: bool = False) -> bool:
        if not self._thread.acquire(blocking=blocking):
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError:
            fh.close()
            self._thread.release()
            return False
        self._fh = fh
        return True

    def release(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()
        self._thread.release()

    def locked(self) -> bool:
        if self._thread.locked():
            return True
        if not self.path.exists():
            return False
        with open(self.path, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
        return False


class PublishError(ValueError):
    pass


class KbManager:
    def __init__(self, policy_dir: Path = DEFAULT_POLICY_DIR, config_dir: Path = DEFAULT_CONFIG_DIR,
                 build_dir: Optional[Path] = None, nlu_out: Optional[Path] = None,
                 rasa_url: Optional[str] = None, model_dir: Optional[Path] = None,
                 train: Optional[Callable[["KbManager", Callable[[str], None]], Optional[Path]]] = None):
        self.policy_dir = Path(policy_dir)
        self.config_dir = Path(config_dir)
        self.kb_file = Path(kb_path(build_dir))
        self.build_dir = self.kb_file.parent
        self.nlu_out = Path(nlu_out or ROOT / "data" / "nlu" / "generated_kb.yml")
        self.uploads = self.build_dir / "kb_uploads"
        self.withdrawn = self.build_dir / "kb_withdrawn"
        self.job_file = self.build_dir / "kb_job.json"
        self.rasa_url = (rasa_url or os.environ.get("ZWZX_RASA_URL") or "http://127.0.0.1:5005").rstrip("/")
        self.model_dir = Path(model_dir or ROOT / "models")
        self.train = train or default_train
        self._lock = JobLock(self.build_dir / "kb_job.lock")

    # ---------------------------------------------------------------- documents
    def documents(self) -> List[dict]:
        """The KB as the bot sees it (build/kb.json) with the file each document came from."""
        try:
            data = json.loads(self.kb_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        files = {p.stem: p.name for p in self._live_files()}
        out = []
        for d in data.get("documents") or []:
            out.append({"doc_id": d["doc_id"], "title": d["title"], "doc_number": d["doc_number"],
                        "date": d["date"], "file": files.get(d["doc_id"], ""), "items": [
                            {"number": i["number"], "title": i["title"], "marker": i.get("marker", ""),
                             "lead_units": i["lead_units"], "responsible_units": i["responsible_units"]}
                            for i in d["items"]]})
        return out

    def _live_files(self) -> List[Path]:
        try:
            return policy_files(self.policy_dir)
        except (LoadError, OSError):
            return []

    # ------------------------------------------------------------------- upload
    def upload(self, filename: str, data: bytes, user: str) -> dict:
        name = Path(filename or "").name  # no directories from the client
        suffix = Path(name).suffix.lower()
        if suffix not in SUFFIXES:
            raise LoadError(f"{name or '文件'}：不支持的文件类型“{suffix or '无扩展名'}”，只接受 .txt、.docx、.pdf、.html")
        if len(data) > MAX_BYTES:
            raise LoadError(f"{name}：文件过大（{len(data) / 1048576:.1f} MB），上限 {MAX_BYTES // 1048576} MB")
        text = load_text(Path(name), data)  # refuses empty, wrong type, bombs, scans
        upload_id = secrets.token_hex(12)
        self.uploads.mkdir(parents=True, exist_ok=True)
        os.chmod(self.uploads, 0o700)
        blob = self.uploads / f"{upload_id}.bin"  # never the client's name or extension
        fd = os.open(blob, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        meta = {"id": upload_id, "filename": name, "suffix": suffix, "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(), "user": user, "ts": time.time(),
                "doc_id": suggest_doc_id(name, text)}
        (self.uploads / f"{upload_id}.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        return meta

    def upload_meta(self, upload_id: str) -> dict:
        if not re.fullmatch(r"[0-9a-f]{24}", upload_id or ""):
            raise PublishError("上传编号无效")
        try:
            return json.loads((self.uploads / f"{upload_id}.json").read_text(encoding="utf-8"))
        except OSError:
            raise PublishError("找不到该上传文件（可能已发布或已删除）") from None

    def _upload_bytes(self, meta: dict) -> bytes:
        return (self.uploads / f"{meta['id']}.bin").read_bytes()

    def preview(self, upload_id: str, doc_id: Optional[str] = None) -> dict:
        meta = self.upload_meta(upload_id)
        doc_id = doc_id or meta["doc_id"]
        cfg = _read_yaml(self.config_dir / "departments.yml")
        try:
            doc = parse_document(load_text(Path(meta["filename"]), self._upload_bytes(meta)), doc_id=doc_id)
        except (LoadError, ParseError) as exc:
            rep = failed_report(doc_id, meta["filename"], str(exc))
            return {"meta": meta, "doc": None, "report": rep.to_dict(), "report_text": format_report([rep])}
        rep = validate_document(doc, cfg, meta["filename"])
        return {"meta": meta, "doc": doc, "report": rep.to_dict(), "report_text": format_report([rep]),
                "replaces": doc_id in {p.stem for p in self._live_files()}}

    def discard(self, upload_id: str) -> None:
        meta = self.upload_meta(upload_id)
        for ext in (".bin", ".json"):
            (self.uploads / f"{meta['id']}{ext}").unlink(missing_ok=True)

    # ------------------------------------------------------------ publish/withdraw
    def job(self) -> dict:
        try:
            return json.loads(self.job_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"state": "idle"}

    def _set_job(self, **fields) -> dict:
        job = self.job()
        job.update(fields)
        job["updated"] = time.time()
        tmp = self.job_file.with_name(f".{self.job_file.name}.tmp")
        self.build_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(job, ensure_ascii=False), encoding="utf-8")
        tmp.replace(self.job_file)
        return job

    def busy(self) -> bool:
        return self._lock.locked()

    def publish(self, upload_id: str, doc_id: str, user: str, background: bool = True) -> dict:
        meta = self.upload_meta(upload_id)
        if not DOC_ID_RE.match(doc_id or ""):
            raise PublishError("文档编号只能用小写字母、数字、- 和 _（2–64 个字符），例如 taojiang-2022")
        data = self._upload_bytes(meta)

        def change(policies: Path) -> None:
            for old in policies.iterdir():
                if old.stem == doc_id:
                    old.unlink()
            (policies / f"{doc_id}{meta['suffix']}").write_bytes(data)

        def commit() -> None:
            live = [p for p in self._live_files() if p.stem == doc_id]
            target = self.policy_dir / f"{doc_id}{meta['suffix']}"
            tmp = self.policy_dir / f".{doc_id}{meta['suffix']}.{os.getpid()}.tmp"
            tmp.write_bytes(data)
            for old in live:
                if old != target:
                    self._archive(old)
            tmp.replace(target)
            self.discard(upload_id)

        return self._run("publish", doc_id, user, change, commit, background,
                         {"file": meta["filename"], "sha256": meta["sha256"]})

    def withdraw(self, doc_id: str, user: str, background: bool = True) -> dict:
        live = [p for p in self._live_files() if p.stem == doc_id]
        if not live:
            raise PublishError(f"知识库中没有文档 {doc_id}")
        if len(self._live_files()) == 1:
            raise PublishError("这是知识库中唯一的文档，不能撤下（机器人需要至少一个文档）")

        def change(policies: Path) -> None:
            (policies / live[0].name).unlink()

        def commit() -> None:
            self._archive(live[0])

        return self._run("withdraw", doc_id, user, change, commit, background, {"file": live[0].name})

    def _archive(self, path: Path) -> None:
        self.withdrawn.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), str(self.withdrawn / f"{time.strftime('%Y%m%d-%H%M%S')}-{path.name}"))

    def _run(self, action, doc_id, user, change, commit, background, detail) -> dict:
        if not self._lock.acquire(blocking=False):
            raise PublishError("另一个发布/撤下任务正在进行，请等它完成")
        try:
            # 1. the candidate document set, built and validated before anything live changes
            with tempfile.TemporaryDirectory(prefix="kb-candidate-") as tmp:
                cand = Path(tmp) / "policies"
                shutil.copytree(self.policy_dir, cand, ignore=shutil.ignore_patterns(".*"))
                change(cand)
                report: list = []
                kb = build_kb(cand, self.config_dir, report=report)  # BuildError → nothing changed
        except BaseException:
            self._lock.release()
            raise
        job = self._set_job(state="building", action=action, doc_id=doc_id, user=user, started=time.time(),
                            finished=None, error=None, log=[], report=format_report(report), detail=detail,
                            fingerprint=kb.fingerprint, retrain=None, model=None)

        def work():
            try:
                self._apply(kb, commit)
            except Exception as exc:  # noqa: BLE001 — shown on the page
                self._set_job(state="failed", error=f"{type(exc).__name__}: {exc}", finished=time.time())
            finally:
                self._lock.release()

        if background:
            threading.Thread(target=work, name=f"kb-{action}", daemon=True).start()
        else:
            work()
        return job

    def _apply(self, kb, commit) -> None:
        from bot.kb.artifacts import write_artifacts

        t0 = time.time()
        nlu_before = self.nlu_out.read_text(encoding="utf-8") if self.nlu_out.exists() else None
        commit()
        write_artifacts(kb, self.kb_file, self.nlu_out)
        self._log(f"知识库已重建（{len(kb.documents)} 个文档，{sum(len(d.items) for d in kb.documents)} 项），"
                  f"{time.time() - t0:.1f} 秒；动作服务器与检索将自动切换到新知识库")
        retrain = self.nlu_out.read_text(encoding="utf-8") != nlu_before
        self._set_job(kb_live=time.time(), retrain=retrain)
        if not retrain:
            self._set_job(state="done", finished=time.time())
            self._log("NLU 词表未变化，无需重新训练模型")
            return
        self._set_job(state="training")
        self._log("NLU 词表有变化（新的部门名称或主题词），正在后台重新训练模型……")
        model = self.train(self, self._log)
        if model is None:
            self._set_job(state="done", finished=time.time())
            return
        self._set_job(state="loading", model=str(model))
        self._log(f"训练完成：{model.name}，正在加载到运行中的 Rasa 服务器（PUT /model）……")
        # every Rasa server that serves (the production profile runs several behind nginx)
        urls = [u.strip().rstrip("/") for u in (os.environ.get("ZWZX_RASA_API_URLS") or self.rasa_url).split(",")
                if u.strip()]
        for url in urls:
            load_model(url, model)
        live = time.time()
        if self.model_dir.resolve() == (ROOT / "models").resolve():
            # the next `make run` starts with this model instead of retraining
            os.replace(model, self.model_dir / "zhengwu.tar.gz")
        self._set_job(state="done", finished=time.time(), model_live=live)
        self._log("新模型已生效，无需重启；进行中的会话不受影响")

    def _log(self, line: str) -> None:
        job = self.job()
        log = (job.get("log") or []) + [f"{time.strftime('%H:%M:%S')} {line}"]
        self._set_job(log=log[-50:])


def suggest_doc_id(filename: str, text: str) -> str:
    stem = Path(filename).stem.lower()
    if DOC_ID_RE.match(stem):
        return stem
    m = re.search(r"(20\d\d)", text[:2000])
    return f"doc-{m.group(1) if m else time.strftime('%Y')}-{secrets.token_hex(2)}"


def default_train(manager: KbManager, log: Callable[[str], None]) -> Optional[Path]:
    """``rasa train`` in a child process (lower CPU priority, the servers keep answering);
    progress lines go to the job log."""
    name = f"zhengwu-{time.strftime('%Y%m%d-%H%M%S')}"
    cmd = [str(Path(sys.executable).with_name("rasa")), "train", "--fixed-model-name", name,
           "--out", str(manager.model_dir), "--quiet", "--config", str(ROOT / "config.yml"),
           "--domain", str(ROOT / "domain.yml")]
    repo_nlu = ROOT / "data" / "nlu" / "generated_kb.yml"
    if manager.nlu_out.resolve() != repo_nlu.resolve():  # a knowledge base kept elsewhere (tests)
        data = [p for p in sorted((ROOT / "data").rglob("*.yml")) if p.resolve() != repo_nlu.resolve()
                and "kb_config" not in p.parts]
        cmd += ["--data", *map(str, data), str(manager.nlu_out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=lambda: os.nice(10))
    for line in proc.stdout:  # type: ignore[union-attr]
        line = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
        if line and re.search(r"(?i)train|epoch|finished|saved|error|%", line) and len(line) < 300:
            log(line[:200])
    if proc.wait() != 0:
        raise RuntimeError(f"rasa train 失败（退出码 {proc.returncode}）")
    model = manager.model_dir / f"{name}.tar.gz"
    if not model.exists():
        raise RuntimeError(f"训练结束但找不到模型 {model}")
    return model


def load_model(rasa_url: str, model: Path, timeout: float = 300) -> None:
    """Rasa's HTTP API: ``PUT /model {"model_file": path}`` (needs ``--enable-api``). Rasa
    loads the new agent next to the running one and swaps; the tracker store is kept."""
    import requests

    headers = {}
    token = os.environ.get("ZWZX_RASA_TOKEN")
    params = {"token": token} if token else None
    try:
        r = requests.put(f"{rasa_url}/model", json={"model_file": str(Path(model).resolve())}, params=params,
                         headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise RuntimeError(f"无法连接 Rasa 服务器 {rasa_url}（{type(exc).__name__}）：新模型未加载，"
                           f"知识库已生效；重启后将使用新模型") from None
    if r.status_code in (401, 403, 404, 405):
        raise RuntimeError(f"Rasa 服务器拒绝加载模型（HTTP {r.status_code}）：需以 --enable-api 启动，"
                           f"令牌与 ZWZX_RASA_TOKEN 一致；知识库已生效，新模型未加载")
    if r.status_code != 204:
        raise RuntimeError(f"Rasa 加载模型失败：HTTP {r.status_code} {r.text[:200]}")
