"""Circuit interchange (qwt.circuit.qasm, qwt.circuit.originir) against Qiskit's and pyqpanda3's parsers.

Oracles: Qiskit's OpenQASM 2 reader (``qiskit.qasm2.loads``) and native OpenQASM 3 reader
(``qiskit.qasm3.loads_experimental``; ``qiskit.qasm3.loads`` needs ``qiskit_qasm3_import``, not
installed) with ``qiskit.quantum_info.Statevector``/``Operator``; pyqpanda3's
``intermediate_compiler`` (OriginIR and OpenQASM readers and writer) with its ``CPUQVM``; Qiskit's
``random_circuit`` + ``qasm2.dumps`` as a source of programs written by someone else; NumPy matrix
products for exact (global-phase-sensitive) checks. Qiskit and pyqpanda3 number qubits little-endian
(qubit 0 least significant), qwt big-endian, so their vectors are compared with the qubit axes reversed.
"""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qwt
from qwt.circuit import gates, originir, qasm
from qwt.circuit.qasm import InterchangeError

qiskit = pytest.importorskip("qiskit")
from qiskit import qasm2, qasm3  # noqa: E402
from qiskit.quantum_info import Operator, Statevector  # noqa: E402

ALL_GATES = sorted(gates.GATES) + ["unitary"]


def _random_unitary(rng, dim):
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)) + 1j * rng.normal(size=(dim, dim)))
    return q * (np.diag(r) / abs(np.diag(r)))


def _random_circuit(n, seed, names=ALL_GATES, reps=2):
    """Every gate of ``names`` ``reps`` times, shuffled, on random wires with random angles."""
    rng = np.random.default_rng(seed)
    c = qwt.Circuit(n)
    for q in range(n):  # a generic start, so phases between branches matter
        c.ry(q, float(rng.uniform(0.2, 2.9)))
    for name in rng.permutation(list(names) * reps):
        if name == "unitary":
            c.unitary(_random_unitary(rng, 2), int(rng.integers(n)))
            continue
        s = gates.spec(name)
        wires = [int(w) for w in rng.choice(n, s.n_wires, replace=False)]
        getattr(c, name)(*wires, *[float(a) for a in rng.uniform(-math.pi, math.pi, s.n_params)])
    return c


def _reverse(vec, n):
    """A little-endian state vector in qwt's order (qubit 0 most significant)."""
    return np.asarray(vec).reshape([2] * n).transpose(list(range(n))[::-1]).reshape(-1)


def _qwt_state(c):
    return np.asarray(qwt.statevector.state(c), dtype=np.complex128)


def _fidelity(a, b):
    return abs(np.vdot(a, b)) / (np.linalg.norm(a) * np.linalg.norm(b))


def _unitary(c):
    """qwt's circuit as one NumPy matrix (float64), qubit 0 most significant."""
    n = c.n_qubits
    u = np.eye(2**n, dtype=np.complex128).reshape([2] * n + [2**n])
    for op in c.operations():
        k = len(op.wires)
        with jax.enable_x64(True):
            m = np.asarray(op.matrix(jnp.complex128)).reshape([2] * (2 * k))
        u = np.moveaxis(np.tensordot(m, u, axes=(list(range(k, 2 * k)), list(op.wires))), list(range(k)), op.wires)
    return u.reshape(2**n, 2**n)


def _qiskit2(text):
    return qasm2.loads(text, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)


def _qiskit3(text):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the native importer warns that it is experimental
        return qasm3.loads_experimental(text)


def _pq_state(prog):
    pq = pytest.importorskip("pyqpanda3.core")
    vm = pq.CPUQVM()
    vm.run(prog, 1)
    return np.asarray(vm.result().get_state_vector())


# --------------------------------------------------------------------------------- OpenQASM out
@pytest.mark.parametrize("seed", [0, 1])
def test_qasm2_round_trip_through_qiskit(seed):
    c = _random_circuit(4, seed)
    sv = Statevector(_qiskit2(c.to_qasm())).data
    assert _fidelity(_reverse(sv, 4), _qwt_state(c)) > 1 - 1e-5


@pytest.mark.parametrize("seed", [2])
def test_qasm3_round_trip_through_qiskit(seed):
    c = _random_circuit(4, seed)
    text = c.to_qasm(version=3)
    assert text.startswith('OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[4] q;\n')
    sv = Statevector(_qiskit3(text)).data
    assert _fidelity(_reverse(sv, 4), _qwt_state(c)) > 1 - 1e-5


@pytest.mark.parametrize("version", [2, 3])
def test_every_gate_is_written_exactly(version):
    """Each gate alone, on permuted wires: Qiskit's operator equals qwt's matrix including global phase
    (except where the module docstring says the phase is dropped: v3 sxdg, a one-qubit unitary)."""
    rng = np.random.default_rng(7)
    for name in ALL_GATES:
        c = qwt.Circuit(3)
        if name == "unitary":
            c.unitary(_random_unitary(rng, 2), 1)
        else:
            s = gates.spec(name)
            getattr(c, name)(*[2, 0, 1][: s.n_wires], *rng.uniform(-3, 3, s.n_params).tolist())
        text = c.to_qasm(version)
        got = (_qiskit2 if version == 2 else _qiskit3)(text)
        theirs = Operator(got).reverse_qargs().data
        mine = _unitary(c)
        if name == "unitary" or (version == 3 and name == "sxdg"):
            theirs = theirs * (np.vdot(theirs.ravel(), mine.ravel()) / abs(np.vdot(theirs.ravel(), mine.ravel())))
        np.testing.assert_allclose(theirs, mine, atol=1e-9, err_msg=f"{name}\n{text}")


def test_qasm_from_repeat_blocks_and_refusals():
    c = qwt.Circuit(2).repeat(lambda c, p: c.rx(0, p[0]).cnot(0, 1), jnp.array([[0.1], [0.2]]))
    assert c.to_qasm().count("rx(") == 2 and "rx(0.2" in c.to_qasm()
    with pytest.raises(InterchangeError, match="2-qubit unitary"):
        qwt.Circuit(2).unitary(np.eye(4), 0, 1).to_qasm()
    with pytest.raises(InterchangeError, match="concrete angles"):
        jax.jit(lambda t: len(qwt.Circuit(1).rx(0, t).to_qasm()))(0.3)
    with pytest.raises(ValueError, match="version"):
        qwt.Circuit(1).to_qasm(version=4)


def test_qasm_to_pyqpanda3():
    ic = pytest.importorskip("pyqpanda3.intermediate_compiler")
    c = _random_circuit(4, 3)
    prog = ic.convert_qasm_string_to_qprog(c.to_qasm())
    assert _fidelity(_reverse(_pq_state(prog), 4), _qwt_state(c)) > 1 - 1e-5


# ---------------------------------------------------------------------------------- OpenQASM in
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_qiskit_written_qasm_reads(seed):
    from qiskit.circuit.random import random_circuit

    qc = random_circuit(4, 8, max_operands=3, seed=seed)
    text = qasm2.dumps(qc)
    c = qwt.Circuit.from_qasm(text).circuit
    assert _fidelity(_reverse(Statevector(qc).data, 4), _qwt_state(c)) > 1 - 1e-5


def test_from_qasm_features_match_qiskit():
    """Custom gates with parameters (nested), two qregs, pi expressions, broadcasting, the qelib1
    gates qwt lacks (u1, cu1, cu3, u0, rccx, rc3x, c3x, c3sqrtx, c4x), measure and barrier."""
    text = """OPENQASM 2.0;
include "qelib1.inc";
// a comment
gate rot(a, b) x { u3(a/2, -b, pi^2/10) x; }
gate ent(t) x, y { rot(t, 2*t) x; cx x, y; cu1(-t + pi/3) y, x; }
qreg a[2];
qreg b[3];
creg m[2];
h a; ry(0.3) b;
ent(sqrt(2)*cos(pi/5)) a[1], b[0];
cu3(0.1, -0.2, ln(2)) b[2], a[0];
u0(1) a[0];
rccx a[0], b[1], b[2];
rc3x b[0], b[1], a[1], a[0];
c3x a[0], a[1], b[0], b[2];
c3sqrtx b[2], a[1], b[0], a[0];
barrier a[0], b;
c4x b[0], b[1], b[2], a[0], a[1];
rz(-exp(0.5) / 3) a;
cx a, b[1];
measure a -> m;
"""
    prog = qwt.Circuit.from_qasm(text)
    assert prog.qregs == (("a", 2), ("b", 3)) and prog.cregs == (("m", 2),)
    assert [(m.wire, m.creg, m.bit, m.line) for m in prog.measurements] == [(0, "m", 0, 21), (1, "m", 1, 21)]
    (bar,) = prog.barriers
    assert bar.wires == (0, 2, 3, 4) and bar.line == 17
    assert [op.name for op in prog.circuit.operations()][bar.position - 1] == "h"  # c3sqrtx ends with h
    sv = Statevector(_qiskit2(text).remove_final_measurements(inplace=False)).data
    assert _fidelity(_reverse(sv, 5), _qwt_state(prog.circuit)) > 1 - 1e-5


def test_imported_qelib1_gates_are_exact():
    """u1, cu1, cu3 (no qwt counterpart) become qwt gates equal to Qiskit's matrices, phase included."""
    text = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nu1(0.3) q[1];\ncu1(0.7) q[1],q[0];\ncu3(0.4,0.5,-0.6) q[0],q[1];\n'
    mine = _unitary(qwt.Circuit.from_qasm(text).circuit)
    np.testing.assert_allclose(Operator(_qiskit2(text)).reverse_qargs().data, mine, atol=1e-9)


@pytest.mark.parametrize("text,line,words", [
    ("qreg q[1];\nfoo q[0];", 2, ["unknown gate 'foo'"]),
    ("qreg q[1];\nh q[0];", 2, ["unknown gate 'h'", "qelib1.inc"]),
    ('include "qelib1.inc";\nqreg q[1];\ncreg c[1];\nif (c==1) x q[0];', 4, ["if"]),
    ('include "qelib1.inc";\nqreg q[1];\nrx(pi/*2) q[0];', 3, ["bad expression"]),
    ('include "qelib1.inc";\nqreg q[1];\nrx(1/0) q[0];', 3, ["bad expression", "division by zero"]),
    ('include "qelib1.inc";\nqreg q[1];\nrx(theta) q[0];', 3, ["bad expression", "'theta'"]),
    ('include "qelib1.inc";\nqreg q[1];\nrx(ln(-1)) q[0];', 3, ["bad expression"]),
    ('include "qelib1.inc";\nqreg q[2];\n\nrx(0.1, 0.2) q[0];', 4, ["'rx' takes 1 parameter(s), got 2"]),
    ('include "qelib1.inc";\nqreg q[2];\ncx q[0];', 3, ["'cx' acts on 2 qubit(s), got 1"]),
    ('include "qelib1.inc";\nqreg q[2];\ncx q[0], q[2];', 3, ["q[2] is out of range", "q[2]"]),
    ('include "qelib1.inc";\nqreg q[2];\ncx q[1], q[1];', 3, ["twice"]),
    ('include "qelib1.inc";\nqreg q[2];\nreset q[0];', 3, ["reset"]),
    ('qreg q[2];\nopaque g a;', 2, ["opaque"]),
    ('OPENQASM 3.0;\nqubit[2] q;', 1, ["OpenQASM 3.0 is not supported"]),
    ('include "qelib1.inc";\nqreg q[1];\ncreg c[1];\nmeasure q[0] -> c[0];\nh q[0];', 5, ["after it was measured"]),
    ('include "qelib1.inc";\nqreg q[1];\ngate g a {\n  h b;\n}', 4, ["'b' is not one of its qubits"]),
    ('include "qelib1.inc";\nqreg q[1];\ngate g(t) a {\n  rx(s) a;\n}', 4, ["unknown identifier 's'"]),
    ('include "other.inc";', 1, ["only \"qelib1.inc\""]),
    ('include "qelib1.inc";\nqreg q[1];\nh q[0] @', 3, ["unexpected character '@'"]),
])
def test_qasm_errors_name_line_and_problem(text, line, words):
    with pytest.raises(InterchangeError) as err:
        qwt.Circuit.from_qasm(text)
    assert err.value.line == line and str(err.value).startswith(f"line {line}:")
    for w in words:
        assert w in str(err.value), str(err.value)


def test_expression_evaluator_against_math():
    cases = {"-2^2": -4.0, "2^3^2": 512.0, "-pi/4 + 2*(1 - 3)": -math.pi / 4 - 4, "ln(exp(1.5))": 1.5,
             "sqrt(2)*cos(pi/4)": 1.0, "tan(0.3) - sin(0.3)/cos(0.3)": 0.0, "+1.5e-3*2": 3e-3, ".5": 0.5,
             "(((1)))": 1.0, "2/4/2": 0.25}
    for text, want in cases.items():
        assert qasm.evaluate(text) == pytest.approx(want, abs=1e-12), text
    for bad in ["1 +", "pi pi", "sqrt 2", "(1", "__import__('os')", "2**3"]:
        with pytest.raises(InterchangeError, match="bad expression|expected|unexpected"):
            qasm.evaluate(bad)


# ------------------------------------------------------------------------------------- OriginIR
@pytest.mark.parametrize("seed", [0, 1])
def test_originir_round_trip_through_pyqpanda3(seed):
    ic = pytest.importorskip("pyqpanda3.intermediate_compiler")
    c = _random_circuit(4, seed)
    prog = ic.convert_originir_string_to_qprog(c.to_originir())
    assert _fidelity(_reverse(_pq_state(prog), 4), _qwt_state(c)) > 1 - 1e-5
    back = qwt.Circuit.from_originir(c.to_originir()).circuit  # and back into qwt
    assert _fidelity(_qwt_state(back), _qwt_state(c)) > 1 - 1e-5


def _pq_random_prog(n, seed):
    """A random pyqpanda3 program of every gate its OriginIR writer knows, with DAGGER and CONTROL."""
    pq = pytest.importorskip("pyqpanda3.core")
    rng = np.random.default_rng(seed)
    makers = [
        (1, 0, [pq.H, pq.X, pq.Y, pq.Z, pq.S, pq.T, pq.I, pq.X1, pq.Y1, pq.Z1]),
        (1, 1, [pq.RX, pq.RY, pq.RZ, pq.P, pq.U1]), (1, 2, [pq.U2, pq.RPHI]), (1, 3, [pq.U3]), (1, 4, [pq.U4]),
        (2, 0, [pq.CNOT, pq.CZ, pq.SWAP, pq.ISWAP, pq.SQISWAP]), (2, 1, [pq.CP, pq.CR, pq.CRX, pq.CRY, pq.CRZ,
                                                                      pq.RXX, pq.RYY, pq.RZZ, pq.RZX]),
        (2, 4, [pq.CU]), (3, 0, [pq.TOFFOLI]),
    ]
    prog = pq.QProg()
    for q in range(n):
        prog << pq.RY(q, float(rng.uniform(0.2, 2.9)))
    for k, n_params, fns in makers:
        for fn in fns:
            for variant in ("plain", "dagger", "control"):
                wires = [int(w) for w in rng.choice(n, k + (variant == "control"), replace=False)]
                g = fn(*wires[:k], *rng.uniform(-3, 3, n_params).tolist())
                if variant == "dagger":
                    g = g.dagger()
                if variant == "control" and (k == 1 or fn in (pq.SWAP, pq.CNOT, pq.CZ)):
                    g = g.control(wires[k])
                prog << g
    prog << pq.Z(0).control([1, 2]) << pq.X(3).control([0, 2])
    return prog


@pytest.mark.parametrize("seed", [0, 1])
def test_pyqpanda3_written_originir_reads(seed):
    ic = pytest.importorskip("pyqpanda3.intermediate_compiler")
    prog = _pq_random_prog(4, seed)
    text = ic.convert_qprog_to_originir(prog)
    assert "DAGGER" in text and "CONTROL" in text
    c = qwt.Circuit.from_originir(text).circuit
    assert _fidelity(_reverse(_pq_state(prog), 4), _qwt_state(c)) > 1 - 1e-5


def test_originir_dagger_is_the_exact_inverse():
    """DAGGER of each gate's export times the gate is the identity up to a global phase (a top-level
    phase is dropped as unobservable; under CONTROL it is kept, see the pyqpanda3 round trip)."""
    rng = np.random.default_rng(3)
    for name in ALL_GATES:
        c = qwt.Circuit(3)
        if name == "unitary":
            c.unitary(_random_unitary(rng, 2), 2)
        else:
            s = gates.spec(name)
            getattr(c, name)(*[1, 2, 0][: s.n_wires], *rng.uniform(-3, 3, s.n_params).tolist())
        lines = c.to_originir().split("\n")
        text = "\n".join(lines[:2] + ["DAGGER"] + lines[2:] + ["ENDDAGGER"])
        inv = _unitary(qwt.Circuit.from_originir(text).circuit)
        prod = inv @ _unitary(c)
        np.testing.assert_allclose(prod / prod[0, 0], np.eye(8), atol=1e-9, err_msg=name)
        np.testing.assert_allclose(abs(prod[0, 0]), 1.0, atol=1e-9, err_msg=name)


def test_originir_records_measure_and_barrier():
    prog = qwt.Circuit.from_originir("QINIT 3\nCREG 2\nH q[0]\nBARRIER q[2],q[0]\nCNOT q[0],q[1]\n"
                                     "MEASURE q[1],c[0]\nMEASURE q[0],c[1]")
    assert [(m.wire, m.bit, m.line) for m in prog.measurements] == [(1, 0, 6), (0, 1, 7)]
    assert [(b.wires, b.position, b.line) for b in prog.barriers] == [((0, 2), 1, 4)]


@pytest.mark.parametrize("text,line,words", [
    ("QINIT 2\nCREG 0\nFOO q[0]", 3, ["unknown gate 'FOO'"]),
    ("QINIT 2\nCREG 0\nH q[2]", 3, ["q[2] is out of range"]),
    ("QINIT 2\nCREG 0\nRX q[0],(PI/*2)", 3, ["bad expression"]),
    ("QINIT 2\nCREG 0\nRX q[0]", 3, ["RX takes 1 qubit(s) and 1 angle(s), got 1 and 0"]),
    ("QINIT 2\nCREG 0\nCNOT q[0],q[0]", 3, ["twice"]),
    ("QINIT 2\nCREG 1\nQIF c[0]\nX q[0]\nENDIF", 3, ["QIF"]),
    ("QINIT 2\nCREG 0\nRESET q[0]", 3, ["RESET"]),
    ("QINIT 3\nCREG 0\nCONTROL q[0],q[1]\nRX q[2],(0.1)\nENDCONTROL", 5, ["2 control(s) over 'rx'"]),
    ("QINIT 2\nCREG 0\nDAGGER\nH q[0]", 4, ["DAGGER block opened on line 3 is never closed"]),
    ("QINIT 2\nCREG 0\nENDCONTROL", 3, ["without a matching"]),
    ("QINIT 2\nCREG 1\nMEASURE q[0],c[0]\nH q[0]", 4, ["after it was measured"]),
])
def test_originir_errors_name_line_and_problem(text, line, words):
    with pytest.raises(InterchangeError) as err:
        qwt.Circuit.from_originir(text)
    assert err.value.line == line, str(err.value)
    for w in words:
        assert w in str(err.value), str(err.value)
