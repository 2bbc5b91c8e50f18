"""How informative a word is in Chinese in general, for words no item of the knowledge base uses.

A citizen's question carries words the documents never use: its subject when it is about
another service (居住证, 驾照, 公积金) and everyday words around a topic the documents do cover
(大家, 之前, 每年, 帮, 第一时间). Both used to weigh as much as the rarest word of the documents,
so a long everyday question about a covered topic found nothing. The word frequencies of
jieba's dictionary (349 046 words from a general corpus, shipped with the pinned ``jieba``
package) tell them apart: a word as frequent as 大家 weighs 0.3, a rare one (居住证, 14
occurrences) 1.0, a word the dictionary does not know (a compound such as 好的, 完了) 0.6.

Built at ``make kb`` time into ``build/index.json``: the ~15 000 frequent words with their
weight, and the dictionary's other words as a sorted array of 64-bit hashes (about 2.7 MB;
a set of the strings would take ~40 MB in every process).
"""
from __future__ import annotations

import base64
import hashlib
import math
import os
from array import array
from bisect import bisect_left
from typing import Dict, Optional

FLOOR = 0.3          # the weight of the most frequent words
UNKNOWN = 0.6        # a word the dictionary does not know at all
LOW, HIGH = 6.0, 12.0  # log(total / frequency) at which the weight is FLOOR and 1.0


def _hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")


def jieba_dict_path() -> Optional[str]:
    try:
        import jieba
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(jieba.__file__), "dict.txt")
    return path if os.path.exists(path) else None


def build_general_words(path: Optional[str] = None) -> dict:
    path = path or jieba_dict_path()
    if not path:
        return {}
    freqs: Dict[str, int] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split(" ")
            if len(parts) >= 2 and parts[1].isdigit():
                freqs[parts[0]] = int(parts[1])
    total = sum(freqs.values())
    common = {}
    rare = array("Q")
    for w, f in freqs.items():
        g = (math.log(total / max(f, 1)) - LOW) / (HIGH - LOW)
        if g < 1.0:
            common[w] = round(max(FLOOR, g), 3)
        else:
            rare.append(_hash(w))
    rare = array("Q", sorted(rare))
    return {"common": common, "rare": base64.b64encode(rare.tobytes()).decode("ascii")}


class GeneralWords:
    def __init__(self, data: Optional[dict]):
        data = data or {}
        self.common: Dict[str, float] = data.get("common", {})
        self.rare = array("Q")
        if data.get("rare"):
            self.rare.frombytes(base64.b64decode(data["rare"]))

    def __bool__(self) -> bool:
        return bool(self.common)

    def weight(self, word: str) -> float:
        """1.0 for a rare word, down to FLOOR for an everyday one; UNKNOWN when the dictionary
        does not have it; 1.0 when no dictionary was available at build time."""
        if not self.common:
            return 1.0
        g = self.common.get(word)
        if g is not None:
            return g
        h = _hash(word)
        i = bisect_left(self.rare, h)
        return 1.0 if i < len(self.rare) and self.rare[i] == h else UNKNOWN
