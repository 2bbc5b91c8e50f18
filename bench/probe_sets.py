"""Counts for the handoff and out-of-scope probe sets against a running bot (REST), no texts printed
unless -v: tests/data/handoff_probe*.jsonl ({"text", "expect": "handoff" | "not_handoff"}) and
tests/data/oos_probe*.jsonl ({"text"}: must not be answered or handed off).

    PYTHONPATH=. .venv/bin/python bench/probe_sets.py [--url http://127.0.0.1:5005] [-v] FILE...

handoff_probe4.jsonl and oos_probe3.jsonl were written blind and are run for counts only
(docs/heldout2-howto.md): keep them so — run them without -v. (handoff_probe3 and oos_probe2 were
blind in the sixth session and were read in the seventh.)
"""
from __future__ import annotations

import argparse
import json
import uuid
from collections import Counter

from bot.eval import card_of, send


def card(url: str, text: str) -> dict:
    messages, _ = send(url, f"probe-{uuid.uuid4().hex[:10]}", text)
    return card_of(messages) or {}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--url", default="http://127.0.0.1:5005")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    for path in args.files:
        ok, total, kinds = Counter(), Counter(), Counter()
        for line in open(path, encoding="utf-8"):
            case = json.loads(line)
            c = card(args.url, case["text"])
            expect = case.get("expect", "no_answer")
            if expect == "no_answer":
                good = c.get("kind") not in ("answer", "handoff") and not c.get("citations")
            else:
                good = (c.get("kind") == "handoff") == (expect == "handoff")
            ok[expect] += good
            total[expect] += 1
            kinds[c.get("kind")] += 1
            if not good and args.verbose:
                print("MISS", expect, c.get("kind"), case["text"])
        print(path, {k: f"{ok[k]}/{total[k]}" for k in total}, dict(kinds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
