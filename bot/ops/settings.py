"""Settings of the production profile, all from environment variables.

endpoints.prod.yml reads the same variables (Rasa substitutes ``${VAR}``, without defaults),
so :func:`profile_env` fills in every default before a Rasa server is started.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]

# Variable → default. Everything the profile reads; docs/production.md lists them.
DEFAULTS: Dict[str, str] = {
    # PostgreSQL (tracker store, tickets, console)
    "ZWZX_PG_HOST": "127.0.0.1",
    "ZWZX_PG_PORT": "5432",
    "ZWZX_PG_DB": "zwzx",
    "ZWZX_PG_USER": "postgres",
    "ZWZX_PG_PASSWORD": "",
    "ZWZX_PG_SSLMODE": "prefer",
    "ZWZX_PG_CONNECT_TIMEOUT": "5",          # seconds, per connection attempt
    "ZWZX_PG_STATEMENT_TIMEOUT_MS": "10000",  # a hung statement fails instead of blocking
    "ZWZX_PG_MAINTENANCE_DB": "postgres",     # used only to CREATE DATABASE when missing
    # Redis (lock store)
    "ZWZX_REDIS_HOST": "127.0.0.1",
    "ZWZX_REDIS_PORT": "6379",
    "ZWZX_REDIS_DB": "0",
    "ZWZX_REDIS_PASSWORD": "",
    "ZWZX_REDIS_PREFIX": "zwzx",              # alphanumeric; keys are <prefix>:lock:<sender>
    "ZWZX_SHARED_STATE": "redis",             # bot/ops/shared_state.py: cross-process state in Redis
    # processes and ports
    "ZWZX_RASA_SERVERS": "2",
    "ZWZX_ACTION_SERVERS": "2",
    "ZWZX_HTTP_PORT": "5705",                 # nginx, public side (REST, widget, WeChat)
    "ZWZX_ACTIONS_LB_PORT": "5706",           # nginx, action servers' load balancer
    "ZWZX_RASA_BASE_PORT": "5710",            # Rasa server i listens on base + i
    "ZWZX_ACTION_BASE_PORT": "5730",          # action server j listens on base + j
    "ZWZX_BIND": "127.0.0.1",                 # interface nginx listens on
    "ZWZX_CONSOLE_SERVERS": "2",              # staff console processes (0: none)
    "ZWZX_CONSOLE_BASE_PORT": "5720",         # console process k listens on base + k (127.0.0.1)
    "ZWZX_CONSOLE_HTTP_PORT": "5707",         # nginx, staff console side
    "ZWZX_CONSOLE_BIND": "127.0.0.1",         # interface of nginx's console side (the staff network)
    "ZWZX_MODEL": "models/zhengwu.tar.gz",
    "ZWZX_ENDPOINTS": "endpoints.prod.yml",
    "ZWZX_CREDENTIALS": "credentials.yml",
    "ZWZX_RUN_DIR": "build/prod",             # nginx prefix, rendered config, logs
    "ZWZX_RASA_AUTH_TOKEN": "",               # Rasa HTTP API token; empty: generated per run
    "ZWZX_LOCK_POLL_SECONDS": "0.05",         # how often a queued message checks the lock
    "TICKET_LOCK_LIFETIME": "60",             # Rasa: seconds a conversation lock ticket lives
    "SANIC_GRACEFUL_SHUTDOWN_TIMEOUT": "10",  # seconds a stopping server finishes open requests
}


def env(name: str, environ: Optional[Mapping[str, str]] = None) -> str:
    environ = os.environ if environ is None else environ
    value = environ.get(name)
    return DEFAULTS.get(name, "") if value is None else value


def db_url(environ: Optional[Mapping[str, str]] = None, database: Optional[str] = None,
           driver: str = "postgresql") -> str:
    """SQLAlchemy URL of the profile's PostgreSQL database (ZWZX_DB_URL for bot/handoff)."""
    user = quote(env("ZWZX_PG_USER", environ), safe="")
    password = env("ZWZX_PG_PASSWORD", environ)
    auth = f"{user}:{quote(password, safe='')}@" if password else f"{user}@"
    host = env("ZWZX_PG_HOST", environ)
    port = env("ZWZX_PG_PORT", environ)
    name = database or env("ZWZX_PG_DB", environ)
    query = (f"connect_timeout={env('ZWZX_PG_CONNECT_TIMEOUT', environ)}"
             f"&sslmode={env('ZWZX_PG_SSLMODE', environ)}")
    return f"{driver}://{auth}{host}:{port}/{name}?{query}"


def profile_env(environ: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The environment for every process of the profile: the caller's environment with all
    defaults filled in, ZWZX_DB_URL derived from the ZWZX_PG_* settings unless given, and
    the settings Rasa itself reads."""
    out = dict(os.environ if environ is None else environ)
    for k, v in DEFAULTS.items():
        out.setdefault(k, v)
    out.setdefault("ZWZX_DB_URL", db_url(out))
    # psycopg2 reads PGOPTIONS: a statement timeout for every connection of every process
    out.setdefault("PGOPTIONS", f"-c statement_timeout={out['ZWZX_PG_STATEMENT_TIMEOUT_MS']}")
    out.setdefault("ZWZX_ACTIONS_HOST", "127.0.0.1")
    # the widget channel then refuses to start without ZWZX_WIDGET_SECRET (widget_session.py)
    out.setdefault("ZWZX_PROFILE", "production")
    out.setdefault("RASA_TELEMETRY_ENABLED", "false")
    out.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    out["PYTHONPATH"] = str(ROOT) + (os.pathsep + out["PYTHONPATH"] if out.get("PYTHONPATH") else "")
    return out


@dataclass
class Topology:
    rasa_ports: List[int] = field(default_factory=list)
    action_ports: List[int] = field(default_factory=list)
    http_port: int = 5705
    actions_lb_port: int = 5706
    bind: str = "127.0.0.1"
    console_ports: List[int] = field(default_factory=list)
    console_http_port: int = 5707
    console_bind: str = "127.0.0.1"

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "Topology":
        n = int(env("ZWZX_RASA_SERVERS", environ))
        m = int(env("ZWZX_ACTION_SERVERS", environ))
        if n < 1 or m < 1:
            raise ValueError("ZWZX_RASA_SERVERS and ZWZX_ACTION_SERVERS must be at least 1")
        c = int(env("ZWZX_CONSOLE_SERVERS", environ))
        if c < 0:
            raise ValueError("ZWZX_CONSOLE_SERVERS must be 0 or more")
        rb, ab = int(env("ZWZX_RASA_BASE_PORT", environ)), int(env("ZWZX_ACTION_BASE_PORT", environ))
        cb = int(env("ZWZX_CONSOLE_BASE_PORT", environ))
        return cls(rasa_ports=[rb + i for i in range(n)], action_ports=[ab + j for j in range(m)],
                   http_port=int(env("ZWZX_HTTP_PORT", environ)),
                   actions_lb_port=int(env("ZWZX_ACTIONS_LB_PORT", environ)),
                   bind=env("ZWZX_BIND", environ),
                   console_ports=[cb + k for k in range(c)],
                   console_http_port=int(env("ZWZX_CONSOLE_HTTP_PORT", environ)),
                   console_bind=env("ZWZX_CONSOLE_BIND", environ))


def served_tracker_store_type(endpoints: Optional[Path] = None) -> str:
    """The tracker store class of the default profile (endpoints.yml), which `make run` serves
    with; the end-to-end tests and the benchmark start their servers with the same class."""
    import yaml

    path = endpoints or Path(__file__).resolve().parents[2] / "endpoints.yml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))["tracker_store"]["type"]
