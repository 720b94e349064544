"""The README's Python examples run as written (the ones that need no checkpoint on disk)."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_tour_runs():
    blocks = [b for b in _python_blocks() if "load(\"path/to" not in b]
    assert blocks, "README lost its runnable example"
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
        assert namespace["value"].shape == () and namespace["grad"].shape == (4,)
        assert namespace["batch"].shape == (8,)
