"""Start and supervise the production profile on one host:
M action servers, N Rasa servers, nginx in front of both (deploy/nginx.conf.tmpl).

    python -m bot.ops.cluster            # what `make run-prod` / deploy/run-prod.sh run
    python -m bot.ops.cluster --check    # render + test the nginx config, check PostgreSQL/Redis, exit

Before starting anything it creates the database and tables (bot.ops.db.migrate) and checks
Redis. Each process gets its own log in $ZWZX_RUN_DIR/logs/. A process that exits on its own
is restarted (with a growing delay); Ctrl-C / SIGTERM stops everything (Rasa servers first,
so they finish the messages they are processing).

The tests drive the same class (start, stop, kill, restart single processes) — see
tests/test_prod_profile.py.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional

from bot.ops.settings import ROOT, Topology, profile_env

TEMPLATE = ROOT / "deploy" / "nginx.conf.tmpl"


def nginx_binary() -> Optional[str]:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                          if os.access(p, os.X_OK)), None)


def http_get(url: str, timeout: float = 3.0) -> tuple:
    """(status, body) — status 0 when the server could not be reached."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, TimeoutError):
        return 0, ""


@dataclass
class Proc:
    name: str
    argv: List[str]
    ready_url: str
    popen: Optional[subprocess.Popen] = None
    restarts: int = 0
    started_at: float = 0.0
    wanted: bool = False          # the supervisor restarts it when it exits
    log_path: Optional[Path] = None
    env: Optional[Dict[str, str]] = None   # None: the cluster's environment

    @property
    def pid(self) -> Optional[int]:
        return self.popen.pid if self.popen else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@dataclass
class Cluster:
    environ: Optional[Mapping[str, str]] = None
    log: Callable[[str], None] = field(default=lambda msg: print(msg, file=sys.stderr, flush=True))

    def __post_init__(self) -> None:
        self.env: Dict[str, str] = profile_env(self.environ)
        self.topology = Topology.from_env(self.env)
        run_dir = Path(self.env["ZWZX_RUN_DIR"])
        self.run_dir = run_dir if run_dir.is_absolute() else ROOT / run_dir
        self.env["ZWZX_RUN_DIR"] = str(self.run_dir)
        self.token = self.env.get("ZWZX_RASA_AUTH_TOKEN") or secrets.token_hex(16)
        self.env["ZWZX_RASA_AUTH_TOKEN"] = self.token
        self.env["ZWZX_ACTIONS_LB_PORT"] = str(self.topology.actions_lb_port)
        self._lock = threading.RLock()
        self.procs: Dict[str, Proc] = {}
        py = sys.executable
        t = self.topology
        for j, port in enumerate(t.action_ports):
            self.procs[f"actions-{j}"] = Proc(
                f"actions-{j}", [py, "-m", "bot.ops.actions_server", "--port", str(port)],
                f"http://127.0.0.1:{port}/ready")
        for i, port in enumerate(t.rasa_ports):
            self.procs[f"rasa-{i}"] = Proc(
                f"rasa-{i}", [py, "-m", "bot.ops.serve", "run", "--enable-api", "--auth-token", self.token,
                              "-i", "127.0.0.1", "--port", str(port), "--model", self._path("ZWZX_MODEL"),
                              "--endpoints", self._path("ZWZX_ENDPOINTS"),
                              "--credentials", self._path("ZWZX_CREDENTIALS")],
                f"http://127.0.0.1:{port}/ready")
        # staff console processes: every one serves every staff member (sessions, CSRF tokens
        # and the conversation index are in PostgreSQL), nginx round-robins between them
        self.console_env = dict(self.env)
        self.console_env.update(
            ZWZX_RASA_URL=self.public_url,                       # staff API (/webhooks/staff/)
            ZWZX_RASA_API_URLS=",".join(self.rasa_url(i) for i in range(len(t.rasa_ports))),
            ZWZX_RASA_TOKEN=self.token,                          # 知识库 publish: PUT /model
            ZWZX_CONSOLE_PROXIES="1")                            # client address from nginx
        for k, port in enumerate(t.console_ports):
            self.procs[f"console-{k}"] = Proc(
                f"console-{k}", [py, "-m", "bot.console", "serve", "--host", "127.0.0.1", "--port", str(port)],
                f"http://127.0.0.1:{port}/readyz", env=self.console_env)
        nginx = nginx_binary() or "nginx"
        self.nginx_conf = self.run_dir / "nginx" / "nginx.conf"
        self.procs["nginx"] = Proc(
            "nginx", [nginx, "-p", str(self.run_dir / "nginx"), "-c", str(self.nginx_conf), "-g", "daemon off;"],
            f"http://{self._connect_host()}:{t.http_port}/nginx-health")

    # ------------------------------------------------------------------ addresses
    def _path(self, key: str) -> str:
        p = Path(self.env[key])
        return str(p if p.is_absolute() else ROOT / p)

    def _connect_host(self) -> str:
        return "127.0.0.1" if self.topology.bind in ("0.0.0.0", "") else self.topology.bind

    @property
    def public_url(self) -> str:
        return f"http://{self._connect_host()}:{self.topology.http_port}"

    def rasa_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.topology.rasa_ports[i]}"

    def action_url(self, j: int) -> str:
        return f"http://127.0.0.1:{self.topology.action_ports[j]}"

    @property
    def rasa_names(self) -> List[str]:
        return [n for n in self.procs if n.startswith("rasa-")]

    @property
    def action_names(self) -> List[str]:
        return [n for n in self.procs if n.startswith("actions-")]

    @property
    def console_names(self) -> List[str]:
        return [n for n in self.procs if n.startswith("console-")]

    def console_url(self, k: int) -> str:
        return f"http://127.0.0.1:{self.topology.console_ports[k]}"

    @property
    def console_public_url(self) -> str:
        host = "127.0.0.1" if self.topology.console_bind in ("0.0.0.0", "") else self.topology.console_bind
        return f"http://{host}:{self.topology.console_http_port}"

    # ------------------------------------------------------------------ preparation
    def render_nginx(self) -> Path:
        t = self.topology

        def servers(ports: Iterable[int]) -> str:
            return "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in ports)

        text = TEMPLATE.read_text(encoding="utf-8")
        if not t.console_ports:  # no console processes: no console server block
            text = re.sub(r"# @@CONSOLE_BEGIN@@.*?# @@CONSOLE_END@@\n", "", text, flags=re.S)
        for key, value in {"RUN_DIR": str(self.run_dir), "BIND": t.bind, "HTTP_PORT": str(t.http_port),
                           "ACTIONS_LB_PORT": str(t.actions_lb_port),
                           "RASA_SERVERS": servers(t.rasa_ports),
                           "ACTION_SERVERS": servers(t.action_ports),
                           "CONSOLE_SERVERS": servers(t.console_ports),
                           "CONSOLE_BIND": t.console_bind,
                           "CONSOLE_HTTP_PORT": str(t.console_http_port)}.items():
            text = text.replace(f"@@{key}@@", value)
        text = "\n".join(line for line in text.split("\n") if not line.startswith("# @@CONSOLE_"))
        for d in ("nginx/tmp", "logs"):
            (self.run_dir / d).mkdir(parents=True, exist_ok=True)
        self.nginx_conf.write_text(text, encoding="utf-8")
        return self.nginx_conf

    def test_nginx(self) -> None:
        argv = self.procs["nginx"].argv[:-2] + ["-t", "-q"]
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"nginx -t failed: {r.stderr.strip()}")

    def prepare(self) -> Dict[str, object]:
        """Config files, database and tables, Redis check. Raises with a clear message."""
        from bot.ops.widget_session import load_secret
        from bot.ops import db

        load_secret(self.env)  # ZWZX_WIDGET_SECRET is required: say so before starting anything
        if nginx_binary() is None:
            raise RuntimeError("nginx not found: apt-get install -y nginx (deploy/install-nginx.sh)")
        model = Path(self._path("ZWZX_MODEL"))
        if not model.exists():
            raise RuntimeError(f"model {model} not found: run make train")
        self.render_nginx()
        self.test_nginx()
        result = db.migrate(self.env)
        checks = db.check(self.env)
        if not checks["ok"]:
            raise RuntimeError("PostgreSQL/Redis not ready: " + json.dumps(checks, ensure_ascii=False))
        (self.run_dir / "rasa_auth_token").write_text(self.token, encoding="utf-8")
        os.chmod(self.run_dir / "rasa_auth_token", 0o600)
        return result

    # ------------------------------------------------------------------ processes
    def start(self, name: str) -> Proc:
        with self._lock:
            p = self.procs[name]
            if p.running():
                return p
            p.log_path = self.run_dir / "logs" / f"{name}.log"
            with open(p.log_path, "ab") as log:
                log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} start {' '.join(p.argv)}\n".encode())
                log.flush()
                p.popen = subprocess.Popen(p.argv, cwd=ROOT, env=p.env or self.env, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True)
            p.started_at = time.time()
            p.wanted = True
            self.log(f"started {name} (pid {p.pid})")
            return p

    def _signal(self, p: Proc, sig: int) -> None:
        try:
            os.killpg(p.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, name: str, timeout: float = 30.0) -> None:
        """Graceful stop (SIGTERM; SIGKILL after `timeout`). The supervisor leaves it stopped."""
        with self._lock:
            p = self.procs[name]
            p.wanted = False
            if not p.running():
                return
            self._signal(p, signal.SIGQUIT if name == "nginx" else signal.SIGTERM)
        try:
            p.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._signal(p, signal.SIGKILL)
            p.popen.wait(timeout=10)
        self._signal(p, signal.SIGKILL)  # leftovers in the process group
        self.log(f"stopped {name}")

    def send_signal(self, name: str, sig: int) -> None:
        """Signal a process group as it is (e.g. SIGSTOP to freeze a server in a fault drill)."""
        with self._lock:
            p = self.procs[name]
            if p.running():
                self._signal(p, sig)

    def kill(self, name: str) -> None:
        """Crash it (SIGKILL to the whole process group). The supervisor leaves it stopped."""
        with self._lock:
            p = self.procs[name]
            p.wanted = False
            if p.popen is not None:
                self._signal(p, signal.SIGKILL)
                p.popen.wait(timeout=10)
        self.log(f"killed {name}")

    def restart(self, name: str, timeout: float = 300.0) -> None:
        self.stop(name)
        self.start(name)
        self.wait_ready([name], timeout)

    def is_ready(self, name: str) -> bool:
        p = self.procs[name]
        return p.running() and http_get(p.ready_url)[0] == 200

    def wait_ready(self, names: Optional[Iterable[str]] = None, timeout: float = 300.0) -> None:
        pending = list(names or self.procs)
        deadline = time.time() + timeout
        while pending:
            for name in list(pending):
                p = self.procs[name]
                if not p.running():
                    raise RuntimeError(f"{name} exited (code {p.popen.poll() if p.popen else None}); "
                                       f"see {p.log_path}:\n{self.tail(name)}")
                if self.is_ready(name):
                    pending.remove(name)
                    self.log(f"{name} ready ({time.time() - p.started_at:.0f} s)")
            if pending and time.time() > deadline:
                raise RuntimeError(f"not ready after {timeout:.0f} s: {pending}; last log:\n"
                                   + "\n".join(self.tail(n) for n in pending))
            if pending:
                time.sleep(0.5)

    def wait_actions_reachable(self, timeout: float = 60.0) -> None:
        """Until an action call through nginx's action-server side would succeed (nginx keeps a
        server it saw failing out of rotation for fail_timeout, even once it is back)."""
        url = f"http://127.0.0.1:{self.topology.actions_lb_port}/ready"
        deadline = time.time() + timeout
        while http_get(url)[0] != 200:
            if time.time() > deadline:
                raise RuntimeError(f"no action server reachable through nginx ({url}) after {timeout:.0f} s")
            time.sleep(0.2)

    def tail(self, name: str, chars: int = 3000) -> str:
        p = self.procs[name]
        if p.log_path and p.log_path.exists():
            return p.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        return ""

    def start_all(self, timeout: float = 420.0) -> None:
        self.prepare()
        try:
            for name in self.action_names + self.console_names + self.rasa_names:
                self.start(name)
            self.wait_ready(self.action_names + self.console_names, timeout)
            self.start("nginx")
            self.wait_ready(["nginx"] + self.rasa_names, timeout)
            self.wait_actions_reachable()
        except BaseException:
            self.stop_all()
            raise

    def stop_all(self) -> None:
        order = self.rasa_names + ["nginx"] + self.action_names + self.console_names  # finish messages first
        for name in order:
            try:
                self.stop(name, timeout=20)
            except Exception as e:  # noqa: BLE001
                self.log(f"could not stop {name}: {e}")

    def supervise(self, stop_event: threading.Event, poll: float = 1.0) -> None:
        """Restart processes that exit while wanted, with a growing delay."""
        next_try: Dict[str, float] = {}
        while not stop_event.wait(poll):
            for name, p in self.procs.items():
                with self._lock:
                    if not p.wanted or p.running() or p.popen is None:
                        continue
                    if name not in next_try:
                        code = p.popen.poll()
                        delay = min(60.0, 2.0 ** min(p.restarts, 6))
                        self.log(f"{name} exited with code {code}; restarting in {delay:.0f} s")
                        next_try[name] = time.time() + delay
                    if time.time() >= next_try[name]:
                        del next_try[name]
                        p.restarts += 1
                        self.start(name)

    def status(self) -> Dict[str, Dict[str, object]]:
        return {n: {"pid": p.pid, "running": p.running(), "ready": self.is_ready(n), "restarts": p.restarts,
                    "ready_url": p.ready_url} for n, p in self.procs.items()}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.ops.cluster", description="政务咨询助手 production profile")
    parser.add_argument("--check", action="store_true", help="prepare (nginx config, database, Redis) and exit")
    args = parser.parse_args(argv)
    cluster = Cluster()
    if args.check:
        result = cluster.prepare()
        print(json.dumps({"nginx_conf": str(cluster.nginx_conf), **result}, ensure_ascii=False, indent=2))
        return 0
    stop_event = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        cluster.start_all()
    except Exception as e:  # noqa: BLE001
        print(f"启动失败：{e}", file=sys.stderr)
        return 1
    t = cluster.topology
    print(f"政务咨询助手（生产配置）已启动：{len(t.rasa_ports)} 个 Rasa 服务、{len(t.action_ports)} 个动作服务、nginx\n"
          f"  REST 接口   {cluster.public_url}/webhooks/rest/webhook\n"
          f"  Rasa 服务   {', '.join(cluster.rasa_url(i) for i in range(len(t.rasa_ports)))}  (/ready /metrics)\n"
          f"  动作服务    {', '.join(cluster.action_url(j) for j in range(len(t.action_ports)))}  (/ready /metrics)\n"
          + (f"  工作人员控制台 {cluster.console_public_url}/  （{len(t.console_ports)} 个进程："
             f"{', '.join(cluster.console_url(k) for k in range(len(t.console_ports)))}）\n" if t.console_ports else "")
          + f"  日志        {cluster.run_dir / 'logs'}\n"
          f"  API 令牌    {cluster.run_dir / 'rasa_auth_token'}", flush=True)
    try:
        cluster.supervise(stop_event)
    finally:
        cluster.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
