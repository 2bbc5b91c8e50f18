"""NLU tokenizer cost: pkuseg (as our PkusegTokenizer uses it) vs jieba (Rasa's JiebaTokenizer).

    PYTHONPATH=. .venv/bin/python bench/seg_cost.py pkuseg|pkuseg_stock|jieba [--n 1000]

``pkuseg`` is our Segmenter on the compact memory-mapped model (bot/nlp/pkuseg_compact.py),
``pkuseg_stock`` the same Segmenter on stock ``pkuseg.pkuseg`` (ZWZX_PKUSEG=stock).

Run one segmenter per process (bench/run.py does) so the RSS figures are that library's
own: RSS after the import, after the model is loaded, load time, and the wall time to
segment N questions (bench/questions.txt cycled), best of 3. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def smaps_mb() -> dict:
    """Rss split into private (anonymous) memory and file-backed (shareable) pages."""
    out = {}
    with open("/proc/self/smaps_rollup") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("Rss", "Pss", "Anonymous"):
                out[key] = int(value.split()[0]) / 1024.0
    return out


def load_questions(n: int) -> list:
    qs = [l.split("|", 1)[1].strip() for l in (HERE / "questions.txt").read_text(encoding="utf-8").splitlines()
          if "|" in l and not l.startswith("#")]
    return [qs[i % len(qs)] for i in range(n)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("which", choices=["pkuseg", "pkuseg_stock", "jieba"])
    p.add_argument("--n", type=int, default=1000)
    args = p.parse_args(argv)
    questions = load_questions(args.n)
    out = {"segmenter": args.which, "n": args.n, "rss_start_mb": rss_mb()}

    t0 = time.perf_counter()
    if args.which.startswith("pkuseg"):
        os.environ["ZWZX_PKUSEG"] = "stock" if args.which == "pkuseg_stock" else "compact"
        from bot.nlp.segmenter import Segmenter, user_dict_path

        path = user_dict_path()
        words = path.read_text(encoding="utf-8").split("\n") if path.exists() else []
        out["user_dict_words"] = len([w for w in words if w.strip()])
        out["rss_after_import_mb"] = rss_mb()
        seg = Segmenter(words)
        seg.words("预热")  # loads the model, as PkusegTokenizer.load does
        cut = seg.tokenize
    else:
        import jieba

        jieba.setLogLevel(60)
        out["rss_after_import_mb"] = rss_mb()
        jieba.initialize()

        def cut(text):  # what rasa's JiebaTokenizer calls
            return list(jieba.tokenize(text))

    out["load_s"] = time.perf_counter() - t0
    out["rss_loaded_mb"] = rss_mb()

    runs = []
    for _ in range(3):
        t1 = time.perf_counter()
        for q in questions:
            cut(q)
        runs.append(time.perf_counter() - t1)
    out["segment_s_best"] = min(runs)
    out["segment_s_runs"] = runs
    out["per_question_ms"] = min(runs) / args.n * 1000
    out["rss_end_mb"] = rss_mb()
    out["smaps_end_mb"] = smaps_mb()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(HERE.parent))
    sys.exit(main())
