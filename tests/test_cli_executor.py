"""``qwt eval --executor/--shots/--noise`` on a tiny fine-tuned QTHA run: the model's QNNs run on
the executor (exact executor = the layers' own simulator; noise changes the logits), the command
end to end, and clear errors for bad flags."""

import argparse

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from qwt import executors
from qwt.cli import main
from qwt.cli import executor_eval
from qwt.nn import QuantumLayer

pytest.importorskip("pyqpanda3")

TINY = ["--model", "builtin:tiny", "--dataset", "maths:ages", "--n-train", "8", "--max-len", "64",
        "--batch-size", "2", "--warmup", "0", "--log-every", "1", "--steps", "1", "--targets", "q_proj",
        "--adapter", "n_qubits=3"]  # 3-qubit QNNs: the density-matrix noise path stays fast


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("qtha") / "run"
    assert main(["finetune", "--method", "qtha", *TINY, "--out", str(out), "--no-eval"]) == 0
    return out


def _args(*argv):
    p = argparse.ArgumentParser()
    executor_eval.add_flags(p)
    return p.parse_args(list(argv))


def test_qtha_model_on_executors_matches_exact_and_noise_changes_it(run):
    import jax

    from qwt.training import load_finetuned

    model, _, _ = load_finetuned(run)
    qnns = [m for _, m in nnx.iter_modules(model) if isinstance(m, QuantumLayer)]
    assert len(qnns) == 2  # q_proj of the tiny model's 2 blocks
    h = jax.random.normal(jax.random.key(0), (5, 3))
    exact_q = [np.asarray(q(h)) for q in qnns]
    ids = jnp.array([[3, 17, 5, 9, 11, 2]], jnp.int32)
    ref = np.asarray(model(ids))
    ex = executor_eval.executor_from_args(_args("--executor", "pyqpanda3"))
    assert "pyqpanda3 (exact" in executor_eval.attach_executor(model, ex)
    np.testing.assert_allclose(np.asarray(model(ids)), ref, atol=1e-4)
    assert ex.calls >= 1  # the model's QNN rows went through the executor
    for q, e in zip(qnns, exact_q):
        np.testing.assert_allclose(np.asarray(q(h)), e, atol=1e-5)
    noisy = executor_eval.executor_from_args(_args("--noise", "depolarizing:0.2"))
    executor_eval.attach_executor(model, noisy, "depolarizing:0.2")
    assert noisy.name == "local" and noisy.calls == 0
    for q, e in zip(qnns, exact_q):
        got = np.asarray(q(h))
        assert np.abs(got - e).max() > 1e-2  # depolarising at p=0.2 moves every QNN visibly


@pytest.mark.parametrize("flags", [["--executor", "local", "--shots", "64", "--noise", "depolarizing:0.01"],
                                   ["--executor", "pyqpanda3", "--shots", "64"]])
def test_eval_command_runs_the_qnn_on_the_executor(run, flags, monkeypatch, capsys):
    made = []
    real = executors.make

    def spy(*a, **kw):
        made.append(real(*a, **kw))
        return made[-1]

    monkeypatch.setattr(executors, "make", spy)
    assert main(["eval", str(run), "--n-eval", "1", "--max-new-tokens", "2", *flags]) == 0
    out = capsys.readouterr().out
    assert f"QNN on executor {flags[1]} (64 shots" in out and "strict_accuracy:" in out
    assert len(made) == 1 and made[0].calls >= 1 and made[0].shots == 64


def test_eval_passes_trajectories_to_the_local_executor(monkeypatch):
    # Cheap: the executor is built from the flags before the run is looked for (/no/such/run).
    made = []
    real = executors.make
    monkeypatch.setattr(executors, "make", lambda *a, **kw: made.append(real(*a, **kw)) or made[-1])
    assert main(["eval", "/no/such/run", "--noise", "depolarizing:0.01", "--trajectories", "8", "--shots", "32"]) != 0
    assert len(made) == 1 and (made[0].name, made[0].trajectories, made[0].shots) == ("local", 8, 32)
    assert made[0].n_qubits is None  # no 8-qubit cap: the default 10-qubit QTHA QNN can attach


@pytest.mark.parametrize("flags,message", [
    (["--shots", "0"], "--shots must be a positive int, got 0"),
    (["--shots", "-3", "--executor", "qiskit"], "--shots must be a positive int, got -3"),
    (["--noise", "depolarising:0.1"], "--noise: noise spec 'depolarising:0.1': unknown kind"),
    (["--noise", "readout:2"], "expected readout:P with a number P in [0, 1]"),
    (["--executor", "qiskit", "--noise", "bit_flip:0.1"], "--noise runs on --executor local only"),
    (["--executor-seed", "-1", "--shots", "10"], "--executor-seed must be >= 0"),
    (["--trajectories", "100"], "--trajectories simulates the --noise model by state-vector trajectories: "
                                "give --noise too"),
    (["--shots", "10", "--trajectories", "5"], "give --noise too"),
    (["--noise", "bit_flip:0.1", "--trajectories", "0"], "--trajectories must be a positive int, got 0"),
])
def test_bad_executor_flags_are_clear_errors_before_loading(flags, message, capsys):
    # /no/such/run: the flags are refused before the run would be looked for.
    assert main(["eval", "/no/such/run", *flags]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flags,message", [(["--executor", "cirq"], "invalid choice: 'cirq'"),
                                           (["--shots", "many"], "invalid int value: 'many'"),
                                           (["--trajectories", "1e3"], "invalid int value: '1e3'")])
def test_argparse_refuses_unknown_executor_and_non_int_shots(flags, message, capsys):
    assert main(["eval", "/no/such/run", *flags]) == 2
    assert message in capsys.readouterr().err


def test_a_model_without_quantum_layers_is_refused():
    ex = executor_eval.executor_from_args(_args("--shots", "10"))
    with pytest.raises(ValueError, match="no quantum layers"):
        executor_eval.attach_executor(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), ex)
    assert executor_eval.executor_from_args(_args()) is None  # no flag: the exact simulator as before
    wide = QuantumLayer(9, layers=1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"has 9 qubits but executor local has 8 .*--trajectories N.*"
                                         r"--adapter n_qubits=8"):
        executor_eval.attach_executor(wide, executor_eval.executor_from_args(_args("--noise", "bit_flip:0.1")),
                                      "bit_flip:0.1")
    # With --trajectories the density matrix's width cap is gone: the 9-qubit QNN attaches.
    ex = executor_eval.executor_from_args(_args("--noise", "bit_flip:0.1", "--trajectories", "16"))
    assert "noise bit_flip:0.1, 16 trajectories" in executor_eval.attach_executor(wide, ex, "bit_flip:0.1")
