"""Actions that answer from the policy knowledge base."""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.handoff import REPEATED_FAILURE_NOTICE, failure_streak
from actions.knowledge import answerer, query_from_tracker
from bot.answering.cards import Reply

logger = logging.getLogger(__name__)


def send(reply: Reply, dispatcher: CollectingDispatcher, tracker: Optional[Tracker] = None) -> List[Dict[Text, Any]]:
    events = [SlotSet(k, v) for k, v in reply.slots.items()]
    streak = failure_streak(tracker, reply.kind) if tracker is not None else None
    if streak and streak.due:
        # failed again: say so briefly; the rule after this action runs action_handoff (one card)
        dispatcher.utter_message(text=REPEATED_FAILURE_NOTICE)
    else:
        channel = tracker.get_latest_input_channel() if tracker is not None else None
        for message in reply.messages(channel):  # the widget draws the card: no source texts there
            dispatcher.utter_message(**message)
    return events + (streak.events if streak else [])


class ActionAnswer(Action):
    """Answer a policy, responsibility, deadline, full-text, department or document question."""

    def name(self) -> Text:
        return "action_answer"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        q = query_from_tracker(tracker)
        return send(answerer().answer(q), dispatcher, tracker)


class ActionFallback(Action):
    """Low NLU confidence: still try the knowledge base, which answers only when the
    question clearly matches an item, otherwise asks to clarify or offers a person."""

    def name(self) -> Text:
        return "action_fallback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        q = query_from_tracker(tracker)
        q.intent = "nlu_fallback"
        return send(answerer().answer(q), dispatcher, tracker)


class ActionOutOfScope(Action):
    """Out of scope — unless it is a short question about the item just answered, in words of
    that item, which the classifier could not know ("之前已经编了多少个领域"): then that item answers."""

    def name(self) -> Text:
        return "action_out_of_scope"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        q = query_from_tracker(tracker)
        reply = answerer().context_follow_up(q) if q.text and q.current_item else None
        if reply is not None:
            return send(reply, dispatcher)  # an answer: no failure streak to count
        dispatcher.utter_message(response="utter_out_of_scope")
        return []
