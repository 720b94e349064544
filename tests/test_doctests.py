"""Every module of qwt (qwt.kernels included) has its docstring examples run, and they stay true.

Modules are discovered by walking the package, so a new module is covered without editing this
file. A module with no example at all is listed in ``NO_EXAMPLES_YET`` (the list only shrinks: a
listed module that gains examples fails the second test until it is taken off).
"""

import doctest
import importlib
import pkgutil

import pytest

import qwt
import qwt.kernels


def _modules() -> list[str]:
    # qwt.kernels lives in kernels/ (a package-dir mapping), so walk it separately.
    names = ["qwt", "qwt.kernels"]
    for package in (qwt, qwt.kernels):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.endswith("__main__"):  # importing __main__ runs the CLI
                names.append(info.name)
    return sorted(set(names))


MODULES = _modules()

#: Modules whose examples run whole studies (tens of seconds): marked ``slow``.
SLOW = {"qwt.training.study"}

#: Modules whose docstrings hold no runnable example yet.
NO_EXAMPLES_YET: set[str] = set()


@pytest.mark.parametrize("name", [pytest.param(m, marks=pytest.mark.slow if m in SLOW else ()) for m in MODULES])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    if name in NO_EXAMPLES_YET:
        assert result.attempted == 0, f"{name} has examples now: take it off NO_EXAMPLES_YET"
    else:
        assert result.attempted > 0, f"{name} has no docstring examples"


def test_kernels_are_discovered():
    assert "qwt.kernels" in MODULES and "qwt.kernels.xla_ops" in MODULES
