"""A small Okapi BM25 over pre-tokenised documents."""
from __future__ import annotations

import math
from collections import Counter
from typing import Dict, List, Sequence


class BM25:
    def __init__(self, docs: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75):
        self.k1, self.b = k1, b
        self.tfs = [Counter(d) for d in docs]
        self.lens = [len(d) for d in docs]
        self.avgdl = (sum(self.lens) / len(self.lens)) if self.lens else 0.0
        df: Counter = Counter()
        for tf in self.tfs:
            df.update(tf.keys())
        n = len(docs)
        self.idf: Dict[str, float] = {
            t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()
        }
        self.n = n

    def idf_of(self, term: str) -> float:
        return self.idf.get(term, math.log(1 + (self.n + 0.5) / 0.5))

    def score(self, query: Sequence[str], index: int, weights: Dict[str, float] = None) -> float:
        tf, dl = self.tfs[index], self.lens[index]
        s = 0.0
        for term in set(query):
            f = tf.get(term)
            if not f:
                continue
            w = weights.get(term, 1.0) if weights else 1.0
            denom = f + self.k1 * (1 - self.b + self.b * dl / (self.avgdl or 1))
            s += w * self.idf[term] * f * (self.k1 + 1) / denom
        return s

    def scores(self, query: Sequence[str], weights: Dict[str, float] = None) -> List[float]:
        return [self.score(query, i, weights) for i in range(self.n)]
