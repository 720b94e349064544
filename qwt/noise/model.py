"""A noise model: channels attached after gates by gate name (and optionally wires), plus readout.

Immutable: every ``add*`` returns a new :class:`NoiseModel`. A rule fires after each gate whose
name is in its set (and, when ``wires`` is given, whose wires equal it exactly). A 1-wire channel
on a k-wire gate acts on each of the gate's wires; a k-wire channel acts on the gate's wires in
order; any other pairing is refused when the rule is added. Several matching rules all fire, in
the order added.

Example:
    >>> import qwt
    >>> from qwt.noise import NoiseModel, channels
    >>> m = NoiseModel().add("cnot", channels.depolarizing(0.01, 2)).add_all_single(channels.bit_flip(0.02))
    >>> c = qwt.Circuit(2).h(0).cnot(0, 1)
    >>> [x.name if kind == "gate" else f"{x[0].name}@{x[1]}" for kind, x in m.schedule(c)]
    ['h', 'bit_flip(0.02)@(0,)', 'cnot', 'depolarizing2(0.01)@(0, 1)']
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

from qwt.circuit import Circuit, gates
from qwt.noise.channels import Channel, ReadoutError

__all__ = ["Rule", "NoiseModel"]


@dataclasses.dataclass(frozen=True)
class Rule:
    """``channel`` after every gate named in ``gates`` (on exactly ``wires`` when given)."""

    gates: frozenset[str]
    channel: Channel
    wires: tuple[int, ...] | None = None


def _names_with(n_wires: int) -> frozenset[str]:
    return frozenset(n for n, s in gates.GATES.items() if s.n_wires == n_wires)


@dataclasses.dataclass(frozen=True)
class NoiseModel:
    """Rules and an optional readout error. Build with :meth:`add`, :meth:`add_all_single`, ...

    Attributes:
      rules: the after-gate rules, in order.
      readout: the classical readout confusion (applied to probabilities / samples), or None.
    """

    rules: tuple[Rule, ...] = ()
    readout: ReadoutError | None = None

    def add(self, gate, channel: Channel, wires=None) -> "NoiseModel":
        """A new model with ``channel`` after every ``gate`` (a name, or a list of names).

        Raises:
          ValueError: unknown gate name, or a channel whose width fits neither 1 nor the gate's.
          TypeError: ``channel`` is not a :class:`Channel`.
        """
        if not isinstance(channel, Channel):
            raise TypeError(f"NoiseModel.add: expected a qwt.noise Channel, got {type(channel).__name__}")
        names = frozenset([gate] if isinstance(gate, str) else gate)
        if not names:
            raise ValueError("NoiseModel.add: give at least one gate name")
        for n in names:
            k = gates.spec(n).n_wires  # ValueError for unknown names
            if channel.n_wires not in (1, k):
                raise ValueError(f"NoiseModel.add: channel {channel.name!r} acts on {channel.n_wires} wires; "
                                 f"gate {n!r} has {k} (use a 1-wire or a {k}-wire channel)")
        if wires is not None:
            wires = tuple(int(w) for w in wires)
            if any(gates.spec(n).n_wires != len(wires) for n in names):
                raise ValueError(f"NoiseModel.add: wires {wires} do not match the width of {sorted(names)}")
        return dataclasses.replace(self, rules=self.rules + (Rule(names, channel, wires),))

    def add_all_single(self, channel: Channel) -> "NoiseModel":
        """``channel`` (1 wire) after every one-qubit gate."""
        return self.add(_names_with(1), channel)

    def add_all_two(self, channel: Channel) -> "NoiseModel":
        """``channel`` (1 or 2 wires) after every two-qubit gate."""
        return self.add(_names_with(2), channel)

    def with_readout(self, error: ReadoutError) -> "NoiseModel":
        """A new model with this readout error on every measured qubit."""
        if not isinstance(error, ReadoutError):
            raise TypeError(f"with_readout: expected a ReadoutError, got {type(error).__name__}")
        return dataclasses.replace(self, readout=error)

    def channels_after(self, name: str, wires: tuple[int, ...]) -> Iterator[tuple[Channel, tuple[int, ...]]]:
        """``(channel, wires)`` applied after gate ``name`` on ``wires``."""
        for r in self.rules:
            if name in r.gates and (r.wires is None or r.wires == tuple(wires)):
                if r.channel.n_wires == len(wires):
                    yield r.channel, tuple(wires)
                else:
                    for w in wires:
                        yield r.channel, (w,)

    def schedule(self, circuit: Circuit):
        """``("gate", Operation)`` and ``("channel", (Channel, wires))`` in execution order."""
        if not isinstance(circuit, Circuit):
            raise TypeError(f"expected a qwt.Circuit, got {type(circuit).__name__}")
        out = []
        for op in circuit.operations():
            out.append(("gate", op))
            out.extend(("channel", cw) for cw in self.channels_after(op.name, op.wires))
        return out
