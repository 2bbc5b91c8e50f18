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


def _rasa_resolve(type_name):
    from rasa.shared.utils.common import all_subclasses
    from rasa.shared.core.events import Event
    for cls in all_subclasses(Event):
        if cls.type_name == type_name:
            return cls
    return None


def test_cached_event_lookup_matches_rasa_for_every_event_type():
    from rasa.shared.utils.common import all_subclasses
    from rasa.shared.core.events import Event
    names = {cls.type_name for cls in all_subclasses(Event)}
    assert {"user", "bot", "action", "slot", "session_started"} <= names
    for name in names:
        assert Event.resolve_by_type(name) is _rasa_resolve(name), name


def test_cached_event_lookup_keeps_rasa_rules_for_unknown_names():
    from rasa.shared.core.events import Event, SlotSet
    assert Event.resolve_by_type("topic") is None
    assert Event.resolve_by_type("no_such_event", SlotSet) is SlotSet
    with pytest.raises(ValueError):
        Event.resolve_by_type("no_such_event")


def test_event_class_defined_later_still_resolves():
    from rasa.shared.core.events import Event, SlotSet

    assert Event.resolve_by_type("slot") is SlotSet  # the lookup is warm

    class LateEvent(SlotSet):
        type_name = "zwzx_late_test_event"

    assert _rasa_resolve("zwzx_late_test_event") is LateEvent
    assert Event.resolve_by_type("zwzx_late_test_event") is LateEvent


def test_graph_evaluation_matches_dask():
    import dask
    from bot.rasa_speedups import evaluate

    calls = []

    def node(name):
        def f(*args):
            calls.append(name)
            return (name, [a for a in args])
        return f

    graph = {
        "__message__": ("__message__", ["消息", {"unhashable": 1}]),  # an input, as Rasa adds it
        "tok": (node("tok"), "__message__"),
        "feat1": (node("feat1"), "tok"),
        "feat2": (node("feat2"), "tok"),
        "clf": (node("clf"), "feat1", "feat2", "not-a-key"),
        "unused": (node("unused"), "tok"),
        "out": (node("out"), "clf", "tok"),
    }
    expected = dask.get(graph, ["out", "feat2"])
    calls.clear()
    assert evaluate(graph, ["out", "feat2"]) == list(expected)
    assert sorted(calls) == ["clf", "feat1", "feat2", "out", "tok"]  # each needed node once


def test_graph_evaluation_rejects_cycles():
    from bot.rasa_speedups import evaluate
    graph = {"a": (lambda x: x, "b"), "b": (lambda x: x, "a")}
    with pytest.raises(RuntimeError):
        evaluate(graph, ["a"])


def test_graph_node_errors_surface_unchanged():
    from bot.rasa_speedups import evaluate

    def boom(_):
        raise ValueError("组件出错")
    with pytest.raises(ValueError, match="组件出错"):
        evaluate({"x": ("x", 1), "y": (boom, "x")}, ["y"])


MORE_BAD = BAD + [
    {"events": [{"event": "slot", "name": 5, "value": 1}]},     # a name that is not a string
    {"events": [{"name": "x"}]},                                   # an event without its type
    {"events": [{"event": "action", "name": None}], "responses": "x"},
    [],
]


def test_compiled_check_passes_only_what_jsonschema_passes():
    from jsonschema import Draft202012Validator
    from bot.rasa_speedups import _compiled_check
    schema = RemoteAction.action_response_format_spec()
    check = _compiled_check(schema)
    reference = Draft202012Validator(schema)
    for result in GOOD:
        assert check(result) and reference.is_valid(result)
    for result in MORE_BAD:
        assert not reference.is_valid(result), result
        assert not check(result), result       # never short-cuts a response jsonschema rejects
