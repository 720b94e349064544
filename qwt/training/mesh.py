"""Device meshes for fine-tuning: a ``data`` axis for the batch, an ``fsdp`` axis for the frozen base.

``qwt finetune --mesh data=2,fsdp=4`` (or ``train(..., mesh=make_mesh(parse_mesh("data=2,fsdp=4")))``)
places, before the first step:

* the frozen base parameters (``rest``): each array sharded along ``fsdp`` on its largest axis
  that ``fsdp`` divides (replicated when none does, e.g. a scalar or an odd-sized vector);
* the batch ``(grad_accum, batch, ...)``: its batch axis along ``data`` (so the per-token QNN
  batch of a QTHA layer, computed from the tokens, shards with them: each device simulates the
  circuits of its own tokens);
* adapters, optimizer state and the PRNG state: replicated (they are small: the point of PEFT).

The jitted step is unchanged: XLA's SPMD partitioner inserts the collectives (for FSDP, all-gathers
of whatever it chooses to move between the ``fsdp`` devices: on the built-in tiny model these are
activations, not whole weights, see benchmarks/results/bench_scaling.md; a mean over the data axis
for the loss and gradients). The mesh uses Auto
axes so the existing models need no sharding annotations; the step is traced under the mesh
(:func:`under_mesh`), where a ``QuantumLayer`` runs each ``data`` shard's rows on that shard
(``jax.shard_map``), so the per-token circuits stay with their tokens (no all-gather of circuit
inputs; tests/multidevice/qnn_sharding_checks.py reads the compiled programs for it).

The axis sizes must multiply to the number of devices (:func:`make_mesh`); bad meshes (unknown or
repeated axis, wrong device count, a ``data`` size that does not divide the batch) are refused
before anything is placed.

Checkpoints (:mod:`qwt.training.checkpoint`) are saved from the placed arrays (each process
writes its shards) and restored straight into the current mesh's placement, so a run resumes on
any mesh shape, or on one device.

Multi-host: call ``jax.distributed.initialize(...)`` in every process before anything else uses
JAX; ``jax.devices()`` then lists every host's devices and :func:`make_mesh` spans them all (the
README's "Multi-device and multi-host" section has a launcher for ``qwt finetune``). Every process
holds the same host values (the same seeded base, adapters and batches), so placing them is
cross-process safe: :func:`put` has each process transfer only the slices of its own devices
(``jax.make_array_from_callback``), nothing is sent between hosts.

Example:
    >>> spec = parse_mesh("data=1,fsdp=1")
    >>> spec
    MeshSpec(data=1, fsdp=1)
    >>> dict(make_mesh(spec).shape)
    {'data': 1, 'fsdp': 1}
"""

from __future__ import annotations

import dataclasses
import re

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

__all__ = ["MeshSpec", "parse_mesh", "make_mesh", "base_spec", "put", "place_base", "place_replicated",
           "place_batch", "place_eval_batch", "check_mesh", "check_batch_size", "under_mesh"]

AXES = ("data", "fsdp")


@dataclasses.dataclass(frozen=True)
class MeshSpec:
    """Sizes of the two mesh axes (their product is the number of devices used)."""

    data: int = 1
    fsdp: int = 1

    def __post_init__(self):
        for name in AXES:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"mesh axis {name} must be a positive int, got {v!r}")

    @property
    def size(self) -> int:
        return self.data * self.fsdp


def parse_mesh(text: str) -> MeshSpec:
    """``"data=2,fsdp=4"`` → ``MeshSpec(2, 4)``; an axis left out has size 1.

    Raises:
      ValueError: unknown axis, repeated axis, or a size that is not a positive integer.

    Example:
      >>> parse_mesh("fsdp=2")
      MeshSpec(data=1, fsdp=2)
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"--mesh must look like data=2,fsdp=4, got {text!r}")
    sizes = {}
    for part in text.split(","):
        m = re.fullmatch(r"\s*([a-z]+)\s*=\s*(\d+)\s*", part)
        if m is None:
            raise ValueError(f"--mesh entry {part!r} must be AXIS=SIZE (axes: {', '.join(AXES)})")
        name, size = m.group(1), int(m.group(2))
        if name not in AXES:
            raise ValueError(f"--mesh: unknown axis {name!r}; axes are {', '.join(AXES)}")
        if name in sizes:
            raise ValueError(f"--mesh: axis {name!r} given twice")
        sizes[name] = size
    return MeshSpec(**sizes)


def make_mesh(spec: MeshSpec, devices=None) -> Mesh:
    """The ``(data, fsdp)`` mesh over ``devices`` (default ``jax.devices()``: every host's devices).

    The axis sizes must multiply to the number of devices: a smaller mesh would leave devices idle
    (and, on several hosts, processes out of the computation). To use part of the devices on
    purpose, pass them: ``make_mesh(spec, jax.devices()[:spec.size])``.

    Raises:
      ValueError: more devices asked for than exist (named, with the XLA flag for CPU tests), or
        fewer than ``devices`` holds.

    Example:
      >>> import jax
      >>> try:
      ...     make_mesh(MeshSpec(1, 1), [jax.devices()[0]] * 2)
      ... except ValueError as e:
      ...     print(str(e)[:72])
      mesh data=1,fsdp=1 has 1 device but 2 are given; the product of the axis
    """
    if not isinstance(spec, MeshSpec):
        raise TypeError(f"make_mesh takes a MeshSpec, got {type(spec).__name__}")
    devices = list(jax.devices() if devices is None else devices)
    if spec.size > len(devices):
        raise ValueError(
            f"mesh data={spec.data},fsdp={spec.fsdp} needs {spec.size} devices, only {len(devices)} "
            f"{'is' if len(devices) == 1 else 'are'} available ({devices[0].platform}); on CPU, set "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={spec.size} before starting")
    if spec.size < len(devices):
        raise ValueError(
            f"mesh data={spec.data},fsdp={spec.fsdp} has {spec.size} device{'s' if spec.size > 1 else ''} but "
            f"{len(devices)} are given; the product of the axis sizes must equal the device count "
            f"(e.g. data={len(devices) // spec.fsdp if len(devices) % spec.fsdp == 0 else len(devices)},"
            f"fsdp={spec.fsdp if len(devices) % spec.fsdp == 0 else 1}), or pass devices=jax.devices()[:{spec.size}]")
    grid = np.asarray(devices, dtype=object).reshape(spec.data, spec.fsdp)
    return Mesh(grid, AXES, axis_types=(AxisType.Auto, AxisType.Auto))


def base_spec(shape, fsdp: int) -> P:
    """Partition spec of a frozen array: its largest axis divisible by ``fsdp`` on ``fsdp``.

    Example:
      >>> base_spec((64, 96), 4), base_spec((3,), 4)
      (P(None, 'fsdp'), P())
    """
    if fsdp == 1 or not shape:
        return P()
    best = max((i for i in range(len(shape)) if shape[i] % fsdp == 0), key=lambda i: (shape[i], -i), default=None)
    if best is None:
        return P()
    return P(*[("fsdp" if i == best else None) for i in range(len(shape))])


def put(x, sharding: NamedSharding) -> jax.Array:
    """``x`` (the same host value in every process) placed with ``sharding``, also across processes.

    ``jax.device_put`` when every device of ``sharding`` is this process's (one host: a direct
    device-to-device copy for a ``jax.Array``); otherwise each process builds its own shards from
    its copy (``jax.make_array_from_callback``), so nothing crosses hosts and no process needs the
    others' devices. An array already spread over several processes is resharded by JAX.

    Args:
      x: an array (numpy or ``jax.Array``), equal in every process.
      sharding: the target placement.

    Returns:
      The placed ``jax.Array``.

    Example:
      >>> m = make_mesh(MeshSpec())
      >>> put(np.arange(4.0), NamedSharding(m, P("data"))).tolist()
      [0.0, 1.0, 2.0, 3.0]
    """
    if sharding.is_fully_addressable or (isinstance(x, jax.Array) and not x.is_fully_addressable):
        return jax.device_put(x, sharding)
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def place_base(tree, mesh: Mesh):
    """Puts every array of the frozen base on the mesh by :func:`base_spec` (:func:`put`)."""
    fsdp = mesh.shape["fsdp"]
    return jax.tree.map(lambda x: put(x, NamedSharding(mesh, base_spec(np.shape(x), fsdp))), tree)


def place_replicated(tree, mesh: Mesh):
    """Puts every array (adapters, optimizer state) on every device of the mesh (:func:`put`)."""
    rep = NamedSharding(mesh, P())
    return jax.tree.map(lambda x: put(x, rep), tree)


def check_mesh(mesh) -> None:
    """Raises TypeError / ValueError unless ``mesh`` is a ``Mesh`` with exactly the axes ``data``, ``fsdp``.

    Example:
      >>> import jax
      >>> try:
      ...     check_mesh(jax.make_mesh((1,), ("sv",)))
      ... except ValueError as e:
      ...     print(e)
      the fine-tuning mesh must have the axes ('data', 'fsdp'), got ('sv',); build it with make_mesh(parse_mesh("data=2,fsdp=4"))
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh (from make_mesh), got {type(mesh).__name__}")
    if tuple(mesh.axis_names) != AXES:
        raise ValueError(f"the fine-tuning mesh must have the axes {AXES}, got {tuple(mesh.axis_names)}; "
                         'build it with make_mesh(parse_mesh("data=2,fsdp=4"))')


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """Raises ValueError when the ``data`` axis does not divide the batch (before any step), or
    the mesh is not a ``(data, fsdp)`` mesh (:func:`check_mesh`)."""
    check_mesh(mesh)
    if batch_size % mesh.shape["data"]:
        raise ValueError(f"batch_size {batch_size} does not split over the mesh's data axis of size "
                         f"{mesh.shape['data']}; use a multiple of {mesh.shape['data']}")


def place_batch(batch: dict, mesh: Mesh) -> dict:
    """Puts a stacked batch ``{name: (grad_accum, batch, ...)}`` on the mesh, batch axis on ``data``.

    Every process passes the whole batch (the same in all); each places its devices' rows
    (:func:`put`)."""
    out = {}
    for k, v in batch.items():
        if np.ndim(v) < 2:
            raise ValueError(f"batch entry {k!r} has shape {np.shape(v)}; expected (grad_accum, batch, ...)")
        check_batch_size(np.shape(v)[1], mesh)
        out[k] = put(v, NamedSharding(mesh, P(None, "data")))
    return out


def place_eval_batch(batch: dict, mesh: Mesh) -> dict:
    """Puts an evaluation batch ``{name: (batch, ...)}`` on the mesh: rows along ``data`` when it
    divides them, else replicated (a short last batch of a small eval set); values are unchanged.

    Example:
      >>> b = place_eval_batch({"ids": np.zeros((3, 5), np.int32)}, make_mesh(MeshSpec()))
      >>> b["ids"].shape
      (3, 5)
    """
    check_mesh(mesh)
    out = {}
    for k, v in batch.items():
        split = np.ndim(v) >= 1 and np.shape(v)[0] % mesh.shape["data"] == 0
        out[k] = put(v, NamedSharding(mesh, P("data") if split else P()))
    return out


def under_mesh(fn, mesh: Mesh):
    """``fn`` called (and so traced, when jitted) with ``mesh`` as the current mesh (``jax.set_mesh``).

    Inside, ``jax.sharding.get_abstract_mesh()`` names the ``data`` axis, which
    ``qwt.nn.QuantumLayer`` reads to run its circuits per data shard.

    Example:
      >>> m = make_mesh(MeshSpec())
      >>> under_mesh(lambda: dict(jax.sharding.get_abstract_mesh().shape), m)()
      {'data': 1, 'fsdp': 1}
    """

    def call(*args, **kwargs):
        with jax.set_mesh(mesh):
            return fn(*args, **kwargs)

    return call
