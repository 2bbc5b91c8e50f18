"""Keep the question's embedding off the Rasa server's event loop.

Rasa runs the NLU graph synchronously on the event loop that serves every conversation of the
server. Embedding a question (bot/retrieval/dense.py) costs about a millisecond per token, so
the arbiter (bot/nlu/retrieval_arbiter.py) does not do it there: while a message is parsed
inside :func:`parse_message` below, a question whose vector is not cached only records that it
wants one (``dense_wanted`` in the parse data: the question, and the words of it no item uses,
whose own vectors find the documents' words near them); the vector is then computed in a worker thread
(the engine releases the GIL) and the message is parsed again, which now finds it cached. The
NLU's own cost is a few milliseconds, so the second parse is cheap, and only messages the words
could not settle take it.

Outside a server (``rasa test``, ``rasa shell`` through the agent still goes through here;
tests that call components directly do not) the arbiter embeds in place, so the result is the
same either way; ``tests/test_dense.py`` checks both paths give the same parse.

:func:`install` wraps ``rasa.core.processor.MessageProcessor.parse_message`` (project side, no
file in site-packages is changed); it fails loudly if Rasa's signature changes.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Dict, Optional

logger = logging.getLogger(__name__)

WANTED_KEY = "dense_wanted"
_installed = False


def want(message, texts) -> None:
    """Ask for ``texts`` to be embedded before the message is parsed again (several components
    may each want one: the lists are merged)."""
    have = message.get(WANTED_KEY) or []
    have = [have] if isinstance(have, str) else list(have)
    message.set(WANTED_KEY, list(dict.fromkeys(have + [t for t in texts if t])), add_to_output=True)


def install() -> None:
    global _installed
    if _installed:
        return
    from rasa.core.processor import MessageProcessor

    original = MessageProcessor.parse_message
    params = list(inspect.signature(original).parameters)
    if params[:4] != ["self", "message", "tracker", "only_output_properties"] \
            or not inspect.iscoroutinefunction(original):
        raise RuntimeError(f"MessageProcessor.parse_message changed ({params}): review bot/nlu/dense_prefetch.py")

    async def parse_message(self, message, tracker=None, only_output_properties: bool = True) -> Dict[str, Any]:
        from bot.retrieval.dense import DEFER, embed_query

        token = DEFER.set(True)
        try:
            data = await original(self, message, tracker, only_output_properties)
        finally:
            DEFER.reset(token)
        wanted = data.pop(WANTED_KEY, None) if isinstance(data, dict) else None
        if not wanted:
            return data
        texts = [wanted] if isinstance(wanted, str) else [t for t in wanted if isinstance(t, str)]

        def embed_all() -> None:
            for t in texts:
                embed_query(t)

        try:
            await asyncio.get_running_loop().run_in_executor(None, embed_all)
        except Exception:  # the words alone still answer
            logger.exception("embedding the question failed; parsing without dense scores")
            return data
        return await original(self, message, tracker, only_output_properties)

    parse_message.__wrapped__ = original  # type: ignore[attr-defined]
    MessageProcessor.parse_message = parse_message
    _installed = True
