"""Model parameters: the family's defaults come from the core, types are checked here, ranges
by the core (``_core.check_config``), so each rule has one owner."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np

from . import _core

MODELS = ("mf", "two_tower")
#: The family of ``Recommender()`` and of every command: two_tower learns more from each event
#: (measured ahead of mf in real time on MovieLens and the synthetic stream: docs/families.md);
#: mf is one word away (``model="mf"``), with the cheaper update and the smaller user row.
DEFAULT_FAMILY = "two_tower"

#: The model parameters in the core's table order (cpp/include/rtrec/model_params.def): name,
#: kind ("int", "float", "bool", "choice", "widths"), choices, range, whether 0 is "off",
#: whether it applies to two_tower only, a short doc and each family's default.
PARAMETERS: tuple[dict[str, Any], ...] = tuple(_core.parameters())
NAMES: tuple[str, ...] = tuple(p["name"] for p in PARAMETERS)
_BY_NAME = {p["name"]: p for p in PARAMETERS}


def parameters() -> list[dict[str, Any]]:
    """The model parameters as the core defines them, in order: for each, ``name``, ``kind``
    (``"int"``, ``"float"``, ``"bool"``, ``"choice"`` or ``"widths"``), ``choices``, ``low`` /
    ``high`` / ``low_open`` (the range of a number), ``zero_is_off`` (None switches it off),
    ``two_tower_only``, ``doc`` and ``default`` (``{"mf": ..., "two_tower": ...}``)."""
    return [dict(p, default=dict(p["default"])) for p in PARAMETERS]


def defaults(model: str = DEFAULT_FAMILY) -> dict[str, Any]:
    """The default constructor arguments of a model family (``"mf"`` or ``"two_tower"``), as
    the core defines them. Arguments that do not apply to the family are None."""
    return {**_core.defaults(_family(model)), "num_threads": None}


def default_epochs(model: str = DEFAULT_FAMILY) -> int:
    """How many passes ``fit`` makes by default for a model family, as the core defines it."""
    return int(_core.default_epochs(_family(model)))


def _family(model: Any) -> str:
    if not isinstance(model, str) or model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(repr(m) for m in MODELS)}; got {model!r}")
    return model


def _integer(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    return int(value)


def _real(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    try:
        return float(value)
    except OverflowError:  # an int beyond the float range
        raise ValueError(f"{name} must be a finite number, got an int of {len(str(abs(int(value))))} digits") from None


def _widths(value: Any, name: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of widths such as (128,), got {type(value).__name__} ({value!r})")
    return tuple(_integer(width, f"{name} widths") for width in value)


def _typed(spec: dict[str, Any], value: Any) -> Any:
    """``value`` as the Python type of the parameter's kind (TypeError otherwise); the core
    checks the range."""
    name, kind = spec["name"], spec["kind"]
    if kind == "int":
        value = _integer(value, name)
    elif kind == "float":
        value = _real(value, name)
    elif kind == "widths":
        value = _widths(value, name)
    elif kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__} ({value!r})")
        value = bool(value)
    elif not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__} ({value!r})")
    if spec["zero_is_off"] and value == 0:
        raise ValueError(f"{name} must be > 0 (None: off)")
    return value


def resolve(model: Any, given: dict[str, Any]) -> dict[str, Any]:
    """The full parameter set: ``given`` (None meaning "the family's default") over the
    family's defaults, type-checked, then range-checked by the core (ValueError naming the
    argument; e.g. a tower for ``model="mf"`` or a loss the family does not train with)."""
    params = _core.defaults(_family(model))
    for name, value in given.items():
        if value is None:
            continue  # the family's default (for a parameter that can be off, that is "off")
        params[name] = _typed(_BY_NAME[name], value) if name in _BY_NAME else value
    _core.check_config(params)
    return params


def default_text(spec: dict[str, Any]) -> str:
    """A parameter's defaults as help text: one value, or one per family."""
    def text(value: Any) -> str:
        if value is None:
            return "off" if spec["zero_is_off"] else "none"
        return ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)

    mf, two_tower = spec["default"]["mf"], spec["default"]["two_tower"]
    if spec["two_tower_only"]:
        return text(two_tower)
    return text(mf) if mf == two_tower else f"mf {text(mf)}, two_tower {text(two_tower)}"


def args_doc(indent: str) -> str:
    """The Args entries of the model parameters, from the core's table (Recommender's docs)."""
    import textwrap

    entries = []
    for spec in PARAMETERS:
        scope = "two_tower: " if spec["two_tower_only"] else ""
        text = f"{spec['name']}: {scope}{spec['doc']} (default: {default_text(spec)})."
        entries.append(textwrap.fill(text, 96, initial_indent=indent, subsequent_indent=indent + "    "))
    return "\n".join(entries)


def markdown_table() -> str:
    """The parameter table as docs/parameters.md shows it (tests/test_params.py checks the page
    against it): ``python -c "import rtrec_native._params as p; print(p.markdown_table())"``."""
    def cell(value: Any) -> str:
        if value is None:
            return "—"
        return ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)

    def range_text(spec: dict[str, Any]) -> str:
        if spec["kind"] == "choice":
            return " / ".join(spec["choices"])
        if spec["kind"] == "bool":
            return "true / false"
        low, high, off = spec["low"], spec["high"], spec["zero_is_off"]
        if off and spec["kind"] == "int":
            low = max(low, 1.0)  # 0 is spelled None
        opening = "(" if spec["low_open"] or (off and spec["kind"] == "float") else "["
        if high == float("inf"):
            text = f"{opening}{low:.10g}, ∞)"
        elif high >= 2**63:
            text = f"{opening}{low:.10g}, 2^64)"
        else:
            text = f"{opening}{low:.10g}, {high:.10g}]"
        return text + (" each" if spec["kind"] == "widths" else "") + (", None: off" if spec["zero_is_off"] else "")

    rows = ["| parameter | mf default | two_tower default | values | what it does |", "|---|---|---|---|---|"]
    for spec in PARAMETERS:
        mf, two_tower = spec["default"]["mf"], spec["default"]["two_tower"]
        doc = spec["doc"].replace("|", "\\|")
        rows.append(f"| `{spec['name']}` | {cell(mf)} | {cell(two_tower)} | {range_text(spec)} | {doc} |")
    return "\n".join(rows)
