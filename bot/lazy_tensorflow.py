"""Keep TensorFlow out of Rasa servers whose pipeline and policies do not use it.

Rasa 3.6 imports TensorFlow (~500 MB RSS, 2–8 s) on every serving path, through two chains
(found with bench/tf_import_chain.py). The first at import time::

    rasa.core.agent -> rasa.core.policies.policy -> rasa.core.featurizers.tracker_featurizers
      -> rasa.core.featurizers.single_state_featurizer -> rasa.nlu.extractors.extractor
      -> ``import rasa.utils.train_utils``   (module level)
      -> ``from rasa.utils.tensorflow.callback import ...``  -> ``import tensorflow``

``rasa.nlu.extractors.extractor`` (the base class of RegexEntityExtractor, used by every
pipeline) uses ``rasa.utils.train_utils`` only inside functions that our pipeline never calls.
So ``rasa.utils.train_utils`` is made a *lazy* module (``importlib.util.LazyLoader``): the
module object exists at once, and its code (with the TensorFlow import) runs on the first
attribute access, e.g. when DIET/TED/CRF components are loaded or trained. Nothing in
site-packages is changed; a pipeline that needs TensorFlow gets it exactly as before, only
later. Asking the lazy module for a name its source never binds at top level (found with
``ast`` before the module is made lazy) raises AttributeError without loading it, as the
loaded module would: skops.io (LogisticRegressionClassifier.load) probes every module in
``sys.modules`` for the ufuncs it trusts, which would otherwise load TensorFlow.

A second chain runs when a model is loaded (``Agent.load``)::

    rasa.engine.storage.storage.ModelMetadata.from_dict -> GraphSchema.from_dict(train_schema)
      -> class_from_module_path("rasa.graph_components.validators.default_recipe_validator...")
      -> ``from rasa.nlu.classifiers.diet_classifier import DIETClassifier`` -> ``import tensorflow``

The *training* schema stored in every model names the recipe validator, whose module imports
DIET, TED and ResponseSelector; serving only runs the predict schema. ``ModelMetadata.from_dict``
is therefore wrapped (when ``rasa.engine.storage.storage`` is imported) so that the training
schema is deserialised on first use of its ``nodes`` (``DeferredGraphSchema``) — by Rasa's own
``GraphSchema.from_dict``, so whoever reads it gets exactly what Rasa would have built.

Installed by ``sitecustomize.py`` at the repository root, which Python imports at start-up
when the repository is on ``PYTHONPATH`` (the Makefile, scripts/run.sh, deploy/ and the
tests set it), i.e. before Rasa in every ``rasa run/train/test/shell`` we start. Set
``ZWZX_EAGER_TF=1`` to switch it off. tests/test_lazy_tensorflow.py fails if a Rasa upgrade
brings TensorFlow back onto our serving path or changes the modules named here.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import threading
import types
from typing import Optional

# Modules whose code is run on first attribute access instead of on import.
LAZY_MODULES = frozenset({"rasa.utils.train_utils"})
# Module patched right after it is executed (see POST_IMPORT below).
STORAGE_MODULE = "rasa.engine.storage.storage"

_installed = False
_lock = threading.Lock()


class _LazyFinder(importlib.abc.MetaPathFinder):
    """Finds the modules in LAZY_MODULES with the normal finders and wraps their loader."""

    def find_spec(self, fullname, path=None, target=None):  # type: ignore[override]
        if fullname not in LAZY_MODULES and fullname not in POST_IMPORT:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    if fullname in LAZY_MODULES:
                        spec.loader = _LockedLazyLoader(spec.loader)
                    else:
                        spec.loader = _PatchingLoader(spec.loader, POST_IMPORT[fullname])
                return spec
        return None


class _PatchingLoader(importlib.abc.Loader):
    """Runs the module's own loader, then ``patch(module)``."""

    def __init__(self, loader, patch):
        self._loader = loader
        self._patch = patch

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._patch(module)

    def __getattr__(self, name):  # get_source, get_filename, is_package ... of the real loader
        return getattr(self._loader, name)


def _deferred_graph_schema_class(graph_schema_cls):
    class DeferredGraphSchema(graph_schema_cls):  # type: ignore[misc, valid-type]
        """A GraphSchema deserialised by Rasa's GraphSchema.from_dict on first use."""

        def __init__(self, serialized) -> None:  # no dataclass __init__: `nodes` is a property
            object.__setattr__(self, "_serialized", serialized)
            object.__setattr__(self, "_schema", None)
            object.__setattr__(self, "_lock", threading.Lock())

        def materialize(self):
            if self._schema is None:
                with self._lock:
                    if self._schema is None:
                        object.__setattr__(self, "_schema", graph_schema_cls.from_dict(self._serialized))
            return self._schema

        @property
        def nodes(self):  # type: ignore[override]
            return self.materialize().nodes

        @nodes.setter
        def nodes(self, value):
            self.materialize().nodes = value

        @property
        def is_materialized(self) -> bool:
            return self._schema is not None

        def __repr__(self) -> str:
            return repr(self.materialize())

    DeferredGraphSchema.__name__ = DeferredGraphSchema.__qualname__ = "DeferredGraphSchema"
    return DeferredGraphSchema


def _defer_train_schema(storage_module) -> None:
    """Wrap ModelMetadata.from_dict so the training schema is deserialised on first use."""
    metadata_cls = storage_module.ModelMetadata
    original = metadata_cls.__dict__["from_dict"]
    if getattr(original, "_zwzx_deferred", False):
        return
    original_func = original.__func__
    deferred = []  # the class, made on first use (rasa.engine.graph imports this module)

    def from_dict(cls, serialized):
        train = serialized.get("train_schema") if isinstance(serialized, dict) else None
        if not isinstance(train, dict) or not isinstance(train.get("nodes"), dict):
            return original_func(cls, serialized)
        if not deferred:
            from rasa.engine.graph import GraphSchema

            deferred.append(_deferred_graph_schema_class(GraphSchema))
        shallow = dict(serialized)
        shallow["train_schema"] = {"nodes": {}}
        metadata = original_func(cls, shallow)
        metadata.train_schema = deferred[0](train)
        return metadata

    from_dict.__doc__ = original_func.__doc__
    from_dict._zwzx_deferred = True  # type: ignore[attr-defined]
    from_dict.__wrapped__ = original_func  # type: ignore[attr-defined]
    metadata_cls.from_dict = classmethod(from_dict)


POST_IMPORT = {STORAGE_MODULE: _defer_train_schema}


# Read by the import system itself (``import a.b`` of a module already in sys.modules checks
# ``module.__spec__._initializing``): answered without running the module.
_IMPORT_ATTRS = frozenset({"__spec__", "__name__", "__loader__", "__package__", "__path__",
                           "__class__"})


class _LockedLazyLoader(importlib.util.LazyLoader):
    """LazyLoader whose first load is serialised and complete before any other thread sees the
    module (Python 3.10's _LazyModule switches the module to a plain module *before* running its
    code, so a second thread could read a half-executed module), and whose module does not load
    when the import system only looks at its spec (a second ``import`` of it)."""

    _load_lock = threading.RLock()

    def exec_module(self, module):  # type: ignore[override]
        mod_name = module.__spec__.name
        defined = _defined_names(self.loader, mod_name)
        super().exec_module(module)  # stores loader_state, sets the real loader on the spec
        lock = self._load_lock
        loading = set()  # thread ids running the module's code (re-entrant access)

        class _Lazy(types.ModuleType):
            def __getattribute__(self, attr):
                if attr in _IMPORT_ATTRS:
                    return object.__getattribute__(self, attr)
                if (defined is not None and attr not in defined and type(self) is _Lazy
                        and not (attr.startswith("__") and attr.endswith("__"))):
                    # a name the module's source never binds at top level: the loaded module
                    # would raise the same AttributeError. Tools that probe every module in
                    # sys.modules (skops' whichmodule, pickle's) do not load it this way.
                    raise AttributeError(f"module {mod_name!r} has no attribute {attr!r}")
                with lock:
                    if type(self) is _Lazy:
                        if threading.get_ident() in loading:
                            # the module's own import chain reads it while it runs, as with
                            # any circular import: the attributes defined so far
                            return object.__getattribute__(self, attr)
                        _load(self)
                return getattr(self, attr)

            def __setattr__(self, attr, value):
                if attr in _IMPORT_ATTRS:
                    return object.__setattr__(self, attr, value)
                self.__dict__  # loads it (as _LazyModule does for any attribute access)
                return setattr(self, attr, value)

            def __delattr__(self, attr):
                self.__dict__  # loads it
                return delattr(self, attr)

        def _load(mod) -> None:
            """importlib.util._LazyModule.__getattribute__, with the class switched last."""
            spec = object.__getattribute__(mod, "__spec__")
            attrs_then = spec.loader_state["__dict__"]
            attrs_now = object.__getattribute__(mod, "__dict__")
            attrs_updated = {k: v for k, v in attrs_now.items()
                             if k not in attrs_then or id(v) != id(attrs_then[k])}
            loading.add(threading.get_ident())
            try:
                spec.loader.exec_module(mod)
            finally:
                loading.discard(threading.get_ident())
            name = spec.name
            if name in sys.modules and id(mod) != id(sys.modules[name]):
                raise ValueError(f"module object for {name!r} substituted in sys.modules during a lazy load")
            attrs_now.update(attrs_updated)
            object.__setattr__(mod, "__class__", types.ModuleType)

        module.__class__ = _Lazy


def _defined_names(loader, name: str) -> Optional[frozenset]:
    """Names the module's source binds at top level (defs, classes, assignments, imports,
    also inside top-level if/try/with/for), or None if that cannot be known (no source,
    ``import *``, ``globals()`` or a module ``__getattr__``)."""
    import ast

    try:
        source = loader.get_source(name)
    except Exception:
        return None
    if not source:
        return None
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    names = set()

    def bind_target(target) -> None:
        for node in ast.walk(target):
            if isinstance(node, ast.Name):
                names.add(node.id)

    def visit(body) -> bool:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign,)):
                for t in node.targets:
                    bind_target(t)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                bind_target(node.target)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    names.add(a.asname or a.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                for a in node.names:
                    if a.name == "*":
                        return False
                    names.add(a.asname or a.name)
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                if isinstance(node, (ast.For,)):
                    bind_target(node.target)
                if isinstance(node, ast.With):
                    for item in node.items:
                        if item.optional_vars is not None:
                            bind_target(item.optional_vars)
                parts = [node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])]
                for handler in getattr(node, "handlers", []):
                    if handler.name:
                        names.add(handler.name)
                    parts.append(handler.body)
                for part in parts:
                    if not visit(part):
                        return False
        return True

    if not visit(tree.body):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in ("globals", "vars", "exec", "eval"):
            return None
        if isinstance(node, (ast.Global,)):
            names.update(node.names)
    if "__getattr__" in names:
        return None
    return frozenset(names)


def install() -> bool:
    """Install the lazy finder (idempotent). False if switched off or if a lazy module was
    already imported (then it is too late and TensorFlow loads as before)."""
    global _installed
    if os.environ.get("ZWZX_EAGER_TF", "").strip() not in ("", "0"):
        return False
    with _lock:
        if _installed:
            return True
        if any(name in sys.modules for name in LAZY_MODULES):
            return False
        sys.meta_path.insert(0, _LazyFinder())
        for name, patch in POST_IMPORT.items():
            if name in sys.modules:  # imported before us: patch it now
                patch(sys.modules[name])
        _installed = True
        return True


def is_lazy(name: str) -> Optional[bool]:
    """True if ``name`` is loaded lazily and not yet executed, False if executed, None if not
    imported at all."""
    module = sys.modules.get(name)
    if module is None:
        return None
    return type(module) is not types.ModuleType and type(module).__name__ == "_Lazy"
