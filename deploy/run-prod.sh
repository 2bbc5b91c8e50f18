#!/usr/bin/env bash
# Production profile on one host: N Rasa servers + M action servers behind nginx, PostgreSQL
# tracker store (+ tickets, console), Redis lock store. Ctrl-C / SIGTERM stops everything.
#
#   deploy/run-prod.sh                                   # defaults: 2 + 2, nginx on 127.0.0.1:5705
#   ZWZX_RASA_SERVERS=3 ZWZX_PG_HOST=db.internal ZWZX_PG_PASSWORD=... deploy/run-prod.sh
#
# Every setting is an environment variable (bot/ops/settings.py, docs/production.md). This
# script only checks the prerequisites and hands over to `python -m bot.ops.cluster`, which
# creates the database and tables, renders deploy/nginx.conf.tmpl, starts and supervises the
# processes (logs in $ZWZX_RUN_DIR/logs, default build/prod/logs).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL=3 SQLALCHEMY_SILENCE_UBER_WARNING=1 RASA_TELEMETRY_ENABLED=false
PY="${PY:-.venv/bin/python}"
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "nginx 未安装：请先运行 deploy/install-nginx.sh（或 apt-get install -y nginx）" >&2
  exit 1
fi
if [ ! -f "${ZWZX_MODEL:-models/zhengwu.tar.gz}" ]; then
  echo "模型不存在：请先运行 make train" >&2
  exit 1
fi
exec "$PY" -m bot.ops.cluster "$@"
