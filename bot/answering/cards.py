"""The answer card every bot turn carries (REST ``custom`` message) and the reply value
object the answering logic returns to the actions."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

KINDS = ("answer", "clarify", "handoff", "out_of_scope", "chitchat", "fallback")

# Channels whose clients draw the answer card (the web widget): there the card is the one
# place where an answer's source and responsible units appear, so the texts that only say
# them (Reply.card_texts) are not sent. Text-only clients (REST, WeChat) get them as text.
CARD_CHANNELS = frozenset({"widget"})


def renders_cards(channel: Optional[str]) -> bool:
    """True when the client of ``channel`` shows the answer card itself (see CARD_CHANNELS)."""
    return channel in CARD_CHANNELS


def citation(doc, item) -> Dict[str, Any]:
    return {
        "doc": doc.doc_id,
        "item": item.number,
        "title": item.title,
        "label": item.label,
        "doc_title": doc.title,
        "lead_units": list(item.lead_units),
        "responsible_units": list(item.responsible_units),
    }


def doc_citation(doc) -> Dict[str, Any]:
    return {"doc": doc.doc_id, "item": None, "title": doc.title, "label": f"《{doc.title}》",
            "doc_title": doc.title}


def make_card(kind: str, citations: List[dict] = (), departments: List[str] = (), **extra) -> dict:
    if kind not in KINDS:
        raise ValueError(f"unknown card kind {kind}")
    card = {"kind": kind, "citations": list(citations), "departments": list(dict.fromkeys(departments))}
    card.update(extra)
    return card


@dataclass
class Reply:
    kind: str
    texts: List[str]
    citations: List[dict] = field(default_factory=list)
    departments: List[str] = field(default_factory=list)
    buttons: List[dict] = field(default_factory=list)
    slots: Dict[str, Any] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)
    # texts that only repeat what the card shows (source line, units, "查看全文" hint)
    card_texts: List[str] = field(default_factory=list)

    @property
    def card(self) -> dict:
        return make_card(self.kind, self.citations, self.departments, **self.extra)

    def messages(self, channel: Optional[str] = None) -> List[dict]:
        """Messages in the order they are sent: texts (buttons on the last), then the card.
        For a channel that renders the card (renders_cards) the card_texts are left out."""
        texts = self.texts
        if renders_cards(channel) and self.card_texts:
            texts = [t for t in texts if t not in self.card_texts] or texts[:1]
        out: List[dict] = [{"text": t} for t in texts]
        if self.buttons:
            if out:
                out[-1]["buttons"] = self.buttons
            else:
                out.append({"text": "请选择：", "buttons": self.buttons})
        out.append({"json_message": self.card})
        return out


def units_sentence(item) -> str:
    """'由市发改局牵头，市数据资源中心、…按职责分工负责' in the document's own terms."""
    lead = "、".join(item.lead_units)
    resp = "、".join(item.responsible_units)
    if lead and resp:
        return f"牵头单位：{lead}；责任单位：{resp}"
    if lead:
        return f"牵头单位：{lead}"
    if resp:
        return f"责任单位：{resp}（未指定牵头单位）"
    return "文件未列明责任单位"


def item_departments(item) -> List[str]:
    return list(dict.fromkeys(list(item.lead_units) + list(item.responsible_units)))


def source_line(doc, item: Optional[Any] = None) -> str:
    if item is None:
        return f"依据：《{doc.title}》（{doc.doc_number}）" if doc.doc_number else f"依据：《{doc.title}》"
    return f"依据：《{doc.title}》{item.label}"
