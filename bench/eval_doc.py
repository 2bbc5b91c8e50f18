"""Evaluate the whole bot on ANOTHER document instead of data/policies/*.

    PYTHONPATH=. .venv/bin/python bench/eval_doc.py DOC CASES [--split tune] [--json] [-v]
        [--keep DIR] [--reuse DIR] [--both] [--ref REV]
    make eval-doc DOC=… CASES=… [SPLIT=tune] [EVAL_DOC_ARGS="--keep /tmp/qs"]

What it does, in a workspace of its own (a temp dir, removed at the end unless ``--keep DIR``):

1. copies what ``make run`` serves from — config.yml, domain.yml, endpoints.yml, credentials.yml,
   handoff.yml, sitecustomize.py, bot/, actions/, web/, migrations/ and data/ without
   data/policies/ and the generated NLU file — and puts DOC alone into data/policies/ (with
   ``--both``, the project's data/policies/ningxiang-2021.txt beside it); from the working tree,
   or with ``--ref REV`` as committed at REV (``git archive``), so that someone's uncommitted edit
   is not what gets measured. The code is a copy, so every path the bot derives from its own
   location (build/, data/, handoff.yml, the widget secret) is the workspace's, and the
   project's build/, models/ and data/ are never written (build/pkuseg/, which does not depend
   on the document, is read);
2. builds the knowledge base there as ``make kb`` does (``python -m bot.kb build``: kb.json, the
   retrieval index, the dense vectors, the pkuseg user dictionary and data/nlu/generated_kb.yml);
3. trains the model there as ``make train`` does (``rasa train --fixed-model-name zhengwu``, its
   own Rasa cache), or takes the model of an earlier run with ``--reuse DIR`` (refused when
   it was trained on other inputs);
4. starts the action server and the Rasa server as scripts/run.sh does (schema upgrade, API on
   127.0.0.1 behind a random token, the project's channels and tracker store class), on two free
   ports in 6400–6499 with the workspace's own SQLite database, and waits for the first answer;
5. runs ``python -m bot.eval CASES --url … [--split S] [--json] [-v]`` and prints its report
   (stdout; progress, the KB validation report and timings go to stderr), then always stops
   both servers.

The held-out rule: when the selected cases include any with ``"split": "heldout"``, the failing
questions are never printed (no ``FAIL`` lines, no ``failures`` in ``--json``) and ``-v`` is refused.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.servers import port_is_free, stop_process_groups  # noqa: E402  (one definition each)

VENV_BIN = Path(sys.executable).parent
RASA = VENV_BIN / "rasa"
PORT_LO, PORT_HI = 6400, 6499
SEED_DOC = ROOT / "data" / "policies" / "ningxiang-2021.txt"
MARKER = ".eval_doc_workspace"
STAMP = "eval_doc_stamp.json"
MODEL_NAME = "zhengwu"
COPY_FILES = ("config.yml", "domain.yml", "endpoints.yml", "credentials.yml", "handoff.yml", "sitecustomize.py")
COPY_DIRS = ("bot", "actions", "web", "migrations")
# what `make train` retrains on (Makefile TRAIN_INPUTS + the KB's outputs the model embeds)
TRAIN_CODE = ("bot/nlu", "bot/nlp/segmenter.py", "bot/nlp/normalize.py")
WARMUP = "你好"


def log(msg: str = "") -> None:
    print(msg, file=sys.stderr, flush=True)


class Failure(RuntimeError):
    """A step failed; the message says which and why (no traceback needed). ``inspect``: the
    workspace is worth keeping to read its logs."""

    def __init__(self, message: str, inspect: bool = True):
        super().__init__(message)
        self.inspect = inspect


# ------------------------------------------------------------------------------ cases
def read_cases(path: Path, split: Optional[str]) -> Dict[str, int]:
    """Check the case file parses; count the selected cases and how many are held-out ones.
    Only the ``split`` key is looked at."""
    total = selected = heldout = 0
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                case = json.loads(line)
            except json.JSONDecodeError as exc:
                raise Failure(f"{path}: line {n} is not JSON ({exc.msg})") from None
            total += 1
            if split is None or case.get("split") == split:
                selected += 1
                heldout += case.get("split") == "heldout"
    return {"total": total, "selected": selected, "heldout": heldout}


# -------------------------------------------------------------------------- workspace
def _inside(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def prepare_workspace(keep: Optional[Path]) -> Path:
    if keep is None:
        return Path(tempfile.mkdtemp(prefix="eval_doc-"))
    keep = keep.expanduser().absolute()
    if _inside(keep, ROOT) or _inside(ROOT, keep):
        raise Failure(f"--keep {keep}: choose a directory outside the repository (e.g. /tmp/eval-doc)")
    if keep.exists():
        if not keep.is_dir():
            raise Failure(f"--keep {keep} exists and is not a directory")
        if any(keep.iterdir()):
            if not (keep / MARKER).exists():
                raise Failure(f"--keep {keep} is not empty and is not an earlier eval_doc workspace")
            shutil.rmtree(keep)  # an earlier workspace of ours: replaced
    keep.mkdir(parents=True, exist_ok=True)
    return keep


def _skip_data(rel: str) -> bool:
    """data/policies/ (the document under test goes there) and the generated NLU file (the KB
    build writes it) are not copied."""
    return rel == "data/policies" or rel.startswith("data/policies/") or rel == "data/nlu/generated_kb.yml"


def extract_ref(ws: Path, ref: str) -> None:
    """The project's files as committed at ``ref`` (``git archive``: reads the object store only)."""
    import io
    import tarfile

    paths = list(COPY_FILES) + list(COPY_DIRS) + ["data"]
    proc = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "--", *paths],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise Failure(f"--ref {ref}: git archive failed: {proc.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        members = [m for m in tar.getmembers() if not _skip_data(m.name.rstrip("/"))]
        tar.extractall(ws, members=members)


def populate(ws: Path, doc: Path, both: bool, ref: Optional[str]) -> List[Path]:
    if ref:
        extract_ref(ws, ref)
    else:  # the working tree, as `make run` serves it
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for name in COPY_FILES:
            shutil.copy2(ROOT / name, ws / name)
        for name in COPY_DIRS:
            shutil.copytree(ROOT / name, ws / name, ignore=ignore)

        def data_ignore(directory: str, names: List[str]) -> List[str]:
            rel = Path(directory).resolve().relative_to(ROOT.resolve()).as_posix()
            return [n for n in names if n == "__pycache__" or _skip_data(f"{rel}/{n}")]

        shutil.copytree(ROOT / "data", ws / "data", ignore=data_ignore)
    policies = ws / "data" / "policies"
    policies.mkdir()
    seed = SEED_DOC
    if both and ref:
        seed = ws / ".seed" / SEED_DOC.name
        seed.parent.mkdir()
        seed.write_bytes(subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:data/policies/{SEED_DOC.name}"],
                                        stdout=subprocess.PIPE, check=True).stdout)
    docs = [doc] + ([seed] if both else [])
    for d in docs:
        shutil.copy2(d, policies / d.name)
    shutil.rmtree(ws / ".seed", ignore_errors=True)
    for sub in ("build", "models", "logs"):
        (ws / sub).mkdir(exist_ok=True)
    (ws / MARKER).write_text("bench/eval_doc.py workspace\n", encoding="utf-8")
    return [policies / d.name for d in docs]


def base_env(ws: Path, pkuseg_dir: Path) -> Dict[str, str]:
    env = dict(os.environ)
    # whatever the caller's shell points these at, the workspace's own files are used
    for key in ("ZWZX_KB_PATH", "ZWZX_WIDGET_SECRET_FILE", "ZWZX_CREDENTIALS", "ZWZX_ENDPOINTS", "ZWZX_MODEL",
                "ZWZX_SHARED_STATE", "ZWZX_PROFILE"):
        env.pop(key, None)
    env.update(
        PYTHONPATH=str(ws),
        TF_CPP_MIN_LOG_LEVEL="3",
        SQLALCHEMY_SILENCE_UBER_WARNING="1",
        RASA_TELEMETRY_ENABLED="false",
        RASA_CACHE_DIRECTORY=str(ws / ".rasa" / "cache"),
        ZWZX_BUILD_DIR=str(ws / "build"),
        ZWZX_POLICY_DIR=str(ws / "data" / "policies"),
        ZWZX_NLU_OUT=str(ws / "data" / "nlu" / "generated_kb.yml"),
        ZWZX_MODEL_DIR=str(ws / "models"),
        ZWZX_DB_URL=f"sqlite:///{ws / 'build' / 'tracker.db'}",
        ZWZX_HANDOFF_CONFIG=str(ws / "handoff.yml"),
        ZWZX_PKUSEG_DIR=str(pkuseg_dir),
        ZWZX_RASA_TOKEN=secrets.token_hex(24),
    )
    return env


def run_step(name: str, argv: List[str], ws: Path, env: Dict[str, str], logfile: Optional[Path] = None,
             show: bool = False) -> str:
    """Run a command in the workspace; its output goes to logs/ (and stderr with ``show``)."""
    proc = subprocess.run([str(a) for a in argv], cwd=ws, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    out = proc.stdout or ""
    if logfile:
        logfile.write_text(out, encoding="utf-8")
    if show or proc.returncode != 0:
        log(out.rstrip()[-6000:] if proc.returncode else out.rstrip())
    if proc.returncode != 0:
        raise Failure(f"{name} failed (exit {proc.returncode})" + (f"; log: {logfile}" if logfile else ""))
    return out


def pkuseg_files(ws: Path, env: Dict[str, str]) -> Path:
    """The repository's compact pkuseg files (build/pkuseg/, read only: they depend on the
    installed pkuseg, not on the knowledge base); built into the workspace if missing."""
    repo = Path(os.environ.get("ZWZX_PKUSEG_DIR") or ROOT / "build" / "pkuseg")
    if (repo / "meta.json").exists():
        return repo
    own = ws / "build" / "pkuseg"
    log(f"{repo} missing: building pkuseg's compact files into the workspace")
    run_step("pkuseg compact build", [sys.executable, "-m", "bot.nlp.pkuseg_compact", "build", "--dir", own], ws,
             dict(env, ZWZX_PKUSEG_DIR=str(own)), ws / "logs" / "pkuseg.log")
    return own


# --------------------------------------------------------------------------- model
def training_stamp(ws: Path) -> str:
    """A digest of everything the model is trained on (config, domain, data/**/*.yml with the
    generated NLU file, the user dictionary the tokenizer stores, the NLU code)."""
    files = [ws / "config.yml", ws / "domain.yml", ws / "build" / "pkuseg_user_dict.txt"]
    files += sorted((ws / "data").rglob("*.yml"))
    for rel in TRAIN_CODE:
        p = ws / rel
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(ws)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def find_model(spec: Path) -> Path:
    spec = spec.expanduser()
    if spec.is_file():
        return spec
    for cand in (spec / "models" / f"{MODEL_NAME}.tar.gz", spec / f"{MODEL_NAME}.tar.gz"):
        if cand.is_file():
            return cand
    found = sorted(spec.glob("*.tar.gz")) + sorted(spec.glob("models/*.tar.gz"))
    if len(found) == 1:
        return found[0]
    raise Failure(f"--reuse {spec}: no model found (a workspace kept with --keep, a models directory or a .tar.gz)")


def stage_reuse(spec: Path) -> Dict[str, object]:
    """Copy the model to reuse (and its stamp) aside before any workspace is replaced."""
    model = find_model(spec)
    stage = Path(tempfile.mkdtemp(prefix="eval_doc-reuse-"))
    shutil.copy2(model, stage / f"{MODEL_NAME}.tar.gz")
    stamp_file = model.parent / STAMP
    stamp = json.loads(stamp_file.read_text(encoding="utf-8")) if stamp_file.exists() else None
    return {"source": model, "stage": stage, "stamp": stamp}


# ------------------------------------------------------------------------- servers
def free_ports(count: int) -> List[int]:
    ports = list(range(PORT_LO, PORT_HI + 1))
    start = random.randrange(len(ports))  # another run of this script picks elsewhere
    out = [p for p in ports[start:] + ports[:start] if port_is_free(p)][:count]
    if len(out) < count:
        raise Failure(f"no {count} free ports in {PORT_LO}-{PORT_HI}")
    return out


def write_endpoints(ws: Path, action_port: int) -> Path:
    """The project's endpoints.yml (its tracker store class) with the action server's port and
    the workspace's SQLite database."""
    cfg = yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8")) or {}
    cfg["action_endpoint"] = dict(cfg.get("action_endpoint") or {}, url=f"http://127.0.0.1:{action_port}/webhook")
    store = {k: v for k, v in (cfg.get("tracker_store") or {}).items()
             if k not in ("url", "port", "username", "password", "login_db", "query")}
    store.update(dialect="sqlite", db=str(ws / "build" / "tracker.db"))
    store.setdefault("type", "sql")
    cfg["tracker_store"] = store
    path = ws / "endpoints.yml"
    path.write_text("# written by bench/eval_doc.py from the project's endpoints.yml\n"
                    + yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


class Servers:
    def __init__(self, ws: Path, env: Dict[str, str]):
        self.ws, self.env, self.procs, self.files = ws, env, [], []

    def start(self, name: str, argv: List[str]) -> None:
        fh = open(self.ws / "logs" / f"{name}.log", "w")
        self.files.append(fh)
        p = subprocess.Popen([str(a) for a in argv], cwd=self.ws, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                             start_new_session=True)
        p.name = name  # type: ignore[attr-defined]
        self.procs.append(p)

    def check_alive(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise Failure(f"the {p.name} server exited (code {p.returncode}):\n" + self.tail(p.name))

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.ws / "logs" / f"{name}.log"
        return path.read_text(encoding="utf-8", errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        """Stop the servers started here (tests/servers.py: their own process groups only)."""
        stop_process_groups(self.procs)
        for fh in self.files:
            fh.close()
        self.procs, self.files = [], []


def wait_first_answer(servers: Servers, rasa_url: str, action_url: str, token: str, timeout: float) -> None:
    deadline = time.time() + timeout
    stage = "status"
    while True:
        servers.check_alive()
        try:
            if stage == "status":
                if requests.get(f"{action_url}/health", timeout=2).ok and \
                        requests.get(f"{rasa_url}/status", params={"token": token}, timeout=2).ok:
                    stage = "answer"
                    continue
            else:
                r = requests.post(f"{rasa_url}/webhooks/rest/webhook", timeout=60,
                                  json={"sender": f"eval-doc-warmup-{secrets.token_hex(4)}", "message": WARMUP})
                if r.ok and any(isinstance(m.get("custom"), dict) and "kind" in m["custom"] for m in r.json()):
                    return
        except requests.RequestException:
            pass
        except ValueError:  # not JSON yet
            pass
        if time.time() > deadline:
            raise Failure(f"no answer from the servers within {timeout:.0f} s (stage {stage}):\n"
                          + servers.tail("rasa") + "\n" + servers.tail("actions", 1500))
        time.sleep(0.5)


# ---------------------------------------------------------------------------- report
def print_report(out: str, as_json: bool, hide_failures: bool) -> None:
    if as_json:
        try:
            report = json.loads(out)
        except ValueError:
            raise Failure("bot.eval --json printed no JSON report" + ("" if hide_failures else f":\n{out[-2000:]}"),
                          inspect=False) from None
        if hide_failures:
            report["failures_hidden"] = len(report.pop("failures", []))
        print(json.dumps(report, ensure_ascii=False, indent=1))
        return
    hidden = 0
    for line in out.splitlines():
        if hide_failures and line.startswith("FAIL "):
            hidden += 1
            continue
        print(line)
    if hidden:
        print(f"({hidden} failures not shown: the selected cases include held-out ones)")


# ------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench/eval_doc.py", description=__doc__.split("\n\n")[0])
    p.add_argument("doc", type=Path, help="the document (.txt/.docx/.pdf/.html); its file name is its id")
    p.add_argument("cases", type=Path, help="JSONL case file for bot.eval")
    p.add_argument("--split", help="only cases of this split (tune or heldout)")
    p.add_argument("--json", action="store_true", help="bot.eval's report as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="bot.eval -v (refused when held-out cases are selected)")
    p.add_argument("--keep", type=Path, metavar="DIR", help="build the workspace in DIR and keep it (for --reuse)")
    p.add_argument("--reuse", type=Path, metavar="DIR",
                   help="reuse the model of a kept workspace (or a models dir / .tar.gz) instead of training")
    p.add_argument("--both", action="store_true", help="also load the project's ningxiang-2021.txt")
    p.add_argument("--ref", metavar="REV",
                   help="serve the project's files as committed at REV (git archive) instead of the working tree")
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for the first answer (default 300)")
    args = p.parse_args(argv)

    t_start = time.time()
    timings: Dict[str, float] = {}
    doc, cases = args.doc.expanduser().absolute(), args.cases.expanduser().absolute()
    if not doc.is_file():
        log(f"{doc}: no such file")
        return 2
    if args.both and doc.stem == SEED_DOC.stem:
        log(f"--both: {doc.name} has the same id as the project's {SEED_DOC.name}")
        return 2
    try:
        counts = read_cases(cases, args.split)
    except (OSError, Failure) as exc:
        log(str(exc))
        return 2
    hide_failures = counts["heldout"] > 0
    if args.verbose and hide_failures:
        log("-v refused: the selected cases include held-out ones (counts only); use --split tune")
        return 2
    if not counts["selected"]:
        log(f"{cases}: no cases" + (f" with split {args.split!r}" if args.split else ""))
        return 2
    if args.ref:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{args.ref}^{{commit}}"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if rev.returncode != 0:
            log(f"--ref {args.ref}: not a commit")
            return 2
        args.ref = rev.stdout.strip()
        log(f"serving the project's files as committed at {args.ref[:12]} (not the working tree)")
    log(f"document {doc.name} (id {doc.stem}); cases {cases.name}: {counts['selected']} of {counts['total']}"
        + (f" (split {args.split})" if args.split else "") + (", held-out failures hidden" if hide_failures else ""))
    if args.both:
        log(f"WARNING --both: {SEED_DOC.name} is loaded beside {doc.name}. The cases give item numbers without a "
            f"document, so an answer citing the same number in the other document counts as right and a clarify "
            f"between the two documents as wrong: the figures are not comparable with a run on {doc.name} alone.")

    staged = None
    ws = None
    servers = None
    interrupted = {"sig": None}
    failed = False

    def on_signal(signum, frame):
        interrupted["sig"] = signum
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, on_signal)
    try:
        if args.reuse:  # set aside before any workspace is (re)made: --keep DIR --reuse DIR may be one directory
            staged = stage_reuse(args.reuse)
        ws = prepare_workspace(args.keep)
        log(f"workspace {ws}" + ("" if args.keep else " (removed at the end; --keep DIR keeps it)"))
        populate(ws, doc, args.both, args.ref)
        env = base_env(ws, ROOT / "build" / "pkuseg")
        env["ZWZX_PKUSEG_DIR"] = str(pkuseg_files(ws, env))
        if env.get("ZWZX_DENSE", "on").lower() in ("off", "0", "false", "no"):
            log("ZWZX_DENSE is off: no dense vectors, the bot answers from words alone")
        timings["workspace"] = time.time() - t_start

        t = time.time()
        log("building the knowledge base (python -m bot.kb build) …")
        run_step("knowledge base build",
                 [sys.executable, "-m", "bot.kb", "build", "--policies", ws / "data" / "policies",
                  "--config", ws / "data" / "kb_config", "--out", ws / "build",
                  "--nlu-out", ws / "data" / "nlu" / "generated_kb.yml"],
                 ws, env, ws / "logs" / "kb_build.log", show=True)
        if env.get("ZWZX_DENSE", "on").lower() not in ("off", "0", "false", "no") and \
                not (ws / "build" / "dense.npy").exists():
            log("WARNING: no dense vectors were built (see the build output above)")
        timings["kb build"] = time.time() - t

        t = time.time()
        stamp = training_stamp(ws)
        model = ws / "models" / f"{MODEL_NAME}.tar.gz"
        if staged:
            old = staged["stamp"]
            if old is None:
                log(f"WARNING --reuse: {staged['source']} has no {STAMP}; cannot check it was trained on this "
                    f"document and the current NLU data")
            elif old.get("inputs") != stamp:
                raise Failure(f"--reuse {args.reuse}: that model was trained on other inputs "
                              f"({', '.join(old.get('documents', []))}, {old.get('trained', '?')}); "
                              f"the NLU data or document changed since. Run without --reuse to train.",
                              inspect=False)
            shutil.move(str(staged["stage"] / f"{MODEL_NAME}.tar.gz"), model)
            if old is not None:  # a kept workspace stays reusable
                (ws / "models" / STAMP).write_text(json.dumps(old, ensure_ascii=False, indent=1), encoding="utf-8")
            log(f"reusing the model {staged['source']}")
            timings["train (reused)"] = time.time() - t
        else:
            log("training (rasa train, as make train) …")
            run_step("rasa train", [RASA, "train", "--fixed-model-name", MODEL_NAME, "--out", ws / "models", "--quiet"],
                     ws, env, ws / "logs" / "train.log")
            if not model.exists():
                raise Failure(f"rasa train finished but {model} is missing; log: {ws / 'logs' / 'train.log'}")
            (ws / "models" / STAMP).write_text(json.dumps(
                {"inputs": stamp, "documents": sorted(p.name for p in (ws / "data" / "policies").iterdir()),
                 "trained": time.strftime("%Y-%m-%d %H:%M:%S")}, ensure_ascii=False, indent=1), encoding="utf-8")
            timings["train"] = time.time() - t

        t = time.time()
        run_step("schema upgrade", [sys.executable, "-m", "bot.ops.schema", "upgrade"], ws, env,
                 ws / "logs" / "schema.log")
        rasa_port, action_port = free_ports(2)
        endpoints = write_endpoints(ws, action_port)
        rasa_url, action_url = f"http://127.0.0.1:{rasa_port}", f"http://127.0.0.1:{action_port}"
        log(f"starting the action server on {action_port} and the Rasa server on {rasa_port} …")
        servers = Servers(ws, env)
        servers.start("actions", [RASA, "run", "actions", "--port", action_port, "--actions", "actions"])
        servers.start("rasa", [RASA, "run", "-i", "127.0.0.1", "--port", rasa_port, "--enable-api",
                               "--auth-token", env["ZWZX_RASA_TOKEN"], "--model", model,
                               "--endpoints", endpoints, "--credentials", ws / "credentials.yml"])
        wait_first_answer(servers, rasa_url, action_url, env["ZWZX_RASA_TOKEN"], args.timeout)
        timings["start → first answer"] = time.time() - t
        log(f"first answer after {timings['start → first answer']:.1f} s; evaluating …")

        t = time.time()
        cmd = [sys.executable, "-m", "bot.eval", cases, "--url", rasa_url]
        if args.split:
            cmd += ["--split", args.split]
        if args.json:
            cmd.append("--json")
        if args.verbose:
            cmd.append("-v")
        proc = subprocess.run([str(a) for a in cmd], cwd=ws, env=env, stdout=subprocess.PIPE,
                              stderr=None if args.verbose else subprocess.PIPE, text=True)
        if proc.returncode != 0:
            if not hide_failures:
                log((proc.stderr or "")[-3000:])
            raise Failure(f"bot.eval failed (exit {proc.returncode})")
        servers.check_alive()  # a server that died mid-run makes the figures meaningless
        timings["eval"] = time.time() - t
        print_report(proc.stdout, args.json, hide_failures)
        sys.stdout.flush()
        return 0
    except Failure as exc:
        log(f"eval_doc: {exc}")
        failed = exc.inspect
        return 1
    except KeyboardInterrupt:
        log("eval_doc: interrupted")
        return 130 if interrupted["sig"] is None else 128 + interrupted["sig"]
    finally:
        if servers is not None:
            servers.stop()
        signal.signal(signal.SIGTERM, old_term)
        if staged:
            shutil.rmtree(staged["stage"], ignore_errors=True)
        timings["total"] = time.time() - t_start
        log("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
        if ws is not None:
            if args.keep:
                log(f"workspace kept: {ws} (logs in {ws / 'logs'}; --reuse {ws} skips training)")
            elif failed:
                log(f"workspace left for inspection: {ws} (logs in {ws / 'logs'}; remove it when done)")
            else:
                shutil.rmtree(ws, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
