"""Start the action server and the Rasa server for end-to-end tests (shared helper).

    from tests.servers import running_bot

    @pytest.fixture(scope="module")
    def bot(tmp_path_factory):
        with running_bot(rasa_port=5305, action_port=5306, tmp_dir=tmp_path_factory.mktemp("bot")) as servers:
            yield servers          # servers.rasa_url, servers.action_url, servers.db_url, servers.store()

Each run gets its own SQLite database in `tmp_dir` (tracker store *and* handoff tickets, as in
production; or `db_url`, e.g. a PostgreSQL database), a temp endpoints.yml pointing at it and at the action port, and the given
credentials file (default: the repository's credentials.yml). The working hours are open all
week by default so that handoff tests do not depend on the time of day; pass `handoff_config`
(a dict in handoff.yml format, or a path) to test other hours. The model is `model`, else
$ZWZX_TEST_MODEL, else models/zhengwu.tar.gz. `action_endpoint` is the URL Rasa calls for custom
actions (default: the action server started here; e.g. a proxy in front of it). `extra_env` adds to
the servers' environment; a value of None removes that variable. On exit both process groups are
terminated (SIGTERM, then SIGKILL) — only the processes started here.

`free_ports(count, lo, hi)` picks ports in a test module's own range.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Union

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
RASA_BIN = Path(sys.executable).parent / "rasa"

ALWAYS_OPEN = {
    "working_hours": {
        "timezone": "Asia/Shanghai",
        "weekdays": [1, 2, 3, 4, 5, 6, 7],
        "periods": [["00:00", "24:00"]],
        "holidays": [],
        "extra_workdays": [],
        "calendar": "none",   # not even official holidays close it
    },
}


def default_model() -> Path:
    return Path(os.environ.get("ZWZX_TEST_MODEL") or ROOT / "models" / "zhengwu.tar.gz")


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, lo: int, hi: int) -> List[int]:
    """`count` distinct ports in [lo, hi] that are free now (each test module has its own range)."""
    ports = list(itertools.islice((p for p in range(lo, hi + 1) if port_is_free(p)), count))
    if len(ports) < count:
        raise RuntimeError(f"no {count} free ports in {lo}-{hi}")
    return ports


@dataclass
class Servers:
    rasa_url: str
    action_url: str
    db_url: str
    tmp_dir: Path
    env: Dict[str, str] = field(repr=False, default_factory=dict)
    handoff_config: Optional[Path] = None

    def store(self):
        """The ticket/staff store the servers use (same database)."""
        from bot.handoff.store import get_store

        return get_store(self.db_url)

    def add_staff(self, name: str, role: str = "agent") -> str:
        return self.store().add_staff(name, role)

    def log(self, which: str = "rasa") -> str:
        path = self.tmp_dir / f"{which}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def tracker_store_yaml(db_url: str) -> str:
    """endpoints.yml `tracker_store:` section for a SQLAlchemy URL (SQLite or PostgreSQL), with
    the tracker store class of the project's endpoints.yml (what `make run` serves with)."""
    from sqlalchemy.engine import make_url

    from bot.ops.settings import served_tracker_store_type

    store_type = served_tracker_store_type()

    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        return f'tracker_store:\n  type: {store_type}\n  dialect: "sqlite"\n  db: "{url.database}"\n'
    lines = ["tracker_store:", f"  type: {store_type}", f'  dialect: "{url.drivername}"', f'  url: "{url.host or "127.0.0.1"}"',
             f"  port: {url.port or 5432}", f'  db: "{url.database}"']
    if url.username:
        lines.append(f'  username: "{url.username}"')
    if url.password:
        lines.append(f'  password: "{url.password}"')
    return "\n".join(lines) + "\n"


def stop_process_groups(procs) -> None:
    """SIGTERM to each server's own process group (only what was started here), then SIGKILL."""
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=10)


@contextlib.contextmanager
def running_bot(rasa_port: int, action_port: int, tmp_dir: Union[str, Path],
                credentials: Optional[Union[str, Path]] = None, model: Optional[Union[str, Path]] = None,
                handoff_config: Optional[Union[dict, str, Path]] = None,
                extra_env: Optional[Dict[str, Optional[str]]] = None, db_url: Optional[str] = None,
                action_endpoint: Optional[str] = None, timeout: float = 240) -> Iterator[Servers]:
    tmp = Path(tmp_dir)
    tmp.mkdir(parents=True, exist_ok=True)
    model = Path(model) if model else default_model()
    if not model.exists():
        raise RuntimeError(f"model {model} missing: run `make train` (or set ZWZX_TEST_MODEL)")
    for port in (rasa_port, action_port):
        if not port_is_free(port):
            raise RuntimeError(f"port {port} is already in use")
    db_url = db_url or f"sqlite:///{tmp / 'tracker.db'}"   # tracker store and tickets share it
    endpoints = tmp / "endpoints.yml"
    action_endpoint = action_endpoint or f"http://127.0.0.1:{action_port}/webhook"
    endpoints.write_text(f'action_endpoint:\n  url: "{action_endpoint}"\n'
                         + tracker_store_yaml(db_url), encoding="utf-8")
    if handoff_config is None or isinstance(handoff_config, dict):
        config_path = tmp / "handoff.yml"
        base = yaml.safe_load((ROOT / "handoff.yml").read_text(encoding="utf-8")) or {}
        base.update(handoff_config if isinstance(handoff_config, dict) else ALWAYS_OPEN)
        config_path.write_text(yaml.safe_dump(base, allow_unicode=True), encoding="utf-8")
    else:
        config_path = Path(handoff_config)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", ZWZX_DB_URL=db_url,
               ZWZX_HANDOFF_CONFIG=str(config_path), SQLALCHEMY_SILENCE_UBER_WARNING="1",
               RASA_TELEMETRY_ENABLED="false")
    for key, value in (extra_env or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    logs = [open(tmp / "actions.log", "w"), open(tmp / "rasa.log", "w")]
    procs = []
    try:
        procs.append(subprocess.Popen(
            # rasa-sdk's own entry point: the same server as `rasa run actions` without importing
            # Rasa's CLI (and with it scipy, sklearn… ~60 MB the action server never uses)
            [sys.executable, "-m", "rasa_sdk", "--port", str(action_port), "--actions", "actions"],
            cwd=ROOT, env=env, stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True))
        procs.append(subprocess.Popen(
            [str(RASA_BIN), "run", "--enable-api", "-i", "127.0.0.1", "--port", str(rasa_port),
             "--model", str(model), "--endpoints", str(endpoints),
             "--credentials", str(credentials or ROOT / "credentials.yml")],
            cwd=ROOT, env=env, stdout=logs[1], stderr=subprocess.STDOUT, start_new_session=True))
        rasa_url = f"http://127.0.0.1:{rasa_port}"
        action_url = f"http://127.0.0.1:{action_port}"
        deadline = time.time() + timeout
        while True:
            for p, name in zip(procs, ("actions", "rasa")):
                if p.poll() is not None:
                    raise RuntimeError(f"the {name} server exited:\n" +
                                       (tmp / f"{name}.log").read_text(errors="replace")[-3000:])
            try:
                if requests.get(f"{rasa_url}/status", timeout=2).ok and \
                        requests.get(f"{action_url}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"servers did not start in {timeout:.0f} s:\n" +
                                   (tmp / "rasa.log").read_text(errors="replace")[-3000:])
            time.sleep(0.5)
        yield Servers(rasa_url, action_url, db_url, tmp, env, config_path)
    finally:
        stop_process_groups(procs)
        for f in logs:
            f.close()


# ------------------------------------------------------------------ PostgreSQL for tests
PG_URL = os.environ.get("ZWZX_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def pg_available(url: str = PG_URL) -> bool:
    """True when the PostgreSQL the tests use answers (tests skip with a reason otherwise)."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False
