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
(``DialogueStateTracker.past_states``, a replay of the whole conversation) up to five times a
message, twice with the same arguments in the RulePolicy (text and intent variants differ only
afterwards). The states of a tracker are remembered on the tracker for the same domain, arguments
and the very same event objects (compared by identity, all of them), and a copy is handed out, so
callers may edit their list as before (Rasa's featurizer deletes the text or intent of the last
state). Tested against Rasa's method on whole conversations.

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
_STATES_KEY = "_zwzx_past_states"


def copy_states(states: List[Dict[Text, Any]]) -> List[Dict[Text, Any]]:
    """A copy callers may edit as Rasa's own result: new state dicts and sub-state dicts (their
    values are strings and tuples)."""
    return [{k: (dict(v) if isinstance(v, dict) else v) for k, v in state.items()} for state in states]


def _install_past_states_cache() -> None:
    from rasa.shared.core.trackers import DialogueStateTracker

    original = DialogueStateTracker.past_states
    if getattr(original, "_zwzx_cached", False):
        return

    def past_states(self: DialogueStateTracker, domain: Any, omit_unset_slots: bool = False,
                    ignore_rule_only_turns: bool = False,
                    rule_only_data: Optional[Dict[Text, Any]] = None) -> List[Dict[Text, Any]]:
        events = self.events
        key = (bool(omit_unset_slots), bool(ignore_rule_only_turns))
        cache: Dict[Tuple[bool, bool], Any] = self.__dict__.get(_STATES_KEY)
        if cache is not None:
            hit = cache.get(key)
            if hit is not None:
                c_domain, c_rule_only, c_events, c_states = hit
                if (c_domain is domain and c_rule_only == rule_only_data and len(c_events) == len(events)
                        and all(a is b for a, b in zip(c_events, events))):
                    return copy_states(c_states)
        states = original(self, domain, omit_unset_slots=omit_unset_slots,
                          ignore_rule_only_turns=ignore_rule_only_turns, rule_only_data=rule_only_data)
        if cache is None:
            cache = self.__dict__[_STATES_KEY] = {}
        cache[key] = (domain, copy.deepcopy(rule_only_data), list(events), copy_states(states))
        return states

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
