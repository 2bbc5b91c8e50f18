"""The speed-ups of bot/rasa_speedups.py give what Rasa's own code gives: the action-response
validator accepts and rejects exactly what Rasa's does, and each replaced function is compared
with the Rasa function it stands in for."""
import asyncio

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


# --------------------------------------------------------------------------- event-wise check
def _sample_events():
    """One serialised event of every type Rasa knows (as an action server would send them)."""
    from rasa.shared.core import events as ev
    return [e.as_dict() for e in [
        ev.UserUttered("你好", {"name": "greet", "confidence": 0.9},
                       [{"entity": "department", "value": "市财政局", "start": 0, "end": 4}],
                       parse_data={"text": "你好", "intent": {"name": "greet", "confidence": 0.9},
                                   "entities": [], "intent_ranking": [{"name": "greet", "confidence": 0.9}]}),
        ev.ActionExecuted("action_answer", policy="RulePolicy", confidence=1.0),
        ev.SlotSet("current_item", 5.0), ev.SlotSet("department", None),
        ev.EntitiesAdded([{"entity": "department", "value": "x"}]),
        ev.BotUttered("好的", {"buttons": [{"title": "是", "payload": "/affirm"}]}, {"from": "staff"}),
        ev.BotUttered(data={"custom": {"kind": "answer", "citations": []}}),
        ev.ReminderCancelled(name="r"), ev.ConversationPaused(), ev.ConversationResumed(),
        ev.FollowupAction("action_handoff"), ev.Restarted(), ev.AllSlotsReset(), ev.ActionReverted(),
        ev.UserUtteranceReverted(), ev.ActiveLoop("form"), ev.LoopInterrupted(True),
        ev.SessionStarted(), ev.ActionExecutionRejected("action_x"), ev.AgentUttered("x"),
    ]]


def test_eventwise_check_recognises_rasas_schema_and_agrees_with_jsonschema():
    from jsonschema import Draft202012Validator
    from bot.rasa_speedups import _eventwise_check
    schema = RemoteAction.action_response_format_spec()
    check = _eventwise_check(schema)
    assert check is not None, "Rasa's response schema changed shape: review _eventwise_check"
    reference = Draft202012Validator(schema)
    samples = _sample_events()
    good = GOOD + [{"events": samples, "responses": [{"text": "好"}, {"custom": {"kind": "answer"}}]},
                   {"events": [samples[0]]}, {"responses": []}, {}]
    bad = MORE_BAD + [
        {"events": [dict(samples[0], parse_data={"intent": "not an object"})]},
        {"events": [dict(samples[0], text=5)]},
        {"events": [{"event": "no_such_event"}]},
        {"events": [{"event": "slot", "name": "x", "value": 1, "timestamp": "yesterday"}]},
        {"events": [{"event": "entities"}]},                       # required entities missing
        {"events": [{"event": "action", "hide_rule_turn": "yes"}]},
        {"events": ["slot"]}, {"events": [samples[2]], "responses": [1]}, "not an object",
    ]
    for result in good:
        assert reference.is_valid(result), result
        assert check(result), result
    for result in bad:
        assert not reference.is_valid(result), result
        assert not check(result), result       # never short-cuts a response jsonschema rejects


# --------------------------------------------------------------------------- debug-log copies
def test_deepcopies_left_to_the_shim_are_only_debug_log_arguments():
    """Every copy.deepcopy in the modules that get DebugLogCopy builds an argument of a
    structlogger.debug call: a Rasa upgrade that copies for another reason fails here."""
    import ast
    import importlib
    import inspect
    from bot.rasa_speedups import DEBUG_LOG_COPY_MODULES, DebugLogCopy

    for name in DEBUG_LOG_COPY_MODULES:
        module = importlib.import_module(name)
        assert isinstance(module.copy, DebugLogCopy), name
        tree = ast.parse(inspect.getsource(module))
        inside_debug = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "debug" and isinstance(node.func.value, ast.Name) \
                    and node.func.value.id == "structlogger":
                inside_debug.update(id(n) for n in ast.walk(node))
        uses = [node for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name) and node.value.id == "copy"]
        assert uses, name
        for node in uses:
            assert node.attr == "deepcopy" and id(node) in inside_debug, (name, node.lineno)


def test_debug_log_copy_copies_exactly_when_debug_events_are_used():
    import logging
    import structlog
    from rasa.utils.log_utils import configure_structlog
    from bot.rasa_speedups import DebugLogCopy, debug_logs_dropped

    saved = structlog.get_config()
    shim, value = DebugLogCopy(), {"events": [{"event": "slot"}]}
    try:
        configure_structlog(logging.INFO)      # `rasa run` without --debug
        assert debug_logs_dropped()
        assert shim.deepcopy(value) is value
        configure_structlog(logging.DEBUG)     # `rasa run --debug`
        assert not debug_logs_dropped()
        copied = shim.deepcopy(value)
        assert copied == value and copied is not value and copied["events"][0] is not value["events"][0]
        assert shim.copy is __import__("copy").copy  # everything else is the copy module's
    finally:
        structlog.configure(**saved)


# --------------------------------------------------------------------------- LR input
def _message_with_features(features):
    from rasa.shared.nlu.training_data.message import Message
    message = Message(data={"text": "问题"})
    for f in features:
        message.add_features(f)
    return message


def _features(seed, dense=False):
    import numpy as np
    import scipy.sparse
    from rasa.shared.nlu.training_data.features import Features
    rng = np.random.default_rng(seed)

    def coo(rows, cols, n):  # unsorted entries with duplicates, as counts
        r = rng.integers(0, rows, n)
        c = rng.integers(0, cols, n)
        return scipy.sparse.coo_matrix((rng.integers(1, 4, n).astype(np.int64), (r, c)), shape=(rows, cols))

    out = []
    for i, width in enumerate((975, 4605)):
        origin = f"run_CountVectorsFeaturizer{i}"
        out.append(Features(coo(7, width, 12), "sequence", "text", origin))
        out.append(Features(coo(1, width, 9), "sentence", "text", origin))
    out.append(Features(coo(1, 30, 3), "sentence", "action_name", "other"))  # not the text
    if dense:
        out.append(Features(np.ones((1, 4)), "sentence", "text", "dense"))
    return out


def test_logreg_input_is_rasas_matrix():
    import numpy as np
    from rasa.nlu.classifiers.logistic_regression_classifier import LogisticRegressionClassifier
    fast = LogisticRegressionClassifier._create_X
    rasa_create_x = fast.__wrapped__
    cases = [[_message_with_features(_features(seed))] for seed in range(20)]
    cases += [[_message_with_features(_features(1, dense=True))],                        # Rasa's path
              [_message_with_features(_features(2)), _message_with_features(_features(3))]]
    for messages in cases:
        ours, theirs = fast(None, messages), rasa_create_x(None, messages)
        assert type(ours) is type(theirs) and ours.shape == theirs.shape and ours.dtype == theirs.dtype
        ours, theirs = ours.tocsr(), theirs.tocsr()
        for attr in ("indptr", "indices", "data"):
            assert np.array_equal(getattr(ours, attr), getattr(theirs, attr)), attr


def test_logreg_predictions_unchanged_on_the_served_model():
    """The served model's classifier gives bit-identical probabilities on real messages."""
    import numpy as np
    from rasa.nlu.classifiers.logistic_regression_classifier import LogisticRegressionClassifier
    from tests.servers import ROOT
    model = ROOT / "models" / "zhengwu.tar.gz"
    if not model.exists():
        pytest.skip("no trained model (make train)")
    from rasa.core.agent import Agent
    seen = []
    original = LogisticRegressionClassifier.process

    def spy(self, messages):
        seen.append((self, list(messages)))
        return original(self, messages)

    LogisticRegressionClassifier.process = spy
    try:
        agent = Agent.load(str(model))
        for text in ["财政预决算信息会公开吗", "你好", "谁负责政务服务", "我要投诉", "how do I apply", "转人工"]:
            asyncio.run(agent.parse_message(text))
    finally:
        LogisticRegressionClassifier.process = original
    assert seen
    rasa_create_x = LogisticRegressionClassifier._create_X.__wrapped__
    for clf, messages in seen:
        ours = clf.clf.predict_proba(clf._create_X(messages))
        theirs = clf.clf.predict_proba(rasa_create_x(clf, messages))
        assert np.array_equal(ours, theirs)


# --------------------------------------------------------------------------- past states
def _conversation_events():
    """A conversation exercising what past_states reads: turns, slots, entities added to a user
    event, featurization flags, a rule-only turn, a loop, reverts, a restart, a new session."""
    from rasa.shared.core import events as ev

    def user(text, intent, entities=()):
        return ev.UserUttered(text, {"name": intent, "confidence": 0.9}, list(entities),
                              parse_data={"intent_ranking": [{"name": intent, "confidence": 0.9}]})

    return [
        ev.ActionExecuted("action_session_start"), ev.SessionStarted(), ev.ActionExecuted("action_listen"),
        user("你好", "greet"), ev.DefinePrevUserUtteredFeaturization(False), ev.ActionExecuted("utter_greet"),
        ev.BotUttered("您好"), ev.ActionExecuted("action_listen"),
        user("财政局负责什么", "ask_department_duties", [{"entity": "department", "value": "市财政局"}]),
        ev.EntitiesAdded([{"entity": "topic", "value": "预算"}]),
        ev.DefinePrevUserUtteredFeaturization(False),
        ev.ActionExecuted("action_answer"), ev.SlotSet("department", "市财政局"), ev.SlotSet("current_item", 3.0),
        ev.BotUttered("答案"), ev.ActionExecuted("action_listen"),
        user("那个表格", "ask_policy"), ev.DefinePrevUserUtteredFeaturization(True),
        ev.ActionExecuted("action_fallback"), ev.ActionExecuted("action_listen"),
        # a user event changed after an action was already read with it (listen, then the flag
        # and entities): the states read before must show it as it is now, as Rasa's replay does
        user("在吗", "greet"), ev.ActionExecuted("action_listen"), ev.DefinePrevUserUtteredFeaturization(False),
        ev.EntitiesAdded([{"entity": "department", "value": "市财政局"}]),
        ev.ActionExecuted("utter_greet"), ev.ActionExecuted("action_listen"),
        user("转人工", "request_human"), ev.ActionExecuted("action_handoff", hide_rule_turn=True),
        ev.SlotSet("handoff_due", "yes"), ev.FollowupAction("action_listen"),
        ev.ActionExecuted("action_listen", hide_rule_turn=True),
        user("算了", "cancel"), ev.ActionExecuted("action_listen"), ev.UserUtteranceReverted(),
        user("不对", "deny"), ev.ActionExecuted("action_answer"), ev.ActionReverted(),
        ev.ActiveLoop("callback_form"), ev.ActionExecuted("callback_form"), ev.ActionExecuted("action_listen"),
        user("13800000000", "request_callback"), ev.ActionExecuted("callback_form"),
        ev.ActionExecutionRejected("callback_form"), ev.LoopInterrupted(True), ev.ActiveLoop(None),
        ev.ActionExecuted("action_listen"), ev.AllSlotsReset(), ev.ConversationPaused(), ev.ConversationResumed(),
        ev.Restarted(), ev.ActionExecuted("action_listen"), user("你好", "greet"),
        ev.ActionExecuted("action_session_start"), ev.SessionStarted(), ev.ActionExecuted("action_listen"),
        user("谢谢", "thank"), ev.ActionExecuted("utter_thank"), ev.BotUttered("不客气"),
        ev.ActionExecuted("action_listen"), user("再见", "goodbye"), ev.ActionExecuted("utter_goodbye"),
    ]


STATE_VARIANTS = [dict(), dict(ignore_rule_only_turns=True, rule_only_data={"slots": ["handoff_due"],
                                                                           "active_loops": ["callback_form"]}),
                  dict(ignore_rule_only_turns=True, rule_only_data=None),
                  dict(rule_only_data={"slots": ["handoff_due"], "active_loops": []}), dict(omit_unset_slots=True)]


def _sharing(states):
    """Which sub-state objects are one object, as positions of their first appearance."""
    first, out = {}, []
    for state in states:
        for key in sorted(state):
            out.append((key, first.setdefault(id(state[key]), len(first))))
    return out


def _check_states(tracker, domain):
    from rasa.shared.core.trackers import DialogueStateTracker
    rasa_past_states = DialogueStateTracker.past_states.__wrapped__
    for kwargs in STATE_VARIANTS * 2:            # the second round is answered from the replay kept
        expected = rasa_past_states(tracker, domain, **kwargs)
        got = tracker.past_states(domain, **kwargs)
        assert got == expected, kwargs
        assert _sharing(got) == _sharing(expected), kwargs
        for state in got:                          # callers edit their states (Rasa's featurizer does)
            for sub in state.values():
                sub.clear()
        got.append({"extra": {}})


def _domain():
    from rasa.shared.core.domain import Domain
    from tests.servers import ROOT
    return Domain.load(str(ROOT / "domain.yml"))


def test_past_states_match_rasa_on_a_growing_tracker():
    from rasa.shared.core.trackers import DialogueStateTracker
    domain = _domain()
    tracker = DialogueStateTracker("states-growing", domain.slots)
    for event in _conversation_events():
        tracker.update(event, domain)
        _check_states(tracker, domain)


def test_past_states_match_rasa_on_trackers_rebuilt_every_turn():
    """As served: every message gets a new tracker built from the stored events, the user events
    of earlier turns re-read from their rows (new objects with the same content)."""
    import json
    from rasa.shared.core.events import Event, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    domain = _domain()
    events, stored = [], []
    for event in _conversation_events():
        events.append(event)
        if isinstance(event, UserUttered) and len(events) > 1:  # a new turn: the earlier turns are stored
            stored = [Event.from_parameters(json.loads(json.dumps(e.as_dict()))) if isinstance(e, UserUttered)
                      and e is not event else e for e in events]
        for evs in (events, stored + events[len(stored):]):
            tracker = DialogueStateTracker.from_events("states-rebuilt", evs, domain.slots)
            _check_states(tracker, domain)


def test_past_states_cache_notices_user_events_that_differ_only_in_what_states_read():
    """Another user event object at the same place with the same text and intent but other
    entities or another featurization flag is not taken for the recorded one."""
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    domain = _domain()
    intent = {"name": "ask_department_duties", "confidence": 1.0}
    dept = [{"entity": "department", "value": "市财政局"}]
    variants = [UserUttered("财政局负责什么", intent, []),
                UserUttered("财政局负责什么", intent, dept),
                UserUttered("财政局负责什么", intent, [{"entity": "topic", "value": "预算"}]),
                UserUttered("财政局负责什么", intent, dept, use_text_for_featurization=True),
                UserUttered("财政局负责什么", intent, dept, use_text_for_featurization=False)]
    listen, answer = ActionExecuted("action_listen"), ActionExecuted("action_answer")
    for first in variants:
        for second in variants:
            for user in (first, second):
                tracker = DialogueStateTracker.from_events("states-user-variants", [listen, user, answer],
                                                           domain.slots)
                _check_states(tracker, domain)


def test_past_states_cache_notices_other_events_slots_and_domains():
    from rasa.shared.core.events import ActionExecuted, SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    domain = _domain()
    tracker = DialogueStateTracker("states-other", domain.slots)
    for e in [ActionExecuted("action_listen"), UserUttered("你好", {"name": "greet", "confidence": 1.0})]:
        tracker.update(e, domain)
    _check_states(tracker, domain)
    # same sender, same length, other event objects (another conversation under that id)
    tracker.events.pop()
    tracker.update(UserUttered("谢谢", {"name": "thank", "confidence": 1.0}), domain)
    _check_states(tracker, domain)
    tracker.update(SlotSet("handoff_due", "yes"), domain)
    _check_states(tracker, domain)
    # same events, no slots; then another domain object
    _check_states(DialogueStateTracker.from_events("states-other", list(tracker.events), []), domain)
    _check_states(tracker, _domain())
    # a shorter history of the same conversation (a copy back in time) after the longer one
    _check_states(DialogueStateTracker.from_events("states-other", list(tracker.events)[:2], domain.slots), domain)


def test_rasa_functions_mirrored_by_the_states_replay_are_unchanged():
    """bot/rasa_speedups.py reproduces these Rasa functions' logic: a Rasa upgrade that changes
    one of them must be reviewed there (then update the fingerprint here)."""
    import hashlib
    import importlib
    import inspect
    from bot.rasa_speedups import MIRRORED
    assert set(MIRRORED) == set(FINGERPRINTS)
    for name in MIRRORED:
        module, attr = name.split(":")
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        obj = getattr(obj, "__wrapped__", obj)
        digest = hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]
        assert digest == FINGERPRINTS[name], f"{name} changed in Rasa: review bot/rasa_speedups.py"


FINGERPRINTS = {  # rasa 3.6.21
    "rasa.shared.core.domain:Domain.states_for_tracker_history": "035111ce73ac90ba",
    "rasa.shared.core.domain:Domain.get_active_state": "5a4a505743120441",
    "rasa.shared.core.trackers:DialogueStateTracker.generate_all_prior_trackers": "a1f6954347b52649",
    "rasa.shared.core.trackers:DialogueStateTracker.applied_events": "764d5065ea9997d6",
    "rasa.shared.core.events:UserUttered.apply_to": "617d53d3802952b7",
    "rasa.shared.core.events:EntitiesAdded.apply_to": "b4d7905cab82faad",
    "rasa.shared.core.events:DefinePrevUserUtteredFeaturization.apply_to": "260e4a37a1056d9d",
}


# --------------------------------------------------------------------------- Domain.is_empty
def test_domain_is_empty_as_rasa():
    from rasa.shared.core.domain import Domain
    from tests.servers import ROOT
    rasa_is_empty = Domain.is_empty.__wrapped__
    for domain in (Domain.empty(), Domain.load(str(ROOT / "domain.yml")), Domain.from_dict({"intents": ["greet"]})):
        assert domain.is_empty() == rasa_is_empty(domain)
    assert Domain.empty().is_empty() and not Domain.load(str(ROOT / "domain.yml")).is_empty()


# --------------------------------------------------------------------------- keep-alive requests
def test_endpoint_requests_keep_the_connection_and_behave_as_rasas():
    import aiohttp
    from aiohttp import web
    from rasa.utils.endpoints import ClientResponseError, EndpointConfig
    from bot.rasa_speedups import keepalive_session

    peers, seen = [], []

    async def webhook(request):
        peers.append(request.transport.get_extra_info("peername"))
        seen.append((request.headers.get("X-Test"), request.query.get("token"), await request.json()))
        if request.query.get("fail"):
            return web.Response(status=500, text="boom")
        if request.query.get("text"):
            return web.Response(text="not json")
        return web.json_response({"events": [], "echo": seen[-1][2]})

    async def main():
        app = web.Application()
        app.router.add_post("/webhook", webhook)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            endpoint = EndpointConfig(f"http://127.0.0.1:{port}/webhook", headers={"X-Test": "h"}, token="tk")
            first = await endpoint.request(json={"n": 1}, method="post")
            second = await endpoint.request(json={"n": 2}, method="post")
            assert first == {"events": [], "echo": {"n": 1}} and second["echo"] == {"n": 2}
            assert seen[0][:2] == ("h", "tk")
            assert peers[0] == peers[1]            # the same connection, kept alive
            with pytest.raises(ClientResponseError) as e:
                await endpoint.request(json={}, method="post", params={"fail": "1"})
            assert e.value.status == 500 and e.value.text == b"boom"
            assert await endpoint.request(json={}, method="post", params={"text": "1"}) is None
            # the shared session has the settings of Rasa's own session()
            shared = keepalive_session(endpoint)
            async with EndpointConfig.session.__wrapped__(endpoint) as rasas:
                assert dict(shared.headers) == dict(rasas.headers)
                assert shared.auth == rasas.auth and shared.timeout == rasas.timeout
            authed = EndpointConfig("http://127.0.0.1:1/", basic_auth={"username": "u", "password": "p"})
            async with EndpointConfig.session.__wrapped__(authed) as rasas:
                assert keepalive_session(authed).auth == rasas.auth
            # a session made outside request() is Rasa's own, closed by its `async with`
            async with endpoint.session() as own:
                assert isinstance(own, aiohttp.ClientSession) and own is not shared
            assert own.closed
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_past_states_replays_kept_are_bounded(monkeypatch):
    """No more replays than HISTORY_CACHE_SIZE (least recently used dropped), each conversation's
    states still Rasa's; the bound is not above the tracker cache's (a replay is only continued
    while its conversation is in that cache)."""
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from bot import rasa_speedups as sp
    from bot.ops.tracker_cache import DEFAULT_MAX_CONVERSATIONS

    assert sp.HISTORY_CACHE_SIZE <= DEFAULT_MAX_CONVERSATIONS
    monkeypatch.setattr(sp, "HISTORY_CACHE_SIZE", 3)
    domain = _domain()
    trackers = []
    for i in range(7):
        tracker = DialogueStateTracker(f"states-bounded-{i}", domain.slots)
        for e in [ActionExecuted("action_listen"), UserUttered(f"你好{i}", {"name": "greet", "confidence": 1.0}),
                  ActionExecuted("utter_greet"), ActionExecuted("action_listen")]:
            tracker.update(e, domain)
        trackers.append(tracker)
        _check_states(tracker, domain)
        assert len(sp._histories) <= 3
    assert [k for k in sp._histories if k.startswith("states-bounded-")] == [t.sender_id for t in trackers[-3:]]
    _check_states(trackers[0], domain)  # dropped: replayed again, same states
    assert len(sp._histories) <= 3
