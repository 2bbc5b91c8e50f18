"""Signed widget sessions (bot/ops/widget_session.py): the token is the server's, the
widget presents it, and only its holder resumes the session, reads the history and receives
staff messages; a restarted server (same secret) still accepts it; the production profile does
not start without a secret.

Units, then a real Rasa server + action server (tests/servers.py, ports 6170-6199) with
python-socketio clients, restarted once on the same database and secret file."""
import functools
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from bot.ops.widget_session import MissingSecret, SessionSigner, load_secret
from tests.servers import free_ports, running_bot

socketio = pytest.importorskip("socketio")
PORTS = (6170, 6199)


# ------------------------------------------------------------------ units
def test_token_is_an_hmac_of_the_session_id_under_the_secret():
    a = SessionSigner(b"s" * 40)
    t = a.token("session-0001")
    assert a.valid("session-0001", t) and len(t) == 43
    assert not a.valid("session-0002", t)
    assert not a.valid("session-0001", t[:-1] + ("A" if t[-1] != "A" else "B"))
    assert not a.valid("session-0001", None) and not a.valid("session-0001", "")
    assert not SessionSigner(b"t" * 40).valid("session-0001", t)   # another secret
    assert SessionSigner(b"s" * 40).valid("session-0001", t)       # same secret, new process


def test_secret_from_environment_file_or_error(tmp_path):
    secret_file = tmp_path / "sub" / "widget_secret"
    env = {"ZWZX_WIDGET_SECRET_FILE": str(secret_file)}
    first = load_secret(env)
    assert secret_file.exists() and (secret_file.stat().st_mode & 0o777) == 0o600
    assert load_secret(env) == first and len(first) >= 32            # kept: sessions survive restarts
    assert load_secret({"ZWZX_WIDGET_SECRET": "x" * 32}) == b"x" * 32
    with pytest.raises(MissingSecret, match="至少 32"):
        load_secret({"ZWZX_WIDGET_SECRET": "short"})
    with pytest.raises(MissingSecret, match="ZWZX_WIDGET_SECRET"):
        load_secret(dict(env, ZWZX_PROFILE="production"))            # never a generated secret there


def test_production_cluster_refuses_to_start_without_the_secret(tmp_path):
    from bot.ops.cluster import Cluster

    env = {"ZWZX_RUN_DIR": str(tmp_path), "ZWZX_HTTP_PORT": "6198", "ZWZX_ACTIONS_LB_PORT": "6199",
           "ZWZX_RASA_BASE_PORT": "6190", "ZWZX_ACTION_BASE_PORT": "6194", "PATH": "/usr/bin:/bin"}
    with pytest.raises(MissingSecret, match="生产配置必须设置环境变量 ZWZX_WIDGET_SECRET"):
        Cluster(environ=env, log=lambda m: None).prepare()
    assert not list(tmp_path.glob("*.pid"))


# ------------------------------------------------------------------ against a server
class Client:
    def __init__(self, url, session_id=None, token=None):
        self.sio = socketio.Client(reconnection=False)
        self.events = []
        self.lock = threading.Lock()
        for name in ("session_token", "session_confirm", "bot_uttered", "turn_done", "widget_error"):
            self.sio.on(name, functools.partial(self._record, name))
        self.sio.connect(url, transports=["websocket"], wait_timeout=20)
        self.sio.emit("session_request", {"session_id": session_id, "session_token": token})
        self.session_id = self.wait_for("session_confirm")[1]
        self.token = self.wait_for("session_token")[1]["token"]

    def _record(self, name, data=None):
        with self.lock:
            self.events.append((name, data))

    def wait_for(self, name, start=0, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                for ev in self.events[start:]:
                    if ev[0] == name:
                        return ev
            time.sleep(0.05)
        raise AssertionError(f"no {name} within {timeout} s; got {self.events[start:]}")

    def ask(self, text, **extra):
        start = len(self.events)
        self.sio.emit("user_uttered", dict({"message": text, "session_id": self.session_id,
                                            "session_token": self.token}, **extra))
        self.wait_for("turn_done", start)
        with self.lock:
            return self.events[start:]

    def staff_texts(self):
        with self.lock:
            return [d["text"] for e, d in self.events
                    if e == "bot_uttered" and (d.get("metadata") or {}).get("from") == "staff"]

    def close(self):
        self.sio.disconnect()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("widget_session")
    credentials = tmp / "credentials.yml"
    credentials.write_text("bot.channels.staff.StaffInput:\nbot.channels.widget.WidgetInput:\n"
                           "  session_persistence: true\n", encoding="utf-8")
    env = {"ZWZX_WIDGET_SECRET_FILE": str(tmp / "widget_secret"), "ZWZX_WIDGET_SECRET": None}
    return {"tmp": tmp, "credentials": credentials, "env": env, "db_url": f"sqlite:///{tmp / 'tracker.db'}"}


def history(url, session_id, token=None):
    params = {"token": token} if token is not None else {}
    return requests.get(f"{url}/webhooks/widget/history/{session_id}", params=params, timeout=30)


def test_only_the_token_holder_resumes_reads_history_and_gets_staff_messages_also_after_a_restart(setup):
    rasa_port, action_port = free_ports(2, *PORTS)
    run = functools.partial(running_bot, rasa_port, action_port, credentials=setup["credentials"],
                            extra_env=setup["env"], db_url=setup["db_url"])
    with run(tmp_dir=setup["tmp"] / "first") as servers:
        url = servers.rasa_url
        citizen = Client(url)
        sid, token = citizen.session_id, citizen.token
        assert SessionSigner(load_secret({"ZWZX_WIDGET_SECRET_FILE": setup["env"]["ZWZX_WIDGET_SECRET_FILE"]})
                             ).valid(sid, token)
        got = citizen.ask("我要转人工")
        assert any(e == "bot_uttered" and "人工" in (d.get("text") or "") for e, d in got), got
        # history: only with the token
        assert history(url, sid).status_code == 403
        assert history(url, sid, "x" * 43).status_code == 403
        r = history(url, sid, token)
        assert r.status_code == 200 and [t["text"] for t in r.json()["turns"] if t["role"] == "user"] == ["我要转人工"]
        # someone who knows only the session id: gets a new session, or is refused
        intruder = Client(url, session_id=sid)
        assert intruder.session_id != sid
        wrong = Client(url, session_id=sid, token=token[:-2] + "xx")
        assert wrong.session_id != sid
        raw = socketio.Client(reconnection=False)
        errors = []
        raw.on("widget_error", lambda d: errors.append(d))
        raw.on("bot_uttered", lambda d: errors.append(("LEAK", d)))
        raw.connect(url, transports=["websocket"], wait_timeout=20)
        raw.emit("user_uttered", {"message": "你好", "session_id": sid, "session_token": "forged"})
        deadline = time.time() + 10
        while not errors and time.time() < deadline:
            time.sleep(0.05)
        assert errors and "凭证" in errors[0]["text"], errors
        # the holder of the token on a second socket (another tab) resumes the session
        tab = Client(url, session_id=sid, token=token)
        assert tab.session_id == sid
        # a staff message reaches the token holders only
        store = servers.store()
        staff_token = store.add_staff(f"王{uuid.uuid4().hex[:12]}")
        ticket = store.open_ticket_for(sid)
        auth = {"Authorization": f"Bearer {staff_token}"}
        assert requests.post(f"{url}/webhooks/staff/tickets/{ticket['id']}/accept", headers=auth, timeout=30).ok
        r = requests.post(f"{url}/webhooks/staff/tickets/{ticket['id']}/messages", headers=auth,
                          json={"text": "您好，我是工作人员"}, timeout=30)
        assert r.status_code == 200 and r.json()["delivered"] is True, r.text
        deadline = time.time() + 10
        while time.time() < deadline and not (citizen.staff_texts() and tab.staff_texts()):
            time.sleep(0.05)
        time.sleep(0.5)
        assert citizen.staff_texts() == ["您好，我是工作人员"] and tab.staff_texts() == ["您好，我是工作人员"]
        assert intruder.staff_texts() == [] and wrong.staff_texts() == []
        assert not [e for e in errors if isinstance(e, tuple)]
        for c in (citizen, intruder, wrong, tab):
            c.close()
        raw.disconnect()
    # restarted (new process, same database and secret): the old token still opens the session
    with run(tmp_dir=setup["tmp"] / "second") as servers:
        url = servers.rasa_url
        r = history(url, sid, token)
        assert r.status_code == 200
        turns = r.json()["turns"]
        assert [t["text"] for t in turns if t["role"] == "user"] == ["我要转人工"]
        assert any(t.get("role") == "staff" for t in turns), turns
        back = Client(url, session_id=sid, token=token)
        assert back.session_id == sid and back.token == token
        back.close()
