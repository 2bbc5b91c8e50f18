"""Client message ids: a message that a client sends again is answered once.

REST clients (``"message_id"`` in the request body) and the web widget (``message_id`` in
``user_uttered``) may give each message an id of their own: 8–64 characters of ``A–Z a–z 0–9 _ - . :``,
unique within the conversation (a UUID). A message sent again with the same id in the same
conversation — a retry after a 502/503 or a timeout, the widget re-sending after the server that
held its socket died — is not processed a second time:

* already answered → the same reply again (kept ``ttl`` seconds, default 10 minutes);
* being answered, on any server → this request waits for that reply (up to ``wait`` seconds,
  then "busy": the client tries again later with the same id);
* the server answering it died (its lease, renewed every ``lease``/3 s while it works, lapsed:
  6 s) → this server takes the message over: if the dead server had already stored the turn, the
  reply is read back from the tracker (:func:`replies_from_events`), otherwise the message is
  processed here — once;
* processing failed (database or Redis unreachable: nothing was stored) → the claim is dropped,
  so a later retry processes it.

The claims live in the cross-process state (bot/ops/shared_state.py): process memory in the
embedded profile, Redis in the production profile (keys ``<prefix>:state:mid:…``), so a retry that
nginx sends to another Rasa server is recognised there. WeChat has its own, older scheme for its
MsgId (bot/channels/wechat_store.py ``MessageClaims``) with the same lease rule.

If the shared state itself fails, the message is processed without the guarantee (fail open,
counted in ``zwzx_store_errors_total{store="message_ids"}``): a citizen is never refused because
Redis is down — the conversation lock would fail the message anyway in that case.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional

from bot.ops.shared_state import SharedState, shared_state

logger = logging.getLogger(__name__)

MESSAGE_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")
PROCESSING = "processing:"
DONE = "done:"
INVALID_TEXT = "message_id 必须是 8–64 个字符（字母、数字、_ - . :），同一会话内每条消息唯一"


def valid(message_id: Any) -> bool:
    return isinstance(message_id, str) and bool(MESSAGE_ID_RE.match(message_id))


@dataclass
class Outcome:
    status: str                                   # processed | replayed | busy | failed
    messages: List[Dict[str, Any]] = field(default_factory=list)


Process = Callable[[], Awaitable[Optional[List[Dict[str, Any]]]]]


class MessageIds:
    """One per channel and process. ``handle(sender, message_id, process, stored)``:

    * ``process()`` processes the message and returns the reply (a JSON-serialisable list), or
      None when it failed and nothing was stored;
    * ``stored()`` returns the reply of this message if the tracker already holds its turn, else None.
    """

    def __init__(self, channel: str, state: Optional[SharedState] = None, ttl: float = 600.0,
                 lease: float = 6.0, wait: float = 50.0, poll: float = 0.05):
        self.channel, self._state = channel, state
        self.ttl, self.lease, self.wait, self.poll = ttl, lease, wait, poll
        self.replayed = 0
        self.taken_over = 0

    @property
    def state(self) -> SharedState:
        return self._state or shared_state()

    def _key(self, sender: str, message_id: str) -> str:
        return f"mid:{self.channel}:{sender}:{message_id}"

    @staticmethod
    def _alive(value: str) -> str:
        return f"mid:alive:{value[len(PROCESSING):]}"

    async def _new_claim(self) -> str:
        value = PROCESSING + uuid.uuid4().hex
        await self.state.set(self._alive(value), "1", self.lease)
        return value

    async def handle(self, sender: str, message_id: str, process: Process, stored: Process) -> Outcome:
        key = self._key(sender, message_id)
        st = self.state
        try:
            mine = await self._new_claim()
            current = await st.add(key, mine, self.ttl)
        except Exception:  # noqa: BLE001 — fail open (module docstring)
            from bot.ops import metrics

            metrics.STORE_ERRORS.labels(store="message_ids", op="claim").inc()
            logger.exception("message ids: shared state unavailable; processing %s without the guarantee", key)
            messages = await process()
            return Outcome("processed" if messages is not None else "failed", messages or [])
        if current is None:
            return await self._run(key, mine, process, stored, taken_over=False)
        await st.delete(self._alive(mine))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        while True:
            if current is None:                      # dropped after a failure, or expired: claim it
                mine = await self._new_claim()
                current = await st.add(key, mine, self.ttl)
                if current is None:
                    return await self._run(key, mine, process, stored, taken_over=True)
                await st.delete(self._alive(mine))
                continue
            if current.startswith(DONE):
                self.replayed += 1
                return Outcome("replayed", json.loads(current[len(DONE):]))
            if current.startswith(PROCESSING) and not await st.exists(self._alive(current)):
                mine = await self._new_claim()
                if await st.compare_and_set(key, current, mine, self.ttl):
                    self.taken_over += 1
                    logger.warning("%s message %s: the server answering it is gone; answering here",
                                   self.channel, key)
                    return await self._run(key, mine, process, stored, taken_over=True)
                await st.delete(self._alive(mine))
            elif loop.time() >= deadline:
                return Outcome("busy")
            else:
                await asyncio.sleep(self.poll)
            current = await st.get(key)

    async def _keep_alive(self, value: str) -> None:
        try:
            while True:
                await asyncio.sleep(self.lease / 3)
                await self.state.set(self._alive(value), "1", self.lease)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 — the lease lapses; a retry may then take over
            logger.exception("message ids: could not renew a lease")

    async def _run(self, key: str, mine: str, process: Process, stored: Process, taken_over: bool) -> Outcome:
        st = self.state
        renew = asyncio.ensure_future(self._keep_alive(mine))
        decided = False
        try:
            if taken_over:
                messages = await stored()
                if messages is not None:   # the dead server had stored the turn: its reply, not a second one
                    await st.compare_and_set(key, mine, DONE + json.dumps(messages, ensure_ascii=False), self.ttl)
                    decided = True
                    self.replayed += 1
                    return Outcome("replayed", messages)
            messages = await process()
            if messages is None:
                return Outcome("failed")
            await st.compare_and_set(key, mine, DONE + json.dumps(messages, ensure_ascii=False), self.ttl)
            decided = True
            return Outcome("processed", messages)
        finally:
            renew.cancel()
            try:
                if not decided:  # failed or cancelled: a resend processes it again
                    await st.compare_and_delete(key, mine)
                await st.delete(self._alive(mine))
            except Exception:  # noqa: BLE001
                logger.warning("message ids: could not release %s (it expires by itself)", key)


def turn_bot_events(events: Iterable[Dict[str, Any]], message_id: str) -> Optional[List[Dict[str, Any]]]:
    """The bot events of the turn started by the user event with this message id (until the
    turn's closing action_listen or the next user event; staff messages left out), or None
    when no user event has that id."""
    out: Optional[List[Dict[str, Any]]] = None
    for ev in events:
        kind = ev.get("event")
        if out is None:
            if kind == "user" and ev.get("message_id") == message_id:
                out = []
            continue
        if kind == "user" or (kind == "action" and ev.get("name") == "action_listen"):
            break
        if kind == "bot" and (ev.get("metadata") or {}).get("from") != "staff":
            out.append(ev)
    return out


def bot_message(event: Dict[str, Any]) -> Dict[str, Any]:
    """A stored bot event as the message dict Rasa handed to the output channel."""
    message: Dict[str, Any] = {k: v for k, v in (event.get("data") or {}).items() if v is not None}
    if event.get("text") is not None:
        message["text"] = event["text"]
    return message


async def stored_reply(tracker_store: Any, sender: str, message_id: str,
                       make_output: Callable[[], Any], collected: Callable[[Any], List[Dict[str, Any]]]
                       ) -> Optional[List[Dict[str, Any]]]:
    """The reply of a stored turn, re-rendered through a (recording) output channel of the channel."""
    if tracker_store is None:
        return None
    tracker = await tracker_store.retrieve_full_tracker(sender)
    if tracker is None:
        return None
    bot_events = turn_bot_events((e.as_dict() for e in tracker.events), message_id)
    if bot_events is None:
        return None
    output = make_output()
    for ev in bot_events:
        await output.send_response(sender, bot_message(ev))
    return collected(output)
