"""The `_native.pyi` stub describes the compiled module exactly: same names, same parameters.

Type checkers and IDEs trust the stub; a method added in Rust but not here (or a renamed
parameter) would be invisible or wrong to them, so this test compares the two.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import secure_redis._native as native

STUB = Path(native.__file__).with_name("_native.pyi")
if not STUB.exists():  # an installed wheel keeps the stub beside the package sources
    STUB = Path(__file__).resolve().parents[1] / "python" / "secure_redis" / "_native.pyi"


def _stub_tree() -> ast.Module:
    return ast.parse(STUB.read_text())


def _parameters(node: ast.FunctionDef) -> list[str]:
    args = node.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    return [n for n in names if n not in ("self", "cls")]


def _runtime_parameters(obj: object) -> list[str] | None:
    obj = inspect.unwrap(obj)  # the suite's secret registry wraps the generators
    text = getattr(obj, "__text_signature__", None)
    if not text:
        return None
    text = text.replace("$self", "self").replace("$cls", "cls").replace("$type", "cls")
    signature = inspect.Signature.from_callable(eval(f"lambda {text[1:-1]}: None"))  # noqa: S307 - our own module
    return [n for n in signature.parameters if n not in ("self", "cls")]


def _public(names: object) -> set[str]:
    return {n for n in names if not n.startswith("__")}  # type: ignore[union-attr]


def test_every_module_name_is_in_the_stub_and_nothing_else() -> None:
    stubbed = {
        node.name
        for node in _stub_tree().body
        if isinstance(node, (ast.ClassDef, ast.FunctionDef))
    } | {
        node.target.id
        for node in _stub_tree().body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    assert _public(dir(native)) == _public(stubbed)


def test_functions_have_the_stubbed_parameters() -> None:
    for node in _stub_tree().body:
        if isinstance(node, ast.FunctionDef):
            runtime = _runtime_parameters(getattr(native, node.name))
            assert runtime == _parameters(node), node.name


def test_classes_have_the_stubbed_members_and_parameters() -> None:
    for node in _stub_tree().body:
        if not isinstance(node, ast.ClassDef):
            continue
        cls = getattr(native, node.name)
        members = {item.name: item for item in node.body if isinstance(item, ast.FunctionDef)}
        # Class attributes (an enum's members) are stubbed as annotations.
        attributes = {item.target.id for item in node.body
                      if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)}
        runtime_members = _public(vars(cls))
        assert _public(members) | attributes == runtime_members, node.name
        # A #[new] constructor is stubbed as __new__ (PyO3 classes have no __init__ of their own).
        constructor = _runtime_parameters(cls)
        assert "__init__" not in members, f"{node.name}: stub the constructor as __new__"
        if constructor is not None:
            assert constructor == _parameters(members["__new__"]), f"{node.name}.__new__"
        for name in runtime_members:
            if name in attributes:
                continue
            runtime = _runtime_parameters(vars(cls)[name])
            if runtime is not None:  # properties carry no signature
                assert runtime == _parameters(members[name]), f"{node.name}.{name}"


def test_error_code_as_type_checkers_see_it_is_the_rust_list() -> None:
    """`exceptions.py` spells ErrorCode out under TYPE_CHECKING (type checkers cannot run the
    functional Enum call that builds it from `_native.ERROR_CODES`); the two must not drift."""
    source = STUB.with_name("exceptions.py")
    stubbed: dict[str, str] = {}
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ClassDef) and node.name == "ErrorCode":
            for item in node.body:
                if (isinstance(item, ast.Assign) and isinstance(item.targets[0], ast.Name)
                        and isinstance(item.value, ast.Constant)):
                    stubbed[item.targets[0].id] = item.value.value
    assert stubbed == {code.upper(): code for code in native.ERROR_CODES}
