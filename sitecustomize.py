"""Imported by Python at start-up when the repository root is on PYTHONPATH (the Makefile,
scripts/run.sh, deploy/ and tests set it):

* defers Rasa's TensorFlow import until a component needs it (bot/lazy_tensorflow.py);
* one OpenBLAS thread unless OPENBLAS_NUM_THREADS says otherwise. numpy's OpenBLAS starts a
  worker per core and splits even the small matrix-vector products of a message (the dense item
  scores, bot/retrieval/dense.py) across them; its workers then spin waiting for the next one, so
  a Rasa server burned ~6 ms of a second core per message for nothing (docs/benchmarks.md,
  2026-12-06) and took that core from the action server. The products are split by rows, so the
  results are the same numbers with one thread. Must be set before numpy is imported.
"""
import os as _os

if "OPENBLAS_NUM_THREADS" not in _os.environ:
    _os.environ["OPENBLAS_NUM_THREADS"] = "1"
    _os.environ["ZWZX_OPENBLAS_DEFAULTED"] = "1"  # set here, not by the user (bench/run.py: stock_plain)

try:
    from bot.lazy_tensorflow import install as _install_lazy_tensorflow

    _install_lazy_tensorflow()
except Exception:  # never break interpreter start-up
    pass
