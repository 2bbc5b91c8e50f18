"""The compact pkuseg model (bot/nlp/pkuseg_compact.py) segments exactly like stock pkuseg.

Token agreement is checked against ``pkuseg.pkuseg`` itself (loaded once, ~3 s, ~800 MB) on
every knowledge-base sentence and title (build/index.json), on every question of the
evaluation sets (../shared/eval/dev.jsonl, tests/data/*.jsonl) and on edge cases (digits,
Latin letters, pkuseg's keyword characters, spaces, long texts), with the knowledge base's
user dictionary and without one.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.nlp import pkuseg_compact
from bot.nlp.segmenter import CHUNK_RE, CJK_RE, Segmenter, load_pkuseg, user_dict_path

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "eval" / "dev.jsonl"

EDGE_CASES = [
    "", " ", "。", "的", "宁", "\u3000", "a", "1",
    "2021年底前完成26个领域的标准化工作",
    "十四五规划和二〇三五年远景目标纲要",
    "IPv6部署、5G网络和ＡＢＣ１２３全角字符",
    "a-b.c_d,e|f/g*h:i 关键字符-._,|/*:混在中文里",
    "政府 信息   公开\t工作\n要点",
    "“双随机、一公开”监管（含〔2021〕3号文）《条例》【重点】",
    "😀表情符号和繁體字政務公開",
    "金**公司和(*´ω`*)颜文字",
    "哈" * 300,
    "深入贯彻落实党中央国务院关于全面推进政务公开工作的决策部署" * 20,
]


def _walk_texts(obj, out):
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "text" and isinstance(value, str):
                out.append(value)
            else:
                _walk_texts(value, out)
    elif isinstance(obj, list):
        for value in obj:
            _walk_texts(value, out)


def kb_texts():
    index = ROOT / "build" / "index.json"
    if not index.exists():
        pytest.fail("build/index.json missing: run `make kb` (python -m bot.kb build) first")
    data = json.loads(index.read_text(encoding="utf-8"))
    out = []
    for item in data["items"]:
        out.append("".join(item["title_tokens"]))
        out.extend(s["text"] for s in item["sentences"])
    assert len(out) > 50
    return out


def question_texts():
    files = sorted(glob.glob(str(ROOT / "tests" / "data" / "*.jsonl")))
    if DEV.exists():
        files.insert(0, str(DEV))
    out = []
    for path in files:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                _walk_texts(json.loads(line), out)
    assert len(out) > 500
    return out


def with_chunks(texts):
    """The texts plus the CJK runs the Segmenter hands to pkuseg (bot/nlp/segmenter.py)."""
    out = list(texts)
    for text in texts:
        out.extend(m.group(0) for m in CHUNK_RE.finditer(text) if CJK_RE.search(m.group(0)))
    return out


@pytest.fixture(scope="module")
def user_words():
    path = user_dict_path()
    if not path.exists():
        pytest.fail(f"{path} missing: run `make kb` first")
    words = [w for w in path.read_text(encoding="utf-8").split("\n") if w.strip()]
    assert words
    return sorted(set(w for w in words if CJK_RE.search(w)))  # as Segmenter passes them


@pytest.fixture(scope="module")
def stock(user_words):
    import pkuseg

    return {"dict": pkuseg.pkuseg(user_dict=user_words), "default": pkuseg.pkuseg()}


@pytest.fixture(scope="module")
def compact(user_words):
    return {"dict": pkuseg_compact.compact_pkuseg(user_dict=user_words),
            "default": pkuseg_compact.compact_pkuseg()}


def _disagreements(texts, a, b):
    return [(t, x, y) for t in texts for x, y in [(a.cut(t), b.cut(t))] if x != y]


@pytest.mark.parametrize("which", ["dict", "default"])
def test_same_tokens_on_knowledge_base(stock, compact, which):
    texts = with_chunks(kb_texts())
    bad = _disagreements(texts, compact[which], stock[which])
    assert not bad, f"{len(bad)}/{len(texts)} KB texts segmented differently, e.g. {bad[:3]}"


@pytest.mark.parametrize("which", ["dict", "default"])
def test_same_tokens_on_evaluation_questions(stock, compact, which):
    texts = with_chunks(question_texts())
    bad = _disagreements(texts, compact[which], stock[which])
    assert not bad, f"{len(bad)}/{len(texts)} questions segmented differently, e.g. {bad[:3]}"


@pytest.mark.parametrize("which", ["dict", "default"])
def test_same_tokens_on_edge_cases(stock, compact, which):
    bad = _disagreements(EDGE_CASES, compact[which], stock[which])
    assert not bad, bad[:3]
    assert compact[which].cut("") == []


def test_no_user_dictionary_is_the_same_too(stock):
    import pkuseg

    plain_stock = pkuseg.pkuseg(user_dict=None)
    plain = pkuseg_compact.compact_pkuseg(user_dict=None)
    texts = with_chunks(question_texts()[:200])
    assert not _disagreements(texts, plain, plain_stock)


def test_segmenter_uses_compact_model_and_stock_on_request(monkeypatch, user_words):
    seg = Segmenter(user_words)
    assert type(seg._pkuseg()).__name__ == "CompactPkuseg"
    monkeypatch.setenv("ZWZX_PKUSEG", "stock")
    import pkuseg

    assert type(load_pkuseg(user_words)) is pkuseg.pkuseg


def test_segmenter_tokens_and_offsets_identical(stock, user_words, monkeypatch):
    texts = question_texts() + EDGE_CASES
    compact_seg = Segmenter(user_words)
    stock_seg = Segmenter(user_words)
    stock_seg._model = stock["dict"]
    for text in texts:
        assert compact_seg.tokenize(text) == stock_seg.tokenize(text), text


def test_model_files_are_memory_mapped():
    model = pkuseg_compact.open_model()
    import numpy as np

    assert isinstance(model.w, np.memmap) and model.w.dtype == np.float64
    assert model.w.shape[0] == model.n_tag * (model.n_feature + model.n_tag)
    assert model.n_feature > 2_000_000 and model.n_tag == 5
    maps = Path("/proc/self/maps").read_text()
    for name in ("weights.npy", "feature_ids.npy", "features.marisa", "unigram.marisa", "postdict.marisa"):
        assert str(model.directory / name) in maps, f"{name} is not mapped"


def test_stale_model_is_detected(tmp_path):
    src = pkuseg_compact.ensure_built()
    copy = tmp_path / "pkuseg"
    copy.mkdir()
    for name in pkuseg_compact._FILES:
        if name == "meta.json":
            shutil.copy(src / name, copy / name)
        else:
            (copy / name).symlink_to(src / name)
    assert pkuseg_compact.is_current(copy)
    meta = json.loads((copy / "meta.json").read_text(encoding="utf-8"))
    meta["source"]["pkuseg"] = "0.0.0"
    (copy / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    assert not pkuseg_compact.is_current(copy)
    (copy / "meta.json").unlink()
    assert not pkuseg_compact.is_current(copy)


def test_process_memory_small_after_segmenting():
    """In a fresh process: loading the compact model and segmenting the KB costs a few tens of
    MB of private memory (stock: ~810 MB), and nothing of the stock model is unpickled."""
    code = r"""
import json, sys
sys.path.insert(0, %r)
def private_kb():
    out = {}
    for line in open('/proc/self/smaps_rollup'):
        k, _, v = line.partition(':')
        if k in ('Rss', 'Anonymous', 'Private_Dirty'):
            out[k] = int(v.split()[0])
    return out
import numpy, marisa_trie, pkuseg  # the imports, measured apart
before = private_kb()
from bot.nlp.segmenter import default_segmenter
seg = default_segmenter()
data = json.load(open(%r))
for item in data['items']:
    for s in item['sentences']:
        seg.words(s['text'])
after = private_kb()
import pickle
print(json.dumps({k: (after[k] - before[k]) / 1024 for k in after}))
""" % (str(ROOT), str(ROOT / "build" / "index.json"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("ZWZX_PKUSEG", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    grown = json.loads(out.stdout.strip().splitlines()[-1])
    print(grown)
    assert grown["Anonymous"] < 60, grown  # MB of private memory for model + segmenting
    assert grown["Rss"] < 200, grown       # including the mapped pages that were touched


def _cached_fraction(path: Path) -> float:
    """Fraction of the file's pages in the page cache (mincore on a mapping never touched)."""
    import ctypes
    import mmap

    size = path.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        vec = ctypes.create_string_buffer(pages)
        assert libc.mincore(addr, size, vec) == 0
        libc.munmap(addr, size)
    finally:
        os.close(fd)
    return sum(b & 1 for b in vec.raw) / pages


def test_built_files_leave_the_page_cache(tmp_path, monkeypatch):
    """The files are written out and dropped from the page cache before they are renamed into
    place, so a server's pages come in through its own faults (small folios), not as the large
    folios of the write, which the kernel maps whole (docs/benchmarks.md, "Serving memory, 2026-12-06")."""
    d = tmp_path / "written"
    d.mkdir()
    (d / "weights.npy").write_bytes(os.urandom(8 << 20))
    assert _cached_fraction(d / "weights.npy") > 0.9  # just written: in the cache
    pkuseg_compact.drop_page_cache(d)
    assert _cached_fraction(d / "weights.npy") < 0.1

    seen = []
    monkeypatch.setattr(pkuseg_compact, "drop_page_cache", lambda directory: seen.append(sorted(
        p.name for p in Path(directory).iterdir())))
    pkuseg_compact.build(tmp_path / "pkuseg")
    assert seen == [sorted(pkuseg_compact._FILES)]
