"""qwt.training.stats against hand-derived values, and qwt.training.report_plots writes real PNGs."""

import doctest
import math

import numpy as np
import pytest

from qwt.training import report_plots, stats
from qwt.training.report_plots import plot_accuracy_ci, plot_loss_bands, plot_params_vs_accuracy
from qwt.training.stats import mean_std, paired_bootstrap_diff, paired_bootstrap_scalar, wilson_interval

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
Z95 = 1.959963984540054


@pytest.mark.parametrize("module", [stats, report_plots])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# ----- mean_std -----

def test_mean_std_hand_values():
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == (2.5, pytest.approx(math.sqrt(5 / 3)))
    assert mean_std([7.0]) == (7.0, 0.0)
    assert mean_std(np.array([[1, 3], [5, 7]])) == (4.0, pytest.approx(math.sqrt(20 / 3)))


@pytest.mark.parametrize("bad, word", [([1.0, float("nan")], "NaN"), ([1.0, float("inf")], "inf"), ([], "empty")])
def test_mean_std_rejects(bad, word):
    with pytest.raises(ValueError, match=word):
        mean_std(bad)


# ----- paired_bootstrap_diff -----

def test_identical_gives_zero_interval():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2, size=(3, 50)).astype(float)
    d = paired_bootstrap_diff(a, a.copy(), n_resamples=500)
    assert d["diff"] == d["lo"] == d["hi"] == 0.0
    assert (d["n_seeds"], d["n_items"], d["n_resamples"]) == (3, 50, 500)


def test_constant_shift_is_exact():
    rng = np.random.default_rng(2)
    b = rng.normal(size=(3, 40))
    d = paired_bootstrap_diff(b + 1.0, b, n_resamples=300)
    assert d["diff"] == pytest.approx(1.0, abs=1e-12)
    assert d["lo"] == pytest.approx(1.0, abs=1e-12) and d["hi"] == pytest.approx(1.0, abs=1e-12)


def test_point_estimate_is_mean_difference():
    a = np.array([[1, 1, 0, 1], [1, 0, 0, 1]])
    b = np.array([[1, 0, 0, 1], [0, 0, 0, 1]])
    d = paired_bootstrap_diff(a, b, n_resamples=1000)
    assert d["diff"] == pytest.approx(a.mean() - b.mean())
    assert d["lo"] <= d["diff"] <= d["hi"]


def test_one_dimensional_is_one_seed():
    a, b = [1, 0, 1, 1], [0, 0, 1, 0]
    d1 = paired_bootstrap_diff(a, b, n_resamples=200, seed=3)
    d2 = paired_bootstrap_diff([a], [b], n_resamples=200, seed=3)
    assert d1 == d2 and d1["n_seeds"] == 1 and d1["n_items"] == 4


def test_items_resampled_jointly_across_seeds():
    # Item i has difference +1 in seed 0 and -1 in seed 1: averaged over seeds every item is 0,
    # so sharing the item indices across seeds must give a zero-width interval.
    a = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    b = a[::-1].copy()
    d = paired_bootstrap_diff(a, b, n_resamples=200)
    assert d["diff"] == d["lo"] == d["hi"] == 0.0


def test_bootstrap_matches_normal_approximation():
    n = 2000
    rng = np.random.default_rng(12345)
    a = (rng.random(n) < 0.60).astype(float)
    b = (rng.random(n) < 0.50).astype(float)
    d = paired_bootstrap_diff(a, b, n_resamples=10000, seed=0)
    pa, pb = a.mean(), b.mean()
    se = math.sqrt(pa * (1 - pa) / n + pb * (1 - pb) / n)  # independent two-proportion normal approximation
    half = Z95 * se
    assert d["diff"] == pytest.approx(pa - pb)
    assert abs(d["lo"] - (pa - pb - half)) <= 0.1 * half
    assert abs(d["hi"] - (pa - pb + half)) <= 0.1 * half
    assert (d["hi"] - d["lo"]) == pytest.approx(2 * half, rel=0.1)


def test_bootstrap_deterministic_in_seed():
    rng = np.random.default_rng(4)
    a, b = rng.random((3, 30)), rng.random((3, 30))
    assert paired_bootstrap_diff(a, b, seed=7, n_resamples=500) == paired_bootstrap_diff(a, b, seed=7, n_resamples=500)
    assert paired_bootstrap_diff(a, b, seed=7, n_resamples=500) != paired_bootstrap_diff(a, b, seed=8, n_resamples=500)


def test_wider_ci_is_wider():
    rng = np.random.default_rng(5)
    a, b = rng.random((2, 100)), rng.random((2, 100))
    d90 = paired_bootstrap_diff(a, b, ci=0.90, n_resamples=2000)
    d99 = paired_bootstrap_diff(a, b, ci=0.99, n_resamples=2000)
    assert d99["lo"] < d90["lo"] and d99["hi"] > d90["hi"]


@pytest.mark.parametrize("a, b", [
    (np.zeros((3, 10)), np.zeros((3, 11))),     # different items
    (np.zeros((2, 10)), np.zeros((3, 10))),     # different seeds
    (np.zeros((2, 3, 4)), np.zeros((2, 3, 4))),  # 3-D
    (np.zeros(5), np.zeros((1, 4))),
])
def test_bootstrap_diff_shape_errors(a, b):
    with pytest.raises(ValueError, match="shape"):
        paired_bootstrap_diff(a, b, n_resamples=10)


@pytest.mark.parametrize("kw, word", [({"ci": 1.0}, "ci"), ({"ci": 0.0}, "ci"), ({"n_resamples": 0}, "n_resamples")])
def test_bootstrap_argument_errors(kw, word):
    with pytest.raises(ValueError, match=word):
        paired_bootstrap_diff([1, 0], [0, 0], **kw)
    with pytest.raises(ValueError, match=word):
        paired_bootstrap_scalar([1.0, 2.0], [0.0, 0.0], **kw)


def test_bootstrap_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        paired_bootstrap_diff([1.0, float("nan")], [0.0, 0.0])


# ----- paired_bootstrap_scalar -----

def test_scalar_hand_values():
    a, b = np.array([1.0, 1.2, 1.1]), np.array([1.5, 1.6, 1.4])
    d = paired_bootstrap_scalar(a, b, n_resamples=5000)
    diffs = a - b  # -0.5, -0.4, -0.3: every resample mean lies within [min, max] of these
    assert d["diff"] == pytest.approx(-0.4)
    assert diffs.min() - 1e-12 <= d["lo"] <= d["diff"] <= d["hi"] <= diffs.max() + 1e-12
    assert (d["n_seeds"], d["n_resamples"]) == (3, 5000) and "n_items" not in d
    same = paired_bootstrap_scalar(b + 0.25, b, n_resamples=100)
    assert same["diff"] == pytest.approx(0.25) and same["lo"] == pytest.approx(0.25) and same["hi"] == pytest.approx(0.25)


def test_scalar_deterministic_and_shapes():
    a, b = [0.3, 0.5, 0.1, 0.9], [0.2, 0.2, 0.2, 0.2]
    assert paired_bootstrap_scalar(a, b, seed=1) == paired_bootstrap_scalar(a, b, seed=1)
    with pytest.raises(ValueError, match="per seed"):
        paired_bootstrap_scalar([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="per seed"):
        paired_bootstrap_scalar(np.zeros((2, 2)), np.zeros((2, 2)))


# ----- wilson_interval -----

def test_wilson_hand_values():
    # k=50, n=100: centre 0.5, half = z*sqrt(0.25/100 + z^2/40000) / (1 + z^2/100)
    z2 = Z95 ** 2
    half = Z95 * math.sqrt(0.0025 + z2 / 40000) / (1 + z2 / 100)
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.5 - half, abs=1e-9) and hi == pytest.approx(0.5 + half, abs=1e-9)
    assert (round(lo, 4), round(hi, 4)) == (0.4038, 0.5962)
    # k=0, n=10: lo = 0, hi = (z^2/20 + z^2/20) / (1 + z^2/10) = 0.2775
    lo, hi = wilson_interval(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx((z2 / 10) / (1 + z2 / 10)) and round(hi, 4) == 0.2775
    lo, hi = wilson_interval(10, 10)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(1 / (1 + z2 / 10))


@pytest.mark.parametrize("k, n, ci", [(3, 0, 0.95), (-1, 10, 0.95), (11, 10, 0.95), (3, 10, 1.5)])
def test_wilson_rejects(k, n, ci):
    with pytest.raises(ValueError):
        wilson_interval(k, n, ci)


# ----- report_plots -----

def _is_png(path):
    data = path.read_bytes()
    return len(data) > 100 and data[:8] == PNG_MAGIC


def test_plot_loss_bands_writes_png(tmp_path):
    curves = {"lora": [[(s, 2.0 / s + 0.01 * k) for s in range(1, 21)] for k in range(3)],
              "qtha": [[(s, 3.0 / s + 0.02 * k) for s in range(1, 21)] for k in range(3)],
              "single": [[(1, 1.0), (2, 0.5)]]}
    out = tmp_path / "sub" / "loss.png"
    assert plot_loss_bands(curves, out, title="t") == out
    assert _is_png(out)


def test_plot_accuracy_ci_writes_png(tmp_path):
    rows = [{"method": "base", "acc_mean": 0.1, "acc_lo": 0.05, "acc_hi": 0.15},
            {"method": "lora", "acc_mean": 0.4, "acc_lo": 0.35, "acc_hi": 0.45},
            {"arm": "qtha_r4", "method": "qtha", "acc_mean": 0.42, "acc_lo": 0.38, "acc_hi": 0.47}]
    out = tmp_path / "acc.png"
    assert plot_accuracy_ci(rows, out) == out and _is_png(out)


def test_plot_params_vs_accuracy_writes_png(tmp_path):
    rows = [{"method": "lora", "trainable": 65536, "acc_mean": 0.4, "acc_std": 0.02},
            {"method": "qtha", "trainable": 1024, "acc_mean": 0.38, "acc_std": 0.03}]
    out = tmp_path / "pa.png"
    assert plot_params_vs_accuracy(rows, str(out)) == out and _is_png(out)


def test_plots_reject_bad_input(tmp_path):
    p = tmp_path / "x.png"
    with pytest.raises(ValueError, match="no curves"):
        plot_loss_bands({}, p)
    with pytest.raises(ValueError, match="'lora'"):
        plot_loss_bands({"lora": []}, p)
    with pytest.raises(ValueError, match="'lora'"):
        plot_loss_bands({"lora": [[(1, 1.0)], []]}, p)
    with pytest.raises(ValueError, match="no rows"):
        plot_accuracy_ci([], p)
    with pytest.raises(ValueError, match="no rows"):
        plot_params_vs_accuracy([], p)
    with pytest.raises(KeyError, match="acc_hi"):
        plot_accuracy_ci([{"method": "lora", "acc_mean": 0.4, "acc_lo": 0.3}], p)
    with pytest.raises(KeyError, match="method"):
        plot_accuracy_ci([{"acc_mean": 0.4, "acc_lo": 0.3, "acc_hi": 0.5}], p)
    with pytest.raises(KeyError, match="trainable"):
        plot_params_vs_accuracy([{"method": "lora", "acc_mean": 0.4, "acc_std": 0.1}], p)
    with pytest.raises(ValueError, match="trainable"):
        plot_params_vs_accuracy([{"method": "base", "trainable": 0, "acc_mean": 0.1, "acc_std": 0.0}], p)
    assert not p.exists()
