"""One normalisation step for every channel, used identically by the NLU (the tokenizer
rewrites the message text before anything else sees it) and by retrieval.

* markup: HTML tags are dropped and entities decoded (``&nbsp;`` → space, ``<br>`` → space),
  so text pasted from a web page or an editor reads as its words;
* Traditional → Simplified Chinese with OpenCC (``t2s``: character and phrase tables
  maintained by the OpenCC project, see docs/evaluation.md for why);
* full-width letters, digits and spaces → half-width (NFKC, one character for one);
* runs of white space collapsed.

:func:`scoring_text` additionally removes greetings, politeness formulas and fillers
("你好，我想问一下，就是……谢谢") that must neither decide the intent nor dilute retrieval.
The raw text stays in the tracker (Rasa's ``UserUttered.text``) for the record.
"""
from __future__ import annotations

import html
import re
import threading
import unicodedata
from typing import Optional

TAG_RE = re.compile(r"<\s*/?\s*[A-Za-z!][^<>]{0,300}>")
SCRIPT_RE = re.compile(r"<\s*(script|style)\b[^<>]{0,300}>.*?<\s*/\s*\1\s*>", re.I | re.S)
SPACE_RE = re.compile(r"\s+")

# Greetings, politeness formulas and fillers. Removed only for intent arbitration and scoring;
# a message made only of them stays what it is (a greeting, a thank-you).
FILLER_RE = re.compile(
    r"(?:^|(?<=[，,。！!？?\s]))(?:小助手|客服|工作人员|同志|老师|领导|师傅)?(?:你好|您好|你们好|hello(?![a-z])|hi(?![a-z])|嗨|哈喽|喂|在吗|在不在|有人吗|早上好|上午好|下午好|晚上好|good (?:morning|afternoon|evening|day)(?![a-z])|hey(?![a-z])|greetings(?![a-z])|dear (?:sir|madam)(?: or madam)?)"
    r"[啊呀，,。！!～~\s]*"
    r"|(?:小助手|客服|工作人员|同志|老师)[，,：:\s]+"
    # "老师好", "领导好": a greeting to whoever answers
    r"|(?:^|(?<=[，,。！!？?\s]))(?:老师|师傅|同志|领导|客服|专家)(?:们)?好[啊呀，,。！!～~\s]*"
    r"|(?:不好意思|打扰(?:一下|了|您了)?|麻烦(?:您|你)?(?:一下)?|冒昧问一下|请教一下|想请教|请问(?:一下)?|"
    r"(?:我|我们|我们公司|我们单位|我司|本公司)?(?:就)?想(?:麻烦(?:您|你)?)?(?:问|咨询|了解|知道|打听|请教)(?:问)?(?:一下|下)?|想(?:问|咨询|了解)(?:一下|下)?|咨询(?:一下|下)|问(?:一下|下)|"
    r"我(?:是|们是)(?:一个|一名|一家)?[\u4e00-\u9fff]{0,8}?(?:市民|居民|群众|企业|公司|个体户|老百姓)[，,。\s]*|"
    r"就是说?|那个|这个嘛|是这样的?|(?:谢谢|多谢|感谢)(?:您|你)?(?:的|们的)?(?:耐心)?(?:解答|回答|回复|答复|帮助|帮忙)|谢谢(?:您|你|了|啦)?|多谢|感谢(?:您|你)?|辛苦了|"
    r"换个(?:问题|话题)|另外(?:再)?(?:问一下|问个问题|一个问题)?|还有一个问题|再问(?:一下|个问题|一个问题)|"
    r"(?<![a-z])(?:thanks?(?: you)?(?: (?:very|so) much)?|please|excuse me|sorry to (?:bother|trouble) you)(?![a-z]))[，,。！!～~\s]*",
    re.I,
)

_cc: dict = {}
_cc_lock = threading.Lock()


def _opencc(config: str):
    cc = _cc.get(config)
    if cc is None:
        with _cc_lock:
            cc = _cc.get(config)
            if cc is None:
                import opencc

                cc = _cc[config] = opencc.OpenCC(config)
    return cc


def strip_markup(text: str) -> str:
    """Tags out, entities decoded. Script/style bodies go with their tags."""
    if "<" in text or "&" in text:
        text = SCRIPT_RE.sub(" ", text)
        text = TAG_RE.sub(" ", text)
        text = html.unescape(text)  # "&lt;b&gt;" is markup too once decoded
        text = SCRIPT_RE.sub(" ", text)
        text = TAG_RE.sub(" ", text)
    return text


def _half_width(text: str) -> str:
    out = []
    for ch in text:
        norm = unicodedata.normalize("NFKC", ch)
        out.append(norm if len(norm) == 1 else ch)
    return "".join(out)


KEEP_AS_WRITTEN = ("文件",)


def to_simplified(text: str) -> str:
    """Traditional → Simplified. Text already in Simplified is returned as it is; text that
    carries Traditional characters also gets OpenCC's Taiwan phrase table (資訊 → 信息,
    支援 → 支持), since such a writer uses Taiwan or Hong Kong words as well as characters."""
    if not text:
        return text
    simple = _opencc("t2s").convert(text)
    if simple == text:
        return text
    # words the Taiwan table reads otherwise than a mainland government text means them: 文件 (an
    # official document: 规范性文件, 红头文件) is not 文档 (a computer file) — kept as written
    for k, word in enumerate(KEEP_AS_WRITTEN):
        text = text.replace(word, chr(0xE000 + k))
    text = _opencc("tw2sp").convert(text)
    for k, word in enumerate(KEEP_AS_WRITTEN):
        text = text.replace(chr(0xE000 + k), word)
    return text


def normalize_text(text: Optional[str]) -> str:
    """What NLU and retrieval read: markup removed, Simplified, half-width, single spaces."""
    if not text:
        return ""
    text = strip_markup(text)
    text = to_simplified(text)
    text = _half_width(text)
    return SPACE_RE.sub(" ", text).strip()


# The frame of an English "who is responsible" question ("Which department is in charge of …"):
# like 哪个部门/负责 in Chinese it asks who, it names no topic (the answerer reads who-questions
# from the full text, bot/answering/answerer.py EN_RESPONSIBLE_RE).
EN_WHO_FRAME_RE = re.compile(r"\b(?:which|what)\s+(?:government\s+)?(?:department|bureau|unit|agency|office|body|"
                             r"organi[sz]ation|authority|authorities)s?\b|\bin charge(?:\s+of)?\b", re.I)


def scoring_text(text: Optional[str]) -> str:
    """The question without greetings, politeness formulas and fillers."""
    t = normalize_text(text)
    prev = None
    while prev != t:
        prev = t
        t = FILLER_RE.sub("", t).strip(" ，,。！!～~")
    return EN_WHO_FRAME_RE.sub(" ", t).strip() if EN_WHO_FRAME_RE.search(t) else t
