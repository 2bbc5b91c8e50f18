"""Speed-ups for Rasa 3.6 internals, same behaviour.

Rasa validates every action-server response with ``jsonschema.validate(result, schema)``,
which checks the (large) events schema against the JSON-Schema meta-schema on *every* call:
~35-60 ms per custom action on our machine (bench/profile_turn.py), most of a turn's cost.
Here the validator is built and the schema checked once; results are validated exactly as
before and errors carry the same message.

Rasa also resolves every event it deserialises (each tracker read, each action-server
response) with ``Event.resolve_by_type``, which walks all Event subclasses with
``inspect.isabstract`` on each call (~5 ms per turn here). That lookup is cached by type
name; an unknown name re-walks the subclasses, so event classes imported later still resolve.

Installed when the project's input channels are imported (bot/channels/__init__.py), i.e. in
every Rasa server we start, whatever the channel.
"""
from __future__ import annotations

import threading
from typing import Any, Dict, Text

_installed = False
_lock = threading.Lock()


def install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        from jsonschema import ValidationError
        from jsonschema.validators import validator_for
        from rasa.core.actions.action import RemoteAction
        from rasa.shared.constants import DOCS_BASE_URL

        schema = RemoteAction.action_response_format_spec()
        validator_cls = validator_for(schema)
        validator_cls.check_schema(schema)
        validator = validator_cls(schema)

        def _validate_action_result(self, result: Dict[Text, Any]) -> bool:
            try:
                validator.validate(result)
                return True
            except ValidationError as e:
                e.message += (
                    f". Failed to validate Action server response from API, "
                    f"make sure your response from the Action endpoint is valid. "
                    f"For more information about the format visit "
                    f"{DOCS_BASE_URL}/custom-actions"
                )
                raise e

        RemoteAction._validate_action_result = _validate_action_result
        _install_event_lookup()
        _installed = True


def _install_event_lookup() -> None:
    from rasa.shared.core import events
    from rasa.shared.utils.common import all_subclasses

    Event = events.Event
    original = Event.resolve_by_type
    by_name: Dict[Text, Any] = {}

    def _refresh() -> None:
        by_name.clear()
        for cls in all_subclasses(Event):
            by_name.setdefault(cls.type_name, cls)  # first match, as Rasa's loop returns

    def resolve_by_type(type_name: Text, default: Any = None) -> Any:
        cls = by_name.get(type_name)
        if cls is None:
            _refresh()
            cls = by_name.get(type_name)
            if cls is None:
                return original(type_name, default)  # Rasa's own 'topic' / default / error
        return cls

    Event.resolve_by_type = staticmethod(resolve_by_type)
