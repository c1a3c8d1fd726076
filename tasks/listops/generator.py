"""ListOps expressions: the distribution of the Long Range Arena's generator, written here.

Follows ``generate_tree`` in google-research/long-range-arena, ``lra_benchmarks/data/listops.py`` (Tay et al.
2021, after Nangia & Bowman 2018). A node at depth ``d`` (the root has depth 1):

* is a digit 0-9 (uniform) with probability 3/4, and always when ``d = max_depth``;
* otherwise an operator: ``n`` arguments, ``n`` uniform in 2 ... ``max_args``, each a node at depth ``d + 1``,
  and the operator uniform among ``[MIN``, ``[MAX``, ``[MED`` and ``[SM``, written in prefix form::

      [MAX 2 9 [MIN 4 7 ] 0 ]          -> 9

A digit is one token; an operator node is its operator, its arguments' tokens and a closing ``]``. Values:
``[MIN`` and ``[MAX`` as named, ``[MED`` the median rounded down (``int(np.median(args))`` in LRA's code: the
mean of the two middle values, truncated, for an even count), ``[SM`` the sum modulo 10.

A sequence is one expression whose token count L lies in ``[min_length, max_length]``; expressions outside are
drawn again (LRA keeps 500 < L < 2000). LRA builds a fixed set of distinct expressions; this generator draws
fresh ones every batch, so the same expression may occur twice (likely only for short lengths).

Randomness: one :class:`random.Random` per batch, seeded by :func:`harness.seeding.derived_seed` from the run
seed, the stream and the step: the same batch on every machine, whatever was drawn before.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

DIGITS = tuple(str(d) for d in range(10))
OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
CLOSE = "]"
VOCAB = ("<pad>", *DIGITS, *OPERATORS, CLOSE)
"""Token ids: 0 padding, 1-10 the digits 0-9, 11-14 the operators, 15 the closing bracket."""
PAD_ID = 0
TOKEN_ID = {tok: i for i, tok in enumerate(VOCAB)}
P_OPERATOR = 0.25
"""LRA's ``VALUE_P``: a node above the depth limit is an operator with this probability."""
N_VALUES = 10


@dataclass(frozen=True)
class Limits:
    """The generator's settings: depth and argument limits, and the accepted token counts."""

    max_depth: int
    max_args: int
    min_length: int
    max_length: int


def apply(op: str, args: list[int]) -> int:
    """The value of operator ``op`` on ``args``."""
    if op == "[MIN":
        return min(args)
    if op == "[MAX":
        return max(args)
    if op == "[SM":
        return sum(args) % 10
    ordered = sorted(args)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) // 2


class _TooLong(Exception):
    pass


def _node(rng: random.Random, depth: int, limits: Limits, out: list[int]) -> int:
    """Append one node's token ids to ``out``; return its value. Stops (``_TooLong``) once ``out`` passes the
    length limit: the expression would be drawn again anyway."""
    if depth >= limits.max_depth or rng.random() >= P_OPERATOR:
        value = rng.randrange(N_VALUES)
        out.append(1 + value)
        return value
    n_args = rng.randint(2, limits.max_args)
    op = OPERATORS[rng.randrange(len(OPERATORS))]
    out.append(TOKEN_ID[op])
    args = [_node(rng, depth + 1, limits, out) for _ in range(n_args)]
    out.append(TOKEN_ID[CLOSE])
    if len(out) > limits.max_length:
        raise _TooLong
    return apply(op, args)


def expression(rng: random.Random, limits: Limits, max_tries: int = 1_000_000) -> tuple[list[int], int]:
    """One expression with ``min_length <= L <= max_length`` tokens: ``(token ids, value)``."""
    for _ in range(max_tries):
        out: list[int] = []
        try:
            value = _node(rng, 1, limits, out)
        except _TooLong:
            continue
        if limits.min_length <= len(out) <= limits.max_length:
            return out, value
    raise RuntimeError(f"no expression with {limits.min_length}-{limits.max_length} tokens in {max_tries} draws")


def decode(ids: list[int]) -> str:
    """Token ids -> the expression's text (padding left out)."""
    return " ".join(VOCAB[i] for i in ids if i != PAD_ID)
