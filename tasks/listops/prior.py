"""The exact distribution of a ListOps expression's value, for the memoryless baseline.

A predictor that ignores the tokens can do no better than the class prior P(value = v) of the generator
(:mod:`tasks.listops.generator`) given that the length was accepted; its cross-entropy is the prior's entropy.
This module computes that prior exactly rather than by sampling.

Method: for a node at depth d, ``Q_d[v, l]`` = P(value v and l tokens). Leaves: value uniform, l = 1. An
operator node with n arguments draws them independently from ``Q_{d+1}``; its length is 2 plus theirs, so in
the length variable every distribution is a polynomial and sums of lengths are products. Each operator's value
is a function of how many arguments fall below, at or above a digit, which turns into sums of products of the
polynomials ``Lt_v`` (value < v), ``Eq_v`` (= v) and ``Gt_v`` (> v):

* MIN = v: all >= v, not all > v: ``Ge^n - Gt^n``; MAX likewise with <=;
* SM = v: the n-fold convolution over values mod 10 (a discrete Fourier transform over the 10 values);
* MED, n = 2m + 1: v when at most m arguments are < v and at most m are > v:
  ``sum_{a, b <= m} n! / (a! b! (n-a-b)!) Lt^a Gt^b Eq^(n-a-b)``;
* MED, n = 2m: the two middle values s_m <= s_{m+1} give floor((s_m + s_{m+1}) / 2). Both equal v: at most
  m - 1 arguments below v and at most m - 1 above. s_m = i < j = s_{m+1}: m arguments <= i with largest i, the
  other m >= j with smallest j: ``C(n, m) (Le_i^m - Lt_i^m) (Ge_j^m - Gt_j^m)``.

Polynomials are multiplied as FFTs over lengths. Lengths above ``max_length`` are dropped at every depth: a
subtree that long puts its whole expression over the limit, so the accepted expressions are unaffected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from tasks.listops.generator import Limits, N_VALUES, P_OPERATOR

N_OPERATORS = 4


@dataclass(frozen=True)
class Prior:
    """The value distribution of accepted expressions, and how often a draw is accepted."""

    probs: tuple[float, ...]
    """P(value = v), v = 0..9, given min_length <= L <= max_length."""
    acceptance: float
    """P(min_length <= L <= max_length) for one draw of the generator."""
    mean_length: float
    """E[L] of accepted expressions."""

    @property
    def entropy(self) -> float:
        """The prior's entropy in nats: the cross-entropy of the best input-blind predictor."""
        return -sum(p * math.log(p) for p in self.probs if p > 0)


@lru_cache(maxsize=32)
def prior(limits: Limits) -> Prior:
    """The exact :class:`Prior` of the generator with ``limits``."""
    L = limits.max_length
    size = 1 << int(math.ceil(math.log2(limits.max_args * L + 3)))      # no wrap-around in n-fold products
    shift = np.exp(-2j * np.pi * 2 * np.arange(size // 2 + 1) / size)  # multiplies by x^2: the operator and "]"
    q = np.zeros((N_VALUES, L + 1))
    q[:, 1] = 1.0 / N_VALUES                                            # depth max_depth: digits only
    for _ in range(limits.max_depth - 1):                               # depths max_depth - 1 ... 1
        ops = _operators(np.fft.rfft(q, size, axis=1), limits.max_args) * shift
        node = np.fft.irfft(ops, size, axis=1)[:, :L + 1] * P_OPERATOR
        node[:, 1] += (1.0 - P_OPERATOR) / N_VALUES
        q = np.clip(node, 0.0, None)                                    # FFT round-off around 0
    accepted = q[:, limits.min_length:L + 1]
    mass = accepted.sum()
    if mass <= 0:
        return Prior(tuple([0.0] * N_VALUES), 0.0, float("nan"))
    lengths = np.arange(limits.min_length, L + 1)
    return Prior(tuple(float(p) for p in accepted.sum(axis=1) / mass), float(mass),
                 float((accepted.sum(axis=0) * lengths).sum() / mass))


def _operators(f: np.ndarray, max_args: int) -> np.ndarray:
    """An operator node's (value, length) transform, without its own two tokens.

    :param f: ``(10, K)``: each argument's length transform per value.
    :returns: ``(10, K)``, averaged over n = 2..max_args and the four operators.
    """
    le = np.cumsum(f, axis=0)
    lt = le - f
    total = le[-1]
    ge, gt = total - lt, total - le
    half = max_args // 2
    pw = {"lt": _powers(lt, half), "gt": _powers(gt, half), "eq": _powers(f, max_args),
          "le": _powers(le, half), "ge": _powers(ge, half)}
    over_values = np.fft.fft(f, axis=0)                                 # for SM: the sum mod 10
    runs = {"le": le * le, "lt": lt * lt, "ge": ge * ge, "gt": gt * gt, "sm": over_values * over_values}
    out = np.zeros_like(f)
    for n in range(2, max_args + 1):
        out += runs["ge"] - runs["gt"]                                  # MIN = v: all >= v, not all > v
        out += runs["le"] - runs["lt"]                                  # MAX
        out += np.fft.ifft(runs["sm"], axis=0)                          # SM
        out += _median(pw, n)                                           # MED
        runs = {"le": runs["le"] * le, "lt": runs["lt"] * lt, "ge": runs["ge"] * ge, "gt": runs["gt"] * gt,
                "sm": runs["sm"] * over_values}
    return out / ((max_args - 1) * N_OPERATORS)


def _powers(a: np.ndarray, most: int) -> list[np.ndarray]:
    """``[a^0, a^1, ..., a^most]`` elementwise, by repeated multiplication."""
    out = [np.ones_like(a), a]
    for _ in range(most - 1):
        out.append(out[-1] * a)
    return out[:most + 1]


def _median(pw: dict[str, list[np.ndarray]], n: int) -> np.ndarray:
    m = n // 2
    most = m if n % 2 else m - 1                                        # arguments allowed on each side of v
    lt, gt, eq = pw["lt"], pw["gt"], pw["eq"]
    out = np.zeros_like(eq[1])
    for a in range(most + 1):
        for b in range(most + 1):
            ways = math.factorial(n) / (math.factorial(a) * math.factorial(b) * math.factorial(n - a - b))
            out += ways * lt[a] * gt[b] * eq[n - a - b]
    if n % 2 == 0:
        low = pw["le"][m] - lt[m]                                       # m arguments <= i, the largest = i
        high = pw["ge"][m] - gt[m]                                      # m arguments >= j, the smallest = j
        for i in range(N_VALUES):
            for j in range(i + 1, N_VALUES):
                out[(i + j) // 2] += math.comb(n, m) * low[i] * high[j]
    return out
