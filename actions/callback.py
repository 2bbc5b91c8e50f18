"""After-hours callback: a Rasa form (callback_form) asks for explicit consent, a mobile number
(11 digits starting with 1; re-asked until valid) and a preferred time, then files a
`callback` ticket. Declining at any point (“不用了”, “不同意”) ends the form without storing
anything, and the citizen is pointed to the 12345 hotline.
"""
from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.handoff import REASON_SLOT
from bot.answering.cards import make_card
from bot.handoff.config import Clock, describe_moment, load_config, system_clock
from bot.handoff.conversation import summarize
from bot.handoff.store import HandoffStore, get_store

logger = logging.getLogger(__name__)

FORM = "callback_form"
CONSENT, PHONE, TIME = "callback_consent", "callback_phone", "callback_time"
MAX_TIME_CHARS = 50

PHONE_RE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
YES_RE = re.compile(r"^(同意|可以|好的?|好啊|是的?|行|需要|愿意|要|嗯+|ok|okay|yes|y|没问题|确认|确定)")
NO_RE = re.compile(r"不同意|不需要|不用|不要|拒绝|算了|不愿意|取消|不了|^no\b|^n$|^否")
DECLINE_INTENTS = ("deny", "cancel")


def _intent(tracker: Tracker) -> Optional[str]:
    return ((tracker.latest_message or {}).get("intent") or {}).get("name")


def _text(value: Any) -> str:
    return unicodedata.normalize("NFKC", str(value or "")).strip()


def wants_out(tracker: Tracker, value: Any, loose: bool = False) -> bool:
    """The citizen declined or cancelled instead of answering. `loose` (for the yes/no consent
    question) also counts any "不…" answer; otherwise only a short decline counts, so that
    “下午，不要太早” is a time, not a refusal."""
    text = _text(value).lower()
    if PHONE_RE.search(text):
        return False
    if load_config().is_cancel_phrase(text):
        return True
    if loose:
        return _intent(tracker) in DECLINE_INTENTS or bool(NO_RE.search(text))
    return len(text) <= 8 and (_intent(tracker) in DECLINE_INTENTS or bool(NO_RE.search(text)))


def normalize_phone(value: Any) -> Optional[str]:
    """'138 1234 5678', '+86 138-1234-5678', '我的手机是13812345678' → '13812345678'."""
    text = re.sub(r"[\s\-—－()（）.]", "", _text(value))
    text = re.sub(r"^(\+?86|0086)(?=1\d{10}$)", "", text)
    found = PHONE_RE.findall(text)
    if len(found) != 1:
        return None
    # nothing but the number and words around it: no other digits
    return found[0] if len(re.findall(r"\d", text)) == 11 else None


def mask_phone(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}" if phone and len(phone) == 11 else phone


class ValidateCallbackForm(FormValidationAction):
    def name(self) -> Text:
        return "validate_callback_form"

    async def required_slots(self, domain_slots: List[Text], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> List[Text]:
        # No consent, nothing more to ask: the form ends and the submit action says goodbye.
        if tracker.get_slot(CONSENT) is False:
            return []
        return domain_slots

    def validate_callback_consent(self, value: Any, dispatcher: CollectingDispatcher,
                                  tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        if isinstance(value, bool):
            return {CONSENT: value}
        text = _text(value).lower()
        intent = _intent(tracker)
        if wants_out(tracker, text, loose=True):
            return {CONSENT: False}
        if intent == "affirm" or YES_RE.search(text):
            return {CONSENT: True}
        dispatcher.utter_message(text="抱歉，我没有明白。登记回电需要您同意我们记录手机号，请回复“同意”或“不同意”。")
        return {CONSENT: None}

    def validate_callback_phone(self, value: Any, dispatcher: CollectingDispatcher,
                                tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        phone = normalize_phone(value)
        if phone:
            return {PHONE: phone}
        if wants_out(tracker, value):
            return {PHONE: None, CONSENT: False}
        dispatcher.utter_message(text="您输入的手机号码不正确：手机号应为以1开头的11位数字，例如13812345678。"
                                      "如不需要回电，请回复“不用了”。")
        return {PHONE: None}

    def validate_callback_time(self, value: Any, dispatcher: CollectingDispatcher,
                               tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        text = str(value or "").strip()  # kept as typed
        if text.startswith("/"):
            text = ""
        if wants_out(tracker, text):
            return {TIME: None, CONSENT: False}
        if text and len(text) <= MAX_TIME_CHARS:
            return {TIME: text}
        dispatcher.utter_message(text=f"请用一句话（{MAX_TIME_CHARS}字以内）告诉我们方便接听电话的时间，例如“工作日上午”。")
        return {TIME: None}


class ActionCallbackSubmit(Action):
    """Runs when callback_form ends: files the callback ticket, or confirms that nothing was kept."""

    def __init__(self, clock: Optional[Clock] = None, store: Optional[HandoffStore] = None) -> None:
        self.clock = clock or system_clock
        self._store = store

    def name(self) -> Text:
        return "action_callback_submit"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        config = load_config()
        reason = tracker.get_slot(REASON_SLOT) or "requested"
        phone, when = tracker.get_slot(PHONE), tracker.get_slot(TIME)
        resets = [SlotSet(CONSENT, None), SlotSet(PHONE, None), SlotSet(TIME, None), SlotSet(REASON_SLOT, None)]
        if tracker.get_slot(CONSENT) is not True or not phone or not when:
            dispatcher.utter_message(
                text=f"好的，不为您登记回电，也不会保存您的手机号。您可以在工作时间（{config.hours.describe()}）"
                     f"回复“转人工”联系工作人员，或随时拨打{config.hotline_name}（24小时服务）。")
            dispatcher.utter_message(json_message=make_card("handoff", ticket=None, reason=reason,
                                                            status="declined", hotline=config.hotline))
            return resets
        now = self.clock()
        store = self._store or get_store()
        try:
            ticket = await asyncio.to_thread(
                store.create_ticket, tracker.sender_id, tracker.get_latest_input_channel() or "rest",
                reason, summarize(events_before_form(tracker.events)), "callback", phone, when, now.timestamp())
        except Exception:
            logger.exception("could not file a callback ticket for %s", tracker.sender_id)
            dispatcher.utter_message(text=f"抱歉，回电登记暂时失败，请直接拨打{config.hotline_name}（24小时服务）。")
            dispatcher.utter_message(json_message=make_card("handoff", ticket=None, reason=reason,
                                                            status="unavailable", hotline=config.hotline))
            return resets
        next_open = config.hours.next_open(now)
        start = f"从{describe_moment(next_open, now)}起的工作时间内" if next_open else "工作时间内"
        dispatcher.utter_message(
            text=f"已为您登记回电（工单号：{ticket['id']}）。工作人员将在{start}，按您方便的时间（{when}）"
                 f"拨打 {mask_phone(phone)} 与您联系，请留意来电。如有急事，请拨打{config.hotline_name}（24小时服务）。")
        dispatcher.utter_message(json_message=make_card("handoff", ticket=ticket["id"], reason=reason,
                                                        status="callback", hotline=config.hotline))
        return resets


def events_before_form(events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The conversation up to the start of the latest callback form (the summary should hold
    the citizen's questions, not their phone number)."""
    for i in range(len(events) - 1, -1, -1):
        e = events[i]
        if e.get("event") == "active_loop" and e.get("name") == FORM:
            return events[:i]
    return events


def _form_card() -> Dict[str, Any]:
    return make_card("handoff", ticket=None, status="callback_form", hotline=load_config().hotline)


class ActionAskCallbackConsent(Action):
    def name(self) -> Text:
        return "action_ask_callback_consent"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        dispatcher.utter_message(text="为了给您回电，需要记录您的手机号码，仅用于本次回电，不作他用。您同意吗？",
                                 buttons=[{"title": "同意", "payload": "/affirm"},
                                          {"title": "不同意", "payload": "/deny"}])
        dispatcher.utter_message(json_message=_form_card())
        return []


class ActionAskCallbackPhone(Action):
    def name(self) -> Text:
        return "action_ask_callback_phone"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        dispatcher.utter_message(text="请输入您的手机号码（以1开头的11位数字）。如不需要回电，请回复“不用了”。")
        dispatcher.utter_message(json_message=_form_card())
        return []


class ActionAskCallbackTime(Action):
    def name(self) -> Text:
        return "action_ask_callback_time"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        dispatcher.utter_message(text="您方便什么时间接听电话？例如“工作日上午”“明天下午三点以后”。",
                                 buttons=[{"title": t, "payload": t} for t in ("工作日上午", "工作日下午", "工作时间都可以")])
        dispatcher.utter_message(json_message=_form_card())
        return []
