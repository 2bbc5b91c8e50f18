#!/usr/bin/env bash
# Install nginx from Debian's packages if it is missing (the production profile runs it as its
# own process with its own config; the system service is not used or started).
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "nginx is missing; install it as root: apt-get install -y nginx" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q nginx >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q nginx >/dev/null; }
# Debian enables and may start the packaged service; it is not ours to run
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]
