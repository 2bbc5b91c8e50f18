"""``rasa`` with the production hooks installed (bot.ops.rasa_app).

    python -m bot.ops.serve run --enable-api --auth-token TOKEN -i 127.0.0.1 --port 5710 \\
        --model models/zhengwu.tar.gz --endpoints endpoints.prod.yml --credentials credentials.yml

Takes exactly the arguments of ``rasa`` (it *is* Rasa's own command line, run in this process
after the hooks are installed), so every ``rasa run`` option works. Adds GET /ready and
GET /metrics to the server, answers 系统繁忙 when the action server fails, and never falls
back to an in-memory tracker when PostgreSQL fails.
"""
from __future__ import annotations

import os
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> None:
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    from bot.ops import rasa_app

    rasa_app.install()
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa"] + list(sys.argv[1:] if argv is None else argv)
    rasa_main()


if __name__ == "__main__":
    main()
