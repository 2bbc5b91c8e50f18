"""Hand the conversation to 12345 hotline staff."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.answering.cards import make_card


class ActionHandoff(Action):
    def name(self) -> Text:
        return "action_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        intent = ((tracker.latest_message or {}).get("intent") or {}).get("name")
        reason = "complaint" if intent == "complain" else "requested"
        if reason == "complaint":
            text = ("您的投诉/举报将转交12345热线工作人员处理。请简要说明事项、涉及的单位和时间地点，"
                    "工作人员会尽快与您联系；您也可以直接拨打12345政务服务便民热线。")
        else:
            text = "好的，正在为您转接12345热线人工客服，请稍候。您也可以直接拨打12345政务服务便民热线。"
        dispatcher.utter_message(text=text)
        dispatcher.utter_message(json_message=make_card("handoff", reason=reason, ticket=None))
        return []
