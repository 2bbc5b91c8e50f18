"""Signed session tokens of the web widget.

The server issues, with every session it confirms, ``token = HMAC-SHA256(secret, session id)``
(URL-safe base64, 43 characters). The widget keeps it in ``localStorage`` beside the session id
and presents it when it resumes the session (socket.io ``session_request``), with every message
and when it reads the history (``GET /webhooks/widget/history/<id>?token=…``). Without a valid
token a client gets a new session: it can neither read another session's history nor join its
socket.io room (where staff messages are delivered). Nothing is stored per session: the secret
validates, so sessions keep working after a restart and on every server that has the same secret.

The secret:

* ``ZWZX_WIDGET_SECRET`` (at least 32 characters) — required in the production profile
  (``ZWZX_PROFILE=production``, set by bot/ops/settings.py ``profile_env``): without it the Rasa
  servers refuse to start (:class:`MissingSecret`, and ``bot.ops.cluster`` checks it first). The
  same value on every server; changing it ends every widget session (they start anew).
* otherwise (embedded profile) a random secret generated once and kept in
  ``ZWZX_WIDGET_SECRET_FILE`` (default ``build/widget_secret``, git-ignored, mode 600).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Mapping, Optional

ROOT = Path(__file__).resolve().parents[2]
SECRET_ENV = "ZWZX_WIDGET_SECRET"
SECRET_FILE_ENV = "ZWZX_WIDGET_SECRET_FILE"
DEFAULT_SECRET_FILE = ROOT / "build" / "widget_secret"
MIN_SECRET_CHARS = 32
_CONTEXT = b"zwzx-widget-session:v1:"


class MissingSecret(RuntimeError):
    pass


def load_secret(environ: Optional[Mapping[str, str]] = None) -> bytes:
    e = os.environ if environ is None else environ
    value = (e.get(SECRET_ENV) or "").strip()
    if value:
        if len(value) < MIN_SECRET_CHARS:
            raise MissingSecret(f"{SECRET_ENV} 太短：至少 {MIN_SECRET_CHARS} 个字符（网页组件会话签名密钥）")
        return value.encode("utf-8")
    if (e.get("ZWZX_PROFILE") or "").strip().lower() == "production":
        raise MissingSecret(
            f"生产配置必须设置环境变量 {SECRET_ENV}：网页组件会话令牌的签名密钥，至少 {MIN_SECRET_CHARS} 个字符，"
            "所有 Rasa 服务使用同一个值。例如：export "
            f"{SECRET_ENV}=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')")
    path = Path(e.get(SECRET_FILE_ENV) or DEFAULT_SECRET_FILE)
    try:
        return path.read_text(encoding="utf-8").strip().encode("utf-8")
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    new = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it just now
        return path.read_text(encoding="utf-8").strip().encode("utf-8")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(new + "\n")
    return new.encode("utf-8")


class SessionSigner:
    def __init__(self, secret: bytes):
        if not secret:
            raise MissingSecret("empty widget session secret")
        self._secret = secret

    @classmethod
    def from_environment(cls, environ: Optional[Mapping[str, str]] = None) -> "SessionSigner":
        return cls(load_secret(environ))

    def token(self, session_id: str) -> str:
        mac = hmac.new(self._secret, _CONTEXT + session_id.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")

    def valid(self, session_id: object, token: object) -> bool:
        if not isinstance(session_id, str) or not isinstance(token, str) or not token:
            return False
        return hmac.compare_digest(self.token(session_id), token)
