"""Issue 13: the knowledge-base manager behind the console page 知识库 (in process, with a
stand-in for the retrain) and the page itself over HTTP (roles, CSRF, upload limits, Chinese
errors, preview). The full publish against running servers is tests/test_kb_publish_e2e.py."""
import json
import os
import re
import shutil
import stat
import subprocess
import sys

import pytest
import requests

from bot.console import auth
from bot.console.db import Database
from bot.console.demo import ConsoleProcess, free_port
from bot.kb.loaders import LoadError
from bot.kb.publish import KbManager, PublishError
from bot.kb.store import BuildError
from tests import kb_files
from tests.conftest import ROOT, SEED
from tests.test_console_http import login

SECOND = ROOT / "tests" / "fixtures" / "policies" / "taojiang-2022.txt"


@pytest.fixture()
def live(tmp_path):
    policies, build = tmp_path / "policies", tmp_path / "build"
    policies.mkdir()
    shutil.copy(SEED, policies)
    nlu = tmp_path / "gen.yml"
    subprocess.run([sys.executable, "-m", "bot.kb", "build", "--policies", str(policies), "--out", str(build),
                    "--nlu-out", str(nlu)], cwd=ROOT, check=True, capture_output=True,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    trained = []

    def fake_train(mgr, log):
        trained.append(mgr.nlu_out.read_text(encoding="utf-8"))
        log("（测试：跳过训练）")
        return None

    mgr = KbManager(policy_dir=policies, build_dir=build, nlu_out=nlu, model_dir=tmp_path / "models",
                    train=fake_train)
    mgr.trained = trained
    return mgr


def snapshot(mgr):
    return ({p.name: p.read_bytes() for p in mgr.policy_dir.iterdir()},
            mgr.kb_file.read_bytes(), mgr.nlu_out.read_bytes())


def test_upload_preview_publish_withdraw(live, tmp_path):
    docx = kb_files.write_docx(SECOND.read_text(encoding="utf-8"), tmp_path / "taojiang-2022.docx")
    meta = live.upload("C:\\fakepath\\..\\taojiang-2022.docx".replace("\\", "/"), docx.read_bytes(), "王芳")
    blob = live.uploads / f"{meta['id']}.bin"
    assert blob.exists() and stat.S_IMODE(blob.stat().st_mode) == 0o600
    assert stat.S_IMODE(live.uploads.stat().st_mode) == 0o700
    assert meta["filename"] == "taojiang-2022.docx" and meta["doc_id"] == "taojiang-2022"
    pv = live.preview(meta["id"])
    assert [i.number for i in pv["doc"].items] == [1, 2, 3]
    assert pv["report"]["items"] == 3 and "县水利局" in pv["report"]["unknown_units"]
    assert not pv["replaces"]
    with pytest.raises(PublishError, match="文档编号"):
        live.publish(meta["id"], "../etc", "王芳", background=False)
    job = live.publish(meta["id"], "taojiang-2022", "王芳", background=False)
    assert job["state"] == "building"
    job = live.job()
    assert job["state"] == "done" and job["retrain"] is True and len(live.trained) == 1
    assert "县水利局" in live.trained[0]
    assert (live.policy_dir / "taojiang-2022.docx").exists() and not blob.exists()
    kb = json.loads(live.kb_file.read_text(encoding="utf-8"))
    assert [d["doc_id"] for d in kb["documents"]] == ["ningxiang-2021", "taojiang-2022"]
    docs = live.documents()
    assert docs[1]["file"] == "taojiang-2022.docx" and docs[1]["items"][0]["lead_units"] == ["县水利局"]
    # withdraw: back to one document; the last one cannot be withdrawn
    live.withdraw("taojiang-2022", "王芳", background=False)
    assert live.job()["state"] == "done"
    assert [d["doc_id"] for d in live.documents()] == ["ningxiang-2021"]
    assert list(live.withdrawn.glob("*-taojiang-2022.docx"))
    with pytest.raises(PublishError, match="唯一的文档"):
        live.withdraw("ningxiang-2021", "王芳", background=False)
    with pytest.raises(PublishError, match="没有文档"):
        live.withdraw("nope", "王芳", background=False)


def test_bad_uploads_are_refused_and_nothing_is_stored(live, tmp_path):
    kb_files.write_image_pdf(tmp_path / "scan.pdf")
    cases = {"scan.pdf": ((tmp_path / "scan.pdf").read_bytes(), "没有文字层"),
             "tool.exe": (b"MZ\x90\0", "不支持的文件类型"), "empty.txt": (b"", "文件是空的"),
             "fake.docx": (b"%PDF-1.4 hello", "不符"), "big.txt": (b"a" * (20 * 1024 * 1024 + 1), "文件过大")}
    before = snapshot(live)
    for name, (data, message) in cases.items():
        with pytest.raises(LoadError, match=message):
            live.upload(name, data, "王芳")
    assert not live.uploads.exists() or not list(live.uploads.iterdir())
    assert snapshot(live) == before


def test_publishing_a_document_without_items_changes_nothing(live):
    meta = live.upload("notes.txt", "会议纪要\n今天讨论了一些事情。\n".encode(), "王芳")
    assert live.preview(meta["id"])["report"]["error"]
    before = snapshot(live)
    with pytest.raises(BuildError) as err:
        live.publish(meta["id"], "notes", "王芳", background=False)
    assert "没有找到编号的工作事项" in str(err.value) and "【notes】" in str(err.value)
    assert snapshot(live) == before and not live.busy()


def test_one_job_at_a_time(live):
    meta = live.upload("taojiang-2022.txt", SECOND.read_bytes(), "王芳")
    live._lock.acquire()
    try:
        with pytest.raises(PublishError, match="正在进行"):
            live.publish(meta["id"], "taojiang-2022", "王芳", background=False)
    finally:
        live._lock.release()


# ------------------------------------------------------------------ the page over HTTP
@pytest.fixture(scope="module")
def console(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console_kb")
    policies, build = tmp / "policies", tmp / "build"
    policies.mkdir()
    shutil.copy(SEED, policies)
    nlu = tmp / "gen.yml"
    subprocess.run([sys.executable, "-m", "bot.kb", "build", "--policies", str(policies), "--out", str(build),
                    "--nlu-out", str(nlu)], cwd=ROOT, check=True, capture_output=True,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    url = f"sqlite:///{tmp / 'tracker.db'}"
    db = Database(url)
    auth.create_user(db, "王芳", "supervisor", "supervisor-pass-1")
    auth.create_user(db, "李明", "agent", "agent-pass-12345")
    proc = ConsoleProcess(url, tmp / "console.log", port=free_port(6270, 6299),
                          env={"ZWZX_BUILD_DIR": str(build), "ZWZX_POLICY_DIR": str(policies),
                               "ZWZX_NLU_OUT": str(nlu), "ZWZX_MODEL_DIR": str(tmp / "models"),
                               "ZWZX_RASA_URL": f"http://127.0.0.1:{free_port(6270, 6299)}"})
    proc.db, proc.tmp = db, tmp
    yield proc
    proc.stop()
    db.engine.dispose()


def _csrf(s, console):
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', s.get(console.url + "/kb").text).group(1)


def test_page_is_for_supervisors_only(console):
    agent = login(console, "李明", "agent-pass-12345")
    assert agent.get(console.url + "/kb").status_code == 403
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', agent.get(console.url + "/conversations").text).group(1)
    r = agent.post(console.url + "/kb/upload", data={"csrf_token": token},
                   files={"file": ("a.txt", SECOND.read_bytes())}, allow_redirects=False)
    assert r.status_code == 403
    assert requests.get(console.url + "/kb", allow_redirects=False).status_code == 302  # not logged in


def test_upload_preview_and_errors_over_http(console):
    s = login(console, "王芳", "supervisor-pass-1")
    page = s.get(console.url + "/kb").text
    assert "《宁乡市2021年政务公开工作要点》" in page and "19 项工作" in page and "市行政审批服务局" in page
    token = _csrf(s, console)
    # no CSRF token: refused
    r = s.post(console.url + "/kb/upload", files={"file": ("t.txt", SECOND.read_bytes())}, allow_redirects=False)
    assert r.status_code == 403
    # a scanned PDF: back to the page with the Chinese message
    scan = kb_files.write_image_pdf(console.tmp / "扫描件.pdf")
    r = s.post(console.url + "/kb/upload", data={"csrf_token": token},
               files={"file": ("扫描件.pdf", scan.read_bytes())})
    assert r.status_code == 200 and "PDF 没有文字层" in r.text and "扫描件.pdf" in r.text
    # over the body limit: 413 with the size message (tested in detail below), nothing stored
    r = s.post(console.url + "/kb/upload", data={"csrf_token": token},
               files={"file": ("big.txt", b"a" * (22 * 1024 * 1024))})
    assert r.status_code == 413 and "文件过大" in r.text, (r.status_code, r.text[:300])
    assert not list((console.tmp / "build" / "kb_uploads").glob("*.bin"))
    # just over 20 MB of file within the body limit: the loader's Chinese message, also 413
    r = s.post(console.url + "/kb/upload", data={"csrf_token": token},
               files={"file": ("big.txt", b"a" * (20 * 1024 * 1024 + 10))})
    assert r.status_code == 413 and "文件过大" in r.text, r.text[:300]
    # a good file: preview with the report and the items, publish form prefilled
    r = s.post(console.url + "/kb/upload", data={"csrf_token": token},
               files={"file": ("taojiang-2022.txt", SECOND.read_bytes())})
    assert r.status_code == 200 and "/kb/preview" in r.url
    assert "工作事项：3 项" in r.text and "县林业局、县财政局" in r.text and 'value="taojiang-2022"' in r.text
    upload_id = re.search(r'name="id" value="([0-9a-f]{24})"', r.text).group(1)
    assert list((console.tmp / "build" / "kb_uploads").glob(f"{upload_id}.bin"))
    assert s.get(console.url + "/kb/preview?id=../../etc/passwd").status_code == 404
    r = s.post(console.url + "/kb/discard", data={"csrf_token": token, "id": upload_id})
    assert r.status_code == 200 and "已放弃" in r.text
    assert not list((console.tmp / "build" / "kb_uploads").glob("*.bin"))
    from bot.console.db import audit
    import sqlalchemy as sa

    with console.db.engine.connect() as conn:
        actions = [r.action for r in conn.execute(sa.select(audit.c.action).order_by(audit.c.id))]
    assert "kb_upload_refused" in actions and "kb_upload" in actions and "kb_discard" in actions


def _live_state(console):
    build = console.tmp / "build"
    return ({p.name: p.read_bytes() for p in (console.tmp / "policies").iterdir()},
            (build / "kb.json").read_bytes(), (build / "index.json").read_bytes(),
            sorted(p.name for p in (build / "kb_uploads").glob("*")) if (build / "kb_uploads").exists() else [])


def _kb_error(html):
    m = re.search(r'id="kb-error"><pre class="report">(.*?)</pre>', html, re.S)
    return m and m.group(1)


def test_an_upload_over_the_limit_gets_413_with_the_size_message(console):
    """Issue 13: 21 MB and 50 MB uploads (and one just over 20 MB that fits the body limit) answer
    413 with a Chinese message — the 知识库 page with the message for the form, JSON for API
    clients — instead of the CSRF 403; nothing is stored and the live KB is untouched."""
    s = login(console, "王芳", "supervisor-pass-1")
    token = _csrf(s, console)
    before = _live_state(console)
    for mb in (21, 50):
        r = s.post(console.url + "/kb/upload", data={"csrf_token": token},
                   files={"file": ("taojiang-2022.txt", b"a" * (mb * 1024 * 1024))}, allow_redirects=False)
        assert r.status_code == 413, (mb, r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("text/html")
        message = _kb_error(r.text)
        assert message and f"文件过大（约 {mb}.0 MB），上限 20 MB" in message and "知识库未改变" in message, message
        assert "上传新文档" in r.text and "王芳" in r.text  # the page itself, for the logged-in supervisor
        assert "CSRF" not in r.text
        # an API client gets the same message as JSON
        r = s.post(console.url + "/kb/upload", data={"csrf_token": token},
                   files={"file": ("taojiang-2022.txt", b"a" * (mb * 1024 * 1024))},
                   headers={"Accept": "application/json"})
        assert r.status_code == 413 and "上限 20 MB" in r.json()["error"], r.text[:300]
    # 21 000 000 bytes (21 MB in decimal) fit the 21 MiB body limit: the loader's check, also 413
    r = s.post(console.url + "/kb/upload", data={"csrf_token": token},
               files={"file": ("taojiang-2022.txt", b"a" * 21_000_000)}, allow_redirects=False)
    assert r.status_code == 413 and "taojiang-2022.txt：文件过大（20.0 MB），上限 20 MB" in _kb_error(r.text)
    # not logged in: 413 with the message, nothing of the console shown
    r = requests.post(console.url + "/kb/upload", files={"file": ("a.txt", b"a" * (50 * 1024 * 1024))})
    assert r.status_code == 413 and "文件过大" in r.text and "上传新文档" not in r.text
    assert _live_state(console) == before
    # the console still works on the same session afterwards
    assert s.get(console.url + "/kb").status_code == 200


def test_an_over_limit_upload_is_refused_from_its_length_before_the_body_is_sent(console):
    """The refusal comes from Content-Length alone: the client sends the headers and the first
    bytes of a declared 50 MB body and gets the 413 without sending the rest (nothing is read
    into memory); a chunked upload without a length is cut off at the limit, also 413."""
    import socket
    import time
    from urllib.parse import urlparse

    s = login(console, "王芳", "supervisor-pass-1")
    token = _csrf(s, console)
    before = _live_state(console)
    u = urlparse(console.url)
    boundary = "zwzxboundary13"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{token}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n"
            "Content-Type: text/plain\r\n\r\n").encode()
    cookie = "; ".join(f"{k}={v}" for k, v in s.cookies.items())
    with socket.create_connection((u.hostname, u.port), timeout=10) as sock:
        sock.sendall((f"POST /kb/upload HTTP/1.1\r\nHost: {u.netloc}\r\nCookie: {cookie}\r\n"
                      f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                      f"Content-Length: {50 * 1024 * 1024}\r\n\r\n").encode() + head + b"a" * 65536)
        t0, reply = time.monotonic(), b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        assert time.monotonic() - t0 < 5
    # chunked (no Content-Length): read up to the limit, then 413
    def chunks():
        yield head
        for _ in range(50):
            yield b"a" * (1024 * 1024)
    r = requests.post(console.url + "/kb/upload", data=chunks(), cookies=s.cookies,
                      headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                               "Accept": "application/json"})
    assert r.status_code == 413 and "文件过大" in r.json()["error"], r.text[:300]
    assert _live_state(console) == before


def test_one_job_at_a_time_across_console_processes(live):
    """Two console processes on one host: a job held by the other process refuses this one."""
    import subprocess
    import sys
    import time as _time

    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from bot.kb.publish import JobLock;"
         "l = JobLock(Path(sys.argv[1])); assert l.acquire(); print('held', flush=True); time.sleep(30)",
         str(live.build_dir / "kb_job.lock")],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        meta = live.upload("taojiang-2022.txt", SECOND.read_bytes(), "王芳")
        assert live.busy()
        with pytest.raises(PublishError, match="正在进行"):
            live.publish(meta["id"], "taojiang-2022", "王芳", background=False)
    finally:
        holder.kill()
        holder.wait()
    deadline = _time.time() + 5
    while live.busy() and _time.time() < deadline:
        _time.sleep(0.05)
    assert not live.busy()  # a process that dies takes its lock with it


def test_a_large_upload_at_a_good_rate_gets_the_time_it_needs(console):
    """Issue 16, body pace: a 1 MB document sent at ~400 KB/s takes ~2.6 s — longer than the
    ~1 s a chat message gets — and is accepted (a body has time in proportion to its size: it
    only has to keep within 0.8 s of 16 KB/s, without a 2 s pause); it reaches the upload handler
    (the preview or the loader's message on the 知识库 page), never the 408."""
    import socket
    import time
    from urllib.parse import urlparse

    s = login(console, "王芳", "supervisor-pass-1")
    token = _csrf(s, console)
    u = urlparse(console.url)
    boundary = "zwzxboundary16"
    text = SECOND.read_bytes() + b"\n"
    filler = ("附件：本文件的说明与解读，供查阅。" * 20 + "\n").encode("utf-8")
    text += filler * ((1024 * 1024 - len(text)) // len(filler))
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{token}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"taojiang-2022.txt\"\r\n"
            "Content-Type: text/plain\r\n\r\n").encode() + text + f"\r\n--{boundary}--\r\n".encode()
    assert len(body) > 1_000_000
    cookie = "; ".join(f"{k}={v}" for k, v in s.cookies.items())
    piece, rate = 16 * 1024, 400 * 1024
    with socket.create_connection((u.hostname, u.port), timeout=30) as sock:
        sock.sendall((f"POST /kb/upload HTTP/1.1\r\nHost: {u.netloc}\r\nCookie: {cookie}\r\n"
                      f"Origin: {console.url}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
                      f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode())
        t0 = time.monotonic()
        for i in range(0, len(body), piece):
            time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            sock.sendall(body[i:i + piece])
        sent = time.monotonic() - t0
        reply = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert sent > 2.0, sent  # it really took longer than a chat message's ~1 s
    head, _, page = reply.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    assert status in (200, 302, 303), (status, reply[:300])
    assert "请求发送超时".encode() not in reply
    from bot.console.db import audit
    import sqlalchemy as sa

    with console.db.engine.connect() as conn:
        last = conn.execute(sa.select(audit.c.action, audit.c.target).order_by(audit.c.id.desc())).first()
    assert last.action in ("kb_upload", "kb_upload_refused") and "taojiang-2022.txt" in last.target, last
    if last.action == "kb_upload":  # discard the preview again: the module's other tests expect no uploads
        upload_id = re.search(rb'name="id" value="([0-9a-f]{24})"', page) or re.search(
            rb"id=([0-9a-f]{24})", head)
        if upload_id:
            s.post(console.url + "/kb/discard", data={"csrf_token": token, "id": upload_id.group(1).decode()})
