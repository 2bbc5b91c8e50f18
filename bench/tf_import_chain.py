"""Which import chain brings TensorFlow into a process, and what each import step costs.

    PYTHONPATH=. .venv/bin/python bench/tf_import_chain.py                 # chain of `import rasa.core.agent`
    PYTHONPATH=. .venv/bin/python bench/tf_import_chain.py rasa.server bot.nlu.pkuseg_tokenizer
    ZWZX_EAGER_TF=1 PYTHONPATH=. .venv/bin/python bench/tf_import_chain.py   # as unmodified Rasa does
    PYTHONPATH=. .venv/bin/python bench/tf_import_chain.py --steps           # RSS/time per import step

Default mode: imports the given modules (default ``rasa.core.agent``) and, when ``tensorflow``
is first imported, prints the chain of modules being imported at that moment (outermost
first), with the line of each ``import`` statement. With bot/lazy_tensorflow.py active (the
default when the repository is on PYTHONPATH) it should print "tensorflow not imported".

``--steps``: imports what a Rasa server of ours imports, one step after the other, and prints
after each step the process's RSS, anonymous memory and file-backed RSS from
/proc/self/smaps_rollup and the time it took (the breakdown in docs/benchmarks.md). Output
ends with one JSON line.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def smaps_mb() -> dict:
    out = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Rss", "Pss", "Anonymous", "Shared_Clean", "Private_Clean", "Private_Dirty"):
            out[key] = int(value.split()[0]) / 1024
    out["File"] = out.get("Rss", 0) - out.get("Anonymous", 0)
    return out


class _ChainFinder:
    """Meta path finder that records the import stack when `target` is first looked up."""

    def __init__(self, target: str):
        self.target = target
        self.chain = None

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.target and self.chain is None:
            self.chain = []
            for frame in traceback.extract_stack()[:-1]:
                if ("importlib" in frame.filename or frame.filename.startswith("<frozen")
                        or Path(frame.filename).resolve() == Path(__file__).resolve()):
                    continue
                self.chain.append((_module_of(frame.filename), frame.lineno, (frame.line or "").strip()))
        return None


def _module_of(filename: str) -> str:
    path = Path(filename)
    bases = sorted({Path(p).resolve() for p in sys.path if p} | {ROOT}, key=lambda b: -len(str(b)))
    for base in bases:  # the most specific sys.path entry names the module
        try:
            rel = path.resolve().relative_to(base)
        except (ValueError, OSError):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts and parts[-1] == "__init__":
            parts = parts[:-1]
        return ".".join(parts) or filename
    return filename


def chain(modules) -> int:
    finder = _ChainFinder("tensorflow")
    sys.meta_path.insert(0, finder)
    t0 = time.perf_counter()
    for name in modules:
        importlib.import_module(name)
    dt = time.perf_counter() - t0
    mem = smaps_mb()
    lazy = None
    try:
        from bot.lazy_tensorflow import is_lazy

        lazy = is_lazy("rasa.utils.train_utils")
    except Exception:
        pass
    print(f"imported {', '.join(modules)} in {dt:.1f} s, RSS {mem['Rss']:.0f} MB "
          f"(anonymous {mem['Anonymous']:.0f} MB); rasa.utils.train_utils lazy: {lazy}")
    if finder.chain is None:
        print("tensorflow not imported")
    else:
        print("tensorflow imported through (outermost first):")
        for module, line, text in finder.chain:
            print(f"  {module}:{line}  {text}")
    print(json.dumps({"modules": list(modules), "tensorflow": "tensorflow" in sys.modules,
                      "chain": [m for m, _, _ in finder.chain or []], "seconds": round(dt, 2),
                      "rss_mb": round(mem["Rss"], 1), "anon_mb": round(mem["Anonymous"], 1)}))
    return 0


# What `rasa run` of ours imports and loads, step by step (one process, in this order).
STEPS = [
    ("python + site (sitecustomize)", None),
    ("numpy, scipy.sparse, sklearn", "import numpy, scipy.sparse, sklearn.linear_model"),
    ("rasa.shared (domain, events)", "import rasa.shared.core.domain, rasa.shared.core.events"),
    ("rasa.core.agent", "import rasa.core.agent"),
    ("rasa.server + sanic + rasa.core.run", "import rasa.server, rasa.core.run"),
    ("NLU components (CountVectors, LogReg, Regex, Fallback)",
     "import rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer, "
     "rasa.nlu.classifiers.logistic_regression_classifier, "
     "rasa.nlu.extractors.regex_entity_extractor, rasa.nlu.classifiers.fallback_classifier"),
    ("policies (Rule, Memoization)", "import rasa.core.policies.rule_policy"),
    ("our modules (tokenizer, channels, tracker store)",
     "import bot.nlu.pkuseg_tokenizer, bot.nlu.blank_guard, bot.nlu.retrieval_arbiter, "
     "bot.channels, bot.ops.tracker_cache"),
    ("Rasa model load (Agent.load; PkusegTokenizer.load opens pkuseg)", "agent_load"),
    ("first message handled (NLU + policies)", "first_message"),
]


def steps(model: str) -> int:
    import asyncio

    rows = []
    state = {}
    t_start = time.perf_counter()
    for label, code in STEPS:
        t0 = time.perf_counter()
        if code == "agent_load":
            from rasa.core.agent import Agent

            state["agent"] = Agent.load(model)
        elif code == "first_message":
            asyncio.run(state["agent"].parse_message("财政预决算信息会公开吗"))
        elif code:
            exec(code, {})
        dt = time.perf_counter() - t0
        mem = smaps_mb()
        rows.append({"step": label, "s": round(dt, 2), "rss_mb": round(mem["Rss"], 1),
                     "anon_mb": round(mem["Anonymous"], 1), "file_mb": round(mem["File"], 1),
                     "tensorflow": "tensorflow" in sys.modules})
    prev = None
    print(f"{'step':58s} {'time':>7s} {'RSS':>8s} {'+RSS':>7s} {'anon':>7s} {'file':>7s}  TF")
    for r in rows:
        delta = r["rss_mb"] - (prev["rss_mb"] if prev else 0)
        print(f"{r['step']:58s} {r['s']:6.2f}s {r['rss_mb']:7.0f}M {delta:+6.0f}M {r['anon_mb']:6.0f}M "
              f"{r['file_mb']:6.0f}M  {'yes' if r['tensorflow'] else 'no'}")
        prev = r
    total = time.perf_counter() - t_start
    print(f"total {total:.1f} s in this process (plus interpreter start-up)")
    print(json.dumps({"steps": rows, "total_s": round(total, 2),
                      "eager_tf": bool(os.environ.get("ZWZX_EAGER_TF")),
                      "pkuseg": os.environ.get("ZWZX_PKUSEG") or "compact"}, ensure_ascii=False))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("modules", nargs="*", default=["rasa.core.agent"])
    p.add_argument("--steps", action="store_true", help="RSS/time per import step of a Rasa server")
    p.add_argument("--model", default=str(ROOT / "models" / "zhengwu.tar.gz"))
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.steps:
        return steps(args.model)
    return chain(args.modules)


if __name__ == "__main__":
    sys.exit(main())
