"""👍/👎 on an answer and the 1–5 rating of a closed handoff ticket.

The widget sends `/feedback{"feedback": "up"}` or `/feedback{"feedback": "down"}`; typed
feedback (“回答没用”) reaches the same action through the NLU. After
`triggers.negative_feedback` 👎 in a conversation the rule after this action hands off.
The rating buttons (`/rate{"rating": "5"}`) come with the "人工服务已结束" notice the staff
channel sends when a ticket is closed; typed ratings (“5分”) work too.
"""
from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.handoff import DUE_SLOT, NEGATIVE_SLOT
from bot.answering.cards import make_card
from bot.handoff.config import load_config
from bot.handoff.store import HandoffStore, get_store

logger = logging.getLogger(__name__)

RATING_SLOT = "rating_ticket"
HUMAN_BUTTON = {"title": "转人工", "payload": "/request_human"}
NEGATIVE_RE = re.compile(r"没用|没有用|无用|没帮助|没有帮助|不好|不对|(?<!不)错|差|答非所问|看不懂|不满意|不行|👎|down", re.I)
POSITIVE_RE = re.compile(r"有用|有帮助|很好|不错|满意|清楚|👍|up|赞", re.I)
CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}


def _entity(tracker: Tracker, name: str) -> Optional[str]:
    for e in (tracker.latest_message or {}).get("entities") or []:
        if e.get("entity") == name and e.get("value") not in (None, ""):
            return str(e["value"]).strip()
    return None


def feedback_value(tracker: Tracker) -> Optional[str]:
    value = (_entity(tracker, "feedback") or "").lower()
    if value in ("up", "down"):
        return value
    text = (tracker.latest_message or {}).get("text") or ""
    if text.startswith("/"):
        return None
    if NEGATIVE_RE.search(text):
        return "down"
    if POSITIVE_RE.search(text):
        return "up"
    return None


class ActionFeedback(Action):
    def name(self) -> Text:
        return "action_feedback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        value = feedback_value(tracker)
        if value == "up":
            dispatcher.utter_message(text="感谢您的肯定！很高兴能帮到您，还有其他问题请随时提出。")
            dispatcher.utter_message(json_message=make_card("chitchat", feedback="up"))
            return []
        if value != "down":
            # typed text the NLU took for feedback but which says neither: treat it as a question
            from actions.answer import send
            from actions.knowledge import answerer, query_from_tracker

            q = query_from_tracker(tracker)
            q.intent = "nlu_fallback"
            return send(answerer().answer(q), dispatcher, tracker)
        count = int(tracker.get_slot(NEGATIVE_SLOT) or 0) + 1
        events: List[Dict[str, Any]] = [SlotSet(NEGATIVE_SLOT, float(count))]
        if count >= load_config().negative_feedback:
            # the rule after this action runs action_handoff, which sends the (only) card
            dispatcher.utter_message(text="很抱歉我的回答没能帮到您，我来为您联系人工客服。")
            return events + [SlotSet(DUE_SLOT, "negative_feedback"), FollowupAction("action_handoff")]
        dispatcher.utter_message(
            text="感谢您的反馈，很抱歉这个回答没能帮到您，我们会持续改进。您可以换个说法再问一次，"
                 "或回复“转人工”联系12345热线工作人员。",
            buttons=[HUMAN_BUTTON])
        dispatcher.utter_message(json_message=make_card("chitchat", feedback="down"))
        return events


def parse_rating(tracker: Tracker) -> Optional[int]:
    raw = _entity(tracker, "rating")
    text = raw if raw is not None else ((tracker.latest_message or {}).get("text") or "")
    text = text.strip()
    if len(text) > 20 or text.startswith("/") and raw is None:
        return None
    m = re.search(r"(?<!\d)([1-5])(?!\d)", text)
    if m:
        return int(m.group(1))
    m = re.search(r"([一二两三四五])\s*(分|星|颗星)", text) or re.fullmatch(r"([一二两三四五])", text)
    if m:
        return CN_DIGITS[m.group(1)]
    if re.search(r"非常不满意|很不满意|极差|很差", text):
        return 1
    if "不满意" in text:
        return 2
    if "一般" in text:
        return 3
    if re.search(r"非常满意|很满意|特别满意|好评", text):
        return 5
    if "满意" in text:
        return 4
    return None


class ActionRate(Action):
    """Store the citizen's 1–5 rating on the ticket the staff channel asked about."""

    def __init__(self, store: Optional[HandoffStore] = None) -> None:
        self._store = store

    def name(self) -> Text:
        return "action_rate"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        ticket = tracker.get_slot(RATING_SLOT)
        rating = parse_rating(tracker)
        if not ticket:
            dispatcher.utter_message(text="感谢您的评价！请问还有什么可以帮您？")
            dispatcher.utter_message(json_message=make_card("chitchat"))
            return []
        if rating is None:
            dispatcher.utter_message(text="请回复1到5之间的数字为本次人工服务打分（5分为非常满意）。")
            dispatcher.utter_message(json_message=make_card("chitchat"))
            return []
        store = self._store or get_store()
        try:
            saved = await asyncio.to_thread(store.set_rating, int(ticket), rating)
        except Exception:
            logger.exception("could not store rating for ticket %s", ticket)
            saved = False
        if saved:
            text = f"感谢您的评价（{rating}分）！请问还有什么政务公开方面的问题可以帮您？"
        else:
            text = "感谢您的评价！请问还有什么可以帮您？"
        dispatcher.utter_message(text=text)
        dispatcher.utter_message(json_message=make_card("chitchat", rating=rating if saved else None))
        return [SlotSet(RATING_SLOT, None)]
