"""Input limits applied before a message reaches NLU: Rasa's NLU raises on an empty
text, so channels answer empty or blank messages themselves with this reply."""
from __future__ import annotations

from typing import List, Optional

from bot.answering.cards import make_card

EMPTY_REPLY = "您好像没有输入内容。请直接输入您想咨询的政策问题，例如“财政预决算会公开吗？”"


def blank_message_reply(text: Optional[str]) -> Optional[List[dict]]:
    """REST-style messages for a blank message, or None when the text should go to the bot."""
    if text is not None and text.strip():
        return None
    return [{"text": EMPTY_REPLY}, {"custom": make_card("fallback")}]
