"""Rasa-server side of the takeover: writing staff messages and the resume into the citizen's
tracker, and the message hook that keeps a handed-off conversation paused.

The hook wraps `MessageProcessor.handle_message` (installed once by the staff and REST input
channels). For a conversation with a waiting or active ticket it
  * stores the citizen's message (NLU included) and does not answer it — the ticket in the
    database is the source of truth, so the pause also survives a session expiry;
  * cancels a *waiting* ticket when the message is “取消”/“不用了” (or a short message the NLU
    reads as `cancel`), resumes the conversation and confirms — a paused tracker runs no
    actions, so this cannot be an action.
Every other message goes to Rasa unchanged.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Optional

from rasa.core.channels.channel import CollectingOutputChannel, OutputChannel, UserMessage
from rasa.shared.core.events import (ActionExecuted, BotUttered, ConversationPaused,
                                     ConversationResumed, Event, SlotSet)
from rasa.shared.core.trackers import DialogueStateTracker

from bot.answering.cards import make_card
from bot.handoff import delivery
from bot.handoff.config import load_config
from bot.handoff.store import HandoffStore, get_store

logger = logging.getLogger(__name__)

ACTION_LISTEN = "action_listen"
RATING_SLOT = "rating_ticket"
TICKET_SLOT = "handoff_ticket"
CANCEL_MAX_CHARS = 12

_store_url: Optional[str] = None


def configure(db_url: Optional[str]) -> None:
    """Database of tickets for this process (None: ZWZX_DB_URL / default)."""
    global _store_url
    _store_url = db_url


def store() -> HandoffStore:
    return get_store(_store_url)


# ----------------------------------------------------------------- tracker edits
async def update_tracker(agent, sender_id: str, events: List[Event]) -> DialogueStateTracker:
    """Append `events` to the conversation under the conversation lock and save it."""
    async with agent.lock_store.lock(sender_id):
        tracker = await agent.tracker_store.retrieve(sender_id)
        if tracker is None:
            tracker = await agent.tracker_store.get_or_create_tracker(sender_id)
        for event in events:
            tracker.update(event)
        await agent.tracker_store.save(tracker)
        return tracker


def staff_message_event(text: str, staff_name: str) -> BotUttered:
    return BotUttered(text=text, data={}, metadata={"from": "staff", "staff": staff_name})


def rating_buttons() -> List[Dict[str, str]]:
    labels = {5: "5分 非常满意", 4: "4分 满意", 3: "3分 一般", 2: "2分 不满意", 1: "1分 非常不满意"}
    return [{"title": labels[n], "payload": '/rate{"rating": "%d"}' % n} for n in (5, 4, 3, 2, 1)]


def resume_text(ticket: Dict[str, Any]) -> str:
    return ("本次人工服务已结束，智能助手回来继续为您服务。"
            "请您为刚才工作人员的服务打分（1–5分，5分为非常满意），您的评价将帮助我们改进服务。")


def resume_events(ticket: Dict[str, Any], with_slot: bool = True) -> List[Event]:
    events: List[Event] = [ConversationResumed()]
    if with_slot:
        events += [SlotSet(TICKET_SLOT, None), SlotSet(RATING_SLOT, float(ticket["id"]))]
    events += [BotUttered(text=resume_text(ticket), data={"buttons": rating_buttons()},
                          metadata={"from": "bot", "push": True, "ticket": ticket["id"]}),
               ActionExecuted(ACTION_LISTEN)]
    return events


def _has_slot(owner, name: str) -> bool:
    """Whether the loaded model's domain (of an Agent or a MessageProcessor) has this slot."""
    domain = getattr(owner, "domain", None)
    return bool(domain) and any(s.name == name for s in domain.slots)


async def post_staff_message(agent, ticket: Dict[str, Any], text: str, staff_name: str):
    await update_tracker(agent, ticket["sender_id"], [staff_message_event(text, staff_name)])
    return await delivery.deliver(ticket["channel"], ticket["sender_id"], text, staff_name)


async def resume_after_close(agent, ticket: Dict[str, Any]):
    events = resume_events(ticket, with_slot=_has_slot(agent, RATING_SLOT))
    await update_tracker(agent, ticket["sender_id"], events)
    return await delivery.deliver(ticket["channel"], ticket["sender_id"], resume_text(ticket), None)


# ------------------------------------------------------------------ pause hook
def cancel_text(ticket: Dict[str, Any]) -> str:
    hotline = load_config().hotline
    return (f"好的，已为您取消转人工（工单号：{ticket['id']}）。智能助手继续为您服务，请问还有什么可以帮您？"
            f"如需人工服务，可随时回复“转人工”或拨打{hotline}热线。")


def is_cancel(text: Optional[str], parse_data: Optional[Dict[str, Any]]) -> bool:
    cfg = load_config()
    if cfg.is_cancel_phrase(text):
        return True
    intent = ((parse_data or {}).get("intent") or {})
    return (intent.get("name") == "cancel" and (intent.get("confidence") or 0) >= 0.6
            and len((text or "").strip()) <= CANCEL_MAX_CHARS)


async def _send(output_channel: OutputChannel, sender_id: str, messages: List[Dict[str, Any]]) -> None:
    for m in messages:
        await output_channel.send_response(sender_id, m)


async def handle_during_handoff(processor, message: UserMessage, ticket: Dict[str, Any]):
    tracker = await processor.log_message(message, should_save_tracker=False)
    cancelled = False
    if ticket["status"] == "waiting" and is_cancel(message.text, tracker.latest_message.parse_data):
        cancelled = await asyncio.to_thread(store().cancel, ticket["id"])
    if cancelled:
        text = cancel_text(ticket)
        card = make_card("chitchat", ticket=ticket["id"], handoff="cancelled")
        for event in [ConversationResumed(), SlotSet(TICKET_SLOT, None) if _has_slot(processor, TICKET_SLOT) else None,
                      BotUttered(text=text, data={}), BotUttered(data={"custom": card}),
                      ActionExecuted(ACTION_LISTEN)]:
            if event is not None:
                tracker.update(event)
        await _send(message.output_channel, message.sender_id, [{"text": text}, {"custom": card}])
    elif not tracker.is_paused():
        tracker.update(ConversationPaused())  # e.g. a new session started while waiting
    await processor.save_tracker(tracker)
    if isinstance(message.output_channel, CollectingOutputChannel):
        return message.output_channel.messages
    return None


_installed = False


def install() -> None:
    """Wrap MessageProcessor.handle_message once per process."""
    global _installed
    if _installed:
        return
    from rasa.core.processor import MessageProcessor

    original = MessageProcessor.handle_message

    async def handle_message(self, message: UserMessage):
        ticket = None
        if isinstance(message.text, str) and message.text.strip() and message.sender_id:
            try:
                ticket = await asyncio.to_thread(store().open_ticket_for, message.sender_id)
            except Exception:  # the bot keeps answering when the ticket database is down
                logger.exception("could not look up handoff tickets for %s", message.sender_id)
        if ticket is None:
            return await original(self, message)
        return await handle_during_handoff(self, message, ticket)

    handle_message.__wrapped__ = original  # type: ignore[attr-defined]
    MessageProcessor.handle_message = handle_message
    _installed = True
