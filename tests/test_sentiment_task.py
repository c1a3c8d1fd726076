"""sentiment task: vocabulary, encoding, splits, batches, loss/metrics/baseline, synthetic corpus, gate table."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cells.lstm import TorchLSTM
from harness.contract.cells import CellSpec
from harness.contract.errors import HarnessError
from harness.contract.tasks import resolve_task_options
from harness.plugins.model import Stacked, TaskModel, build_cell
from tasks import sentiment
from tasks.sentiment import synthetic
from tasks.sentiment.gates import gate_table
from tasks.sentiment.text import PAD_ID, UNK_ID, Vocabulary, encode, tokenize

SHARED_POLARITY = Path(__file__).resolve().parents[2] / "shared" / "data" / "rt-polarity"
needs_shared = pytest.mark.skipif(not (SHARED_POLARITY / "rt-polarity.pos").is_file(),
                                  reason=f"shared rt-polarity copy not at {SHARED_POLARITY}")


def csv_task(tmp_path, n=60, seed=0, seq_len=6, batch_size=8, **options) -> SentimentTask:
    """A CSV corpus where review i is the unique word 'w<i>' then 'good' or 'bad', label i % 2."""
    f = tmp_path / "reviews.csv"
    if not f.exists():
        rows = [f"w{i} {'good' if i % 2 else 'bad'},{i % 2}" for i in range(n)]
        f.write_text("text,label\n" + "\n".join(rows) + "\n")
    opts = {"source": "csv", "path": str(f), **options}
    return sentiment.SPEC.build(seq_len, batch_size, seed, opts)


def split_words(task: SentimentTask, split: str) -> set[str]:
    """The unique 'w<i>' words a split holds (recovered from the unknown-free train ids)."""
    ids = task.x[split]
    return {task.vocab.token(int(i)) for i in ids.flatten() if int(i) not in (PAD_ID, UNK_ID)} - {"good", "bad"}


# ---------------------------------------------------------------- text

def test_vocabulary_ranks_by_count_then_alphabet_and_caps_the_size():
    vocab = Vocabulary.build([["b", "a", "c", "a"], ["b", "d"]], max_size=5)
    assert vocab.tokens == ("<pad>", "<unk>", "a", "b", "c")
    assert vocab.ids(["a", "d", "c"]) == [2, UNK_ID, 4]
    with pytest.raises(ValueError, match="at least 2"):
        Vocabulary.build([], max_size=1)


def test_encode_pads_on_the_left_and_keeps_the_first_tokens():
    vocab = Vocabulary.build([["a", "b", "c", "d"]], max_size=10)
    x = encode([["a", "b"], ["a", "b", "c", "d"], []], vocab, seq_len=3)
    a, b, c = vocab.ids(["a", "b", "c"])
    assert x.dtype == torch.int64 and x.shape == (3, 3)            # (T, N)
    assert x[:, 0].tolist() == [PAD_ID, a, b]                      # last step = last real token
    assert x[:, 1].tolist() == [a, b, c]                           # truncated: first T tokens kept
    assert x[:, 2].tolist() == [PAD_ID] * 3


# -------------------------------------------------------- splits and vocabulary

def test_vocabulary_comes_from_the_training_split_only(tmp_path):
    task = csv_task(tmp_path)
    train_words = split_words(task, "train")
    assert len(train_words) == len(task.y["train"]) == 48
    assert set(task.vocab.tokens) == train_words | {"good", "bad", "<pad>", "<unk>"}
    # Every val/test review's unique word is unknown: it never occurred in training.
    for split in ("val", "test"):
        assert (task.x[split][-2] == UNK_ID).all()
        assert split_words(task, split) == set()


def test_splits_are_fixed_by_the_seed(tmp_path):
    a, b, c = csv_task(tmp_path, seed=0), csv_task(tmp_path, seed=0), csv_task(tmp_path, seed=1)
    for split in ("train", "val", "test"):
        assert torch.equal(a.x[split], b.x[split]) and torch.equal(a.y[split], b.y[split])
    assert a.vocab == b.vocab
    assert split_words(a, "train") != split_words(c, "train")
    assert (len(a.y["train"]), len(a.y["val"]), len(a.y["test"])) == (48, 6, 6)


def test_config_records_split_vocabulary_and_sequence_length(tmp_path):
    cfg = csv_task(tmp_path, vocab_size=20).config()
    assert cfg["split"] == {"train": 48, "val": 6, "test": 6, "seed": 0, "method": "random permutation by seed"}
    assert cfg["vocab_size"] == 20 and cfg["vocab_size_limit"] == 20 and cfg["seq_len"] == 6
    assert cfg["source"] == "csv: user-supplied file"


# ------------------------------------------------------------------- batches

def test_train_batches_are_deterministic_and_walk_each_epoch_once(tmp_path):
    a, b = csv_task(tmp_path, batch_size=8), csv_task(tmp_path, batch_size=8)
    first = a.train_batch(3)
    assert first.x.shape == (6, 8) and first.x.dtype == torch.int64
    assert first.y.shape == (8,) and first.y.dtype == torch.float32
    assert torch.equal(first.x, b.train_batch(3).x)                 # same (seed, step) -> same batch
    b.train_batch(11)                                               # order of calls does not matter
    assert torch.equal(a.train_batch(0).x, b.train_batch(0).x)
    # 48 training reviews, batch 8: 6 steps see every review once, the next epoch reshuffles.
    epoch0 = torch.cat([a.train_batch(s).x for s in range(6)], dim=1)
    assert sorted(map(tuple, epoch0.T.tolist())) == sorted(map(tuple, a.x["train"].T.tolist()))
    assert not torch.equal(a.train_batch(6).x, a.train_batch(0).x)


def test_eval_batches_cover_the_split_in_order(tmp_path):
    task = csv_task(tmp_path)
    batches = list(task.eval_batches("test"))
    assert torch.equal(torch.cat([bt.x for bt in batches], dim=1), task.x["test"])
    assert torch.equal(torch.cat([bt.y for bt in batches]), task.y["test"])


def test_batch_larger_than_the_training_split_is_a_clear_error(tmp_path):
    with pytest.raises(HarnessError, match="fewer than --batch-size"):
        csv_task(tmp_path, batch_size=64)


# ------------------------------------------------- loss, metrics, baseline, solved

def test_loss_is_bce_of_the_sigmoid_and_accuracy_thresholds_at_half(tmp_path):
    task = csv_task(tmp_path)
    logits = torch.tensor([2.0, -1.0, 0.5, -3.0])
    y = torch.tensor([1.0, 1.0, 0.0, 0.0])
    expected = F.binary_cross_entropy(torch.sigmoid(logits), y)
    assert task.loss(logits, y).item() == pytest.approx(expected.item(), rel=1e-6)
    assert task.metrics(logits, y)["accuracy"] == 0.5


def test_baseline_is_the_entropy_of_the_training_label_prior(tmp_path):
    assert sentiment.label_entropy(0.5) == pytest.approx(math.log(2))
    assert sentiment.label_entropy(0.25) == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    task = csv_task(tmp_path)
    p = task.y["train"].mean().item()
    assert task.baseline == pytest.approx(sentiment.label_entropy(p))
    # Predicting the prior's logit for every review scores exactly the baseline.
    logit = torch.full((len(task.y["train"]),), math.log(p / (1 - p)))
    assert task.loss(logit, task.y["train"]).item() == pytest.approx(task.baseline, rel=1e-5)


def test_solved_threshold_per_source_and_override(tmp_path):
    task = csv_task(tmp_path)
    assert task.solved({"accuracy": 0.8}) and not task.solved({"accuracy": 0.79})
    strict = csv_task(tmp_path, solved_at=0.95)
    assert not strict.solved({"accuracy": 0.9}) and "0.95" in strict.solved_rule
    assert sentiment.SOLVED_AT == {"synthetic": 0.9, "rt-polarity": 0.7, "imdb": 0.85, "csv": 0.8}


# ------------------------------------------------------------------- options

def _options(**given):
    """What the task sees: the harness checks and fills the declared options, then the task derives its sizes."""
    return sentiment.resolve_options(resolve_task_options(sentiment.OPTIONS, given))


def test_options_are_checked_and_embed_dim_follows_the_source():
    assert _options()["embed_dim"] == 32                       # synthetic
    assert _options(source="rt-polarity")["embed_dim"] == 128
    assert _options(source="imdb", embed_dim=7)["embed_dim"] == 7
    assert _options(source="rt-polarity")["vocab_size"] == 8000
    assert _options(vocab_size=50)["vocab_size"] == 50
    with pytest.raises(HarnessError, match="vocab_size must be 0"):
        _options(vocab_size=1)
    with pytest.raises(ValueError, match="embedding: unknown option"):
        _options(embedding=3)
    with pytest.raises(ValueError, match="choose one of"):
        _options(source="yelp")
    with pytest.raises(ValueError, match="expected an integer"):
        _options(vocab_size="many")


def test_missing_real_data_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    for source, message in (("rt-polarity", r"needs --task-opt path=DIR"), ("imdb", r"download=true"),
                            ("csv", r"path=FILE")):
        with pytest.raises(HarnessError, match=message):
            sentiment.SPEC.build(10, 4, 0, {"source": source})


# --------------------------------------------------------------- synthetic

def test_synthetic_corpus_is_deterministic_balanced_and_labelled_as_synthetic():
    a = synthetic.generate(400, seed=5)
    assert a == synthetic.generate(400, seed=5) and a != synthetic.generate(400, seed=6)
    labels = [label for _, label in a]
    assert 150 < sum(labels) < 250
    task = sentiment.SPEC.build(64, 16, 0, {"n_reviews": 300})
    assert task.config()["source"] == "synthetic (generated, not real reviews)"
    assert "synthetic (generated, not real reviews)" in sentiment.DESCRIPTION


def test_synthetic_label_needs_the_early_cue_not_single_words():
    reviews = synthetic.generate(3000, seed=0)
    # Negation words occur in both classes (filler has neutral negations), so they do not give the label away.
    counts = [sum(lab == c for _, lab in reviews) for c in (0, 1)]
    for word in ("not", "never", "hardly"):
        rates = [sum(word in tokenize(t) for t, lab in reviews if lab == c) / counts[c] for c in (0, 1)]
        assert min(rates) > 0.1 and max(rates) / min(rates) < 1.25, (word, rates)
    # The same sentiment word appears, negated, in reviews of the opposite label.
    amazing = {lab for t, lab in reviews if "amazing" in tokenize(t)[:8]}
    assert amazing == {0, 1}
    # Long-range: the cue sits early and most reviews go on well past it.
    lengths = [len(tokenize(t)) for t, _ in reviews]
    assert sum(n >= 30 for n in lengths) / len(lengths) > 0.5


def test_seed_example_is_in_the_synthetic_vocabulary():
    task = sentiment.SPEC.build(64, 16, 0, {})
    words = tokenize(sentiment.SEED_REVIEW)
    assert words[:3] == ["amazing", "movie", "!"]
    assert [w for w in words if w not in task.vocab] == []


@needs_shared
def test_rt_polarity_task_on_the_shared_copy():
    task = sentiment.SPEC.build(50, 64, 0, {"source": "rt-polarity", "path": str(SHARED_POLARITY),
                                            "vocab_size": 15000})
    cfg = task.config()
    assert cfg["split"]["train"] == 8530 and cfg["split"]["val"] == 1066 and cfg["split"]["test"] == 1066
    assert cfg["vocab_size"] == 15000 and "Pang & Lee" in cfg["source"]
    assert task.baseline == pytest.approx(math.log(2), abs=1e-3)
    assert cfg["truncated_fraction_train"] < 0.01


# ---------------------------------------------------------------- gate table

@pytest.mark.parametrize("stacked", [False, True])
def test_gate_table_rows_follow_the_real_tokens(stacked):
    torch.manual_seed(0)
    vocab = Vocabulary.build([tokenize(sentiment.SEED_REVIEW)], max_size=100)
    head = sentiment.SentimentHead(len(vocab), 5, 4, out_dropout=0.3)
    if stacked:   # the harness's wrapper around single-layer cells
        spec = CellSpec("one-layer-lstm", "test", TorchLSTM, state_names=("h", "c"), max_layers=1,
                        exposes_gates=True)
        cell = build_cell(spec, 5, 4, layers=2, dropout=0.5)
        assert isinstance(cell, Stacked)
    else:
        cell = TorchLSTM(5, 4, num_layers=2, dropout=0.5)
    model = TaskModel(head, cell).train()
    reviews = [("seeds' example", tokenize(sentiment.SEED_REVIEW), 1), ("short", ["amazing", "zzz"], 0)]
    T = 40
    table = gate_table(model, reviews, vocab, T, torch.device("cpu"))
    assert model.training                                              # mode restored
    assert list(table.columns[:8]) == ["review", "origin", "position", "token", "in_vocab", "label",
                                       "p_positive", "prediction"]
    assert list(table.columns[8:11]) == ["forget", "input", "output"] and "candidate" in table.columns
    n_seed = len(tokenize(sentiment.SEED_REVIEW))
    assert len(table) == n_seed + 2
    short = table[table.review == 1]
    assert short.token.tolist() == ["amazing", "zzz"] and short.in_vocab.tolist() == [True, False]
    # Values line up with the cell's own gates at the right (left-padded) time step, top layer.
    model.eval()
    with torch.no_grad():
        x = encode([r[1] for r in reviews], vocab, T)
        gates = model.cell.gate_activations(model.head.embed(x))
        logit = model(x)
    assert short.forget.iloc[-1] == pytest.approx(gates["forget"][-1, T - 1, 1].mean().item(), abs=1e-6)
    assert short.input.iloc[0] == pytest.approx(gates["input"][-1, T - 2, 1].mean().item(), abs=1e-6)
    assert short.prediction.iloc[0] == pytest.approx(torch.sigmoid(logit[1]).item(), abs=1e-6)
    assert short.p_positive.iloc[-1] == pytest.approx(short.prediction.iloc[0], abs=1e-6)


def test_imdb_task_keeps_the_official_test_split(tmp_path):
    for split, n in (("train", 20), ("test", 6)):
        for part in ("pos", "neg"):
            folder = tmp_path / "aclImdb" / split / part
            folder.mkdir(parents=True)
            for i in range(n):
                (folder / f"{i}_5.txt").write_text(f"{split} {part} {i} great<br />film")
    task = sentiment.SPEC.build(8, 4, 0, {"source": "imdb", "path": str(tmp_path), "val_fraction": 0.1})
    cfg = task.config()
    assert cfg["split"]["train"] == 36 and cfg["split"]["val"] == 4 and cfg["split"]["test"] == 12
    assert "official test split" in cfg["split"]["method"] and "Maas" in cfg["source"]
    assert task.y["test"].tolist() == [1.0] * 6 + [0.0] * 6            # official order: pos then neg
    assert "test" not in task.vocab and "train" in task.vocab           # test words never reach the vocabulary
