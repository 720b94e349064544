"""The QTHA batch workload of ``bench_statevector.py`` in Origin Quantum's pyvqnet (its own Python).

pyvqnet's PyPI wheel depends on CUDA libraries (cuBLAS, NCCL: ~1 GB) and pins its own stack, so it
lives in a separate environment; ``bench_statevector.py --pyvqnet-python PATH`` runs this script
with that interpreter, in the same run as the other peers, passing the workload's arrays in an
``.npz`` file so both sides use identical data. Set one up with::

    python -m venv /tmp/vqnet && /tmp/vqnet/bin/pip install pyvqnet

The circuit is the one of ``bench_statevector._qwt_fns("qtha", ...)``: RY(x) encoding, then per
layer RY all, CRZ ring up, RY all, CRZ ring down; loss = Σ_b Σ_i w_i ⟨Z_i⟩_b with ``MeasureAll``
over the weighted Z observable, gradient by pyvqnet's autograd (``backward``) w.r.t. the layer
angles and the inputs. pyvqnet runs eagerly (no compile step): ``compile_s`` reports its first
call (forward + backward), ``step_s`` the minimum of the following calls.

Usage (normally via bench_statevector.py):
    /tmp/vqnet/bin/python benchmarks/peer_pyvqnet.py DATA.npz REPEATS
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def _rings(n):
    up = [(i, (i + 1) % n) for i in range(n - 1, -1, -1)]
    down = [(i, (i - 1) % n) for i in [n - 1, *range(n - 1)]]
    return up, down


def main(path: str, repeats: int) -> dict:
    import pyvqnet
    from pyvqnet.qnn.vqc import MeasureAll, QMachine, crz, ry
    from pyvqnet.tensor import QTensor

    data = np.load(path)
    theta_np, xs_np, w = data["theta"], data["xs"], data["w"]
    L, _, n = theta_np.shape
    B = xs_np.shape[0]
    up, down = _rings(n)
    qm = QMachine(n, dtype=pyvqnet.kcomplex64)
    meas = MeasureAll(obs={f"Z{q}": float(w[q]) for q in range(n)})

    def step():
        theta = QTensor(theta_np, requires_grad=True)
        xs = QTensor(xs_np, requires_grad=True)
        qm.reset_states(B)
        for q in range(n):
            ry(q_machine=qm, wires=q, params=xs[:, [q]])
        for i in range(L):
            for q in range(n):
                ry(q_machine=qm, wires=q, params=theta[i, 0, q].reshape([1]))
            for k, (a, b) in enumerate(up):
                crz(q_machine=qm, wires=[a, b], params=theta[i, 1, k].reshape([1]))
            for q in range(n):
                ry(q_machine=qm, wires=q, params=theta[i, 2, q].reshape([1]))
            for k, (a, b) in enumerate(down):
                crz(q_machine=qm, wires=[a, b], params=theta[i, 3, k].reshape([1]))
        loss = meas(q_machine=qm).sum()
        loss.backward()
        return float(loss.to_numpy()), theta.grad.to_numpy(), xs.grad.to_numpy()

    t0 = time.perf_counter()
    value, g_theta, g_x = step()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {"compile_s": first, "step_s": min(times), "value": value, "version": pyvqnet.__version__,
            "grad_norm": float(np.sqrt(np.sum(g_theta**2) + np.sum(g_x**2)))}


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(sys.argv[1], int(sys.argv[2]))))
