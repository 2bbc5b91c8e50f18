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


def answerer_for(tmp_path_factory, documents: dict):
    """An Answerer and its segmenter over the given documents only ({file name: text or a path
    to copy}), built in a temporary directory, as `make kb` builds the project's."""
    import shutil

    from bot.answering.answerer import Answerer
    from bot.kb.generate import write_user_dict
    from bot.kb.store import DEFAULT_CONFIG_DIR
    from bot.nlp.segmenter import Segmenter
    from bot.retrieval.search import PolicyIndex, build_index

    policies = tmp_path_factory.mktemp("policies")
    for name, source in documents.items():
        if isinstance(source, Path):
            shutil.copy(source, policies / name)
        else:
            (policies / name).write_text(source, encoding="utf-8")
    kb = build_kb(policies, DEFAULT_CONFIG_DIR)
    seg = Segmenter(write_user_dict(kb, tmp_path_factory.mktemp("build") / "dict.txt"))
    return Answerer(kb, PolicyIndex(kb, build_index(kb, seg))), seg


# the trained model, parsed as the server does (tests/test_dense.py, tests/test_dense_handoff.py)
@pytest.fixture(scope="module")
def agent():
    from rasa.core.agent import Agent

    model = ROOT / "models" / "zhengwu.tar.gz"
    if not model.exists():
        pytest.fail("make train builds models/zhengwu.tar.gz")
    return Agent.load(str(model))
