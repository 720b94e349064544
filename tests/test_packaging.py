"""Packaging: `kernels/` ships only as `qwt.kernels`, and every package directory is installed.

A top-level `kernels` package exists on PyPI and other libraries import it, so installing ours
under that name would break them. These tests build the real wheel and import from it.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tomllib
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _package_dirs() -> set[str]:
    """Dotted names of every directory with an `__init__.py` under qwt/ and kernels/."""
    found = set()
    for top, dotted in (("qwt", "qwt"), ("kernels", "qwt.kernels")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            if "__pycache__" in rel:
                continue
            found.add(".".join((dotted, *rel)))
    return found


def test_every_package_directory_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    assert _package_dirs() - listed == set(), "add these to [tool.setuptools] packages"
    assert listed - _package_dirs() == set(), "listed packages with no directory"
    assert config["package-dir"]["qwt.kernels"] == "kernels"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (whl,) = out.glob("qwt-*.whl")
    return whl


def test_wheel_has_qwt_kernels_and_no_top_level_kernels(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "qwt/kernels/__init__.py" in names
    assert not [n for n in names if n.startswith("kernels/")]
    tops = {n.split("/")[0] for n in names if not n.startswith("qwt-")}
    assert tops == {"qwt"}
    # The base model `qwt compare` fine-tunes ships inside the wheel (nothing is downloaded).
    base = {n.rsplit("/", 1)[1] for n in names if n.startswith("qwt/models/pretrained/maths-small/")}
    assert base == {"config.json", "model.safetensors", "tokenizer.json", "recipe.json"}


def test_regular_install_imports_qwt_kernels_only(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        "import importlib.util, qwt, qwt.kernels;"
        f"assert qwt.kernels.__file__.startswith({str(site)!r}), qwt.kernels.__file__;"
        # a top-level `kernels` may exist (transformers >= 5 depends on Hugging Face's package of
        # that name): it must not be ours, from the wheel or from the source folder
        "spec = importlib.util.find_spec('kernels');"
        f"assert spec is None or not str(spec.origin).startswith(({str(site / 'kernels')!r}, {str(ROOT / 'kernels')!r})), spec"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=env)


def test_development_install_imports_qwt_kernels_only(tmp_path):
    """The environment the suite runs in (an editable install in CI) maps `qwt.kernels` too."""
    code = (
        "import importlib.util, qwt.kernels;"
        f"assert qwt.kernels.__file__.startswith({str(ROOT / 'kernels')!r}) or 'site-packages' in qwt.kernels.__file__;"
        "spec = importlib.util.find_spec('kernels');"
        f"assert spec is None or not str(spec.origin).startswith({str(ROOT / 'kernels')!r}), spec"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
