"""sitecustomize.py gives every process of the project one OpenBLAS thread (numpy's workers spun
on the second core after each small product: ~6 ms CPU a message in a Rasa server), unless
OPENBLAS_NUM_THREADS is set; the dense item scores are the same numbers either way."""
import json
import os
import subprocess
import sys

from tests.servers import ROOT

PROBE = ("import json, numpy, threadpoolctl; "
         "print(json.dumps([i['num_threads'] for i in threadpoolctl.threadpool_info() "
         "if i['internal_api'] == 'openblas']))")


def _openblas_threads(**env):
    full = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    full.update(PYTHONPATH=str(ROOT), **env)
    out = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True, text=True,
                         timeout=120, cwd=str(ROOT))
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_openblas_thread_by_default():
    assert _openblas_threads() == [1]


def test_an_explicit_setting_is_kept():
    if (os.cpu_count() or 1) < 2:
        return
    assert _openblas_threads(OPENBLAS_NUM_THREADS="2") == [2]


PRODUCTS = ("import hashlib, numpy as np; rng = np.random.default_rng(0); "
            "v = rng.standard_normal((223, 384)).astype(np.float32); "   # the shape of build/dense.npy
            "q = rng.standard_normal((50, 384)).astype(np.float32); "
            "print(hashlib.sha256(b''.join((v @ x).tobytes() for x in q)).hexdigest())")


def test_matrix_vector_products_are_the_same_with_one_thread():
    def digest(threads):
        env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", PRODUCTS], env=env, capture_output=True, text=True,
                             timeout=120, cwd=str(ROOT))
        return out.stdout.strip().splitlines()[-1]
    assert digest("1") == digest("2")


def test_bench_starts_stock_plain_without_our_default():
    """bench/run.py's stock_plain (unmodified Rasa) gets nothing of ours: not the OpenBLAS
    default that sitecustomize.py put into the benchmark's own environment."""
    import importlib.util
    import tempfile
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("bench_run", str(ROOT / "bench" / "run.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    seen = {}

    class FakePopen:
        pid = 0

        def __init__(self, cmd, env=None, **kwargs):
            seen["actions" if "actions" in cmd else "rasa"] = env

    original = bench.subprocess.Popen
    bench.subprocess.Popen = FakePopen
    old = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "ZWZX_OPENBLAS_DEFAULTED")}
    try:
        os.environ.update(OPENBLAS_NUM_THREADS="1", ZWZX_OPENBLAS_DEFAULTED="1")
        with tempfile.TemporaryDirectory() as tmp:
            cfg = dict(bench.CONFIGS["stock_plain"], rasa_port=6398, action_port=6399)
            servers = bench.Servers("stock_plain", cfg, "model.tar.gz", Path(tmp))
            servers.start()
            for fh in servers._logs:
                fh.close()
        assert "OPENBLAS_NUM_THREADS" not in seen["rasa"] and "PYTHONPATH" not in seen["rasa"]
        assert seen["actions"]["OPENBLAS_NUM_THREADS"] == "1"   # the action server is ours
    finally:
        bench.subprocess.Popen = original
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
