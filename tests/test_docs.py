"""The documentation runs as written: every ```python block of README.md and docs/*.md,
the blocks of one file in order in one namespace (a block may use names from earlier ones).

Blocks run in a temporary directory holding the MovieLens files they name (``ratings.csv``,
``movies.csv``, ...) when the data set is found (``$RTREC_DATA`` or ../shared/datasets);
a block naming a file that is not there is skipped with the reason, and so are the blocks
after it. A block that cannot run in a test (it needs Redis, or a server that blocks)
starts with ``# doc-test: skip (reason)``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from conftest import MOVIELENS

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SKIP = re.compile(r"^# doc-test: skip \((.+)\)")
DATA_FILES = ("ratings.csv", "movies.csv", "tags.csv", "links.csv")


def blocks_of(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text(encoding="utf-8"))


CASES = [(path, i) for path in FILES for i in range(len(blocks_of(path)))]
_NAMESPACES: dict[Path, dict] = {}
_BROKEN: dict[Path, str] = {}


@pytest.mark.parametrize(("path", "index"), CASES, ids=[f"{p.name}-{i}" for p, i in CASES])
def test_doc_block_runs(path, index, tmp_path_factory, monkeypatch):
    code = blocks_of(path)[index]
    skip = SKIP.match(code)
    if skip:
        pytest.skip(f"marked in {path.name}: {skip.group(1)}")
    if path in _BROKEN:
        pytest.skip(f"an earlier block of {path.name} did not run ({_BROKEN[path]})")
    work = tmp_path_factory.getbasetemp() / f"docs-{path.stem}"
    work.mkdir(exist_ok=True)
    for name in DATA_FILES:
        if name in code and not (work / name).exists():
            if not (MOVIELENS / name).is_file():
                _BROKEN[path] = f"{name} not found"
                pytest.skip(f"{name} not found in {MOVIELENS} (set RTREC_DATA to a directory with ml-latest-small)")
            os.symlink(MOVIELENS / name, work / name)
    monkeypatch.chdir(work)
    namespace = _NAMESPACES.setdefault(path, {"__name__": f"doc_{path.stem}"})
    try:
        exec(compile(code, f"{path.name} block {index}", "exec"), namespace)
    except BaseException as exc:
        _BROKEN[path] = f"block {index} failed"
        raise AssertionError(f"{path.name}, python block {index} fails as written: {exc!r}") from exc
