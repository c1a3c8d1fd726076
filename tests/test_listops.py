"""listops: the generator against an evaluator written independently here, its limits, its determinism, and the
exact value prior (the baseline) against brute-force enumeration and against sampled expressions."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections import Counter

import pytest
import torch

from harness.run.config import resolve_config
from harness.run.runner import make_task
from tasks.listops import generator as gen
from tasks.listops.generator import Limits
from tasks.listops.prior import prior

DEFAULT = Limits(max_depth=3, max_args=5, min_length=5, max_length=40)   # the task's defaults (T = 40)


# ------------------------------------------------------------------ an independent evaluator


def parse(tokens: list[str], at: int = 0, depth: int = 1) -> tuple[int, int, dict]:
    """Evaluate the expression starting at ``tokens[at]``: -> (value, next position, facts about the tree)."""
    tok = tokens[at]
    if tok.isdigit():
        return int(tok), at + 1, {"depth": depth, "args": []}
    assert tok in ("[MIN", "[MAX", "[MED", "[SM"), tok
    args, pos, facts = [], at + 1, {"depth": depth, "args": []}
    while tokens[pos] != "]":
        value, pos, sub = parse(tokens, pos, depth + 1)
        args.append(value)
        facts = {"depth": max(facts["depth"], sub["depth"]), "args": facts["args"] + sub["args"]}
    facts["args"].append(len(args))
    value = {"[MIN": min(args), "[MAX": max(args), "[SM": sum(args) % 10,
             "[MED": int(statistics.median(args))}[tok]              # LRA: int(np.median(args))
    return value, pos + 1, facts


def test_the_evaluator_on_hand_written_expressions():
    assert parse("[MAX 2 9 [MIN 4 7 ] 0 ]".split())[0] == 9
    assert parse("[MED 1 2 8 9 ]".split())[0] == 5          # (2 + 8) / 2
    assert parse("[MED 1 2 3 8 ]".split())[0] == 2          # (2 + 3) / 2 = 2.5, truncated
    assert parse("[SM 7 8 [MIN 3 5 ] ]".split())[0] == 8    # 18 mod 10
    assert all(gen.apply(op, [1, 2, 3, 8]) == parse(f"{op} 1 2 3 8 ]".split())[0] for op in gen.OPERATORS)


@pytest.mark.parametrize("limits", [DEFAULT, Limits(6, 4, 1, 200), Limits(2, 10, 1, 12)], ids=str)
def test_generated_expressions_are_valid_within_limits_and_have_the_stated_value(limits):
    rng = random.Random(5)
    seen_depth, seen_args = 0, set()
    for _ in range(1500):
        ids, value = gen.expression(rng, limits)
        tokens = gen.decode(ids).split()
        assert limits.min_length <= len(tokens) <= limits.max_length
        result, end, facts = parse(tokens)
        assert end == len(tokens) and result == value
        assert facts["depth"] <= limits.max_depth and all(2 <= n <= limits.max_args for n in facts["args"])
        seen_depth, seen_args = max(seen_depth, facts["depth"]), seen_args | set(facts["args"])
    assert seen_depth == limits.max_depth and seen_args == set(range(2, limits.max_args + 1))   # limits reached


def test_lra_lengths_keep_lra_limits():
    lra = Limits(max_depth=10, max_args=10, min_length=501, max_length=1999)
    rng = random.Random(0)
    for _ in range(8):
        ids, value = gen.expression(rng, lra)
        tokens = gen.decode(ids).split()
        result, end, facts = parse(tokens)
        assert 501 <= len(tokens) <= 1999 and end == len(tokens) and result == value
        assert facts["depth"] <= 10 and max(facts["args"]) <= 10


# ------------------------------------------------------------------ the task's batches


def build(seed: int = 0, **options):
    from tasks.listops import SPEC
    return make_task(SPEC, resolve_config(SPEC, ["lstm"], settings={"seed": seed, "batch_size": 16},
                                          task_options=options))


def test_batches_are_a_function_of_seed_and_step_and_left_padded():
    task, again = build(), build()
    one, two = task.train_batch(3), again.train_batch(3)
    assert torch.equal(one.x, two.x) and torch.equal(one.y, two.y)
    assert not torch.equal(task.train_batch(4).x, one.x) and not torch.equal(build(seed=1).train_batch(3).x, one.x)
    assert one.x.shape == (40, 16) and one.y.shape == (16,)
    for b in range(16):
        column = one.x[:, b].tolist()
        real = [t for t in column if t != gen.PAD_ID]
        assert column[len(column) - len(real):] == real            # all padding first, then the expression
        assert parse(gen.decode(real).split())[0] == int(one.y[b])
    val = torch.cat([b.x for b in task.eval_batches("val")], dim=1)
    test = torch.cat([b.x for b in task.eval_batches("test")], dim=1)
    assert val.shape == (40, 1000) and not torch.equal(val, test)
    assert torch.equal(val, torch.cat([b.x for b in again.eval_batches("val")], dim=1))


def test_the_head_one_hots_tokens_with_zero_padding():
    task = build()
    head = task.make_head(8)
    x = torch.tensor([[0, 1], [11, 15]])
    emb = head.embed(x)
    assert emb.shape == (2, 2, 15) and emb[0, 0].sum() == 0 and emb[0, 1, 0] == 1 and emb[1, 1, 14] == 1
    assert head.readout(torch.zeros(5, 2, 8)).shape == (1, 2, 10)


# ------------------------------------------------------------------ the prior and the baseline


def test_exact_prior_equals_brute_force_enumeration_at_depth_two():
    limits = Limits(max_depth=2, max_args=4, min_length=1, max_length=50)
    brute = [0.75 / 10] * 10                     # the root is a digit with probability 3/4
    for n in range(2, 5):
        for op in gen.OPERATORS:
            for args in itertools.product(range(10), repeat=n):
                brute[parse([op, *map(str, args), "]"])[0]] += 0.25 / 3 / 4 / 10 ** n
    exact = prior(limits)
    assert max(abs(a - b) for a, b in zip(exact.probs, brute)) < 1e-12
    assert exact.acceptance == pytest.approx(1.0)
    # only operator roots have 5 or more tokens: the prior of those alone
    ops_only = prior(Limits(2, 4, 5, 50))
    assert ops_only.acceptance == pytest.approx(0.25 * 2 / 3)    # n = 3 or 4 arguments: 5 or 6 tokens
    assert ops_only.mean_length == pytest.approx(5.5)


@pytest.mark.parametrize("limits", [DEFAULT, Limits(5, 4, 10, 60)], ids=str)
def test_prior_and_baseline_agree_with_sampled_expressions(limits):
    n = 20_000
    rng = random.Random(11)
    drawn = 0
    counts: Counter = Counter()
    lengths = []
    for _ in range(n):
        ids, value = gen.expression(rng, limits)
        counts[value] += 1
        lengths.append(len(ids))
    exact = prior(limits)
    for v in range(10):                          # each frequency within 4.5 standard errors of the exact prior
        p = exact.probs[v]
        assert abs(counts[v] / n - p) < 4.5 * math.sqrt(p * (1 - p) / n), v
    empirical_entropy = -sum(c / n * math.log(c / n) for c in counts.values())
    assert empirical_entropy == pytest.approx(exact.entropy, abs=0.01)
    assert sum(lengths) / n == pytest.approx(exact.mean_length, rel=0.03)
    # the acceptance rate: how many raw draws of the generator land in the length range
    rng = random.Random(3)
    for _ in range(20_000):
        out: list[int] = []
        try:
            gen._node(rng, 1, Limits(limits.max_depth, limits.max_args, 1, limits.max_length), out)
        except gen._TooLong:
            continue
        drawn += limits.min_length <= len(out) <= limits.max_length
    assert drawn / 20_000 == pytest.approx(exact.acceptance, abs=4.5 * math.sqrt(exact.acceptance / 20_000))


def test_task_baseline_is_the_prior_entropy_and_lra_skews_to_the_extremes():
    task = build()
    assert task.baseline == pytest.approx(prior(DEFAULT).entropy)
    assert task.baseline < math.log(10)                          # MIN and MAX favour 0 and 9
    probs = prior(Limits(8, 10, 100, 400)).probs                  # long expressions, as in LRA
    assert probs[0] > 0.12 and probs[9] > 0.12 and max(probs[1:9]) < 0.1


def test_the_prior_figures_docs_tasks_md_quotes():
    defaults = prior(DEFAULT)
    assert (round(defaults.entropy, 4), round(defaults.acceptance, 2), round(defaults.mean_length, 1)) == \
        (2.3009, 0.21, 10.3)
    lra = prior(Limits(max_depth=10, max_args=10, min_length=501, max_length=1999))    # a few seconds
    assert (round(lra.entropy, 4), round(lra.acceptance, 3), round(lra.mean_length)) == (2.2487, 0.083, 1035)
    assert round(lra.probs[0], 2) == round(lra.probs[9], 2) == 0.17
