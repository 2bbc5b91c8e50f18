import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Tickets created by in-process action tests go to a throw-away database, never build/tracker.db.
import tempfile  # noqa: E402

os.environ["ZWZX_DB_URL"] = "sqlite:///" + os.path.join(tempfile.mkdtemp(prefix="zwzx-tests-"), "tests.db")

import pytest  # noqa: E402

from bot.kb.store import build_kb  # noqa: E402

SEED = ROOT / "data" / "policies" / "ningxiang-2021.txt"


@pytest.fixture(scope="session")
def kb():
    return build_kb()


@pytest.fixture(scope="session")
def doc(kb):
    return kb.document("ningxiang-2021")
