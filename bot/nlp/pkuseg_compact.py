"""pkuseg's default model in compact, memory-mapped form — the same tokens at a fraction of
the memory.

Stock ``pkuseg.pkuseg()`` holds its model as Python objects: a dict of 2.64 M feature strings,
a set of 116 k words, a set of 1.12 M word pairs (used only for training) and a 390 k word
post-processing dictionary — about 810 MB per process, 2.5–3 s to unpickle. This module
converts them once (``python -m bot.nlp.pkuseg_compact build``, run by ``make``) into files
under ``build/pkuseg/``:

* ``features.marisa`` — the feature strings in a MARISA trie (marisa-trie), mmap-ed;
* ``feature_ids.npy`` — int32, trie key id → pkuseg's feature index;
* ``weights.npy`` — pkuseg's float64 weight vector, unchanged, mmap-ed (copy-on-write, never
  written, so the page cache is shared by every process on the host);
* ``unigram.marisa`` — the word set the feature extractor consults;
* ``postdict.marisa`` — the post-processing dictionary (``dicts/default.pkl``);
* ``meta.json`` — sizes, tag table and which pkuseg files it was built from.

Segmentation is pkuseg's own code: ``pkuseg.pkuseg.cut`` (user-dictionary pre-processing with
pkuseg's ``Preprocesser``, ``Postprocesser`` merging), pkuseg's Cython feature extractor
(``FeatureExtractor.get_node_features_idx``) and its Viterbi decoder
(``pkuseg.inference.decodeViterbi_fast``), on the same float64 weights. The only difference
is where the feature extractor looks strings up: for each text, every string that pkuseg's
extractor can ask about is looked up in the tries first, and the extractor then runs on a
small dict/set holding exactly the hits. Membership is therefore the same for every string it
asks about, the feature lists are the same, and so are the scores and tags.
tests/test_pkuseg_compact.py checks token identity against stock pkuseg on the knowledge base
and on the evaluation questions.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set

logger = logging.getLogger(__name__)

FORMAT = 2
ROOT = Path(__file__).resolve().parents[2]
_FILES = ("features.marisa", "feature_ids.npy", "weights.npy", "unigram.marisa",
          "postdict.marisa", "meta.json")
NO_WORD = "**noWord"


def compact_dir() -> Path:
    """build/pkuseg/ of the repository (ZWZX_PKUSEG_DIR to move it). It depends only on the
    installed pkuseg, not on the knowledge base, so a test's own ZWZX_BUILD_DIR does not
    rebuild it."""
    env = os.environ.get("ZWZX_PKUSEG_DIR", "").strip()
    return Path(env) if env else ROOT / "build" / "pkuseg"


def _pkuseg_files() -> Dict[str, Path]:
    import pkuseg

    base = Path(pkuseg.__file__).resolve().parent
    return {"features": base / "models" / "default" / "features.pkl",
            "weights": base / "models" / "default" / "weights.npz",
            "postdict": base / "dicts" / "default.pkl"}


def _source_stamp() -> dict:
    from importlib.metadata import version

    return {"format": FORMAT, "pkuseg": version("pkuseg"),
            **{name: path.stat().st_size for name, path in _pkuseg_files().items()}}


def is_current(directory: Optional[Path] = None) -> bool:
    directory = Path(directory or compact_dir())
    try:
        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return meta.get("source") == _source_stamp() and all((directory / f).exists() for f in _FILES)


def build(directory: Optional[Path] = None) -> Path:
    """Convert stock pkuseg's default model into the compact files (atomically)."""
    import marisa_trie
    import numpy as np

    directory = Path(directory or compact_dir())
    directory.parent.mkdir(parents=True, exist_ok=True)
    src = _pkuseg_files()
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=".pkuseg-", dir=directory.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; other users' servers read it too
    try:
        with open(src["features"], "rb") as fh:
            data = pickle.load(fh)
        feature_to_idx: Dict[str, int] = data["feature_to_idx"]
        # word-pair features come from pairs of real words; if none names NO_WORD, the
        # extractor's questions about pairs with NO_WORD are all misses and can be skipped
        ww_noword = any(k.startswith("ww.") and NO_WORD in k for k in feature_to_idx)
        trie = marisa_trie.Trie(feature_to_idx.keys())
        if len(trie) != len(feature_to_idx):
            raise RuntimeError("feature trie lost keys")
        ids = np.full(len(trie), -1, dtype=np.int32)
        for key, idx in feature_to_idx.items():
            ids[trie[key]] = idx
        if (ids < 0).any():
            raise RuntimeError("feature ids incomplete")
        trie.save(str(tmp / "features.marisa"))
        np.save(tmp / "feature_ids.npy", ids)
        n_features = len(feature_to_idx)
        tag_to_idx = dict(data["tag_to_idx"])
        unigram = data["unigram"]
        marisa_trie.Trie(unigram).save(str(tmp / "unigram.marisa"))
        has_empty_word = "" in set(unigram)
        ww_noword = ww_noword or NO_WORD in set(unigram)
        del data, feature_to_idx, trie, ids, unigram

        npz = np.load(src["weights"])
        sizes = [int(x) for x in npz["sizes"]]
        w = np.ascontiguousarray(npz["w"], dtype=np.float64)
        if sizes[1] != n_features or w.shape[0] != sizes[0] * (sizes[1] + sizes[0]):
            raise RuntimeError(f"weights {w.shape} do not match {sizes}")
        np.save(tmp / "weights.npy", w)
        del w, npz

        with open(src["postdict"], "rb") as fh:
            post_words = pickle.load(fh).strip().split("\n")
        marisa_trie.Trie(post_words).save(str(tmp / "postdict.marisa"))
        has_empty_post = "" in set(post_words)

        meta = {"source": _source_stamp(), "n_tag": sizes[0], "n_feature": sizes[1],
                "tag_to_idx": tag_to_idx, "unigram_has_empty": has_empty_word,
                "postdict_has_empty": has_empty_post,
                "ww_features_with_noword": ww_noword,
                "built": time.strftime("%Y-%m-%d %H:%M:%S"), "build_s": None}
        meta["build_s"] = round(time.perf_counter() - t0, 1)
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
        drop_page_cache(tmp)
        old = None
        if directory.exists():
            old = directory.with_name(directory.name + f".old-{os.getpid()}")
            os.replace(directory, old)
        os.replace(tmp, directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("compact pkuseg model built in %s (%.1f s)", directory, time.perf_counter() - t0)
    return directory


def drop_page_cache(directory: Path) -> None:
    """Write the new files out and drop them from the page cache. Written in large pieces, they
    sit there as large folios, and the kernel (6.18 here) maps a whole large folio — up to 2 MB
    — into a process that faults on any page of it: every Rasa server then held ~115 MB of
    these files after a few questions instead of ~55 MB when the pages come in through its own
    faults (docs/benchmarks.md, "Serving memory, 2026-12-06"). Only the resident size differs."""
    for path in sorted(Path(directory).iterdir()):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except (AttributeError, OSError):
            pass
        finally:
            os.close(fd)


_build_lock = threading.Lock()


def ensure_built(directory: Optional[Path] = None) -> Path:
    """The compact model's directory, built first if missing or stale (make does it normally)."""
    directory = Path(directory or compact_dir())
    if not is_current(directory):
        with _build_lock:
            if not is_current(directory):
                logger.warning("compact pkuseg model missing or stale in %s: building it "
                               "(python -m bot.nlp.pkuseg_compact build)", directory)
                build(directory)
    return directory


class CompactModel:
    """The memory-mapped model files, opened once per process."""

    def __init__(self, directory: Path):
        import marisa_trie
        import numpy as np

        self.directory = Path(directory)
        meta = json.loads((self.directory / "meta.json").read_text(encoding="utf-8"))
        self.meta = meta
        self.n_tag = int(meta["n_tag"])
        self.n_feature = int(meta["n_feature"])
        self.tag_to_idx = {str(k): int(v) for k, v in meta["tag_to_idx"].items()}
        self.features = marisa_trie.Trie().mmap(str(self.directory / "features.marisa"))
        self.feature_ids = np.load(self.directory / "feature_ids.npy", mmap_mode="r")
        # indexing a memoryview gives a Python int, ~10x faster than indexing a memmap
        self.feature_ids_view = memoryview(np.asarray(self.feature_ids))
        # 'c' (copy-on-write): pkuseg's Cython decoder wants a writable float64 buffer; the
        # array is never written, so its pages stay shared with the page cache.
        self.w = np.load(self.directory / "weights.npy", mmap_mode="c")
        self.unigram = marisa_trie.Trie().mmap(str(self.directory / "unigram.marisa"))
        self.postdict = marisa_trie.Trie().mmap(str(self.directory / "postdict.marisa"))
        self.unigram_has_empty = bool(meta.get("unigram_has_empty"))
        self.ww_noword = bool(meta.get("ww_features_with_noword", True))
        if self.w.shape[0] != self.n_tag * (self.n_feature + self.n_tag):
            raise RuntimeError(f"{self.directory}: weights do not match meta.json")


_MODELS: Dict[str, CompactModel] = {}
_models_lock = threading.Lock()


def open_model(directory: Optional[Path] = None) -> CompactModel:
    directory = ensure_built(directory)
    key = str(directory.resolve())
    with _models_lock:
        if key not in _MODELS:
            _MODELS[key] = CompactModel(directory)
        return _MODELS[key]


def _make_pkuseg_class():
    import pkuseg as _pk
    from pkuseg.feature_extractor import FeatureExtractor

    class CompactPkuseg(_pk.pkuseg):
        """``pkuseg.pkuseg`` with the default model read from the compact files. ``cut`` is
        pkuseg's; ``_cut`` is pkuseg's with the feature lookups served from the tries."""

        def __init__(self, user_dict="default", model: Optional[CompactModel] = None):
            from pkuseg.config import config

            self.postag = False
            self._m = model or open_model()
            # pkuseg's own user-dictionary handling (pkuseg.pkuseg.__init__): "default" or
            # None → no user words; a list or file name → its words
            if user_dict is None or (isinstance(user_dict, str) and user_dict in config.available_models):
                file_name = None
            else:
                file_name = user_dict
            self.preprocesser = _pk.Preprocesser(file_name)
            post = _pk.Postprocesser.__new__(_pk.Postprocesser)
            if user_dict is None:
                post.do_process = False
            else:
                post.do_process = True
                post.common_words = set()
                post.other_words = self._m.postdict  # marisa Trie: `in` is all it is asked
            self.postprocesser = post
            self.idx_to_tag = {idx: tag for tag, idx in self._m.tag_to_idx.items()}
            self.n_feature = self._m.n_feature
            self.n_tag = self._m.n_tag
            self.model = self._m  # .n_tag, .n_feature, .w: what decodeViterbi_fast reads
            self._fe_cls = FeatureExtractor

        # -- feature lookups ------------------------------------------------------------
        def _extractor_for(self, nodes: List[str]):
            """A FeatureExtractor whose feature_to_idx / unigram hold exactly the strings of
            this text that are in the model (see the module docstring). The questions asked
            are those of pkuseg's feature_extractor.pyx (__get_node_features_idx), in its
            terms: c / c-1 / c-1c / c1 / cc1 / c-2 / c-2c-1 / c2 character features, w-1 / w1
            word features, ww.l / ww.r word-pair features."""
            from pkuseg.config import config

            m = self._m
            n = len(nodes)
            wmax, wmin = config.wordMax, config.wordMin
            uni_trie = m.unigram
            # pkuseg's get_slice_str(nodes, start, l) is "" outside the text
            outside = "" if m.unigram_has_empty else NO_WORD
            unigram: Set[str] = {""} if m.unigram_has_empty else set()
            # table[l][start + pad]: the word nodes[start:start+l] if it is in the unigram set,
            # else NO_WORD (pkuseg's prelst/postlst entries)
            pad = wmax + 1
            table: Dict[int, List[str]] = {}
            for l in range(wmin, wmax + 1):
                row = [outside] * (n + 2 * pad)
                for start in range(0, n - l + 1):
                    s = "".join(nodes[start:start + l])
                    if s in uni_trie:
                        unigram.add(s)
                        row[start + pad] = s
                    else:
                        row[start + pad] = NO_WORD
                table[l] = row

            fget, fids = m.features.get, m.feature_ids_view
            feats: Dict[str, int] = {}
            asked: Set[str] = set()
            asked_add = asked.add
            candidates: List[str] = []
            add = candidates.append
            lengths = range(wmax, wmin - 1, -1)
            rows = [(l, table[l]) for l in lengths]
            ww_noword = m.ww_noword
            for i, c in enumerate(nodes):
                add("c." + c)
                if i > 0:
                    p1 = nodes[i - 1]
                    add("c-1." + p1)
                    add("c-1c." + p1 + "." + c)
                if i + 1 < n:
                    n1 = nodes[i + 1]
                    add("c1." + n1)
                    add("cc1." + c + "." + n1)
                if i > 1:
                    add("c-2." + nodes[i - 2])
                    add("c-2c-1." + nodes[i - 2] + "." + nodes[i - 1])
                if i + 2 < n:
                    add("c2." + nodes[i + 2])
                if not config.wordFeature:
                    continue
                ip = i + pad
                pre_in = [row[ip - l + 1] for l, row in rows]
                post_in = [row[ip] for l, row in rows]
                pre_ex = [row[ip - l] for l, row in rows]
                post_ex = [row[ip + 1] for l, row in rows]
                for s in pre_in:
                    if s != NO_WORD:
                        add("w-1." + s)
                for s in post_in:
                    if s != NO_WORD:
                        add("w1." + s)
                if not ww_noword:
                    # no word-pair feature names NO_WORD (checked at build time): ask only
                    # about pairs of two words, the other questions are misses
                    pre_ex = [s for s in pre_ex if s != NO_WORD]
                    post_in = [s for s in post_in if s != NO_WORD]
                    pre_in = [s for s in pre_in if s != NO_WORD]
                    post_ex = [s for s in post_ex if s != NO_WORD]
                for pre in pre_ex:
                    for post in post_in:
                        add("ww.l." + pre + "*" + post)
                for pre in pre_in:
                    for post in post_ex:
                        add("ww.r." + pre + "*" + post)
            for feat in candidates:
                if feat in asked:
                    continue
                asked_add(feat)
                key_id = fget(feat)
                if key_id is not None:
                    feats[feat] = fids[key_id]

            fe = self._fe_cls.__new__(self._fe_cls)
            fe.feature_to_idx = feats
            fe.unigram = unigram
            fe.bigram = set()
            fe.tag_to_idx = m.tag_to_idx
            return fe

        def _cut(self, text):
            """pkuseg.pkuseg._cut with the per-text extractor."""
            import pkuseg.inference as _inf

            examples = list(self._fe_cls.normalize_text(text))
            fe = self._extractor_for(examples)
            all_feature = [fe.get_node_features_idx(idx, examples) for idx in range(len(examples))]
            _, tags = _inf.decodeViterbi_fast(all_feature, self.model)

            words = []
            current_word = None
            is_start = True
            for tag, char in zip(tags, text):
                if is_start:
                    current_word = char
                    is_start = False
                elif "B" in self.idx_to_tag[tag]:
                    words.append(current_word)
                    current_word = char
                else:
                    current_word += char
            if current_word:
                words.append(current_word)
            return words

    return CompactPkuseg


_CLS = None


def compact_pkuseg(user_dict="default", directory: Optional[Path] = None):
    """A pkuseg segmenter (``.cut(text)``) on the compact model; same arguments as
    ``pkuseg.pkuseg(user_dict=...)`` for the default model."""
    global _CLS
    if _CLS is None:
        _CLS = _make_pkuseg_class()
    return _CLS(user_dict=user_dict, model=open_model(directory))


def main(argv: Optional[Iterable[str]] = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m bot.nlp.pkuseg_compact", description=__doc__.split("\n")[0])
    p.add_argument("command", choices=["build", "check"])
    p.add_argument("--dir", default=None, help="output directory (default build/pkuseg)")
    p.add_argument("--force", action="store_true", help="rebuild even if current")
    args = p.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    directory = Path(args.dir) if args.dir else compact_dir()
    if args.command == "check":
        ok = is_current(directory)
        print(f"{directory}: {'current' if ok else 'missing or stale'}")
        return 0 if ok else 1
    if is_current(directory) and not args.force:
        drop_page_cache(directory)  # e.g. copied in: the pages no running process maps
        print(f"{directory}: current")
        return 0
    build(directory)
    sizes = {f: (directory / f).stat().st_size for f in _FILES}
    print(f"{directory}: built, " + ", ".join(f"{f} {s / 1e6:.1f} MB" for f, s in sizes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
