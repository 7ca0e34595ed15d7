"""The install command for an optional extra, as it works where this copy came from: a
clone installed with ``pip install .`` has no ``rtrec_native[serve]`` on PyPI to fetch."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from urllib.parse import unquote, urlparse


@functools.lru_cache(maxsize=1)
def _source_dir() -> str | None:
    """The local directory this package was installed from (pip's direct_url.json), or the
    source tree it is imported from; None for a package from an index."""
    from importlib import metadata

    tree = Path(__file__).resolve().parents[2]
    if (tree / "pyproject.toml").is_file() and (tree / "cpp").is_dir():
        return str(tree)  # imported from a clone (PYTHONPATH or an in-place build)
    try:
        text = metadata.distribution("rtrec_native").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    try:
        url = json.loads(text).get("url", "")
    except ValueError:
        return None
    parsed = urlparse(url)
    return unquote(parsed.path) if parsed.scheme == "file" and Path(unquote(parsed.path)).is_dir() else None


def install_hint(extra: str) -> str:
    """``pip install '<where>[extra]'`` for this installation."""
    source = _source_dir()
    if source is None:
        return f"pip install 'rtrec_native[{extra}]'"
    here = Path.cwd().resolve()
    where = "." if Path(source).resolve() == here else source
    return f"pip install '{where}[{extra}]'"
