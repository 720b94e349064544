"""The runnable examples in the docstrings of qwt.data, the experiment harness (qwt.training) and
the new adapters stay true."""

import doctest
import importlib

import pytest

MODULES = ["qwt.circuit.gates", "qwt.circuit.lower", "qwt.circuit.circuit", "qwt.statevector.plan",
           "qwt.statevector.execute", "qwt.statevector.reference", "qwt.mps.compile", "qwt.mps.simulate",
           "qwt.kernels.pallas_layered_program",
           "qwt.data", "qwt.data.examples", "qwt.data.answers", "qwt.data.maths", "qwt.data.templates",
           "qwt.data.encode", "qwt.data.batches", "qwt.data.formats", "qwt.data.metrics", "qwt.data.choices", "qwt.data.records", "qwt.data.detect",
           "qwt.training.pretrain", "qwt.training.tasks", "qwt.training.study", "qwt.training.plans",
           "qwt.training.report", "qwt.training.stats", "qwt.training.report_plots", "qwt.peft.quanta",
           "qwt.statevector.sharded", "qwt.training.mesh",
           "qwt.shots", "qwt.parameter_shift", "qwt.noise", "qwt.noise.channels", "qwt.noise.model",
           "qwt.noise.density", "qwt.noise.trajectories"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no docstring examples"
    assert result.failed == 0
