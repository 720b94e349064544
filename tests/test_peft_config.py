"""Typed adapter configs and the adapter interface: vocabularies, round trips, old records, merge contract."""

from __future__ import annotations

import dataclasses
import json
import typing

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from qwt import peft
from qwt.nn import ansatz as nn_ansatz
from qwt.nn import encoding as nn_encoding
from qwt.nn import quantum as nn_quantum
from qwt.peft import config as pc
from qwt.peft import qtha
from qwt.training import jobs, tasks
from qwt.training import config as train_config

SMALL = {
    "lora": {"rank": 2}, "dora": {"rank": 2, "alpha": 4.0}, "quanta": {"n_axes": 2},
    "qtha": {"n_qubits": 4, "qnn_layers": 1, "bond": 2}, "mpo_only": {"n_qubits": 4, "bond": 2},
    "mpo_mlp": {"n_qubits": 4, "qnn_layers": 1, "bond": 2}, "qtha_noent": {"n_qubits": 4, "qnn_layers": 1, "bond": 2},
}  # fmt: skip


class Toy(nnx.Module):
    def __init__(self, rngs):
        self.q_proj = nnx.Linear(16, 16, rngs=rngs)
        self.v_proj = nnx.Linear(16, 8, rngs=rngs)

    def __call__(self, x):
        return jnp.concatenate([self.q_proj(x), self.v_proj(x)], axis=-1)


def _x():
    return jax.random.normal(jax.random.key(7), (3, 16))


def test_vocabularies_match_the_runtime_tables():
    # The Literal types are what the checks use; they must name exactly what the layers accept.
    assert typing.get_args(pc.Ansatz) == tuple(nn_ansatz.ANSATZE)
    assert typing.get_args(pc.Encoding) == tuple(nn_quantum.ENCODINGS)
    assert set(typing.get_args(pc.Simulator)) == set(nn_quantum.SIMULATORS)
    assert typing.get_args(nn_encoding.Rotation) == nn_encoding.ROTATIONS == ("ry", "rx", "rz")
    assert typing.get_args(nn_encoding.InputScaling) == nn_encoding.SCALINGS == ("arctan", "pi_tanh", "none")
    assert set(typing.get_args(pc.Method)) == set(peft.METHODS) == set(peft.CONFIGS)
    assert typing.get_args(pc.Mixer) == qtha.MIXERS
    assert typing.get_args(tasks.FileFormat) == tasks.FILE_FORMATS == typing.get_args(jobs.DataFormat)
    assert typing.get_args(train_config.BaseDtype) == ("float32", "bfloat16")
    for method, cls in peft.METHODS.items():
        assert issubclass(cls, peft.Adapter) and cls.method == method
        assert cls.config_class is peft.CONFIGS[method] and cls.config_class.method == method


@pytest.mark.parametrize("bad, what", [
    ({"ansatz": "ring"}, "ansatz"), ({"encoding": "basis"}, "encoding"), ({"rotation": "ry2"}, "encoding rotation"),
    ({"input_scaling": "tanh"}, "input scaling"), ({"simulator": "gpu"}, "simulator"), ({"mixer": "rnn"}, "mixer"),
])  # fmt: skip
def test_string_options_are_checked_when_the_config_is_made(bad, what):
    (value,) = bad.values()
    with pytest.raises(ValueError, match=f"unknown {what} '{value}'; choose one of \\["):
        peft.make_config("qtha", **bad)


def test_other_options_name_the_argument_and_the_choices():
    with pytest.raises(ValueError, match=r"unknown method 'ia3'; choose one of \['qtha'"):
        jobs.JobSpec(method="ia3")
    with pytest.raises(ValueError, match="unknown data_format 'csv'"):
        jobs.JobSpec(data_format="csv")
    with pytest.raises(ValueError, match=r"unknown TrainConfig.base_dtype 'float16'; choose one of \['float32', 'bfloat16'\]"):
        train_config.TrainConfig(base_dtype="float16")
    with pytest.raises(ValueError, match="unknown TraceTask.style"):
        tasks.TraceTask(style="chat")
    with pytest.raises(ValueError, match="unknown encoding rotation 'ry2'"):
        nn_encoding.product_state(jnp.zeros((1, 2)), "ry2")
    with pytest.raises(ValueError, match="unknown dtype 'float16'"):
        jobs.load_base("builtin:tiny", dtype="float16")


def test_unknown_settings_are_named():
    with pytest.raises(TypeError, match=r"unknown lora setting\(s\) \['bogus'\]; known: \['alpha', 'rank'\]"):
        peft.make_config("lora", bogus=1)
    with pytest.raises(TypeError, match="bogus"):
        peft.LoRALinear(nnx.Linear(4, 4, rngs=nnx.Rngs(0)), bogus=1, rngs=nnx.Rngs(1))
    with pytest.raises(TypeError, match="takes a LoRAConfig, got DoRAConfig"):
        peft.LoRALinear(nnx.Linear(4, 4, rngs=nnx.Rngs(0)), peft.DoRAConfig(), rngs=nnx.Rngs(1))
    with pytest.raises(ValueError, match="has mixer 'none', got 'qnn'"):
        peft.MPOOnlyConfig(mixer="qnn")
    with pytest.raises(ValueError, match="origin_product"):
        peft.QTHANoEntConfig(ansatz="origin")


@pytest.mark.parametrize("method", sorted(SMALL))
def test_config_round_trip_rebuilds_the_same_adapters(method):
    model = peft.apply(Toy(nnx.Rngs(0)), method, rngs=nnx.Rngs(1), **SMALL[method])
    record = peft.adapter_config(model)
    config = peft.AdapterConfig.from_dict(record)
    assert type(config) is peft.CONFIGS[method]
    for _, adapter in peft.adapters(model):
        assert adapter.config == config and hash(adapter.config) == hash(config)
        assert adapter.targets == ("q_proj", "v_proj")
    assert {**config.to_dict(), "targets": record["targets"], "paths": record["paths"]} == record
    assert json.loads(json.dumps(config.to_dict())) == config.to_dict()
    # The config alone rebuilds the model: same parameters, same outputs.
    rebuilt = peft.apply(Toy(nnx.Rngs(0)), config, rngs=nnx.Rngs(1))
    same = jax.tree_util.tree_map(np.array_equal, nnx.state(model, peft.AdapterParam), nnx.state(rebuilt, peft.AdapterParam))
    assert all(jax.tree_util.tree_leaves(same))
    np.testing.assert_array_equal(rebuilt(_x()), model(_x()))


def test_keywords_and_config_build_the_same_adapter():
    base = nnx.Linear(16, 8, rngs=nnx.Rngs(0))
    a = peft.QTHALinear(base, n_qubits=4, qnn_layers=1, bond=[2, 2], rngs=nnx.Rngs(1))
    b = peft.QTHAConfig(n_qubits=4, qnn_layers=1, bond=(2, 2)).build(base, nnx.Rngs(1))
    c = peft.QTHALinear(base, peft.QTHAConfig(n_qubits=3), n_qubits=4, qnn_layers=1, bond=(2, 2), rngs=nnx.Rngs(1))
    assert a.config == b.config == c.config and a.config.bond == (2, 2) and a.config.bottleneck == 4
    np.testing.assert_array_equal(a.qnn.weights[...], b.qnn.weights[...])
    np.testing.assert_array_equal(a.qnn.weights[...], c.qnn.weights[...])
    assert a.targets is None


def test_records_in_the_old_shape_still_load():
    # adapter_config as checkpoints wrote it before the QTHA controls (no "mixer"), with the
    # targets/paths keys, lists for tuples: it loads, the missing setting takes its default.
    old_qtha = {
        "method": "qtha", "n_qubits": 4, "qnn_layers": 1, "ansatz": "origin", "encoding": "angle", "rotation": "ry",
        "input_scaling": "arctan", "bottleneck": 4, "bond": [2, 2], "n_cores": 3, "down_shapes": [[2, 2, 4], [1, 2, 2]],
        "up_shapes": None, "scale": 1.0, "simulator": "statevector", "max_bond": None,
        "targets": ["q_proj", "v_proj"], "paths": ["q_proj", "v_proj"],
    }  # fmt: skip
    cfg = peft.AdapterConfig.from_dict(old_qtha)
    assert cfg == peft.QTHAConfig.from_dict(old_qtha)
    assert cfg.mixer == "qnn" and cfg.bond == (2, 2) and cfg.down_shapes == ((2, 2, 4), (1, 2, 2))
    assert {k: v for k, v in cfg.to_dict().items() if k != "mixer"} == {
        k: v for k, v in old_qtha.items() if k not in ("targets", "paths")}
    layer = cfg.build(nnx.Linear(16, 8, rngs=nnx.Rngs(0)), nnx.Rngs(1))
    assert layer.down.in_shape == (2, 2, 4) and layer.config == cfg
    old_lora = {"method": "lora", "rank": 2, "alpha": 16.0, "targets": ["q_proj"], "paths": ["q_proj"]}
    assert peft.AdapterConfig.from_dict(old_lora) == peft.LoRAConfig(rank=2)
    old_quanta = {"method": "quanta", "n_axes": 2, "axes_in": [4, 4], "axes_out": None, "scale": 1.0}
    assert peft.AdapterConfig.from_dict(old_quanta).axes_in == (4, 4)
    with pytest.raises(ValueError, match="got method 'lora'"):
        peft.QTHAConfig.from_dict(old_lora)
    with pytest.raises(ValueError, match="one config per adapter"):
        peft.AdapterConfig.from_dict({"method": "mixed", "adapters": []})
    with pytest.raises(ValueError, match="unknown adapter method 'ia3'"):
        peft.AdapterConfig.from_dict({"method": "ia3"})


def test_job_defaults_come_from_the_configs():
    # The resume fingerprint drops settings equal to these: they are the configs' field defaults.
    assert jobs._adapter_defaults("lora") == {"rank": 8, "alpha": 16.0}
    assert jobs._adapter_defaults("mpo_only")["mixer"] == "none"
    assert jobs._adapter_defaults("qtha_noent")["ansatz"] == "origin_product"
    assert jobs._adapter_defaults("qtha") == {f.name: f.default for f in dataclasses.fields(peft.QTHAConfig)}


@pytest.mark.parametrize("method, replaced", [
    ("lora", True), ("dora", True), ("quanta", True), ("mpo_only", True),
    ("qtha", False), ("mpo_mlp", False), ("qtha_noent", False),
])  # fmt: skip
def test_one_merge_contract(method, replaced):
    """merge() folds the linear part into the base kernel and returns what goes in the adapter's
    place: the base when nothing of the update is left, else the adapter itself."""
    model = peft.apply(Toy(nnx.Rngs(0)), method, rngs=nnx.Rngs(1), **SMALL[method])
    leaves, tree = jax.tree_util.tree_flatten(nnx.state(model, peft.AdapterParam))
    keys = jax.random.split(jax.random.key(2), len(leaves))
    # A trained-looking adapter: every parameter moved off its initial value.
    nnx.update(model, jax.tree_util.tree_unflatten(
        tree, [v + 0.2 * jax.random.normal(k, v.shape) for v, k in zip(leaves, keys)]))  # fmt: skip
    before = model(_x())
    adapter = model.q_proj
    base = adapter.base
    out = adapter.merge()
    assert (out is base) if replaced else (out is adapter)
    model.q_proj = out
    kernel_delta = np.asarray(base.kernel[...]) - np.asarray(Toy(nnx.Rngs(0)).q_proj.kernel[...])
    assert np.abs(kernel_delta).max() > 1e-3  # the linear part went into the kernel
    peft.merge(model)  # the surgery applies the same contract to the rest
    assert isinstance(model.v_proj, nnx.Linear if replaced else peft.Adapter)
    np.testing.assert_allclose(model(_x()), before, atol=2e-5)
