"""TensorFlow stays out of our Rasa servers (bot/lazy_tensorflow.py, sitecustomize.py).

Each check runs in a fresh interpreter with the repository on PYTHONPATH, as the Makefile,
scripts/run.sh and deploy/ start Rasa. If a Rasa upgrade brings TensorFlow back onto the
serving path, renames the modules named in bot/lazy_tensorflow.py or changes
ModelMetadata.from_dict, these tests fail.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "zhengwu.tar.gz"


def run_py(code: str, eager: bool = False, timeout: float = 120) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3",
               SQLALCHEMY_SILENCE_UBER_WARNING="1")
    env.pop("ZWZX_EAGER_TF", None)
    if eager:
        env["ZWZX_EAGER_TF"] = "1"
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=str(ROOT), env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


PROBE = """
import json, sys
def tf():
    return "tensorflow" in sys.modules
"""


def test_sitecustomize_installs_the_lazy_loader():
    res = run_py(PROBE + """
import sitecustomize, bot.lazy_tensorflow as lt
print(json.dumps({"file": sitecustomize.__file__, "installed": lt._installed}))
""")
    assert Path(res["file"]).resolve() == ROOT / "sitecustomize.py"
    assert res["installed"] is True


def test_serving_imports_do_not_import_tensorflow():
    res = run_py(PROBE + """
import rasa.core.agent, rasa.core.run, rasa.server, rasa.cli.run
import rasa.core.policies.rule_policy, rasa.core.policies.memoization
import rasa.nlu.classifiers.logistic_regression_classifier, rasa.nlu.classifiers.fallback_classifier
import rasa.nlu.extractors.regex_entity_extractor, rasa.nlu.extractors.entity_synonyms
import rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer
import bot.nlu.pkuseg_tokenizer, bot.channels, bot.ops.tracker_cache
from bot.lazy_tensorflow import is_lazy
print(json.dumps({"tf": tf(), "lazy": is_lazy("rasa.utils.train_utils")}))
""")
    assert res == {"tf": False, "lazy": True}


def test_without_the_loader_rasa_imports_tensorflow():
    """The chain bot/lazy_tensorflow.py names is still the one that imports TensorFlow: with the
    loader switched off, importing rasa.core.agent imports it (if a Rasa upgrade stops doing so,
    this fails and the module can be retired)."""
    res = run_py(PROBE + """
import rasa.core.agent
from bot.lazy_tensorflow import is_lazy
print(json.dumps({"tf": tf(), "lazy": is_lazy("rasa.utils.train_utils")}))
""", eager=True)
    assert res == {"tf": True, "lazy": False}


@pytest.mark.skipif(not MODEL.exists(), reason="models/zhengwu.tar.gz not trained (make train)")
def test_loading_our_model_and_answering_keeps_tensorflow_out():
    res = run_py(PROBE + f"""
import asyncio
from rasa.core.agent import Agent
agent = Agent.load({str(MODEL)!r})
meta = agent.processor.model_metadata
after_load = tf()
parsed = asyncio.run(agent.parse_message("财政预决算信息会公开吗"))
after_parse = tf()
deferred = type(meta.train_schema).__name__
materialized_before = meta.train_schema.is_materialized
print(json.dumps({{"after_load": after_load, "after_parse": after_parse,
                  "intent": parsed["intent"]["name"], "deferred": deferred,
                  "materialized": materialized_before,
                  "tokens": parsed.get("tokens_zh")}}, ensure_ascii=False))
""")
    assert res["after_load"] is False and res["after_parse"] is False
    assert res["intent"] == "ask_policy"
    assert res["tokens"]  # our tokenizer ran
    assert res["deferred"] == "DeferredGraphSchema" and res["materialized"] is False


@pytest.mark.skipif(not MODEL.exists(), reason="models/zhengwu.tar.gz not trained (make train)")
def test_deferred_train_schema_equals_rasas_own():
    """Reading the training schema gives what Rasa's GraphSchema.from_dict builds (and loads
    whatever it names, e.g. the recipe validator, then)."""
    res = run_py(PROBE + f"""
import tarfile, tempfile, pathlib
from rasa.engine.graph import GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.storage import ModelMetadata
tmp = pathlib.Path(tempfile.mkdtemp())
_, meta = LocalModelStorage.from_model_archive(tmp / "s", pathlib.Path({str(MODEL)!r}))
with tarfile.open({str(MODEL)!r}) as tar:
    raw = json.load(tar.extractfile("metadata.json"))
before = tf()
own = GraphSchema.from_dict(raw["train_schema"])
print(json.dumps({{
    "before": before,
    "same": meta.train_schema.as_dict() == own.as_dict(),
    "nodes_same": list(meta.train_schema.nodes) == list(own.nodes),
    "uses_same": all(meta.train_schema.nodes[k].uses is own.nodes[k].uses for k in own.nodes),
    "isinstance": isinstance(meta.train_schema, GraphSchema),
    "predict_same": meta.predict_schema.as_dict() == GraphSchema.from_dict(raw["predict_schema"]).as_dict(),
    "wrapped": getattr(ModelMetadata.from_dict, "_zwzx_deferred", False),
    "roundtrip": ModelMetadata.from_dict(meta.as_dict()).as_dict() == meta.as_dict(),
}}))
""")
    assert res["before"] is False, res
    assert all(res[k] for k in ("same", "nodes_same", "uses_same", "isinstance", "predict_same",  # noqa
                                "wrapped", "roundtrip")), res


def test_first_attribute_access_loads_the_real_module():
    res = run_py(PROBE + """
import rasa.utils.train_utils as tu
from bot.lazy_tensorflow import is_lazy
lazy_before, tf_before = is_lazy("rasa.utils.train_utils"), tf()
fn = tu.update_similarity_type                       # first attribute access runs the module
from rasa.utils.train_utils import update_evaluation_parameters
print(json.dumps({"lazy_before": lazy_before, "tf_before": tf_before,
                  "lazy_after": is_lazy("rasa.utils.train_utils"), "tf_after": tf(),
                  "callable": callable(fn) and callable(update_evaluation_parameters)}))
""")
    assert res == {"lazy_before": True, "tf_before": False, "lazy_after": False, "tf_after": True,
                   "callable": True}


def test_tensorflow_components_still_import():
    res = run_py(PROBE + """
from rasa.nlu.classifiers.diet_classifier import DIETClassifier
from rasa.core.policies.ted_policy import TEDPolicy
from rasa.nlu.extractors.crf_entity_extractor import CRFEntityExtractor
import rasa.utils.train_utils as tu
print(json.dumps({"tf": tf(), "names": [DIETClassifier.__name__, TEDPolicy.__name__],
                  "has": hasattr(tu, "create_data_generators")}))
""")
    assert res["tf"] is True and res["has"] is True


def test_concurrent_first_access_is_safe():
    res = run_py(PROBE + """
import threading
import rasa.utils.train_utils as tu
results, errors = [], []
def worker():
    try:
        results.append(tu.update_similarity_type is not None and tu.update_evaluation_parameters is not None)
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=worker) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"ok": results, "errors": errors}))
""", timeout=180)
    assert res["errors"] == [] and res["ok"] == [True] * 8


def test_switch_off_and_too_late():
    res = run_py(PROBE + """
import os
import bot.lazy_tensorflow as lt
installed_at_start = lt._installed
import rasa.utils.train_utils          # imported for real (switched off)
os.environ.pop("ZWZX_EAGER_TF")
print(json.dumps({"installed": installed_at_start, "tf": tf(), "late_install": lt.install()}))
""", eager=True)
    assert res == {"installed": False, "tf": True, "late_install": False}
