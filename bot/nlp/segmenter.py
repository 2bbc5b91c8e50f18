"""Chinese word segmentation with pkuseg plus the knowledge base's user dictionary.

Latin letters and digits are cut out before pkuseg sees the text (pkuseg splits
"IPv6" into "IPv" + "6" and glues "<b>" to neighbouring characters), so every
token keeps its character offset in the original text.

pkuseg's model is read from the compact memory-mapped files built under build/pkuseg/
(bot/nlp/pkuseg_compact.py; stock pkuseg costs ~3 s and ~810 MB), lazily once per
process, and only in the process that needs it (the NLU server; the action server reuses
the tokens the NLU adds to the parse result).
"""
from __future__ import annotations

import os
import re
import threading
import unicodedata
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

from bot.retrieval.english import ENGLISH_STOP

ROOT = Path(__file__).resolve().parents[2]
LATIN_RE = re.compile(r"[A-Za-z0-9]+(?:[.\-_][A-Za-z0-9]+)*")
# Runs handed to pkuseg: CJK characters plus the CJK punctuation that can sit inside a term
# ("双随机、一公开"); everything else is tokenised here.
CHUNK_RE = re.compile(r"[A-Za-z0-9]+(?:[.\-_][A-Za-z0-9]+)*|[\u3400-\u9fff、“”]+|\S")
CJK_RE = re.compile(r"[\u3400-\u9fff]")

STOPWORDS = set(
    """的 了 吗 呢 吧 啊 呀 嘛 哦 么 是 在 哪 哪里 哪儿 哪些 怎么 怎样 怎么样 如何 什么 甚么 啥 多少 几 谁 我 我们 你 你们 您
    他 她 它 有 有没有 没有 会 能 能否 可以 可否 要 想 请 请问 问 一下 那 那么 这 这个 那个 个 些 和 与 及 以及 或 或者 等 都
    也 就 还 又 再 对 把 被 给 从 向 到 为 以 于 之 其 该 此 各 每 让 使 由 关于 里 中 上 下 吗？ 呢？ ？ ? ， , 。 . ！ !
    、 ； ; ： : “ ” " ' （ ） ( ) 《 》 〔 〕 [ ] 【 】 < > / \\ - _ = + * & % $ # @ ~ ` | ^ 不 没 啦 哈 嗯 好 吧 看 查 找
    知道 了解 告诉 一些 具体 情况 内容 相关 方面 问题 事情 事 东西 时候 现在 目前 今年 宁乡 宁乡市 市 县 区 本市 咱们 那边 这边
    负责 牵头 部门 单位 哪个 哪家 谁家 管 归 主管 办 要求 依据 根据 文件 哪个文件
    意思 回事 怎么回事 指 是指 含义 定义 介绍 解释 说说 讲讲 一下子 能不能 会不会 是不是 有没有 吗 么
    咋 咋办 咋弄 咋整 咋样 咋回事 咋查 咋看 咋晓得 晓得 晓不晓得 好多 这块 这一块 那块 这方面 啥子 啥样 啥时 怎么办 怎么弄 怎么查 怎么看 怎么搞 怎样查 搞 弄 整 得 嘞 呗 撒 噻 哇
    查到 查询 查看 看到 能看到 看得到 在哪 在哪儿 哪里能 去哪 去哪里 去哪儿 哪能 能办 哪些事 具体包括 包括 包含 有哪些 都有
    多久 多长时间 何时 啥时候 几时 一次 次 每次 多少次 一 么子 么子名堂 名堂 里头 这里头 那里头 干嘛 干啥 做啥 搞啥 弄啥 啥事 些啥 些么子 搞些 弄些
    一个 一份 一项 一种 一下下 是什么 指什么 什么样 怎么个 到底 究竟 一般 通常 平时 大概 需要 应该 是否 好像 听说 据说 所谓 说 讲 叫 称""".split()
)
# English function words: an English question keeps its topic words ("budget", "ipv6") only.
STOPWORDS |= set("""the a an of is are was be been to in on at for by with about from and or not no do does did
    what where when which who whom whose why how can could will would shall should may might must i me my we our you
    your it its this that these those there here please tell know want like find get any some information info""".split())
STOPWORDS |= ENGLISH_STOP  # the English bridge's function words (bot.retrieval.english): one list


def _normalize_char(ch: str) -> str:
    norm = unicodedata.normalize("NFKC", ch)
    return norm if len(norm) == 1 else ch


def normalize(text: str) -> str:
    """Full-width letters/digits to half-width, one character for one (offsets stay valid)."""
    return "".join(_normalize_char(c) for c in text)


def load_pkuseg(user_dict="default"):
    """pkuseg's default model with ``user_dict``. By default from the compact memory-mapped
    files in build/pkuseg/ (bot/nlp/pkuseg_compact.py: the same tokens, ~0.1 s and a few MB
    instead of ~3 s and ~810 MB per process); ZWZX_PKUSEG=stock loads stock pkuseg."""
    if os.environ.get("ZWZX_PKUSEG", "").strip().lower() == "stock":
        import pkuseg  # heavy: ~810 MB of Python objects

        return pkuseg.pkuseg(user_dict=user_dict)
    from bot.nlp.pkuseg_compact import compact_pkuseg

    return compact_pkuseg(user_dict=user_dict)


class Segmenter:
    def __init__(self, user_dict: Optional[Iterable[str]] = None):
        self._user_dict = sorted(set(w for w in (user_dict or []) if w and CJK_RE.search(w)))
        self._model = None
        self._lock = threading.Lock()

    def _pkuseg(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = load_pkuseg(self._user_dict or "default")
        return self._model

    def tokenize(self, text: str) -> List[Tuple[str, int]]:
        """[(token, start_offset)] for all non-space tokens; latin runs lowercased."""
        text = normalize(text)
        out: List[Tuple[str, int]] = []
        for m in CHUNK_RE.finditer(text):
            chunk = m.group(0)
            if CJK_RE.search(chunk):
                self._cut_chunk(chunk, m.start(), out)
            else:
                out.append((chunk.lower(), m.start()))
        return out

    def _cut_chunk(self, chunk: str, offset: int, out: list) -> None:
        cursor = 0
        for word in self._pkuseg().cut(chunk):
            word = word.strip()
            if not word:
                continue
            idx = chunk.find(word, cursor)
            if idx < 0:
                idx = cursor
            out.append((word, offset + idx))
            cursor = idx + len(word)

    def words(self, text: str) -> List[str]:
        return [w for w, _ in self.tokenize(text)]


def content_words(tokens: Iterable[str]) -> List[str]:
    """Tokens that carry meaning for retrieval: no stopwords, punctuation or lone symbols."""
    out = []
    for t in tokens:
        t = t.lower()
        if t in STOPWORDS or not (CJK_RE.search(t) or LATIN_RE.fullmatch(t)):
            continue
        out.append(t)
    return out


_DEFAULT: Optional[Segmenter] = None


def user_dict_path() -> Path:
    build = Path(os.environ.get("ZWZX_BUILD_DIR", ROOT / "build"))
    return build / "pkuseg_user_dict.txt"


def default_segmenter() -> Segmenter:
    """The process-wide segmenter with the knowledge base's user dictionary."""
    global _DEFAULT
    if _DEFAULT is None:
        path = user_dict_path()
        words = path.read_text(encoding="utf-8").split("\n") if path.exists() else []
        _DEFAULT = Segmenter(words)
    return _DEFAULT


def question_words(segmenter: "Segmenter", raw: str) -> List[str]:
    """The words the NLU hands to retrieval for a message (bot/nlu/pkuseg_tokenizer.py does
    the same): the normalised text, segmented without its greetings and fillers."""
    from bot.nlp.normalize import normalize_text, scoring_text

    text = normalize_text(raw)
    scoring = scoring_text(text)
    if scoring != text:
        return segmenter.words(scoring) if scoring else []
    return segmenter.words(text)
