"""The cached action-response validator accepts and rejects exactly what Rasa's does."""
import pytest
from jsonschema import ValidationError, validate
from rasa.core.actions.action import RemoteAction

import bot.channels  # noqa: F401  (installs the speed-ups, as at Rasa server start)

GOOD = [
    {"events": [{"event": "slot", "name": "current_item", "value": 5.0}], "responses": [{"text": "好"}]},
    {"events": [], "responses": []},
    {"responses": [{"custom": {"kind": "answer", "citations": [], "departments": []}}]},
]
BAD = [
    {"events": [{"event": "slot"}]},          # a slot event without a name
    {"events": "not a list"},
    {"responses": ["not an object"]},
]


@pytest.mark.parametrize("result", GOOD)
def test_valid_responses_pass(result):
    assert RemoteAction("action_answer", None)._validate_action_result(result) is True
    validate(result, RemoteAction.action_response_format_spec())  # Rasa's own check agrees


@pytest.mark.parametrize("result", BAD)
def test_invalid_responses_fail_as_in_rasa(result):
    with pytest.raises(ValidationError) as ours:
        RemoteAction("action_answer", None)._validate_action_result(result)
    assert "Failed to validate Action server response" in ours.value.message
    with pytest.raises(ValidationError):
        validate(result, RemoteAction.action_response_format_spec())
