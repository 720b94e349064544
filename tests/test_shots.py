"""Shot-estimated expectations (qwt.shots) against exact probabilities and expectations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import qwt
from qwt import shots


def _circuit(t):
    c = qwt.Circuit(3).ry(0, t[0]).h(1).cnot(0, 2).rx(2, t[1]).crz(1, 0, t[2]).u3(1, 0.4, t[0], -0.3)
    return c.cnot(2, 1)


T = jnp.array([0.8, -1.2, 0.5])
OBS = [qwt.Z(0), qwt.X(1) * qwt.Y(2), 0.5 * qwt.Z(0) * qwt.Z(2) - 0.8 * qwt.Y(1), qwt.X(0) + 2.0 * qwt.I(0),
       qwt.Y(0) * qwt.Y(1) * qwt.X(2)]


def test_groups_are_qubit_wise_commuting_and_cover_every_term():
    gs = shots.groups(OBS)
    seen = sorted(m for g in gs for m in g.members)
    want = sorted((i, t) for i, o in enumerate(OBS) for t, (_, p) in enumerate(qwt.circuit.as_observable(o).terms) if p)
    assert seen == want
    for g in gs:
        basis = dict(g.basis)
        for i, t in g.members:
            for w, p in qwt.circuit.as_observable(OBS[i]).terms[t][1]:
                assert basis[w] == p
    # Z0 and Z0Z2 share a group, so do X1Y2 and X0; Y1 and Y0Y1X2 conflict with X1Y2 on wire 1.
    assert len(gs) < 6


def test_sampled_counts_pass_chi_square_against_exact_probabilities():
    c = shots.rotated(_circuit(T), ((0, "X"), (1, "Y")))
    p = np.asarray(qwt.statevector.probabilities(c), np.float64)
    n = 4000
    bits = np.asarray(shots.sample_bits(c, n, jax.random.key(3)))
    idx = bits @ (1 << np.arange(2, -1, -1))
    obs = np.bincount(idx, minlength=8)
    keep = p > 1e-9
    assert obs[~keep].sum() == 0
    assert stats.chisquare(obs[keep], n * p[keep] / p[keep].sum()).pvalue > 1e-3
    # The test has power: the unrotated circuit's distribution is rejected.
    q = np.asarray(qwt.statevector.probabilities(_circuit(T)), np.float64)
    assert stats.chisquare(obs, n * (q + 1e-12) / (q + 1e-12).sum()).pvalue < 1e-6


def test_estimates_within_four_standard_errors_and_error_scales_as_inverse_sqrt():
    exact = np.asarray(qwt.statevector.expectation(_circuit(T), OBS))
    means, se = shots.estimate(_circuit(T), OBS, 4000, jax.random.key(0))
    means, se = np.asarray(means), np.asarray(se)
    assert se[3] >= 0 and np.all(se[[0, 1, 2, 4]] > 0)
    assert np.all(np.abs(means - exact) <= 4 * se + 1e-6), (means, exact, se)
    _, se_small = shots.estimate(_circuit(T), OBS, 1000, jax.random.key(1))
    ratio = np.asarray(se_small)[[0, 1, 2, 4]] / se[[0, 1, 2, 4]]
    np.testing.assert_allclose(ratio, 2.0, rtol=0.15)
    # Empirical spread over independent keys also shrinks as 1/sqrt(shots).
    run = jax.jit(jax.vmap(lambda k: shots.expectations(_circuit(T), OBS[:1], 100, k)))
    run4 = jax.jit(jax.vmap(lambda k: shots.expectations(_circuit(T), OBS[:1], 400, k)))
    ks = jax.random.split(jax.random.key(5), 400)
    assert np.std(run4(ks)) / np.std(run(ks)) == pytest.approx(0.5, rel=0.2)


def test_jit_and_vmap_over_angles_and_keys():
    f = jax.jit(lambda t, k: shots.expectations(_circuit(t), OBS, 256, k))
    ts = jnp.stack([T, T + 0.3])
    out = jax.vmap(f)(ts, jax.random.split(jax.random.key(2), 2))
    assert out.shape == (2, len(OBS))
    np.testing.assert_allclose(out[0], f(T, jax.random.split(jax.random.key(2), 2)[0]), atol=1e-6)


def test_mps_sampler_agrees():
    exact = np.asarray(qwt.statevector.expectation(_circuit(T), OBS))
    means, se = shots.estimate(_circuit(T), OBS, 3000, jax.random.key(4), max_bond=8)
    assert np.all(np.abs(np.asarray(means) - exact) <= 4 * np.asarray(se) + 1e-6)


def test_bad_shots_and_observables_are_refused():
    c = qwt.Circuit(1).h(0)
    with pytest.raises(ValueError, match="shots must be a positive int, got 0"):
        shots.expectations(c, [qwt.Z(0)], 0, jax.random.key(0))
    with pytest.raises(ValueError, match="positive"):
        shots.expectations(c, [qwt.Z(0)], -5, jax.random.key(0))
    for bad in (10.0, True, "100"):
        with pytest.raises(TypeError, match="shots"):
            shots.expectations(c, [qwt.Z(0)], bad, jax.random.key(0))
    with pytest.raises(ValueError, match="wire 2"):
        shots.expectations(c, [qwt.Z(2)], 10, jax.random.key(0))
    with pytest.raises(ValueError, match="empty"):
        shots.expectations(c, [], 10, jax.random.key(0))


def test_noisy_shots_match_the_density_matrix():
    from qwt.noise import NoiseModel, channels, density

    m = NoiseModel().add_all_single(channels.amplitude_damping(0.2)).add_all_two(channels.depolarizing(0.1, 2))
    exact = np.asarray(density.expectation(_circuit(T), OBS, m))
    means, se = shots.estimate(_circuit(T), OBS, 4000, jax.random.key(6), noise=m)
    assert np.all(np.abs(np.asarray(means) - exact) <= 4 * np.asarray(se) + 1e-6), (means, exact, se)
    # A symmetric readout error of 0.1 scales every single-qubit <Z> by 1 - 2(0.1) = 0.8.
    ro = NoiseModel().with_readout(channels.readout(0.1))
    means, se = shots.estimate(_circuit(T), [qwt.Z(0)], 20000, jax.random.key(7), noise=ro)
    want = 0.8 * float(qwt.statevector.expectation(_circuit(T), qwt.Z(0)))
    assert abs(float(means[0]) - want) <= 4 * float(se[0])
