"""Import references: how a job's function is stored without pickle.

A reference is the text ``"package.module:qualname"``. :func:`reference_of`
turns a callable into one and refuses callables that cannot be found again by
importing (lambdas, closures, ``functools.partial`` objects, bound methods of
objects no module holds); :func:`resolve` turns one back into the callable. A
database row holds only this text, so reading a row can import a module and
look up a name but can never run stored code.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["reference_of", "resolve"]

_ADVICE = "; define the job as a module-level function and pass it or its 'module:name'"


def resolve(ref: str) -> Callable[..., Any]:
    """Return the callable that ``ref`` (``"module:qualname"``) names.

    The module part is imported with :func:`importlib.import_module` (importing
    runs the module's top-level code, as any import does); the qualname part is
    followed attribute by attribute (``"Class.method"`` works).

    Raises :class:`ValueError` naming ``func`` and the reference when ``ref`` is
    not a string with exactly one ``":"`` and text on both sides, when the
    module cannot be imported (any exception from the import, chained), when an
    attribute is missing, e.g. ``func 'x.y:z' does not resolve: module 'x.y' has
    no attribute 'z'``, or when the object found is not callable.
    """
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise ValueError(
            f"func {ref!r} is not an import reference: "
            "expected exactly one ':' as in 'package.module:function'"
        )
    module_name, _, qualname = ref.partition(":")
    if not module_name or not qualname or "" in qualname.split("."):
        raise ValueError(
            f"func {ref!r} is not an import reference: "
            "expected 'package.module:function' with both parts non-empty"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ValueError(
            f"func {ref!r} does not resolve: importing {module_name!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    owner = f"module {module_name!r}"
    path = module_name + ":"
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(
                f"func {ref!r} does not resolve: {owner} has no attribute {part!r}"
            ) from None
        path += part
        owner = repr(path)
        path += "."
    if not callable(obj):
        raise ValueError(
            f"func {ref!r} does not resolve to a callable: it is a {type(obj).__name__}"
        )
    return obj  # type: ignore[no-any-return]


def _same(found: object, func: object) -> bool:
    # Bound methods are created anew on each attribute access: equal, not identical.
    if inspect.ismethod(func):
        return found == func
    return found is func


def reference_of(func: Callable[..., Any]) -> str:
    """Return the import reference (``"module:qualname"``) of ``func``.

    The reference is guaranteed to resolve back: :func:`resolve` of the result
    returns ``func`` itself (an equal bound method for methods). Accepted:
    module-level functions, classes and other callables with a module-level
    name, static and class methods reached through their class, and bound
    methods of an instance held in a module-level variable of the method's
    module. Functions of ``__main__`` are accepted when they resolve in this
    process; note that another process (a restart, ``run_in="process"`` under
    the spawn start method) has a different ``__main__``.

    Raises :class:`TypeError` saying why for everything else: lambdas, nested
    functions and closures (``<locals>`` in the qualname), ``functools.partial``
    objects, bound methods of other instances, callables without a
    ``__module__``/``__qualname__``, and any callable whose reference resolves to
    a different object (e.g. it was replaced by a decorator under the same name).
    """
    if isinstance(func, functools.partial):
        raise TypeError(
            f"cannot store {func!r}: functools.partial objects have no import path"
            + _ADVICE
            + " with args/kwargs"
        )
    if not callable(func):
        raise TypeError(f"cannot store {func!r}: it is not callable")
    if inspect.ismethod(func):
        return _method_reference(func)
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise TypeError(
            f"cannot store {func!r}: it has no __module__/__qualname__ to import it by" + _ADVICE
        )
    if "<lambda>" in qualname:
        raise TypeError(f"cannot store {func!r}: a lambda has no import path" + _ADVICE)
    if "<locals>" in qualname:
        raise TypeError(
            f"cannot store {func!r}: it is defined inside a function (a closure or nested "
            "function) and cannot be imported" + _ADVICE
        )
    return _checked(f"{module}:{qualname}", func)


def _method_reference(method: Any) -> str:
    owner = method.__self__
    function = method.__func__
    if isinstance(owner, type):  # a classmethod reached through its class
        return _checked(f"{owner.__module__}:{owner.__qualname__}.{function.__name__}", method)
    module = sys.modules.get(function.__module__)
    for name, value in vars(module).items() if module is not None else ():
        if value is owner:
            return _checked(f"{function.__module__}:{name}.{function.__name__}", method)
    raise TypeError(
        f"cannot store {method!r}: it is a method bound to a {type(owner).__name__} "
        f"instance that no module-level name of {function.__module__!r} holds, so it "
        "cannot be imported" + _ADVICE
    )


def _checked(ref: str, func: object) -> str:
    try:
        found = resolve(ref)
    except ValueError as exc:
        raise TypeError(f"cannot store {func!r}: {exc}" + _ADVICE) from None
    if not _same(found, func):
        raise TypeError(
            f"cannot store {func!r}: its reference {ref!r} resolves to a different "
            f"object ({found!r})" + _ADVICE
        )
    return ref
