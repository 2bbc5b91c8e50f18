"""Speed-ups for Rasa 3.6 internals, same behaviour.

Rasa validates every action-server response with ``jsonschema.validate(result, schema)``,
which checks the (large) events schema against the JSON-Schema meta-schema on *every* call:
~35-60 ms per custom action on our machine (bench/profile_turn.py), most of a turn's cost.
Here the validator is built and the schema checked once; results are validated exactly as
before and errors carry the same message.

A response that passes is first recognised by a compiled check (``fastjsonschema``, each event
checked against the one alternative of the events schema its type can match); only a response
it rejects is run through jsonschema, so errors are unchanged.

Rasa also resolves every event it deserialises (each tracker read, each action-server
response) with ``Event.resolve_by_type``, which walks all Event subclasses with
``inspect.isabstract`` on each call (~5 ms per turn here). That lookup is cached by type
name; an unknown name re-walks the subclasses, so event classes imported later still resolve.

Rasa runs every graph (the NLU parse, each policy prediction) through ``dask.get``, whose
scheduler costs ~1 ms per run here for graphs of a dozen nodes. ``DaskGraphRunner.run`` is
replaced by a plain depth-first evaluation of the same minimal graph: the same nodes are called
with the same inputs, each once, and errors surface as before (``GraphRunError`` for a
``RuntimeError``). Training is unaffected (``rasa train`` does not import our channels).

Rasa 3.6 deep-copies the arguments of its structlog *debug* calls before making them
(``structlogger.debug("…", rasa_events=copy.deepcopy(events))`` in the processor and the
Rule/Memoization policies: the events of every action, the policies' states), even when debug
logging is off and the call does nothing: ~0.4 ms a turn here. In those three modules
``copy.deepcopy`` is answered by :class:`DebugLogCopy`, which copies only when structlog would
pass debug events on (``rasa run --debug``) and otherwise hands back the object the dropped call
never reads. tests/test_rasa_speedups.py checks from Rasa's source that every ``copy.deepcopy`` of
those modules is an argument of a ``structlogger.debug`` call, so a Rasa upgrade that copies for
another reason fails the test.

``LogisticRegressionClassifier._create_X`` builds the classifier's input for one message through
Rasa's generic feature combination (a deep copy of the features, then ``hstack``/``csr_matrix``/
``vstack`` through scipy's block-matrix code: ~0.5 ms a message). For one message whose sentence
features are all sparse (our CountVectorsFeaturizers) the same matrix is built with one
``hstack`` to CSR in the dtype Rasa's path produces (the features upcast with float64); anything
else goes to Rasa's code. Tested against Rasa's method: same shape, dtype, indices, indptr, data.

The Rule and Memoization policies turn the tracker into its past states
(``DialogueStateTracker.past_states`` -> ``Domain.states_for_tracker_history``) five times a
message, each a replay of the whole conversation into a fresh tracker: ~1 ms a message. The replay
is kept per conversation (the tracker events it covers, compared by identity; the domain object;
the slots' definitions) and continued with the events added since, unless one of them rewrites
history (restart, session start, reverts, loops): then it is replayed from the start. The states
are assembled from the replay's recorded points by the loop of Rasa's function (its helpers are
called) into new objects every call. Tested against Rasa's function on whole conversations, value
and object sharing, and the Rasa functions it mirrors are pinned by a source fingerprint.

``Domain.is_empty`` (asked for every parsed message) built a new empty Domain each time to
compare with (~0.05 ms); the empty domain's dict is built once.

``EndpointConfig.request`` (every custom-action call) opened a new aiohttp session and TCP
connection to the action server per call and closed it again: ~0.3 ms on each side. Requests
now borrow one session per endpoint settings and event loop, keeping connections alive for 2 s
(less than Sanic's 5 s on the action server, so an idle connection is always closed by us
first, never reused just as the server drops it). The session has the settings of Rasa's
``EndpointConfig.session()`` (headers, auth, timeout; tested), and Rasa's own ``request`` code
does the rest (URL, parameters, errors, JSON).

Installed when the project's input channels are imported (bot/channels/__init__.py), i.e. in
every Rasa server we start, whatever the channel.
"""
from __future__ import annotations

import copy
import itertools
import threading
from typing import Any, Dict, List, Optional, Text, Tuple

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
        quick_check = _eventwise_check(schema) or _compiled_check(schema)

        def _validate_action_result(self, result: Dict[Text, Any]) -> bool:
            if quick_check(result):
                return True
            try:
                validator.validate(result)  # the verdict and the error message are jsonschema's
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
        _install_graph_runner()
        _install_debug_log_copies()
        _install_logreg_input()
        _install_past_states_cache()
        _install_domain_is_empty()
        _install_keepalive_requests()
        _installed = True


def _install_graph_runner() -> None:
    from rasa.engine.exceptions import GraphRunError
    from rasa.engine.runner.dask import DaskGraphRunner

    def run(self: DaskGraphRunner, inputs: Optional[Dict[Text, Any]] = None,
            targets: Optional[List[Text]] = None) -> Dict[Text, Any]:
        run_targets = targets if targets else self._graph_schema.target_names
        cache = self.__dict__.setdefault("_zwzx_minimal", {})
        key = tuple(run_targets)
        if key not in cache:
            cache[key] = self._graph_schema.minimal_graph_schema(run_targets)
        graph = self._build_dask_graph(cache[key])
        if inputs:
            self._add_inputs_to_graph(inputs, graph)
        try:
            return dict(evaluate(graph, run_targets))
        except RuntimeError as e:
            raise GraphRunError("Error running runner.") from e

    DaskGraphRunner.run = run


def evaluate(graph: Dict[Text, Any], targets: List[Text]) -> List[Any]:
    """What ``dask.get(graph, targets)`` computes for Rasa's graphs: a task is a tuple whose first
    element is callable; its other elements are keys of the graph (replaced by their values) or
    literals. Every key is computed once, dependencies first."""
    done: Dict[Text, Any] = {}
    open_: set = set()  # expanded, waiting for their dependencies

    def is_task(value: Any) -> bool:
        return isinstance(value, tuple) and bool(value) and callable(value[0])

    def is_key(arg: Any) -> bool:
        try:
            return arg in graph
        except TypeError:  # unhashable literal
            return False

    for target in targets:
        stack = [(target, False)]
        while stack:
            name, expanded = stack.pop()
            if name in done:
                continue
            if not expanded and name in open_:
                raise RuntimeError(f"cycle in graph at {name!r}")
            task = graph[name]
            if not is_task(task):
                done[name] = task
                continue
            deps = [a for a in task[1:] if is_key(a) and a not in done]
            if expanded or not deps:
                if deps:
                    raise RuntimeError(f"cycle in graph at {name!r}")
                done[name] = task[0](*(done[a] if is_key(a) else a for a in task[1:]))
                open_.discard(name)
                continue
            open_.add(name)
            stack.append((name, True))
            stack.extend((d, False) for d in reversed(deps))
    return [done[t] for t in targets]


def _eventwise_check(schema: Dict[Text, Any]) -> Any:
    """A faster yes-check for Rasa's response schema as it is: ``events`` is an array of objects
    that must match exactly one (``oneOf``) of ~25 alternatives, each fixing ``event`` to its own
    ``const``. An event whose ``event`` is ``v`` can only match the alternative whose const is
    ``v``, so "exactly one matches" is "that one matches": each event is checked against that
    alternative alone (compiled with fastjsonschema, together with the event's common keywords)
    instead of trying them all — the compiled oneOf raised and caught an exception for every
    other alternative. None (the whole-schema check is used) when the schema is not of that
    shape. Like :func:`_compiled_check`, it only short-cuts a pass."""
    try:
        import fastjsonschema

        if set(schema) != {"type", "properties"} or schema["type"] != "object" \
                or set(schema["properties"]) != {"events", "responses"}:
            return None
        events, responses = schema["properties"]["events"], schema["properties"]["responses"]
        if events.get("type") != "array" or set(events) != {"type", "items"} \
                or responses != {"type": "array", "items": {"type": "object"}}:
            return None
        event = events["items"]
        if set(event) != {"type", "properties", "required", "oneOf"} or event["type"] != "object" \
                or "event" not in event["required"]:
            return None
        common = {k: v for k, v in event.items() if k != "oneOf"}
        by_type: Dict[Text, Any] = {}
        for alternative in event["oneOf"]:
            const = ((alternative.get("properties") or {}).get("event") or {}).get("const")
            if not isinstance(const, str) or const in by_type:
                return None  # not one const per alternative: the shortcut would not be exact
            by_type[const] = fastjsonschema.compile(dict(common, allOf=[alternative]))
    except Exception:  # noqa: BLE001 — not installed, or a schema it cannot compile
        return None

    def check(result: Any) -> bool:
        if not isinstance(result, dict):
            return False
        try:
            if "events" in result:
                items = result["events"]
                if not isinstance(items, list):
                    return False
                for item in items:
                    validate = by_type.get(item.get("event")) if isinstance(item, dict) else None
                    if validate is None:
                        return False
                    validate(item)
            if "responses" in result:
                items = result["responses"]
                if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                    return False
        except Exception:  # noqa: BLE001 — rejected (or undecided): jsonschema decides
            return False
        return True

    return check


def _compiled_check(schema: Dict[Text, Any]) -> Any:
    """A fast yes-check of action-server responses: ``fastjsonschema`` compiles the schema to
    Python (~20x faster than jsonschema's interpreter here). It only ever short-cuts a *pass*;
    anything it rejects (or cannot decide) goes to jsonschema, which gives the verdict and the
    error. The two agree on Rasa's schema (tests/test_rasa_speedups.py)."""
    try:
        import fastjsonschema
        compiled = fastjsonschema.compile(schema)
    except Exception:  # not installed, or a schema it cannot compile: jsonschema alone
        return lambda result: False

    def check(result: Any) -> bool:
        try:
            compiled(result)
            return True
        except Exception:
            return False

    return check


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


# ----------------------------------------------------------------- deep copies for debug logs
DEBUG_LOG_COPY_MODULES = ("rasa.core.processor", "rasa.core.policies.rule_policy",
                          "rasa.core.policies.memoization")


def debug_logs_dropped() -> bool:
    """True when structlog drops debug events without looking at them: the configured bound
    logger's ``debug`` is structlog's no-op (``make_filtering_bound_logger`` above DEBUG, as
    ``rasa run`` configures it without ``--debug``). Anything else (debug on, an unknown
    structlog) counts as not dropped."""
    try:
        import structlog
        from structlog import _native

        wrapper = structlog.get_config()["wrapper_class"]
        nop = getattr(_native, "_nop", None)
    except Exception:  # noqa: BLE001 — another structlog: copy as Rasa does
        return False
    return nop is not None and getattr(wrapper, "debug", None) is nop


class DebugLogCopy:
    """Stands in for the ``copy`` module in Rasa modules whose only ``copy.deepcopy`` calls
    build arguments of ``structlogger.debug``: copies when debug events are used, else returns
    the object (the dropped call never reads it). Every other name is the real module's."""

    def deepcopy(self, x: Any, memo: Optional[Dict[int, Any]] = None, _nil: Any = None) -> Any:
        if debug_logs_dropped():
            return x
        return copy.deepcopy(x, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def _install_debug_log_copies() -> None:
    import importlib

    shim = DebugLogCopy()
    for name in DEBUG_LOG_COPY_MODULES:
        module = importlib.import_module(name)
        if getattr(module, "copy", None) is copy:
            module.copy = shim


# ----------------------------------------------------------------- logistic regression input
def _install_logreg_input() -> None:
    from rasa.nlu.classifiers.logistic_regression_classifier import LogisticRegressionClassifier

    original = LogisticRegressionClassifier._create_X
    if getattr(original, "_zwzx_fast", False):
        return

    def _create_X(self: Any, messages: List[Any]) -> Any:
        x = logreg_input(messages)
        return original(self, messages) if x is None else x

    _create_X._zwzx_fast = True  # type: ignore[attr-defined]
    _create_X.__wrapped__ = original  # type: ignore[attr-defined]
    LogisticRegressionClassifier._create_X = _create_X


def logreg_input(messages: List[Any]) -> Any:
    """What ``LogisticRegressionClassifier._create_X`` returns for one message whose text
    sentence features are all sparse, or None (Rasa's code then decides): the sentence features
    side by side, as CSR, in the dtype of Rasa's ``hstack`` with its empty float64 dense block."""
    if len(messages) != 1:
        return None
    import numpy as np
    import scipy.sparse
    from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, TEXT

    blocks = []
    for f in messages[0].features:
        if f.attribute != TEXT or f.type != FEATURE_TYPE_SENTENCE:
            continue
        if not f.is_sparse():
            return None  # dense sentence features: Rasa's path
        blocks.append(f.features)
    if not blocks:
        return None
    dtype = np.result_type(*(b.dtype for b in blocks), np.float64)
    return scipy.sparse.hstack(blocks, format="csr", dtype=dtype)


# ----------------------------------------------------------------- past states of a tracker
# Rasa's DialogueStateTracker.past_states -> Domain.states_for_tracker_history replays the
# conversation's applied events into a fresh tracker (generate_all_prior_trackers) and reads the
# state at every action. The replay is kept per conversation and continued with the events added
# since (a turn adds a handful to dozens of replayed ones); the states are then assembled from the
# recorded points by the same loop as Rasa's, with Rasa's own helpers.
# A replay is continued only while the tracker's events are the objects it recorded, i.e. while
# the conversation stays in the tracker store's cache (bot/ops/tracker_cache.py: a conversation read
# again from the database is new objects, and its replay starts again): no more replays are kept
# than that cache keeps conversations (~23 KB each, plus the events of conversations it dropped).
HISTORY_CACHE_SIZE = 128
_VOLATILE_SLOT_ATTRS = ("_value", "_has_been_set")
_histories: "Any" = None  # OrderedDict[sender_id, _History], made at install
_histories_lock = threading.Lock()
# source fingerprints of the Rasa functions this mirrors (tests/test_rasa_speedups.py pins them)
MIRRORED = ("rasa.shared.core.domain:Domain.states_for_tracker_history",
            "rasa.shared.core.domain:Domain.get_active_state",
            "rasa.shared.core.trackers:DialogueStateTracker.generate_all_prior_trackers",
            "rasa.shared.core.trackers:DialogueStateTracker.applied_events",
            "rasa.shared.core.events:UserUttered.apply_to",
            "rasa.shared.core.events:EntitiesAdded.apply_to",
            "rasa.shared.core.events:DefinePrevUserUtteredFeaturization.apply_to")


class _History:
    """One conversation's replay: ``events`` (the tracker's event objects it covers), the loop
    names among them, the replay tracker after the applied events, and per action of the replay
    (as generate_all_prior_trackers yields them) the facts the states loop reads."""

    __slots__ = ("domain", "signature", "events", "loop_names", "exported", "replay", "points", "final")


def _slot_signature(tracker: Any) -> Tuple[Any, ...]:
    """What the replay of ``tracker`` depends on besides its events: its slots' definitions
    (not their values), whether it is a rule tracker, its event history bound."""
    sig = tracker.__dict__.get("_zwzx_slot_signature")
    if sig is None:
        slots = tuple(sorted(
            (name, type(slot), repr(sorted((k, v) for k, v in vars(slot).items() if k not in _VOLATILE_SLOT_ATTRS)))
            for name, slot in tracker.slots.items()))
        sig = (slots, tracker.is_rule_tracker, getattr(tracker.events, "maxlen", None))
        tracker.__dict__["_zwzx_slot_signature"] = sig
    return sig


class _LatestMessage:
    """What Domain._get_user_sub_state reads of a tracker."""

    __slots__ = ("latest_message",)

    def __init__(self, message: Any) -> None:
        self.latest_message = message


def _message_version(message: Any) -> Any:
    """What Rasa changes in place on a user event once applied (DefinePrevUserUtteredFeaturization
    sets its featurization flag, EntitiesAdded appends entities)."""
    return None if message is None else (message.use_text_for_featurization, len(message.entities))


def _point(domain: Any, tr: Any, hide_rule_turn: bool) -> List[Any]:
    """What Rasa's states loop reads from a prior tracker ``tr``, read now (the replay goes on):
    hide_rule_turn, previous action sub-state, followup action, latest action name, active loop
    name, active state, and the user event the state's user part comes from with its version."""
    message = tr.latest_message
    return [hide_rule_turn, domain._get_prev_action_sub_state(tr), tr.followup_action,
            tr.latest_action_name, tr.active_loop_name, domain.get_active_state(tr),
            message, _message_version(message)]


def _refresh(domain: Any, point: List[Any]) -> None:
    """A user event changed in place since the point was read (Rasa's replay would read it as it
    is now): its user part read again, the state rebuilt as get_active_state builds it."""
    from rasa.shared.core.constants import ACTIVE_LOOP, PREVIOUS_ACTION, SLOTS, USER

    message = point[6]
    version = _message_version(message)
    if version == point[7]:
        return
    active = point[5]
    point[5] = domain._clean_state({USER: domain._get_user_sub_state(_LatestMessage(message)),
                                    SLOTS: active.get(SLOTS), PREVIOUS_ACTION: active.get(PREVIOUS_ACTION),
                                    ACTIVE_LOOP: active.get(ACTIVE_LOOP)})
    point[7] = version


def _same_events(recorded: List[Any], events: Any, user_uttered: type) -> Optional[Dict[int, Any]]:
    """Whether ``recorded`` are the first events of ``events`` (None if not): the same objects,
    except that a user event may be another object with the same text, intent, entities and
    featurization flag (everything the states read of it) — the tracker store re-reads a turn's
    user event from its row after saving it. Returns those replacements (id of the recorded
    object -> the tracker's), already made in ``recorded``."""
    swapped: Dict[int, Any] = {}
    for i, (a, b) in enumerate(zip(recorded, events)):
        if a is b:
            continue
        if type(a) is user_uttered and type(b) is user_uttered and a.text == b.text and a.intent == b.intent \
                and a.entities == b.entities and a.use_text_for_featurization == b.use_text_for_featurization:
            recorded[i] = swapped[id(a)] = b
            continue
        return None
    return swapped


def _replay(history: _History, events: Any, action_executed: type) -> None:
    """generate_all_prior_trackers' loop over ``events`` (applied events), continuing the replay."""
    domain, replay, points = history.domain, history.replay, history.points
    for event in events:
        if isinstance(event, action_executed):
            points.append(_point(domain, replay, event.hide_rule_turn))
        replay.update(event)
    history.final = _point(domain, replay, False)


def _history(tracker: Any, domain: Any) -> _History:
    from rasa.shared.core.events import (ActionExecuted, ActionReverted, ActiveLoop, Restarted,
                                         SessionStarted, StoryExported, UserUttered, UserUtteranceReverted)

    # events that rewrite the applied history (restart, session start, reverts, loops) or act
    # outside the tracker (story export) when applied: after one of them the replay starts again
    rewriting = (Restarted, SessionStarted, ActionReverted, UserUtteranceReverted, ActiveLoop, StoryExported)

    events = tracker.events
    signature = _slot_signature(tracker)
    key = tracker.sender_id
    h = _histories.get(key)
    if h is not None and h.domain is domain and h.signature == signature and len(h.events) <= len(events):
        n = len(h.events)
        swapped = _same_events(h.events, events, UserUttered)
        if swapped is not None:
            if swapped:
                for point in h.points + [h.final]:
                    if id(point[6]) in swapped and point[6] is not None:
                        point[6] = swapped[id(point[6])]
                latest = h.replay.latest_message
                if latest is not None and id(latest) in swapped:
                    h.replay.latest_message = swapped[id(latest)]
            delta = list(itertools.islice(events, n, len(events)))
            # applied_events of the longer list is the old one plus the new events, unless a new
            # event rewrites history or runs a loop action
            if not h.exported and not any(
                    isinstance(e, rewriting) or (isinstance(e, ActionExecuted) and e.action_name in h.loop_names)
                    for e in delta):
                if delta:
                    _replay(h, delta, ActionExecuted)
                    h.events.extend(delta)
                for point in h.points:
                    _refresh(domain, point)
                _refresh(domain, h.final)
                _histories.move_to_end(key)
                return h
    h = _History()
    h.domain, h.signature, h.events = domain, signature, list(events)
    h.loop_names = {e.name for e in events if isinstance(e, ActiveLoop) and e.name}
    h.exported = any(isinstance(e, StoryExported) for e in events)  # re-exported by every replay
    h.replay, h.points = tracker.init_copy(), []
    _replay(h, tracker.applied_events(), ActionExecuted)
    for point in h.points:  # a user event changed by an event applied after it (entities added)
        _refresh(domain, point)
    _histories[key] = h
    _histories.move_to_end(key)
    while len(_histories) > HISTORY_CACHE_SIZE:
        _histories.popitem(last=False)
    return h


def states_from_points(domain: Any, points: List[Tuple[Any, ...]], ignore_rule_only_turns: bool,
                       rule_only_data: Optional[Dict[Text, Any]]) -> List[Dict[Text, Any]]:
    """Domain.states_for_tracker_history's loop over recorded points. Every state and sub-state
    is a new object as in Rasa's (callers edit them), and an action sub-state read from the same
    prior tracker is one object wherever Rasa's result shares it."""
    from rasa.shared.core.constants import PREVIOUS_ACTION

    actions: Dict[int, Any] = {}

    def action(sub_state: Any) -> Any:
        if not isinstance(sub_state, dict):
            return sub_state
        copied = actions.get(id(sub_state))
        if copied is None:
            copied = actions[id(sub_state)] = dict(sub_state)
        return copied

    states: List[Dict[Text, Any]] = []
    last_ml_action_sub_state = None
    turn_was_hidden = False
    for hide_rule_turn, prev_action, followup_action, latest_action_name, active_loop_name, active, _, _ in points:
        if ignore_rule_only_turns:
            if not turn_was_hidden:
                last_ml_action_sub_state = action(prev_action)
            if not followup_action and not latest_action_name == active_loop_name:
                turn_was_hidden = hide_rule_turn
            if turn_was_hidden:
                continue
        state = {k: (action(v) if k == PREVIOUS_ACTION else dict(v) if isinstance(v, dict) else v)
                 for k, v in active.items()}
        if ignore_rule_only_turns:
            domain._remove_rule_only_features(state, rule_only_data)
            if states:
                domain._substitute_rule_only_user_input(state, states[-1])
            if last_ml_action_sub_state:
                state[PREVIOUS_ACTION] = last_ml_action_sub_state
        states.append(domain._clean_state(state))
    return states


def _install_past_states_cache() -> None:
    from collections import OrderedDict

    from rasa.shared.core.trackers import DialogueStateTracker

    global _histories
    original = DialogueStateTracker.past_states
    if getattr(original, "_zwzx_cached", False):
        return
    _histories = OrderedDict()

    def past_states(self: DialogueStateTracker, domain: Any, omit_unset_slots: bool = False,
                    ignore_rule_only_turns: bool = False,
                    rule_only_data: Optional[Dict[Text, Any]] = None) -> List[Dict[Text, Any]]:
        if omit_unset_slots or type(self) is not DialogueStateTracker:
            return original(self, domain, omit_unset_slots=omit_unset_slots,
                            ignore_rule_only_turns=ignore_rule_only_turns, rule_only_data=rule_only_data)
        with _histories_lock:
            h = _history(self, domain)
            points = h.points + [h.final]
        return states_from_points(domain, points, ignore_rule_only_turns, rule_only_data)

    past_states._zwzx_cached = True  # type: ignore[attr-defined]
    past_states.__wrapped__ = original  # type: ignore[attr-defined]
    DialogueStateTracker.past_states = past_states


# ----------------------------------------------------------------- Domain.is_empty
def _install_domain_is_empty() -> None:
    from rasa.shared.core.domain import Domain

    original = Domain.is_empty
    if getattr(original, "_zwzx_cached", False):
        return
    empty: List[Dict[Text, Any]] = []

    def is_empty(self: Domain) -> bool:
        if not empty:
            empty.append(copy.deepcopy(Domain.empty().as_dict()))
        return self.as_dict() == empty[0]

    is_empty._zwzx_cached = True  # type: ignore[attr-defined]
    is_empty.__wrapped__ = original  # type: ignore[attr-defined]
    Domain.is_empty = is_empty


# ----------------------------------------------------------------- keep-alive HTTP requests
KEEPALIVE_SECONDS = 2.0  # below Sanic's KEEP_ALIVE_TIMEOUT (5 s) on the action server
_BORROWED: "Any" = None   # contextvars.ContextVar, made at install
_sessions: Dict[Tuple[Any, ...], Any] = {}


class _Borrowed:
    """``async with`` a shared session without closing it at the end."""

    def __init__(self, session: Any) -> None:
        self._session = session

    async def __aenter__(self) -> Any:
        return self._session

    async def __aexit__(self, *exc: Any) -> None:
        return None


def keepalive_session(endpoint: Any) -> Any:
    """The shared session for ``endpoint``'s settings on the running loop: what Rasa's
    ``EndpointConfig.session()`` makes (headers, basic auth, total timeout), with a connector
    that keeps connections for :data:`KEEPALIVE_SECONDS`."""
    import asyncio

    import aiohttp
    from rasa.utils.endpoints import DEFAULT_REQUEST_TIMEOUT

    loop = asyncio.get_running_loop()
    auth = tuple(sorted((endpoint.basic_auth or {}).items()))
    key = (id(loop), endpoint.url, tuple(sorted((endpoint.headers or {}).items())), auth)
    session = _sessions.get(key)
    if session is None or session.closed or getattr(session, "_loop", loop) is not loop:
        for k, v in list(_sessions.items()):  # forget sessions of closed loops
            v_loop = getattr(v, "_loop", None)
            if v.closed or v_loop is None or v_loop.is_closed():
                _sessions.pop(k, None)
        basic = aiohttp.BasicAuth(endpoint.basic_auth["username"], endpoint.basic_auth["password"]) \
            if endpoint.basic_auth else None
        session = aiohttp.ClientSession(
            headers=endpoint.headers, auth=basic,
            timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
            connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_SECONDS))
        _sessions[key] = session
    return session


def _close_sessions_at_exit() -> None:
    for session in list(_sessions.values()):
        try:
            connector = session.connector
            if connector is not None:
                connector._close()  # synchronous part of close(): no "Unclosed client session"
        except Exception:  # noqa: BLE001 — exiting anyway
            pass
    _sessions.clear()


def _install_keepalive_requests() -> None:
    import atexit
    import contextvars

    from rasa.utils.endpoints import EndpointConfig

    global _BORROWED
    if getattr(EndpointConfig.request, "_zwzx_keepalive", False):
        return
    _BORROWED = contextvars.ContextVar("zwzx_borrowed_session", default=None)
    original_request = EndpointConfig.request
    original_session = EndpointConfig.session

    async def request(self: EndpointConfig, *args: Any, **kwargs: Any) -> Any:
        token = _BORROWED.set(keepalive_session(self))
        try:
            return await original_request(self, *args, **kwargs)
        finally:
            _BORROWED.reset(token)

    def session(self: EndpointConfig) -> Any:
        shared = _BORROWED.get()
        if shared is not None:
            _BORROWED.set(None)  # only Rasa's own ``async with self.session()`` in request()
            return _Borrowed(shared)
        return original_session(self)

    request._zwzx_keepalive = True  # type: ignore[attr-defined]
    request.__wrapped__ = original_request  # type: ignore[attr-defined]
    session.__wrapped__ = original_session  # type: ignore[attr-defined]
    EndpointConfig.request = request
    EndpointConfig.session = session
    atexit.register(_close_sessions_at_exit)
