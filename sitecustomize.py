"""Imported by Python at start-up when the repository root is on PYTHONPATH (the Makefile,
scripts/run.sh, deploy/ and tests set it): defers Rasa's TensorFlow import until a component
needs it. See bot/lazy_tensorflow.py."""
try:
    from bot.lazy_tensorflow import install as _install_lazy_tensorflow

    _install_lazy_tensorflow()
except Exception:  # never break interpreter start-up
    pass
