"""qwt.peft: surgery on a toy attention model, step-0 identity, gradients, counts, merging, errors."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from qwt import peft

D, HEADS, KV_HEADS, HEAD_DIM = 32, 4, 2, 8
QTHA_SMALL = dict(n_qubits=4, qnn_layers=2, bond=2, n_cores=2)
QTHA_TINY = dict(n_qubits=2, qnn_layers=1, bond=2, n_cores=2)  # where only the wiring is tested


class ToyAttention(nnx.Module):
    """A grouped-query attention block named like qwt.models (independent of it)."""

    def __init__(self, rngs, dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=dtype)
        self.q_proj = nnx.Linear(D, HEADS * HEAD_DIM, **kw)
        self.k_proj = nnx.Linear(D, KV_HEADS * HEAD_DIM, **kw)
        self.v_proj = nnx.Linear(D, KV_HEADS * HEAD_DIM, **kw)
        self.o_proj = nnx.Linear(HEADS * HEAD_DIM, D, **kw)

    def __call__(self, x):
        b, t, _ = x.shape
        q = self.q_proj(x).reshape(b, t, HEADS, HEAD_DIM)
        k = jnp.repeat(self.k_proj(x).reshape(b, t, KV_HEADS, HEAD_DIM), HEADS // KV_HEADS, axis=2)
        v = jnp.repeat(self.v_proj(x).reshape(b, t, KV_HEADS, HEAD_DIM), HEADS // KV_HEADS, axis=2)
        att = jax.nn.softmax(jnp.einsum("bthd,bshd->bhts", q, k) / np.sqrt(HEAD_DIM), axis=-1)
        return x + self.o_proj(jnp.einsum("bhts,bshd->bthd", att, v).reshape(b, t, -1))


class ToyModel(nnx.Module):
    def __init__(self, rngs, dtype=jnp.float32, n_layers=1):
        # One layer by default: every QTHA adapter is its own QNN to compile on a shared machine.
        self.layers = nnx.List([ToyAttention(rngs, dtype) for _ in range(n_layers)])

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def _x(dtype=jnp.float32):
    return jax.random.normal(jax.random.key(42), (2, 3, D)).astype(dtype)


@nnx.jit
def _forward(model, x):
    return model(x)


def _base_params(model):
    return jax.tree_util.tree_leaves(nnx.state(model, nnx.All(nnx.Param, nnx.Not(peft.AdapterParam))))


# ------------------------------------------------------------------------------- identity
@pytest.mark.parametrize("method,cfg", [("lora", {"rank": 4}), ("dora", {"rank": 4})])  # qtha: below
def test_step0_identity(method, cfg):
    base, adapted = ToyModel(nnx.Rngs(0)), ToyModel(nnx.Rngs(0))
    peft.apply(adapted, method, ["q_proj", "v_proj"], rngs=nnx.Rngs(1), **cfg)
    kinds = {type(layer.q_proj).__name__ for layer in adapted.layers} | {type(layer.v_proj).__name__ for layer in adapted.layers}
    assert kinds == {peft.METHODS[method].__name__}
    assert all(isinstance(layer.k_proj, nnx.Linear) for layer in adapted.layers)
    x = _x()
    np.testing.assert_allclose(_forward(adapted, x), _forward(base, x), atol=1e-5 if method == "dora" else 0)


def test_bf16_model_keeps_fp32_quantum_path():
    model = ToyModel(nnx.Rngs(0), dtype=jnp.bfloat16)
    ref = _forward(ToyModel(nnx.Rngs(0), dtype=jnp.bfloat16), _x(jnp.bfloat16))
    peft.apply(model, "qtha", rngs=nnx.Rngs(1), **QTHA_TINY)
    out = _forward(model, _x(jnp.bfloat16))
    assert out.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(out, np.float32), np.asarray(ref, np.float32))
    assert model.layers[0].q_proj.qnn.weights[...].dtype == jnp.float32


# ------------------------------------------------------------------------------- training
def _loss(model, x, y):
    return jnp.mean((model(x) - y) ** 2)


@nnx.jit
def _train_step(model, opt, x, y):
    loss, grads = nnx.value_and_grad(_loss, argnums=nnx.DiffState(0, peft.AdapterParam))(model, x, y)
    opt.update(model, grads)
    return loss, grads


def _norms(grads_layer):
    g = grads_layer
    return {
        "qnn": float(jnp.linalg.norm(g["qnn"]["weights"][...])),
        **{f"down{i}": float(jnp.linalg.norm(c[...])) for i, c in g["down"]["cores"].items()},
        **{f"up{i}": float(jnp.linalg.norm(c[...])) for i, c in g["up"]["cores"].items()},
        "alpha": float(jnp.linalg.norm(g["alpha"][...])),
        "beta": float(jnp.linalg.norm(g["beta"][...])),
    }


def test_qtha_identity_gradients_fd_and_frozen_base():
    # Three checks on one model (each QTHA compilation is expensive on the shared test machine).
    model = peft.apply(ToyModel(nnx.Rngs(0)), "qtha", rngs=nnx.Rngs(1), **QTHA_SMALL)
    x, y = _x(), jax.random.normal(jax.random.key(7), (2, 3, D))
    # (1) Step-0 identity: the wrapped model's outputs equal the base model's exactly.
    np.testing.assert_array_equal(_forward(model, x), _forward(ToyModel(nnx.Rngs(0)), x))
    base_before = [np.array(a) for a in _base_params(model)]
    opt = nnx.Optimizer(model, optax.adam(1e-2), wrt=peft.trainable(model))
    # (2) Step 0: Δ = 0 because U's last core is zero, so (as for LoRA's A when B = 0) only that core
    # gets a gradient. This is the documented design, asserted here so a change is noticed.
    _, g0 = _train_step(model, opt, x, y)
    n0 = _norms(g0["layers"][0]["q_proj"])
    assert n0["up1"] > 0 and all(v == 0 for k, v in n0.items() if k != "up1"), n0
    # Step 1: every adapter parameter, circuit angles and every MPO core included, has a gradient,
    # and one optax step changes all of them.
    q = model.layers[0].q_proj
    snapshot = jax.tree_util.tree_map(jnp.array, nnx.state(model, peft.AdapterParam))
    before = {"qnn": np.array(q.qnn.weights[...]), **{f"down{i}": np.array(c[...]) for i, c in enumerate(q.down.cores)},
              **{f"up{i}": np.array(c[...]) for i, c in enumerate(q.up.cores)}}  # fmt: skip
    loss1, g1 = _train_step(model, opt, x, y)
    for name in ("q_proj", "v_proj"):
        n1 = _norms(g1["layers"][0][name])
        assert all(v > 1e-8 for v in n1.values()), (name, n1)
    after = {"qnn": q.qnn.weights[...], **{f"down{i}": c[...] for i, c in enumerate(q.down.cores)},
             **{f"up{i}": c[...] for i, c in enumerate(q.up.cores)}}  # fmt: skip
    for key in before:
        assert np.max(np.abs(np.asarray(after[key]) - before[key])) > 1e-4, key
    # Base weights are frozen: bit-identical after two optimiser steps.
    for a, b in zip(base_before, _base_params(model)):
        np.testing.assert_array_equal(a, np.asarray(b))
    # (3) The circuit-angle gradient at step 1 against a central finite difference of the loss
    # along the gradient direction (evaluated at the pre-update angles).
    g = np.asarray(g1["layers"][0]["q_proj"]["qnn"]["weights"][...], np.float64)
    direction, eps, loss = g / np.linalg.norm(g), 1e-2, nnx.jit(_loss)
    nnx.update(model, snapshot)  # back to the point where g1 was taken (all adapters)
    vals = []
    for sign in (1, -1):
        q.qnn.weights[...] = jnp.asarray(before["qnn"] + sign * eps * direction, jnp.float32)
        vals.append(float(loss(model, x, y)))
    np.testing.assert_allclose((vals[0] - vals[1]) / (2 * eps), np.linalg.norm(g), rtol=2e-2)


# --------------------------------------------------------------------------------- counts
def test_parameter_counts_match_hand_computed_values():
    base_total = 2 * (2 * (D * D + D) + 2 * (D * 16 + 16))  # 2 layers; q, o: 32x32+32; k, v: 32x16+16
    lora = peft.apply(ToyModel(nnx.Rngs(0), n_layers=2), "lora", rngs=nnx.Rngs(1), rank=8)
    # r·(d_in + d_out): q 8·(32+32) = 512, v 8·(32+16) = 384, two layers.
    assert peft.count(lora) == {"trainable": 2 * (512 + 384), "total": base_total + 2 * 896}
    dora = peft.apply(ToyModel(nnx.Rngs(0), n_layers=2), "dora", rngs=nnx.Rngs(1), rank=8)
    assert peft.count(dora)["trainable"] == 2 * (512 + 384 + 32 + 16)  # + magnitude per output
    qtha = peft.apply(ToyModel(nnx.Rngs(0), n_layers=2), "qtha", rngs=nnx.Rngs(1), **QTHA_SMALL)
    # D 32→4: (4,8)x(2,2), bond min(2, 4·2, 8·2) = 2: 1·4·2·2 + 2·8·2·1 = 48.
    # U 4→32: (2,2)x(4,8): 1·2·4·2 + 2·2·8·1 = 48.  U 4→16: (2,2)x(4,4): 16 + 16 = 32.
    # QNN origin: 2 layers · 4 · 4 qubits = 32.  Fusion α, β: 2·4 = 8.
    q_count, v_count = 48 + 48 + 32 + 8, 48 + 32 + 32 + 8
    assert peft.count(qtha) == {"trainable": 2 * (q_count + v_count), "total": base_total + 2 * (q_count + v_count)}


def test_default_qtha_is_about_a_quarter_of_lora_r8_on_qwen2_05b_shapes():
    def counts(method):
        def build():
            m = nnx.Module()
            m.q_proj, m.v_proj = nnx.Linear(896, 896, rngs=nnx.Rngs(0)), nnx.Linear(896, 128, rngs=nnx.Rngs(0))
            return peft.apply(m, method, rngs=nnx.Rngs(1))

        return peft.count(nnx.eval_shape(build))["trainable"]

    lora, qtha = counts("lora"), counts("qtha")
    assert lora == 8 * (896 + 896) + 8 * (896 + 128)
    # D 896→10 and U 10→896: (8,8,14)x(1,2,5), bonds 8, 8: 64 + 1024 + 560 = 1648 each;
    # U 10→128: (1,2,5)x(4,4,8), bonds (4, 8): 16 + 256 + 320 = 592; QNN 2·4·10 = 80; α, β 20.
    assert qtha == (1648 + 1648 + 100) + (1648 + 592 + 100)
    assert 0.2 < qtha / lora < 0.3


# -------------------------------------------------------------------------------- merging
@pytest.mark.parametrize("method", ["lora", "dora", "qtha"])
def test_merge_preserves_outputs(method):
    cfg = QTHA_TINY if method == "qtha" else {"rank": 4}
    model = peft.apply(ToyModel(nnx.Rngs(0)), method, rngs=nnx.Rngs(1), **cfg)
    key = jax.random.key(5)
    for _, adapter in peft.adapters(model):  # a trained-looking, non-zero update
        params = adapter.up.cores if method == "qtha" else [adapter.lora_b]
        for p in params:
            key, sub = jax.random.split(key)
            p[...] = 0.3 * jax.random.normal(sub, p.shape)
    x = _x()
    before = _forward(model, x)
    assert float(jnp.max(jnp.abs(before - _forward(ToyModel(nnx.Rngs(0)), x)))) > 1e-2
    peft.merge(model)
    np.testing.assert_allclose(_forward(model, x), before, atol=2e-5)
    q = model.layers[0].q_proj
    if method == "qtha":
        assert isinstance(q, peft.QTHALinear) and not np.any(np.asarray(q.beta[...]))
    else:
        assert type(q) is nnx.Linear and peft.count(model)["trainable"] == 0


# ------------------------------------------------------------------------- surgery, errors
def test_targets_regex_and_config():
    model = peft.apply(ToyModel(nnx.Rngs(0), n_layers=2), "lora", r"layers\.0\.(q|k)_proj", rngs=nnx.Rngs(1), rank=2)
    assert sorted(p for p, _ in peft.adapters(model)) == ["layers.0.k_proj", "layers.0.q_proj"]
    assert isinstance(model.layers[1].q_proj, nnx.Linear)
    qtha = peft.apply(ToyModel(nnx.Rngs(0), n_layers=2), "qtha", rngs=nnx.Rngs(1), **QTHA_SMALL)
    cfg = peft.adapter_config(qtha)
    assert cfg["method"] == "qtha" and cfg["n_qubits"] == 4 and cfg["targets"] == ["q_proj", "v_proj"]
    assert sorted(cfg["paths"]) == ["layers.0.q_proj", "layers.0.v_proj", "layers.1.q_proj", "layers.1.v_proj"]
    assert cfg["down_shapes"] is None and cfg["bond"] == 2 and cfg["scale"] == 1.0
    assert json.loads(json.dumps(cfg)) == cfg


def test_bad_input_raises_clear_errors():
    r = nnx.Rngs(1)
    with pytest.raises(ValueError, match="match no un-adapted nnx.Linear"):
        peft.apply(ToyModel(nnx.Rngs(0)), "lora", ["query"], rngs=r)
    model = peft.apply(ToyModel(nnx.Rngs(0)), "lora", ["q_proj"], rngs=r)
    with pytest.raises(ValueError, match="match no un-adapted"):
        peft.apply(model, "lora", ["q_proj"], rngs=r)
    with pytest.raises(ValueError, match="unknown adapter method"):
        peft.apply(ToyModel(nnx.Rngs(0)), "ia3", rngs=r)
    with pytest.raises(ValueError, match="bottleneck/qubit mismatch"):
        peft.apply(ToyModel(nnx.Rngs(0)), "qtha", rngs=r, n_qubits=4, bottleneck=5)
    with pytest.raises(ValueError, match="bottleneck/qubit mismatch"):
        peft.apply(ToyModel(nnx.Rngs(0)), "qtha", rngs=r, n_qubits=2, encoding="amplitude")
    with pytest.raises(ValueError, match="multiplies to 30 x 4"):
        peft.apply(ToyModel(nnx.Rngs(0)), "qtha", rngs=r, n_qubits=4, down_shapes=((5, 6), (2, 2)))
    with pytest.raises(ValueError, match="bond dimensions must be ints >= 1"):
        peft.apply(ToyModel(nnx.Rngs(0)), "qtha", rngs=r, n_qubits=4, bond=0)
    with pytest.raises(ValueError, match="LoRA rank"):
        peft.apply(ToyModel(nnx.Rngs(0)), "lora", rngs=r, rank=0)
    with pytest.raises(ValueError, match="no adapter parameters"):
        peft.trainable(ToyModel(nnx.Rngs(0)))
    fresh = ToyModel(nnx.Rngs(0))
    with pytest.raises(ValueError, match="bond"):
        peft.apply(fresh, "qtha", rngs=r, n_qubits=4, bond=-1)
    assert isinstance(fresh.layers[0].q_proj, nnx.Linear)  # a failed apply leaves the model untouched
