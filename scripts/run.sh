#!/usr/bin/env bash
# Start the action server and the Rasa server (REST on 127.0.0.1:5005) in the foreground.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD"
RASA_PORT="${RASA_PORT:-5005}"
ACTION_PORT="${ACTION_PORT:-5055}"
mkdir -p build
.venv/bin/rasa run actions --port "$ACTION_PORT" --actions actions &
ACTIONS_PID=$!
trap 'kill $ACTIONS_PID 2>/dev/null; wait $ACTIONS_PID 2>/dev/null' EXIT INT TERM
echo "政务咨询助手：REST 接口 http://127.0.0.1:${RASA_PORT}/webhooks/rest/webhook"
.venv/bin/rasa run --enable-api -i 127.0.0.1 --port "$RASA_PORT" \
  --model models/zhengwu.tar.gz --endpoints endpoints.yml --credentials credentials.yml
