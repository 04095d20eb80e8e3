"""Import references: reference_of refuses what cannot be imported back; resolve explains."""

from __future__ import annotations

import functools
import json
import os.path
import subprocess
import sys
import textwrap

import pytest

from mainspring.scheduler import reference_of, resolve

MODULE = __name__


def pack(days: int = 7) -> int:
    return days


class Tasks:
    @staticmethod
    def static() -> str:
        return "static"

    @classmethod
    def klass(cls) -> str:
        return "class"

    def method(self) -> str:
        return "method"

    class Inner:
        @staticmethod
        def deep() -> str:
            return "deep"


TASKS = Tasks()
NOT_CALLABLE = 42


def _decorate(func: object) -> object:
    @functools.wraps(func)  # type: ignore[arg-type]
    def wrapper() -> None:
        pass

    return wrapper


def replaced() -> None:
    pass


original_replaced = replaced
replaced = _decorate(replaced)  # type: ignore[assignment]


def test_module_level_function_round_trips() -> None:
    ref = reference_of(pack)
    assert ref == f"{MODULE}:pack"
    assert resolve(ref) is pack


def test_stdlib_and_nested_attributes() -> None:
    assert reference_of(os.path.join) == "posixpath:join" or os.name != "posix"
    assert resolve("json:dumps") is json.dumps
    assert reference_of(Tasks.static) == f"{MODULE}:Tasks.static"
    assert resolve(f"{MODULE}:Tasks.Inner.deep") is Tasks.Inner.deep
    assert reference_of(Tasks.Inner.deep) == f"{MODULE}:Tasks.Inner.deep"
    assert reference_of(Tasks) == f"{MODULE}:Tasks"


def test_classmethod_and_method_of_a_module_level_instance() -> None:
    assert reference_of(Tasks.klass) == f"{MODULE}:Tasks.klass"
    assert resolve(reference_of(Tasks.klass)) == Tasks.klass
    assert reference_of(TASKS.method) == f"{MODULE}:TASKS.method"
    assert resolve(f"{MODULE}:TASKS.method")() == "method"


def test_refuses_lambda() -> None:
    with pytest.raises(TypeError, match=r"a lambda has no import path.*module-level function"):
        reference_of(lambda: None)


def test_refuses_closures_and_nested_functions() -> None:
    x = 1

    def inner() -> int:
        return x

    with pytest.raises(TypeError, match=r"defined inside a function.*module-level function"):
        reference_of(inner)


def test_refuses_partial() -> None:
    with pytest.raises(TypeError, match=r"functools.partial.*with args/kwargs"):
        reference_of(functools.partial(pack, 3))


def test_refuses_method_of_an_unreachable_instance() -> None:
    with pytest.raises(TypeError, match="bound to a Tasks instance that no module-level name"):
        reference_of(Tasks().method)


def test_refuses_an_object_replaced_under_its_name() -> None:
    with pytest.raises(TypeError, match="resolves to a different object"):
        reference_of(original_replaced)


def test_refuses_callables_without_a_qualname() -> None:
    class Callable:
        def __call__(self) -> None:
            pass

    with pytest.raises(TypeError, match="no __module__/__qualname__"):
        reference_of(Callable())
    with pytest.raises(TypeError, match="not callable"):
        reference_of(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nodots", r"func 'nodots' is not an import reference: expected exactly one ':'"),
        ("a:b:c", r"exactly one ':'"),
        (":pack", r"both parts non-empty"),
        (f"{MODULE}:", r"both parts non-empty"),
        (f"{MODULE}:Tasks..static", r"both parts non-empty"),
        (
            f"{MODULE}:nope",
            rf"func '{MODULE}:nope' does not resolve: module '{MODULE}' has no attribute 'nope'",
        ),
        (
            f"{MODULE}:Tasks.nope",
            rf"does not resolve: '{MODULE}:Tasks' has no attribute 'nope'",
        ),
        (
            "no_such_module_xyz.sub:f",
            r"func 'no_such_module_xyz.sub:f' does not resolve: importing "
            r"'no_such_module_xyz.sub' failed: ModuleNotFoundError",
        ),
        (f"{MODULE}:NOT_CALLABLE", r"does not resolve to a callable: it is a int"),
    ],
)
def test_resolve_errors(ref: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve(ref)


def test_resolve_refuses_non_strings() -> None:
    with pytest.raises(ValueError, match="func 3 is not an import reference"):
        resolve(3)  # type: ignore[arg-type]


def test_resolve_wraps_errors_raised_by_the_import(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pathlib

    folder = pathlib.Path(str(tmp_path))
    (folder / "broken_mod_for_refs.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(folder))
    with pytest.raises(
        ValueError, match="importing 'broken_mod_for_refs' failed: RuntimeError: boom"
    ):
        resolve("broken_mod_for_refs:f")
    sys.modules.pop("broken_mod_for_refs", None)


def test_main_module_functions() -> None:
    script = textwrap.dedent(
        """
        from mainspring.scheduler import reference_of, resolve
        def job():
            return 1
        ref = reference_of(job)
        assert resolve(ref) is job
        print(ref)
        try:
            reference_of(lambda: 1)
        except TypeError as exc:
            print("refused", "lambda" in str(exc))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[:2] == ["__main__:job", "refused True"]
