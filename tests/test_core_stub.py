"""The type stub of the native module (python/rtrec_native/_core.pyi) says what the module
has: the same functions, classes, methods and properties, each function with the same
parameter names in the same order and the same ones optional. Fails when either changes
without the other (the binding is cpp/bindings/module.cpp)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import rtrec_native
from rtrec_native import _core

STUB = Path(rtrec_native.__file__).with_name("_core.pyi")
if not STUB.is_file():  # an installed package without its stub: read the source tree's
    STUB = Path(__file__).resolve().parents[1] / "python" / "rtrec_native" / "_core.pyi"


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current.strip())
    return parts


def runtime_params(fn) -> list[tuple[str, bool]]:
    """(name, has a default) of each parameter, from pybind11's signature line."""
    first = (fn.__doc__ or "").strip().splitlines()[0]
    match = re.match(r"^\w+\((.*)\)\s*->", first)
    assert match, f"no signature line in the docstring of {fn!r}: {first!r}"
    out = []
    for part in _split_top_level(match.group(1)):
        name = part.split(":", 1)[0].split("=", 1)[0].strip()
        out.append((name, "=" in part))
    return [p for p in out if p[0] != "self"]


def stub_params(node: ast.FunctionDef) -> list[tuple[str, bool]]:
    args = node.args.args
    n_defaults = len(node.args.defaults)
    out = [(a.arg, i >= len(args) - n_defaults) for i, a in enumerate(args)]
    return [p for p in out if p[0] != "self"]


def _stub() -> ast.Module:
    return ast.parse(STUB.read_text())


def test_module_level_names_match():
    tree = _stub()
    stub_names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            stub_names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            stub_names.add(node.target.id)
    runtime = {n for n in dir(_core) if not n.startswith("_")}
    assert {n for n in stub_names if not n.startswith("_")} == runtime


def _functions(tree: ast.Module):
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


@pytest.mark.parametrize("name", sorted(n for n in dir(_core) if callable(getattr(_core, n))
                                        and not isinstance(getattr(_core, n), type)
                                        and not n.startswith("_")))
def test_module_functions_have_the_stub_parameters(name):
    stub = _functions(_stub())
    assert name in stub, f"{name} is in the module but not in the stub"
    assert runtime_params(getattr(_core, name)) == stub_params(stub[name])


def _model_stub() -> ast.ClassDef:
    (node,) = [n for n in _stub().body if isinstance(n, ast.ClassDef) and n.name == "Model"]
    return node


def test_model_members_match():
    body = _model_stub().body
    members = {n.name: n for n in body if isinstance(n, ast.FunctionDef)}
    attributes = {n.target.id for n in body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    runtime = {n for n in dir(_core.Model) if not n.startswith("_")}
    assert (set(members) | attributes) - {"__init__"} == runtime
    for name in attributes:  # read-write properties
        assert isinstance(getattr(_core.Model, name), property), f"Model.{name}: an attribute in the stub only"
    assert runtime_params(_core.Model.__init__) == stub_params(members["__init__"])
    for name, node in members.items():
        if name == "__init__":
            continue
        attr = getattr(_core.Model, name)
        is_property = any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)
        assert is_property == isinstance(attr, property), f"Model.{name}: property in one, not in the other"
        if not is_property:
            assert runtime_params(attr) == stub_params(node), f"Model.{name}: parameters differ"
