#!/usr/bin/env bash
# Start everything in the foreground: action server, staff console and the Rasa server
# (REST, widget, WeChat and staff API channels). Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD"
RASA_PORT="${RASA_PORT:-5005}"
ACTION_PORT="${ACTION_PORT:-5055}"
CONSOLE_PORT="${CONSOLE_PORT:-5080}"
mkdir -p build
PIDS=()
stop() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop EXIT INT TERM

# The Rasa HTTP API, token-protected and on 127.0.0.1 only, lets the console's 知识库 page
# load a retrained model into the running server (PUT /model) after a publish (docs/kb-formats.md).
export ZWZX_RASA_TOKEN="${ZWZX_RASA_TOKEN:-$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(24))')}"
# the project's tables (tickets, console, WeChat) to the newest Alembic revision (migrations/)
.venv/bin/python -m bot.ops.schema upgrade >/dev/null
# rasa-sdk's own entry point: the same action server as `rasa run actions`, without importing
# Rasa's CLI (scipy, sklearn… about 60 MB the action server never uses; docs/benchmarks.md)
.venv/bin/python -m rasa_sdk --port "$ACTION_PORT" --actions actions &
PIDS+=($!)
ZWZX_RASA_URL="http://127.0.0.1:${RASA_PORT}" .venv/bin/python -m bot.console serve --port "$CONSOLE_PORT" &
PIDS+=($!)

cat <<MSG
政务咨询助手 正在启动（约 30 秒）：
  REST 接口      http://127.0.0.1:${RASA_PORT}/webhooks/rest/webhook
  门户演示页     http://127.0.0.1:${RASA_PORT}/webhooks/widget/demo
  工作人员控制台 http://127.0.0.1:${CONSOLE_PORT}/   （首个账号：.venv/bin/python -m bot.console create-user 姓名 --role supervisor）
  微信公众号     http://127.0.0.1:${RASA_PORT}/webhooks/wechat/webhook （需设置 WECHAT_TOKEN 等，见 docs/wechat.md）
MSG
.venv/bin/rasa run -i 127.0.0.1 --port "$RASA_PORT" --enable-api --auth-token "$ZWZX_RASA_TOKEN" \
  --model models/zhengwu.tar.gz --endpoints endpoints.yml --credentials credentials.yml &
PIDS+=($!)
wait -n "${PIDS[@]}"
