"""qwt.peft controls (mpo_only, mpo_mlp, qtha_noent) and QuanTA: identity, training, reload, counts."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from qwt import peft
from qwt.peft.quanta import QuanTAFrozen

D_IN, D_V = 16, 8
QTHA = dict(n_qubits=4, qnn_layers=2, bond=2, n_cores=2)
CFG = {"mpo_only": QTHA, "mpo_mlp": QTHA, "qtha_noent": QTHA, "quanta": {}, "qtha": QTHA}


class Toy(nnx.Module):
    def __init__(self, rngs):
        self.q_proj = nnx.Linear(D_IN, D_IN, rngs=rngs)
        self.v_proj = nnx.Linear(D_IN, D_V, rngs=rngs)

    def __call__(self, x):
        return jnp.concatenate([jnp.tanh(self.q_proj(x)), self.v_proj(x)], axis=-1)


def _x():
    return jax.random.normal(jax.random.key(3), (2, 3, D_IN))


def _adapted(method, seed=1, **cfg):
    return peft.apply(Toy(nnx.Rngs(0)), method, ["q_proj", "v_proj"], rngs=nnx.Rngs(seed), **(cfg or CFG[method]))


def _step(model, n=2):
    opt = nnx.Optimizer(model, optax.adam(5e-2), wrt=peft.trainable(model))
    loss = lambda m: jnp.mean((m(_x()) - 1.0) ** 2)  # noqa: E731
    for _ in range(n):
        grads = nnx.grad(loss, argnums=nnx.DiffState(0, peft.trainable(model)))(model)
        opt.update(model, grads)
    return grads


@pytest.mark.parametrize("method", ["mpo_only", "mpo_mlp", "qtha_noent", "quanta"])
def test_identity_train_reload(method):
    x, base = _x(), Toy(nnx.Rngs(0))
    model = _adapted(method)
    np.testing.assert_allclose(model(x), base(x), atol=1e-6)
    assert 0 < peft.count(model)["trainable"] < peft.count(model)["total"]
    grads = _step(model)
    assert all(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree_util.tree_leaves(grads))
    after = model(x)
    assert float(jnp.max(jnp.abs(after - base(x)))) > 1e-3
    cfg = peft.adapter_config(model)
    assert cfg["method"] == method and json.loads(json.dumps(cfg)) == cfg
    kw = {k: v for k, v in cfg.items() if k not in ("method", "targets", "paths")}
    reloaded = peft.apply(Toy(nnx.Rngs(0)), cfg["method"], cfg["targets"], rngs=nnx.Rngs(1), **kw)
    np.testing.assert_allclose(reloaded(x), base(x), atol=1e-6)
    nnx.update(reloaded, nnx.state(model, peft.trainable(model)))
    np.testing.assert_allclose(reloaded(x), after, atol=1e-5)


def test_mpo_mlp_matches_qtha_counts():
    qtha, mlp = _adapted("qtha"), _adapted("mpo_mlp")
    assert peft.count(mlp)["trainable"] == peft.count(qtha)["trainable"]
    for name in ("q_proj", "v_proj"):
        q, m = getattr(qtha, name), getattr(mlp, name)
        assert isinstance(m, peft.MPOMLPLinear) and m.mixer == "mlp" and not hasattr(m, "qnn")
        assert m.mlp.w1.shape == (4, 4) and m.mlp.w2.shape == (4, 4)  # k = 2·qnn_layers
        assert peft.count(m.mlp)["trainable"] == peft.count(q.qnn)["trainable"] == 4 * 4 * 2
        assert float(jnp.max(jnp.abs(m.mlp(100.0 * _x()[..., :4])))) < 1.0  # bounded like ⟨Z⟩


def test_mpo_only_has_no_nonlinear_path():
    qtha, only = _adapted("qtha"), _adapted("mpo_only")
    for name in ("q_proj", "v_proj"):
        m = getattr(only, name)
        assert not any(hasattr(m, a) for a in ("qnn", "mlp", "alpha"))
    per_adapter = 4 * 4 * 2 + 4  # QNN angles + α
    assert peft.count(only)["trainable"] == peft.count(qtha)["trainable"] - 2 * per_adapter
    with pytest.raises(ValueError, match="has mixer"):
        _adapted("mpo_only", mixer="qnn", **QTHA)


def _two_qubit(circuit):
    return [op for op in circuit.operations() if len(op.wires) > 1]


def test_qtha_noent_circuit_has_no_entangling_gate():
    noent, qtha = _adapted("qtha_noent").q_proj.qnn, _adapted("qtha").q_proj.qnn
    assert noent.ansatz == "origin_product" and noent.simulator == "layered" and noent._uses_program()
    for fold, skip in ((False, False), (True, True)):
        assert not _two_qubit(noent._program_circuit(fold, skip))
    assert not _two_qubit(noent.circuit(jnp.ones(4))) and len(list(noent.circuit().operations())) == 16
    assert _two_qubit(qtha.circuit(jnp.ones(4)))
    # No entanglement: ⟨Z_i⟩ of qubit i depends on input i only.
    h = jax.random.normal(jax.random.key(0), (5, 4))
    out, moved = noent(h), noent(h.at[:, 0].add(1.0))
    np.testing.assert_allclose(out[:, 1:], moved[:, 1:], atol=1e-6)
    with pytest.raises(ValueError, match="origin_product"):
        _adapted("qtha_noent", ansatz="origin", **QTHA)


def _quanta_count(layer):
    return sum(math.prod(s) for s in layer.gate_shapes)


def test_quanta_matches_dense_reference_and_counts():
    model = _adapted("quanta")
    _step(model, 1)
    q = model.q_proj
    assert q.axes_in == q.axes_out == (2, 2, 2, 2) and model.v_proj.axes_out == (1, 2, 2, 2)
    eye = jnp.eye(D_IN)
    m, m0 = q.transform(eye, q.gates), q.transform(eye, q.frozen)
    x = jax.random.normal(jax.random.key(7), (5, D_IN))
    np.testing.assert_allclose(q.delta(x), x @ (m - m0), atol=1e-5)
    assert float(jnp.max(jnp.abs(m - m0))) > 1e-4
    # Count formula, and the frozen copy is neither trainable nor counted.
    assert peft.count(model)["trainable"] == _quanta_count(model.q_proj) + _quanta_count(model.v_proj)
    assert len(jax.tree_util.tree_leaves(nnx.state(model, QuanTAFrozen))) == 2 * 6
    assert peft.count(model)["total"] == peft.count(Toy(nnx.Rngs(0)))["total"] + peft.count(model)["trainable"]


def test_quanta_shapes_rectangular_and_validation():
    base = nnx.Linear(128, 64, rngs=nnx.Rngs(0))
    layer = peft.QuanTALinear(base, rngs=nnx.Rngs(1))
    assert (layer.axes_in, layer.axes_out) == ((2, 4, 4, 4), (2, 2, 4, 4)) and len(layer.gate_shapes) == 6
    # Each axis ends at its output size: the gate shapes chain from axes_in to axes_out.
    cur = list(layer.axes_in)
    for (i, j), (oi, oj, ci, cj) in zip(layer.pairs, layer.gate_shapes):
        assert (ci, cj) == (cur[i], cur[j])
        cur[i], cur[j] = oi, oj
    assert tuple(cur) == layer.axes_out
    x = jax.random.normal(jax.random.key(0), (3, 128))
    np.testing.assert_allclose(layer(x), base(x), atol=1e-6)
    custom = peft.QuanTALinear(base, axes_in=(8, 16), axes_out=(8, 8), scale=0.5, rngs=nnx.Rngs(1))
    assert custom.gate_shapes == ((8, 8, 8, 16),) and custom.config.to_dict()["axes_in"] == [8, 16]
    for bad in (dict(axes_in=(8, 8)), dict(axes_in=(4, 4, 8), axes_out=(8, 8)), dict(n_axes=1)):
        with pytest.raises(ValueError):
            peft.QuanTALinear(base, rngs=nnx.Rngs(1), **bad)
