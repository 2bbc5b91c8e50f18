import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from bot.kb.store import build_kb  # noqa: E402

SEED = ROOT / "data" / "policies" / "ningxiang-2021.txt"


@pytest.fixture(scope="session")
def kb():
    return build_kb()


@pytest.fixture(scope="session")
def doc(kb):
    return kb.document("ningxiang-2021")
