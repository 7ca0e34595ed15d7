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

# What each constructor argument must be, as Python types. Ranges and which arguments apply
# to which family are the core's to check.
_INTS = ("dim", "negatives", "seed", "min_count", "history")
_FLOATS = ("learning_rate", "l2", "grad_clip", "init_std", "recency", "huber_delta")
_STRINGS = ("loss", "optimizer", "negative_sampling", "retrieval")


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


def _tower(value: Any) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise TypeError(f"tower must be a tuple of hidden layer widths such as (128,), got {type(value).__name__} ({value!r})")
    return tuple(_integer(width, "tower widths") for width in value)


def resolve(model: Any, given: dict[str, Any]) -> dict[str, Any]:
    """The full parameter set: ``given`` (None meaning "the family's default") over the
    family's defaults, type-checked, then range-checked by the core (ValueError naming the
    argument; e.g. a tower for ``model="mf"`` or a loss the family does not train with)."""
    params = _core.defaults(_family(model))
    for name, value in given.items():
        if value is None:
            continue  # the family's default (for ttl/max_rows that is "off")
        if name in _INTS:
            value = _integer(value, name)
        elif name in _FLOATS:
            value = _real(value, name)
        elif name in _STRINGS:
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, got {type(value).__name__} ({value!r})")
        elif name == "ttl":
            value = _real(value, name)
            if value == 0.0:
                raise ValueError("ttl must be > 0 seconds (None: never expire)")
        elif name == "max_rows":
            value = _integer(value, name)
            if value == 0:
                raise ValueError("max_rows must be >= 1 (None: no cap)")
        elif name in ("dedup_window", "max_user_rate"):
            value = _real(value, name)
            if value == 0.0:
                raise ValueError(f"{name} must be > 0 (None: off)")
        elif name == "adaptive_step":
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"adaptive_step must be a bool, got {type(value).__name__} ({value!r})")
            value = bool(value)
        elif name == "tower":
            value = _tower(value)
        params[name] = value
    _core.check_config(params)
    return params

