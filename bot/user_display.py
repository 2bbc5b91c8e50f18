"""What a citizen's message *shows as* — decided by the server, never by the client.

A user message is either free text (it shows itself) or a button payload such as
``/ask_policy{"item_ref": "d#4"}``: then it shows the title of the button the server offered
for that payload earlier in the same conversation. A client may *claim* a display text (the
widget sends the title of the button it clicked); the claim only chooses between the titles
offered for that payload, so ``metadata.display`` can never put other words in a citizen's
mouth. The tracker keeps the real text; the widget channel (live messages and the
``/history/`` route) and the staff console (transcripts) all use :class:`OfferedButtons`, so
they show the same thing.

Plain Python with no Rasa import: the staff console uses it too.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

# Buttons the web widget always shows, outside any bot message (the "转人工" button in its header).
CHANNEL_BUTTONS = ({"title": "转人工", "payload": "/request_human"},)
MAX_TITLE = 100


class OfferedButtons:
    """Buttons offered so far in one conversation: payload → titles (oldest first).

    Feed it the conversation's events in order (:meth:`add_event`) and ask
    :meth:`display` for each user message as it comes.
    """

    def __init__(self, channel_buttons: Iterable[Dict[str, Any]] = CHANNEL_BUTTONS) -> None:
        self._titles: Dict[str, List[str]] = {}
        self.offer(channel_buttons)

    def offer(self, buttons: Any) -> None:
        for b in buttons or ():
            if not isinstance(b, dict) or not b.get("title"):
                continue
            title = str(b["title"])[:MAX_TITLE]
            payload = str(b.get("payload") or b["title"])
            titles = self._titles.setdefault(payload, [])
            if title in titles:
                titles.remove(title)
            titles.append(title)  # the latest offer of a title comes last

    def add_event(self, event: Dict[str, Any]) -> None:
        """Remember the buttons of a bot event (Rasa's event dict: ``data.buttons`` or
        ``data.quick_replies``)."""
        if event.get("event") != "bot":
            return
        data = event.get("data") or {}
        if isinstance(data, dict):
            self.offer(data.get("buttons"))
            self.offer(data.get("quick_replies"))

    def add_events(self, events: Iterable[Dict[str, Any]]) -> "OfferedButtons":
        for ev in events:
            self.add_event(ev)
        return self

    def titles(self, payload: str) -> List[str]:
        return list(self._titles.get(payload, ()))

    def display(self, text: str, claimed: Any = None) -> str:
        """What the message ``text`` shows as: the title of an offered button with that payload
        (``claimed`` picks one if it is one of them, else the latest), otherwise the text itself."""
        titles = self._titles.get(text)
        if not titles:
            return text
        if isinstance(claimed, str) and claimed in titles:
            return claimed
        return titles[-1]


def is_payload(text: str) -> bool:
    return text.startswith("/")
