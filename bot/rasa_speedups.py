"""Speed-ups for Rasa 3.6 internals, same behaviour.

Rasa validates every action-server response with ``jsonschema.validate(result, schema)``,
which checks the (large) events schema against the JSON-Schema meta-schema on *every* call:
~35-60 ms per custom action on our machine (bench/profile_turn.py), most of a turn's cost.
Here the validator is built and the schema checked once; results are validated exactly as
before and errors carry the same message.

A response that passes is first recognised by a compiled check (``fastjsonschema``); only a
response it rejects is run through jsonschema, so errors are unchanged.

Rasa also resolves every event it deserialises (each tracker read, each action-server
response) with ``Event.resolve_by_type``, which walks all Event subclasses with
``inspect.isabstract`` on each call (~5 ms per turn here). That lookup is cached by type
name; an unknown name re-walks the subclasses, so event classes imported later still resolve.

Rasa runs every graph (the NLU parse, each policy prediction) through ``dask.get``, whose
scheduler costs ~1 ms per run here for graphs of a dozen nodes. ``DaskGraphRunner.run`` is
replaced by a plain depth-first evaluation of the same minimal graph: the same nodes are called
with the same inputs, each once, and errors surface as before (``GraphRunError`` for a
``RuntimeError``). Training is unaffected (``rasa train`` does not import our channels).

Installed when the project's input channels are imported (bot/channels/__init__.py), i.e. in
every Rasa server we start, whatever the channel.
"""
from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Text

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
        quick_check = _compiled_check(schema)

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
