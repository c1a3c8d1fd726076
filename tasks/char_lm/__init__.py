"""``char-lm``: character-level language modelling, scored in bits per character (BPC). See ``docs/tasks.md``.

Model::

    symbols (T, B) -> one-hot (T, B, V) or embedding (T, B, E) -> cell (T, B, H) -> linear (T, B, V) logits

The loss is the mean cross-entropy per predicted symbol in nats; BPC is that
divided by ln 2. The task carries its state (``Task.carries_state``): the
training split is read as B contiguous streams in consecutive windows of T
symbols (truncated BPTT, ``streams.py``), the cell's final state passed,
detached, from one window to the next; validation and test are each read as
one pass with the state carried from zeros at the split's start.

Data (``--task-opt source=...``, else inferred from ``path``): ``ptb-char``
(Mikolov's files), ``text8`` and ``enwik8`` (the official zip or the bare
file, first 90M / next 5M / last 5M) or ``text`` (any UTF-8 file or folder,
split contiguously by fractions). The vocabulary is the training split's
symbols (characters; bytes for enwik8) plus ``<unk>`` (id 0) for the rest.

Memoryless baseline: the unigram entropy of the training split (nats), the
cross-entropy of predicting every symbol from the training frequencies alone.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from harness import Batch, HarnessError, Task, TaskConfig, TaskHead, TaskOption, TaskSpec, hookimpl
from tasks.char_lm import data
from tasks.char_lm.streams import EvalStreams, IGNORE, TrainStreams
from tasks.char_lm.vocab import UNK, UNK_ID, Vocabulary, bits, unigram_entropy

AUTO = "auto"
# Solved: test BPC at most this. PTB-char and text8: about 5% above the LSTM of Cooijmans et al. (2016), Tables 2
# and 3 (1.38 and 1.43 BPC); other data: half the unigram baseline's BPC (SOLVED_FRACTION).
SOLVED_BPC = {"ptb-char": 1.45, "text8": 1.50}
SOLVED_FRACTION = 0.5
SOURCE_LABELS = {
    "ptb-char": "ptb-char: Penn Treebank, character level (Mikolov et al. 2012 split)",
    "text8": "text8: first 10^8 characters of cleaned English Wikipedia (Mahoney 2006)",
    "enwik8": "enwik8: first 10^8 bytes of English Wikipedia XML (Hutter Prize; Mahoney 2006)",
    "text": "text: user-supplied UTF-8 text",
}

OPTIONS = (
    TaskOption("source", str, AUTO, "data: auto (what path holds), ptb-char, text8, enwik8 or text",
               choices=(AUTO, *data.SOURCES)),
    TaskOption("path", str, "", "ptb-char: folder with ptb.char.{train,valid,test}.txt; text8/enwik8: the official "
               "zip, the bare file or a folder holding one; text: a UTF-8 file or a folder of them. Must exist"),
    TaskOption("download", bool, False, "text8/enwik8: download and verify the official zip into "
               "$HARNESS_CACHE/char-lm (default ~/.cache/rnn-harness/char-lm) when no local copy is found"),
    TaskOption("files", str, "*", "text, a folder: which top-level files to read (a glob; hidden, README, LICENSE "
               "and COPYING files are never read)"),
    TaskOption("val_fraction", float, 0.1, "text: share of the characters held out for validation (after train)",
               minimum=0.0001, maximum=0.5),
    TaskOption("test_fraction", float, 0.1, "text: share held out for test (the end of the text)",
               minimum=0.0001, maximum=0.5),
    TaskOption("embed_dim", int, 0, "input encoding: 0 one-hot over the vocabulary, else a learned embedding of "
               "this size", minimum=0, maximum=16384),
    TaskOption("eval_streams", int, 16, "streams a held-out split is cut into for evaluation (fewer when the "
               "split has fewer than that many windows of --seq-len)", minimum=1, maximum=65536),
    TaskOption("eval_size", int, 0, "evaluate only the first N symbols of validation and test (0: the whole "
               "splits; for quick checks)", minimum=0, maximum=10**10),
    TaskOption("solved_bpc", float, 0.0, "test BPC at or below which the task counts as solved (0: 1.45 for "
               "ptb-char, 1.50 for text8, half the unigram baseline's BPC otherwise)", minimum=0.0, maximum=64.0),
)


def resolve_source(source: str, path: str) -> tuple[str, str]:
    """``(source, how it was chosen)``. A given path must exist; ``auto`` needs one (there is no built-in text)."""
    if path:
        data.require_path(path)
    if source != AUTO:
        return source, "--task-opt source"
    if not path:
        raise HarnessError(f"char-lm needs data: pass --task-opt path=FILE_OR_DIR (a UTF-8 text file or folder, "
                           f"PTB-char files, text8 or enwik8), or name it with --task-opt {data.CHOICES}")
    return data.infer_source(path), "inferred from what path holds"


class CharHead(TaskHead):
    """One-hot (or embedding) in, a linear layer over the vocabulary out at every step."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embed_dim) if embed_dim else None
        self.input_size = embed_dim or vocab_size
        self.out = nn.Linear(hidden_size, vocab_size)

    def embed(self, x: Tensor) -> Tensor:
        """x: (T, B) symbol ids -> (T, B, V) one-hot or (T, B, E) embeddings."""
        if self.embedding is None:
            return F.one_hot(x, self.vocab_size).to(self.out.weight.dtype)
        return self.embedding(x)

    def readout(self, h: Tensor) -> Tensor:
        """h: (T, B, H) -> (T, B, V) logits of the next symbol at every step."""
        return self.out(h)


class CharLMTask(Task):
    name = "char-lm"
    carries_state = True
    loss_unit = "cross-entropy per symbol (nats; BPC = nats / ln 2)"

    def __init__(self, cfg: TaskConfig):
        opts = dict(cfg.options)
        opts["source"], opts["source_chosen"] = resolve_source(opts["source"], opts["path"])
        self.opts, self.source = opts, opts["source"]
        self.seq_len, self.batch_size, self.seed = cfg.seq_len, cfg.batch_size, cfg.seed
        corpus = data.load(self.source, opts)
        self.unit, self.described = corpus.unit, corpus.described
        self.accuracy_name = f"next-{corpus.unit} accuracy"
        self.vocab = Vocabulary.build(corpus.train)
        ids = {split: self.vocab.encode(getattr(corpus, split)) for split in ("train", "val", "test")}
        if opts["eval_size"]:
            ids["val"], ids["test"] = ids["val"][:opts["eval_size"]], ids["test"][:opts["eval_size"]]
        self.sizes = {split: len(v) for split, v in ids.items()}
        self.unknown_rate = {split: float((ids[split] == UNK_ID).float().mean()) for split in ("val", "test")}
        self.train_streams = TrainStreams(ids["train"], self.batch_size, self.seq_len)
        self.eval_streams = {split: EvalStreams(ids[split], opts["eval_streams"], self.seq_len,
                                                "validation" if split == "val" else "test")
                             for split in ("val", "test")}
        self.baseline = unigram_entropy(self.vocab.counts)
        self.solved_bpc = opts["solved_bpc"] or SOLVED_BPC.get(self.source, SOLVED_FRACTION * bits(self.baseline))
        self.solved_rule = f"test BPC <= {self.solved_bpc:.3g}"

    def make_head(self, hidden_size: int) -> CharHead:
        return CharHead(len(self.vocab), self.opts["embed_dim"], hidden_size)

    def train_batch(self, step: int) -> Batch:
        """Window ``step`` of the B training streams: x (T, B) int64 ids, y (T, B) the symbols that follow."""
        return Batch(*self.train_streams.window(step))

    def eval_batches(self, split: str):
        """The whole split as consecutive windows of its streams, in order (the runner carries the state)."""
        for x, y in self.eval_streams[split].windows():
            yield Batch(x, y)

    # ---------------------------------------------------------------- measures

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """Mean cross-entropy in nats of ``pred (T, B, V)`` logits against ``y (T, B)``; padding is not counted."""
        return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), y.reshape(-1), ignore_index=IGNORE)

    def memory_loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """The loss of the window's last prediction only. The whole loss would add every step's own readout term
        to ||dL/dh_t||, flattening the curve; the last prediction's shows how far back its gradient reaches."""
        return self.loss(pred[-1:], y[-1:])

    def n_predicted(self, y: Tensor) -> int:
        return int((y != IGNORE).sum())

    def metrics(self, pred: Tensor, y: Tensor) -> dict[str, float]:
        """``accuracy``: the most likely next symbol is right; ``bpc``: the loss in bits."""
        real = y != IGNORE
        correct = (pred.argmax(-1) == y) & real
        return {"accuracy": float(correct.sum()) / max(1, int(real.sum())),
                "bpc": bits(self.loss(pred, y).item())}

    def solved(self, test_metrics: Mapping[str, float]) -> bool:
        return bits(test_metrics["loss"]) <= self.solved_bpc

    def findings(self, run: Mapping[str, Any]) -> list[str]:
        """The test loss of every finished cell in bits per symbol, beside the baseline's."""
        summary = run.get("summary")
        if summary is None or not len(summary):
            return []
        unit = "BPC" if self.unit == "character" else "bits per byte"
        lines = [f"In bits ({unit} = nats / ln 2): the unigram baseline (the training split's {self.unit} entropy) "
                 f"is {bits(self.baseline):.3f} {unit}."]
        for row in summary.itertuples(index=False):
            if row.status == "ok" and math.isfinite(row.eval_loss):
                lines.append(f"{row.cell}: test {bits(row.eval_loss):.3f} {unit} against the baseline's "
                             f"{bits(self.baseline):.3f} ({row.eval_loss / self.baseline:.3f} x); "
                             f"{'solved' if bits(row.eval_loss) <= self.solved_bpc else 'not solved'} "
                             f"({self.solved_rule}).")
        return lines

    def config(self) -> dict[str, Any]:
        val, test = self.eval_streams["val"], self.eval_streams["test"]
        return {
            "source": SOURCE_LABELS[self.source],
            "source_chosen": self.opts["source_chosen"],
            "path": self.opts["path"],
            **self.described,
            "unit": self.unit,
            "split_symbols": self.sizes,
            "vocab_size": len(self.vocab),
            "vocabulary_from": "training split only",
            "unknown": f"id {UNK_ID} ({UNK}) for symbols the training split lacks",
            "unknown_rate": self.unknown_rate,
            "input": f"embedding of size {self.opts['embed_dim']}" if self.opts["embed_dim"] else "one-hot",
            "baseline_nats": self.baseline,
            "baseline_bits": bits(self.baseline),
            "train_streams": self.batch_size,
            "train_stream_part": self.train_streams.part,
            "steps_per_pass": self.train_streams.steps_per_pass,
            "state": "carried from window to window, detached (truncated BPTT), never reset; streams read on "
                     "circularly; evaluation carries it from zeros at each split's start",
            "eval_streams": {"val": val.streams, "test": test.streams},
            "eval_windows": {"val": len(val), "test": len(test)},
            "eval_size": self.opts["eval_size"] or "whole splits",
            "solved_bpc": self.solved_bpc,
        }


DESCRIPTION = ("character-level language modelling in bits per character: PTB-char, text8, enwik8 or your own "
               "UTF-8 text (--task-opt path=...); truncated BPTT with the state carried across windows")

# Published settings (--preset NAME). Each picks its corpus; say where it is with --task-opt path=... (or
# download=true for text8). Sources, and where the harness departs from them: docs/tasks.md (char-lm, Presets).
PRESETS = {
    # Cooijmans et al. 2016, "Recurrent Batch Normalization" (ICLR 2017), Section 5.3 and Table 2: LSTM with 1000
    # units, length-100 sequences, batch 64, Adam lr 0.002, clipping 1.0; 1.38 test BPC. 50 epochs (their
    # experiments/penntreebank_lstm.sh) of about 5.0M characters at 6,400 per step: about 39,000 steps.
    "ptb-char": {"seq_len": 100, "batch_size": 64, "hidden_size": 1000, "optimizer": "adam", "lr": 2e-3,
                 "clip": 1.0, "steps": 39000, "task_options": {"source": "ptb-char"}},
    # The same paper, Section 5.4 and Table 3: LSTM with 2000 units, length 180, batch 128, Adam lr 0.001,
    # clipping 1.0; 1.43 test BPC. 50 epochs of 90M characters (experiments/text8_lstm.sh): about 195,000 steps.
    "text8": {"seq_len": 180, "batch_size": 128, "hidden_size": 2000, "optimizer": "adam", "lr": 1e-3,
              "clip": 1.0, "steps": 195000, "task_options": {"source": "text8"}},
}

SPEC = TaskSpec(
    name="char-lm",
    description=DESCRIPTION,
    factory=CharLMTask,
    options=OPTIONS,
    # Sized to decide on a 2-core CPU in about 3 minutes (docs/tasks.md, measured); one thread, as every run.
    defaults={"seq_len": 100, "batch_size": 32, "hidden_size": 128, "steps": 600, "lr": 2e-3},
    presets=PRESETS,
)


@hookimpl
def register_tasks(register):
    register(SPEC)
