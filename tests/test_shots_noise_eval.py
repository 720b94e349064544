"""``benchmarks/shots_noise_eval.py`` without fine-tuning: its statistics against hand-computed values
and its settings grid against the executors it must build."""

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    # benchmarks/ is not a package: load the files by path (the script puts benchmarks/ on sys.path
    # itself, for its own import of the statistics module).
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


_path = list(sys.path)
sns = _load("shots_noise_stats")
sne = _load("shots_noise_eval")
sys.path[:] = _path  # the script puts benchmarks/ on sys.path for itself: keep it out of this worker


def test_scores_matrix_checks_its_input():
    assert sns.scores_matrix([1, 0]).shape == (1, 2)
    assert sns.scores_matrix([[1, 0], [0, 0]]).shape == (2, 2)
    with pytest.raises(ValueError, match="0/1"):
        sns.scores_matrix([1, 0.5])
    with pytest.raises(ValueError, match="non-empty"):
        sns.scores_matrix([])


def test_bootstrap_ci_known_cases():
    assert sns.bootstrap_mean_ci([[1, 1, 1, 1]]) == (1.0, 1.0)  # no spread to resample
    # Two problems, one right: resampled means are 0, 1/2, 1 with probability 1/4, 1/2, 1/4, so the
    # 2.5% and 97.5% quantiles are exactly 0 and 1.
    assert sns.bootstrap_mean_ci([[0, 1]], n_resamples=4000) == (0.0, 1.0)
    # Large K: the percentile interval approaches the normal one, p ± 1.96·sqrt(p(1-p)/K).
    k, p = 400, 0.75
    lo, hi = sns.bootstrap_mean_ci([[1] * int(p * k) + [0] * int((1 - p) * k)])
    half = 1.96 * np.sqrt(p * (1 - p) / k)
    assert abs(lo - (p - half)) < 0.006 and abs(hi - (p + half)) < 0.006
    with pytest.raises(ValueError, match="ci"):
        sns.bootstrap_mean_ci([[1, 0]], ci=1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        sns.bootstrap_mean_ci([[1, 0]], n_resamples=0)


def test_accuracy_interval_uses_the_same_resamples_as_the_paired_difference():
    from qwt.training.stats import paired_bootstrap_diff

    rng = np.random.default_rng(3)
    a = (rng.random((2, 50)) < 0.6).astype(int)
    d = paired_bootstrap_diff(a, np.zeros_like(a), n_resamples=3000, seed=7)
    assert sns.bootstrap_mean_ci(a, n_resamples=3000, seed=7) == (d["lo"], d["hi"])


def test_summarize_hand_computed():
    s = sns.summarize([[1, 1, 0, 1]], [[1, 1, 1, 1]], n_resamples=4000)
    # Per-problem differences are 0, 0, -1, 0: every resampled mean lies in [-1, 0], and the chance
    # that a resample misses problem 3 entirely is (3/4)^4 = 0.32 > 2.5%, so hi is exactly 0.
    assert s["accuracy"] == 0.75 and s["delta"]["diff"] == -0.25 and s["delta"]["hi"] == 0.0
    assert not s["delta"]["excludes_zero"] and not s["identical_to_reference"]
    assert s["wilson"] == pytest.approx([0.3006, 0.9544], abs=1e-4)  # Wilson, k=3, n=4 (by hand)
    same = sns.summarize([[1, 0, 1]], [[1, 0, 1]])
    assert same["identical_to_reference"] and same["delta"]["lo"] == same["delta"]["hi"] == 0.0
    worse = sns.summarize([[0, 0, 0]], [[1, 1, 1]])
    assert worse["delta"]["hi"] == -1.0 and worse["delta"]["excludes_zero"]
    two = sns.summarize([[1, 1, 0, 0], [1, 0, 0, 0]], [[1, 1, 1, 0], [1, 1, 0, 0]])
    assert two["accuracy"] == 0.375 and two["per_seed"] == [0.5, 0.25] and two["wilson"] is None
    assert two["delta"]["diff"] == -0.25 and two["n_seeds"] == 2
    with pytest.raises(ValueError, match="same"):
        sns.summarize([[1, 0]], [[1, 0, 1]])


def test_formatting():
    assert sns.fmt_delta({"diff": 0.0156, "lo": -0.01, "hi": 0.05}) == "+1.6% [-1.0%, +5.0%]"
    assert sns.excludes_zero({"lo": -0.2, "hi": -0.01}) and not sns.excludes_zero({"lo": 0.0, "hi": 0.1})


def test_settings_grid_builds_valid_executors():
    import qwt
    from qwt.executors import LocalExecutor

    names = [s.name for s in sne.SETTINGS]
    assert len(names) == len(set(names)) == 16
    assert set(sne.QUICK) | set(sne.TIMING) <= set(names)
    with pytest.raises(ValueError, match="unknown setting"):
        sne.setting("shots17")
    c = qwt.Circuit(1).x(0)  # <Z> = -1 noiseless
    for s in sne.SETTINGS:
        ex = sne.make_executor(s)
        if not s.executor:
            assert ex is None and s.shots is None and s.noise is None
            continue
        assert isinstance(ex, LocalExecutor) and ex.shots == s.shots and ex.seed == 0
        assert (ex.noise is None) == (s.noise is None)
        assert ex.n_qubits is None or ex.n_qubits >= 4  # the model's 4-qubit QNN fits
        z = float(ex.run([c], [qwt.Z(0)])[0, 0])
        if s.noise and s.noise.startswith("depolarizing"):
            p = float(s.noise.split(":")[1])
            want = -(1 - 4 * p / 3)  # X and Y flip <Z>, Z keeps it: (1-p)(-1) + p/3 (1 + 1 - 1)
        elif s.noise == "readout:0.02":
            want = -(1 - 2 * 0.02)
        else:
            want = -1.0
        # exact: equal; shots: within 4 standard errors of a ±1 variable's mean
        tol = 1e-5 if s.shots is None else 4 * np.sqrt(max(1 - want * want, 1e-12) / s.shots) + 1e-6
        assert abs(z - want) <= tol, (s.name, z, want)
