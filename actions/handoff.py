"""Hand the conversation to 12345 hotline staff.

Triggers (see data/rules/rules.yml): the citizen asks for a person or complains; the bot failed
`triggers.failed_turns` times in a row (actions/answer.py sets the slot `handoff_due`); the
citizen gave `triggers.negative_feedback` 👎 (actions/feedback.py). In working hours a waiting
ticket is created and the conversation is paused (`ConversationPaused`) until staff close it;
outside them the bot offers a callback (actions/callback.py) and the 12345 hotline.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.answering.cards import make_card
from bot.handoff.config import Clock, HandoffConfig, describe_moment, load_config, system_clock
from bot.handoff.conversation import summarize
from bot.handoff.store import HandoffStore, get_store

logger = logging.getLogger(__name__)

DUE_SLOT = "handoff_due"              # featurized: rules hand off after an action that set it
REASON_SLOT = "handoff_reason"        # remembered for the callback ticket
TICKET_SLOT = "handoff_ticket"
NEGATIVE_SLOT = "negative_feedback"
FAILED_KINDS = ("fallback", "clarify")
RESOLVED_KINDS = ("answer", "handoff")
CANCEL_BUTTON = {"title": "取消转人工", "payload": "/cancel"}
CALLBACK_BUTTONS = [{"title": "需要回电", "payload": "/request_callback"},
                    {"title": "不用了", "payload": "/deny"}]

PREFIX = {
    "requested": "好的。",
    "complaint": "收到您的投诉/举报。",
    "repeated_fallback": "抱歉，我没能解答您的问题。",
    "negative_feedback": "很抱歉刚才的回答没能帮到您。",
}


# ------------------------------------------------------------ failure streak
@dataclass
class Streak:
    count: int
    due: bool
    events: List[Dict[str, Any]] = field(default_factory=list)


def previous_failures(events: List[Dict[str, Any]]) -> int:
    """Bot replies in a row, before this turn, whose card was a fallback or a clarifying
    question; an answer or a handoff ends the streak (chitchat does not)."""
    count = 0
    for e in reversed(events or []):
        if e.get("event") != "bot":
            continue
        card = ((e.get("data") or {}).get("custom") or {})
        kind = card.get("kind")
        if card.get("reason") == "system_busy":
            continue  # our outage, not the bot failing to understand the citizen
        if kind in FAILED_KINDS:
            count += 1
        elif kind in RESOLVED_KINDS:
            break
    return count


def failure_streak(tracker: Tracker, kind: str, config: Optional[HandoffConfig] = None) -> Streak:
    """Called by the answering actions with the kind of the reply they are about to send."""
    config = config or load_config()
    previous = previous_failures(tracker.events)
    if not ((tracker.latest_message or {}).get("text") or "").strip():
        return Streak(previous, False, [])  # a blank message is not a failure of the bot
    count = previous + 1 if kind in FAILED_KINDS else 0
    due = count >= config.failed_turns
    events = []
    if due:
        # The rules hand off after an action that set `handoff_due`; the FollowupAction makes
        # sure of it even when the turn came through the core fallback (no rule for its intent).
        events += [SlotSet(DUE_SLOT, "repeated_fallback"), FollowupAction("action_handoff")]
    elif tracker.get_slot(DUE_SLOT) is not None:
        events.append(SlotSet(DUE_SLOT, None))
    return Streak(count, due, events)


REPEATED_FAILURE_NOTICE = "抱歉，我还是没能理解您的问题。"


# ------------------------------------------------------------------- handoff
def handoff_reason(tracker: Tracker) -> str:
    due = tracker.get_slot(DUE_SLOT)
    if due in ("repeated_fallback", "negative_feedback"):
        return due
    intent = ((tracker.latest_message or {}).get("intent") or {}).get("name")
    return "complaint" if intent == "complain" else "requested"


def queue_text(reason: str, ticket_id: int, position: int, hotline: str) -> str:
    ahead = "您是第1位，工作人员将尽快接入" if position <= 1 else f"您前面还有{position - 1}位市民在等待"
    if reason == "complaint":
        what = (f"已转交12345热线工作人员（工单号：{ticket_id}），{ahead}。"
                "请先简要说明事项、涉及的单位和时间地点，工作人员接入后会在这里与您联系。")
    else:
        what = (f"正在为您转接12345热线人工客服（工单号：{ticket_id}），{ahead}。"
                "工作人员接入后会在这里回复您，等待期间您可以继续补充说明，工作人员都能看到。")
    return f"{PREFIX[reason]}{what}如不再需要人工服务，请回复“取消”。您也可以直接拨打{hotline}政务服务便民热线。"


def after_hours_text(reason: str, config: HandoffConfig, now, next_open) -> str:
    when = f"，下一个服务时段从{describe_moment(next_open, now)}开始" if next_open else ""
    return (f"{PREFIX[reason]}现在是非工作时间，人工客服的服务时间为{config.hours.describe()}{when}。"
            f"您可以留下手机号，由工作人员在工作时间给您回电；也可以随时拨打{config.hotline_name}（24小时服务）。"
            "需要为您登记回电吗？")


def unavailable_text(reason: str, hotline_name: str) -> str:
    return (f"{PREFIX[reason]}抱歉，在线人工服务暂时无法接入，请直接拨打{hotline_name}（24小时服务），"
            "工作人员会为您办理。")


class ActionHandoff(Action):
    def __init__(self, clock: Optional[Clock] = None, store: Optional[HandoffStore] = None) -> None:
        self.clock = clock or system_clock
        self._store = store

    def name(self) -> Text:
        return "action_handoff"

    @property
    def store(self) -> HandoffStore:
        return self._store or get_store()

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        config = load_config()
        reason = handoff_reason(tracker)
        now = self.clock()
        resets = [SlotSet(DUE_SLOT, None), SlotSet(NEGATIVE_SLOT, 0.0)]
        if not config.hours.is_open(now):
            next_open = config.hours.next_open(now)
            dispatcher.utter_message(text=after_hours_text(reason, config, now, next_open),
                                     buttons=CALLBACK_BUTTONS)
            dispatcher.utter_message(json_message=make_card(
                "handoff", ticket=None, reason=reason, status="after_hours", hotline=config.hotline,
                next_open=next_open.isoformat() if next_open else None))
            return resets + [SlotSet(REASON_SLOT, reason)]
        try:
            ticket = await asyncio.to_thread(
                self.store.create_ticket, tracker.sender_id, tracker.get_latest_input_channel() or "rest",
                reason, summarize(tracker.events), "waiting", None, None, now.timestamp())
            position = await asyncio.to_thread(self.store.queue_position, ticket["id"])
        except Exception:
            logger.exception("could not create a handoff ticket for %s", tracker.sender_id)
            dispatcher.utter_message(text=unavailable_text(reason, config.hotline_name))
            dispatcher.utter_message(json_message=make_card(
                "handoff", ticket=None, reason=reason, status="unavailable", hotline=config.hotline))
            return resets
        dispatcher.utter_message(text=queue_text(reason, ticket["id"], position, config.hotline),
                                 buttons=[CANCEL_BUTTON])
        dispatcher.utter_message(json_message=make_card(
            "handoff", ticket=ticket["id"], reason=reason, status="waiting", queue_position=position,
            hotline=config.hotline))
        return resets + [SlotSet(TICKET_SLOT, float(ticket["id"])), SlotSet(REASON_SLOT, reason),
                         ConversationPaused()]
