"""The per-token QNN batch shards with the tokens; run as a script (``--quick`` optional), prints JSON.

Run by tests/test_sharded_training.py in its own subprocess with 8 forced host devices. For the
QTHA QNN shape (10 qubits, 2 Origin layers, one circuit per token) on ``data=8`` and
``data=4,fsdp=2`` meshes, the compiled program (forward and gradient w.r.t. the angles and the
inputs) is read for ``all-gather`` ops: traced under the mesh (as the training loop does,
``qwt.training.mesh.under_mesh``, so ``QuantumLayer`` runs its rows per ``data`` shard) there must
be none, for the ``"layered"`` (QTHA's default) and ``"statevector"`` simulators; the same forward
traced without the mesh is recorded as well (it gathers the rows: the chunked batch does not line
up with the per-device tokens), so the check can fail. Values and gradients are compared with a
single-device run. Last, a whole QTHA training step of the built-in tiny model on ``data=8`` is
compiled and read the same way (without the mesh it gathers the per-token angles)."""

import json
import os
import re
import sys

# Appended: the caller's flags (the test suite's optimisation level) stay; the last count wins.
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from qwt.nn import QuantumLayer  # noqa: E402
from qwt.training import mesh as qmesh  # noqa: E402

GATHER = re.compile(r"=\s*\S+\s+all-gather(-start)?\(")


def gathers(hlo: str) -> list[str]:
    """The all-gather instructions of a compiled HLO text (their first 160 characters)."""
    return [line.strip()[:160] for line in hlo.splitlines() if GATHER.search(line)]


def qnn_case(simulator: str, mesh_text: str) -> dict:
    """One QuantumLayer (QTHA's QNN shape) on ``mesh_text``: gathers, values and gradients."""
    mesh = qmesh.make_mesh(qmesh.parse_mesh(mesh_text))
    layer = QuantumLayer(10, layers=2, simulator=simulator, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(layer)

    def loss(params, x):  # a weighted sum, so every output's cotangent differs; the outputs as aux
        out = nnx.merge(graphdef, params)(x)
        return jnp.sum(out * jnp.cos(jnp.arange(out.size, dtype=out.dtype)).reshape(out.shape)), out

    value_and_grad = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)
    # 8 sequences x 96 tokens: 768 circuits, six 128-row chunks of the single-device path.
    x_host = np.random.default_rng(3).normal(size=(8, 96, 10)).astype(np.float32)
    x = jax.device_put(x_host, NamedSharding(mesh, P("data")))
    p = jax.device_put(params, NamedSharding(mesh, P()))
    res = {}
    # The witness: the same forward without the mesh context (the old behaviour) gathers the rows.
    res["gathers_without_mesh"] = len(gathers(jax.jit(loss).lower(p, x).compile().as_text()))
    with jax.set_mesh(mesh):  # as qwt.training.mesh.under_mesh does
        compiled = jax.jit(value_and_grad).lower(p, x).compile()
        res["gathers"] = gathers(compiled.as_text())  # forward and backward: one program
        (_, out), g_sharded = compiled(p, x)
    res["out_spec"] = str(out.sharding.spec)
    (_, ref_out), ref_g = jax.jit(value_and_grad)(params, jnp.asarray(x_host))  # one device
    res["out_err"] = float(np.max(np.abs(np.asarray(out) - np.asarray(ref_out))))
    res["grad_rel_err"] = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(1e-30, float(np.max(np.abs(np.asarray(b))))))
        for a, b in zip(jax.tree.leaves(g_sharded), jax.tree.leaves(ref_g)))
    return res


def qtha_step(witness: bool = True) -> dict:
    """A whole QTHA training step of builtin:tiny on data=8: compiled HLO read for all-gathers.

    ``witness`` also compiles the step without the mesh context (it gathers; slow, so optional).
    """
    from qwt import data
    from qwt.training import JobSpec, TrainConfig
    from qwt.training.jobs import _split, build_adapted, load_base
    from qwt.training.loop import stack_micro_batches
    from qwt.training.optim import make_optimizer
    from qwt.training.step import lm_loss_fn, make_train_step, split_model
    from qwt import peft

    cfg = TrainConfig(steps=1, batch_size=8, lr=0.01, warmup_steps=0)
    spec = JobSpec(model="builtin:tiny", method="qtha", dataset="maths:ages", n_train=16, max_len=96,
                   eval_loss=False, train=cfg)
    model, tok = build_adapted(spec, base=load_base(spec.model, seed=0))
    arrays = data.encode_examples(_split(spec)[0], tok, spec.max_len, template=spec.template)
    mesh = qmesh.make_mesh(qmesh.parse_mesh("data=8"))
    graphdef, trainable, rest = split_model(model, peft.trainable(model))
    tx = make_optimizer(cfg)
    trainable = qmesh.place_replicated(trainable, mesh)
    opt = qmesh.place_replicated(tx.init(trainable), mesh)
    rest = qmesh.place_base(rest, mesh)
    batch = qmesh.place_batch(stack_micro_batches(data.Batches(arrays, 8, seed=0), 0, 1), mesh)
    step = make_train_step(graphdef, tx, lm_loss_fn)
    key = jax.random.key(0)
    with jax.set_mesh(mesh):
        hlo = step.lower(trainable, rest, opt, batch, key).compile().as_text()
    out = {"qtha_step_gathers": gathers(hlo)}
    if witness:
        out["qtha_step_gathers_without_mesh"] = len(gathers(step.lower(trainable, rest, opt, batch, key).compile().as_text()))
    return out


def main(argv):
    """``--quick`` (the test's choice, ~1 min): the layered QNN on data=4,fsdp=2 and the QTHA step
    without its witness; otherwise both simulators on both meshes and the step's witness."""
    quick = "--quick" in argv
    out = {}
    for simulator in ("layered",) if quick else ("layered", "statevector"):
        for mesh_text in ("data=4,fsdp=2",) if quick else ("data=8", "data=4,fsdp=2"):
            out[f"{simulator}/{mesh_text}"] = qnn_case(simulator, mesh_text)
    out.update(qtha_step(witness=not quick))
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
