"""Evaluate a running bot over HTTP against a JSONL case file.

    python -m bot.eval ../shared/eval/dev.jsonl [--url http://127.0.0.1:5005] [--split heldout] [-v]

Each line is ``{"id", "cat", "text", "expect"}`` or ``{"id", "cat", "turns": [...]}``;
``turns`` share one conversation. Optional keys: ``cls`` (phrasing class: traditional, english,
polite, colloquial, reference, term, where, indirect, topic_switch, ...) and ``split`` (``tune`` or
``heldout``; ``--split`` keeps only that split). Prints accuracy per category, per phrasing class,
overall, the top-3 rate (the expected item is the answer's first citation or among a clarify's
candidates) and latency.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections import defaultdict
from typing import List, Optional, Tuple

import requests


def card_of(messages: List[dict]) -> Optional[dict]:
    cards = [m["custom"] for m in messages if isinstance(m.get("custom"), dict) and "kind" in m["custom"]]
    return cards[0] if len(cards) == 1 else None


def texts_of(messages: List[dict]) -> List[str]:
    return [m["text"] for m in messages if m.get("text")]


def check(expect: dict, messages: List[dict]) -> Tuple[bool, str]:
    card = card_of(messages)
    if card is None:
        return False, f"expected exactly one answer card, got {messages!r}"
    kind = expect.get("kind")
    items = [c.get("item") for c in card.get("citations", [])]
    if kind == "any":
        return True, ""
    if kind == "no_answer":
        ok = card["kind"] not in ("answer", "handoff") and not items
        return ok, "" if ok else f"expected no answer, got {card['kind']} {items}"
    if kind in ("handoff", "chitchat"):
        return card["kind"] == kind, f"expected {kind}, got {card['kind']}"
    if card["kind"] != "answer":
        return False, f"expected answer, got {card['kind']} {card.get('candidates', '')}"
    if "item" in expect and (not items or items[0] != expect["item"]):
        return False, f"expected item {expect['item']} first, got {items}"
    if "items_all" in expect and not set(expect["items_all"]) <= set(items):
        return False, f"expected items {expect['items_all']}, got {items}"
    if "department" in expect and expect["department"] not in card.get("departments", []):
        return False, f"expected department {expect['department']}, got {card.get('departments')}"
    all_text = "\n".join(texts_of(messages))
    if "contains" in expect and expect["contains"] not in all_text:
        return False, f"expected text containing {expect['contains']!r}"
    if "max_chars" in expect:
        first = (texts_of(messages) or [""])[0]
        if len(first) > expect["max_chars"]:
            return False, f"first message {len(first)} chars > {expect['max_chars']}"
    return True, ""


def in_top3(expect: dict, messages: List[dict]) -> Optional[bool]:
    """For a turn expecting one item: is it answered first or offered among the clarify buttons?"""
    if "item" not in expect:
        return None
    card = card_of(messages)
    if card is None:
        return False
    if card["kind"] == "answer":
        firsts = [c.get("item") for c in card.get("citations", [])][:1]
        return expect["item"] in firsts
    if card["kind"] == "clarify":
        return expect["item"] in [c.get("item") for c in card.get("candidates", [])][:3]
    return False


def load_cases(path: str, split: Optional[str] = None) -> List[dict]:
    with open(path, encoding="utf-8") as fh:
        cases = [json.loads(line) for line in fh if line.strip()]
    return [c for c in cases if split is None or c.get("split") == split]


def send(url: str, sender: str, text: str, timeout: float = 30.0):
    t0 = time.perf_counter()
    r = requests.post(f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": text}, timeout=timeout)
    dt = time.perf_counter() - t0
    r.raise_for_status()
    return r.json(), dt


def run(path: str, url: str, verbose: bool = False, split: Optional[str] = None) -> dict:
    per_cat = defaultdict(lambda: [0, 0])
    per_cls = defaultdict(lambda: [0, 0])
    top3 = [0, 0]
    latencies = []
    failures = []
    cases = load_cases(path, split)
    for case in cases:
        sender = f"eval-{case['id']}-{uuid.uuid4().hex[:8]}"
        turns = case.get("turns") or [{"text": case["text"], "expect": case["expect"]}]
        ok_all, why = True, ""
        for turn in turns:
            try:
                messages, dt = send(url, sender, turn["text"])
                latencies.append(dt)
                ok, reason = check(turn["expect"], messages)
                hit3 = in_top3(turn["expect"], messages)
                if hit3 is not None:
                    top3[0] += hit3
                    top3[1] += 1
            except Exception as exc:  # network error or bad JSON counts as a failure
                ok, reason, messages = False, f"error: {exc}", []
            if not ok:
                ok_all, why = False, f"{turn['text']!r}: {reason}"
                break
        per_cat[case.get("cat", "?")][0] += ok_all
        per_cat[case.get("cat", "?")][1] += 1
        per_cls[case.get("cls", "plain")][0] += ok_all
        per_cls[case.get("cls", "plain")][1] += 1
        if not ok_all:
            failures.append((case["id"], why))
            if verbose:
                print(f"FAIL {case['id']} [{case.get('cat')}/{case.get('cls', 'plain')}]: {why}", file=sys.stderr)
    total_ok = sum(v[0] for v in per_cat.values())
    total = sum(v[1] for v in per_cat.values())
    lat_ms = sorted(x * 1000 for x in latencies)
    report = {
        "categories": {k: {"correct": v[0], "total": v[1], "accuracy": v[0] / v[1]} for k, v in per_cat.items()},
        "classes": {k: {"correct": v[0], "total": v[1], "accuracy": v[0] / v[1]} for k, v in per_cls.items()},
        "top3": {"correct": top3[0], "total": top3[1], "rate": top3[0] / top3[1] if top3[1] else None},
        "overall": {"correct": total_ok, "total": total, "accuracy": total_ok / total if total else 0.0},
        "latency_ms": {
            "p50": statistics.median(lat_ms) if lat_ms else None,
            "p95": lat_ms[int(0.95 * (len(lat_ms) - 1))] if lat_ms else None,
            "mean": statistics.mean(lat_ms) if lat_ms else None,
        },
        "failures": failures,
    }
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bot.eval")
    p.add_argument("file")
    p.add_argument("--url", default="http://127.0.0.1:5005")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--split", help="only cases whose split is this (tune or heldout)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--show-heldout-failures", action="store_true",
                   help="with --split heldout, print the failing questions (only for whoever writes a new split)")
    args = p.parse_args(argv)
    verbose = args.verbose and (args.split != "heldout" or args.show_heldout_failures)
    report = run(args.file, args.url, verbose, args.split)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=1))
        return 0
    for cat, v in sorted(report["categories"].items()):
        print(f"{cat:14s} {v['correct']:3d}/{v['total']:<3d} {v['accuracy']:.0%}")
    print("-- phrasing class")
    for cls, v in sorted(report["classes"].items()):
        print(f"{cls:14s} {v['correct']:3d}/{v['total']:<3d} {v['accuracy']:.0%}")
    o = report["overall"]
    t3 = report["top3"]
    if t3["total"]:
        print(f"{'top-3':14s} {t3['correct']:3d}/{t3['total']:<3d} {t3['rate']:.0%}")
    print(f"{'overall':14s} {o['correct']:3d}/{o['total']:<3d} {o['accuracy']:.0%}")
    lat = report["latency_ms"]
    if lat["p50"] is not None:
        print(f"latency ms: p50 {lat['p50']:.0f}  p95 {lat['p95']:.0f}  mean {lat['mean']:.0f}")
    if args.split == "heldout" and not args.show_heldout_failures:
        # the held-out split stays unseen by whoever tunes the bot: counts only
        print(f"({len(report['failures'])} failures not shown: held-out split)")
        return 0
    for cid, why in report["failures"]:
        print(f"FAIL {cid}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
