"""char-lm: vocabulary, stream batching, the unigram baseline, BPC, the task's measures, gradient flow and the CLI."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from harness.contract.errors import HarnessError
from harness.measurements.gradflow import state_gradient_norms
from harness.plugins.model import TaskModel, build_cell
from tasks.char_lm import CharLMTask, SPEC
from tasks.char_lm.streams import EvalStreams, IGNORE, TrainStreams
from tasks.char_lm.vocab import UNK_ID, Vocabulary, bits, unigram_entropy

SHARED_POLARITY = Path(__file__).resolve().parents[2] / "shared" / "data" / "rt-polarity"


def write_text(tmp_path: Path, text: str, name: str = "corpus.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def build(path: Path, seq_len: int = 4, batch_size: int = 3, **options) -> CharLMTask:
    return SPEC.build(seq_len, batch_size, 0, {"path": str(path), **options})


# ------------------------------------------------------------------ vocabulary

def test_the_vocabulary_comes_from_the_training_split_only_and_unseen_symbols_read_as_unk():
    vocab = Vocabulary.build("abca")
    assert len(vocab) == 4 and [vocab.symbol(i) for i in range(4)] == ["<unk>", "a", "b", "c"]
    assert vocab.encode("cabz").tolist() == [3, 1, 2, UNK_ID]
    assert vocab.encode("€").tolist() == [UNK_ID]           # beyond every training code point
    assert vocab.counts.tolist() == [2, 1, 1]


def test_a_byte_vocabulary_counts_bytes_not_characters():
    vocab = Vocabulary.build("ü!".encode())                   # 0xc3 0xbc 0x21
    assert vocab.unit == "byte" and len(vocab) == 4
    assert [vocab.symbol(i) for i in range(1, 4)] == ["0x21", "0xbc", "0xc3"]


def test_the_task_builds_its_vocabulary_from_train_and_reports_unknowns(tmp_path):
    # 80 / 10 / 10 characters: 'z' and the final newline appear only in the test split
    text = "abcab" * 16 + "cabca" * 2 + "zabab" + "abab\n"
    task = build(write_text(tmp_path, text), seq_len=2, batch_size=2)
    assert len(task.vocab) == 4 and task.unknown_rate["val"] == 0.0
    assert task.unknown_rate["test"] == pytest.approx(2 / 10)
    assert task.config()["vocab_size"] == 4 and "training split only" in task.config()["vocabulary_from"]


# --------------------------------------------------------------------- baseline

def test_the_baseline_is_the_unigram_entropy_of_the_training_split_by_hand(tmp_path):
    assert unigram_entropy(np.array([2, 1, 1])) == pytest.approx(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)))
    text = "aaab" * 20 + "zzzz" * 4 + "zzz\n"                  # train = first 80 chars: a 3/4, b 1/4
    task = build(write_text(tmp_path, text), seq_len=2, batch_size=2, val_fraction=0.1, test_fraction=0.1)
    assert task.baseline == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert task.config()["baseline_bits"] == pytest.approx(task.baseline / math.log(2))


def test_bpc_is_nats_over_ln2_and_the_loss_ignores_padding(tmp_path):
    assert bits(math.log(2)) == pytest.approx(1.0) and bits(1.0) == pytest.approx(1.4426950408889634)
    task = build(write_text(tmp_path, "abcd" * 30), seq_len=2, batch_size=2)
    pred = torch.randn(3, 2, len(task.vocab))
    y = torch.tensor([[1, 2], [3, IGNORE], [0, 1]])
    real = y != IGNORE
    by_hand = -torch.log_softmax(pred, -1)[real].gather(-1, y[real][:, None]).mean()
    assert task.loss(pred, y).item() == pytest.approx(by_hand.item(), rel=1e-6)
    metrics = task.metrics(pred, y)
    assert metrics["bpc"] == pytest.approx(by_hand.item() / math.log(2), rel=1e-6)
    assert metrics["accuracy"] == pytest.approx(float((pred.argmax(-1) == y)[real].float().mean()))
    assert task.n_predicted(y) == 5
    assert task.solved({"loss": task.solved_bpc * math.log(2)}) and not task.solved({"loss": task.solved_bpc})


# ---------------------------------------------------------------------- streams

def test_training_streams_are_contiguous_consecutive_and_targets_are_the_inputs_shifted_by_one():
    ids = torch.arange(41, dtype=torch.int16)                  # 40 pairs, 3 streams of 13
    streams = TrainStreams(ids, batch_size=3, seq_len=4)
    x0, y0 = streams.window(0)
    x1, _ = streams.window(1)
    assert x0.shape == (4, 3) and x0.dtype == torch.int64
    assert x0[:, 1].tolist() == [13, 14, 15, 16] and x1[:, 1].tolist() == [17, 18, 19, 20]   # stream 1 goes on
    assert torch.equal(y0, x0 + 1)                              # the next symbol
    assert torch.equal(x1[0], x0[-1] + 1)                        # window 1 starts where window 0 stopped
    # After its part, a stream reads on into the text that follows; the last one wraps to the corpus's start.
    x3, y3 = streams.window(3)                                   # pairs 12..15 of stream 0
    assert x3[:, 0].tolist() == [12, 13, 14, 15]
    x10, y10 = streams.window(10)                                # stream 2: pairs 26 + 40..43 -> 26..29 mod 40
    assert x10[:, 2].tolist() == [(26 + 40 + i) % 40 for i in range(4)] and torch.equal(y10, x10 + 1)


def test_training_needs_batch_times_seq_len_symbols():
    with pytest.raises(HarnessError, match=r"fewer than --batch-size 4 x --seq-len 5"):
        TrainStreams(torch.arange(20), batch_size=4, seq_len=5)


def test_evaluation_predicts_every_pair_of_a_split_exactly_once_in_order():
    ids = torch.arange(24, dtype=torch.int16)                  # 23 pairs over 3 streams: 8, 8, 7
    streams = EvalStreams(ids, streams=3, seq_len=3, split="validation")
    windows = list(streams.windows())
    assert [w[0].shape for w in windows] == [(3, 3), (3, 3), (2, 3)] and len(streams) == 3
    x = torch.cat([w[0] for w in windows])
    y = torch.cat([w[1] for w in windows])
    real = y != IGNORE
    assert int(real.sum()) == 23 and sorted(x[real].tolist()) == list(range(23))
    assert torch.equal(y[real], x[real] + 1)
    assert x[:, 2].tolist()[:7] == list(range(16, 23)) and y[7, 2] == IGNORE   # the short stream's one pad step


def test_evaluation_uses_fewer_streams_when_the_split_is_short_and_refuses_t_longer_than_it():
    assert EvalStreams(torch.arange(11), streams=16, seq_len=4, split="validation").streams == 2
    with pytest.raises(HarnessError, match=r"--seq-len 12 is longer than the validation split \(10 predicted"):
        EvalStreams(torch.arange(11), streams=16, seq_len=12, split="validation")


def test_a_full_task_evaluates_every_character_of_a_split(tmp_path):
    task = build(write_text(tmp_path, "the cat sat on the mat. " * 20), seq_len=5, batch_size=2)
    for split in ("val", "test"):
        n = sum(int((b.y != IGNORE).sum()) for b in task.eval_batches(split))
        assert n == task.sizes[split] - 1


def test_eval_size_keeps_the_first_symbols_of_each_held_out_split(tmp_path):
    task = build(write_text(tmp_path, "abcdefgh" * 39 + "abcdefg\n"), seq_len=3, batch_size=2, eval_size=10)
    assert task.sizes["val"] == task.sizes["test"] == 10 and task.sizes["train"] == 256


# ------------------------------------------------------------------- gradient flow

def test_gradient_flow_runs_on_the_first_validation_window_from_zeros(tmp_path, registry):
    task = build(write_text(tmp_path, "to be or not to be " * 30), seq_len=6, batch_size=2)
    spec = registry.cell("lstm")
    head = task.make_head(8)
    model = TaskModel(head, build_cell(spec, head.input_size, 8))
    batch = next(iter(task.eval_batches("val")))
    norms = state_gradient_norms(model, spec, task, batch, 1, 8)
    assert set(norms) == {"h", "c"} and norms["h"].shape == (6,)
    assert np.all(norms["h"] > 0) and np.isfinite(norms["h"]).all()


# ------------------------------------------------------------------------ the CLI

def test_a_tiny_run_end_to_end(tmp_path, cli):
    corpus = write_text(tmp_path, "a stitch in time saves nine. " * 40)
    code, out, err = cli("run", "--cells", "lstm,rnn", "--task", "char-lm", "--task-opt", f"path={corpus}",
                         "--steps", "6", "--seq-len", "8", "--batch-size", "4", "--hidden-size", "8",
                         "--out", tmp_path / "r", "--no-progress", "--no-plots")
    assert code == 0, err
    summary = pd.read_csv(tmp_path / "r" / "summary.csv")
    assert list(summary["status"]) == ["ok", "ok"]
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["task_config"]["source_chosen"] == "inferred from what path holds"
    assert config["threads"] == 1 and config["baseline"] == pytest.approx(config["task_config"]["baseline_nats"])
    metrics = pd.read_csv(tmp_path / "r" / "metrics.csv")
    test = metrics[metrics["metric"].isin(["test_loss", "test_bpc"])].pivot(index="cell", columns="metric",
                                                                             values="value")
    assert np.allclose(test["test_bpc"], test["test_loss"] / math.log(2))
    baseline_bits = config["baseline"] / math.log(2)
    assert f"unigram baseline (the training split's character entropy) is {baseline_bits:.3f} BPC" in out
    lstm_bpc = summary.set_index("cell").loc["lstm", "eval_loss"] / math.log(2)
    assert f"lstm: test {lstm_bpc:.3f} BPC against the baseline's {baseline_bits:.3f}" in out


@pytest.mark.parametrize("options, message", [
    (["path=MISSING"], r"--task-opt path=.*absent: no such file or folder"),
    (["path=EMPTY"], r"the file is empty"),
    (["path=NOTEXT"], r"no text files in this folder"),
    (["source=ptb-char", "path=NOTEXT"], r"holds no ptb\.char\.train\.txt"),
    (["path=ZIP"], r"text8\.zip is corrupt or incomplete: 7 bytes, expected 31,344,016"),
    ([], r"char-lm needs data: pass --task-opt path=FILE_OR_DIR"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, cli, options, message):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "README.md").write_text("no data here")
    (tmp_path / "text8.zip").write_bytes(b"PK\x03\x04abc")
    where = {"MISSING": tmp_path / "absent", "EMPTY": tmp_path / "empty.txt", "NOTEXT": tmp_path / "docs",
             "ZIP": tmp_path / "text8.zip"}
    args = []
    for option in options:
        name, value = option.split("=")
        args += ["--task-opt", f"{name}={where.get(value, value)}"]
    code, out, err = cli("run", "--cells", "lstm", "--task", "char-lm", *args, "--out", tmp_path / "r",
                         "--no-progress", "--no-plots")
    assert code == 2 and not (tmp_path / "r").exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness run: error:"), err
    assert re.search(message, lines[0]), lines[0]


def test_seq_len_longer_than_the_validation_split_is_one_line_and_exit_2(tmp_path, cli):
    corpus = write_text(tmp_path, "abcdefghij" * 10)            # validation: 10 characters
    code, out, err = cli("run", "--cells", "lstm", "--task", "char-lm", "--task-opt", f"path={corpus}",
                         "--seq-len", "20", "--batch-size", "2", "--no-progress", "--no-plots", "--out", tmp_path / "r")
    assert code == 2
    assert err.strip().splitlines() == [
        "harness run: error: --seq-len 20 is longer than the validation split (9 predicted symbols); lower "
        "--seq-len, or give that split more text"]


@pytest.mark.skipif(not (SHARED_POLARITY / "rt-polarity.pos").is_file(), reason="no shared rt-polarity copy")
def test_the_shared_rt_polarity_folder_builds_the_default_task():
    task = SPEC.build(100, 32, 0, {"path": str(SHARED_POLARITY)})
    assert task.source == "text" and task.accuracy_name == "next-character accuracy"
    assert 60 < len(task.vocab) < 120 and 4.0 < bits(task.baseline) < 4.6
    assert task.eval_streams["val"].streams == 16 and task.solved_bpc == pytest.approx(bits(task.baseline) / 2)
