"""How a staff message reaches the citizen on the channel they wrote from.

Each input channel registers one coroutine for its channel name (the `channel` of the ticket,
i.e. the tracker's latest input channel)::

    from bot.handoff import delivery

    async def push(sender_id: str, text: str, staff_name: Optional[str]) -> bool:
        ...  # send `text` to the citizen; True when it was delivered (or queued for pick-up)
    delivery.register("wechat", push)

`staff_name` is the staff member's display name for staff messages, and None for the bot's
own pushed messages (the "人工服务已结束…请打分" notice sent when a ticket is closed).
The message is always stored in the tracker first; a deliverer returning False (or raising, or
no deliverer for the channel) is reported to the staff member as {"delivered": false,
"detail": …} — never a silent loss.
"""
from __future__ import annotations

import logging
from typing import Awaitable, Callable, Dict, Optional, Tuple

logger = logging.getLogger(__name__)

Deliverer = Callable[[str, str, Optional[str]], Awaitable[bool]]

_registry: Dict[str, Deliverer] = {}


def register(channel_name: str, fn: Deliverer) -> None:
    """Register (or replace) the deliverer for `channel_name`."""
    if not callable(fn):
        raise TypeError("deliverer must be an async callable (sender_id, text, staff_name) -> bool")
    _registry[channel_name] = fn


def unregister(channel_name: str) -> None:
    _registry.pop(channel_name, None)


def registered() -> Dict[str, Deliverer]:
    return dict(_registry)


async def deliver(channel_name: str, sender_id: str, text: str,
                  staff_name: Optional[str]) -> Tuple[bool, Optional[str]]:
    """(delivered, detail): detail explains, in Chinese, why a message was not delivered."""
    fn = _registry.get(channel_name)
    if fn is None:
        return False, f"渠道“{channel_name}”未接入人工消息推送，消息已保存在会话记录中，但未能送达市民。"
    try:
        ok = await fn(sender_id, text, staff_name)
    except Exception as e:  # a channel's failure must not lose the staff member's message
        logger.exception("delivery via %s to %s failed", channel_name, sender_id)
        return False, f"通过渠道“{channel_name}”推送失败（{type(e).__name__}），消息已保存在会话记录中。"
    if not ok:
        return False, f"渠道“{channel_name}”未能送达该消息（例如市民已超出可推送时限），消息已保存在会话记录中。"
    return True, None
