"""``sentiment``: binary movie-review sentiment with the seeds' SentimentRNN. See ``docs/sentiment.md``.

Model (the seeds' 2-layer SentimentRNN with the cell under test in place of
``nn.LSTM``)::

    tokens (T, B) -> embedding (T, B, E) -> cell, L layers, dropout between (T, B, H)
                  -> dropout -> linear -> sigmoid at the last step (B,)

The head returns the *logit*; the loss is binary cross-entropy computed with
``binary_cross_entropy_with_logits`` (the same value as BCE after a sigmoid,
without its overflow). Accuracy thresholds the logit at 0 (probability 0.5).

Data (``--task-opt source=...``): ``synthetic`` (generated, not real
reviews), ``rt-polarity`` (Pang & Lee 2005), ``imdb`` (Maas et al. 2011) or
``csv`` (your own file). The default, ``auto``, is synthetic without a
``path`` and otherwise whatever the path holds (:func:`data.infer_source`); a
path that does not exist always stops the run. Sequences are left-padded or
truncated to ``--seq-len``; the vocabulary comes from the training split only.

Memoryless baseline: the loss of predicting the training label prior ``p``
for every review, ``-(p ln p + (1 - p) ln(1 - p))`` (``ln 2`` when balanced).
Solved: test accuracy >= 0.9 (synthetic), 0.7 (rt-polarity), 0.85 (imdb),
0.8 (csv), or ``--task-opt solved_at=X``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import Batch, Task, TaskConfig, TaskHead, TaskOption, TaskSpec, hookimpl
from harness.contract import seeding
from harness.contract.errors import HarnessError
from tasks.sentiment import data, synthetic
from tasks.sentiment.gates import gate_table
from tasks.sentiment.text import PAD_ID, UNK_ID, Vocabulary, encode, tokenize

SOURCES = ("synthetic", "rt-polarity", "imdb", "csv")
AUTO = "auto"
"""The declared default of ``source``: told apart from ``source=synthetic`` given on purpose."""
SOLVED_AT = {"synthetic": 0.9, "rt-polarity": 0.7, "imdb": 0.85, "csv": 0.8}
# What embed_dim=0 and vocab_size=0 mean for each source (tuned: docs/sentiment.md).
EMBED_DIM = {"synthetic": 32, "rt-polarity": 128, "imdb": 128, "csv": 128}
VOCAB_SIZE = {"synthetic": 20000, "rt-polarity": 8000, "imdb": 20000, "csv": 20000}
SYNTHETIC = "synthetic (generated, not real reviews)"
SOURCE_LABELS = {
    "synthetic": SYNTHETIC,
    "rt-polarity": "rt-polarity: sentence polarity dataset v1.0, Pang & Lee (ACL 2005), CC BY 4.0",
    "imdb": "imdb: Large Movie Review Dataset v1.0, Maas et al. (ACL 2011)",
    "csv": "csv: user-supplied file",
}
CORPUS_STREAM = 11   # seeding stream for the synthetic corpus
EVAL_BATCH = 500     # sequences per held-out batch (the first val batch is also the gradient-flow batch)

# The seeds' example review (shared/seeds): always inspected in gates.csv.
SEED_REVIEW = ("Amazing movie! Movie was full of new surprises, audience had to hold back till the last "
               "minute to watch it. There was hardly any boring moment.")

OPTIONS = (
    TaskOption("source", str, AUTO, "data: auto (default: what path holds, synthetic without a path), synthetic "
               "(generated), rt-polarity, imdb or csv", choices=(AUTO, *SOURCES)),
    TaskOption("path", str, "", "rt-polarity: folder with rt-polarity.pos/.neg; imdb: folder holding aclImdb/ "
               "or the .tar.gz archive; csv: the file. Must exist"),
    TaskOption("download", bool, False, "imdb: download and verify the official archive into $HARNESS_CACHE "
               "(default ~/.cache/rnn-harness) when no local copy is found"),
    TaskOption("embed_dim", int, 0, "embedding size E (0: 32 for synthetic, 128 for real reviews)",
               minimum=0, maximum=16384),
    TaskOption("vocab_size", int, 0, "most frequent training tokens kept, <pad> and <unk> included "
               "(0: 8000 for rt-polarity, 20000 otherwise)", minimum=0, maximum=10_000_000),
    TaskOption("out_dropout", float, 0.3, "dropout before the linear readout (the seeds use 0.3)",
               minimum=0.0, maximum=0.99),
    TaskOption("val_fraction", float, 0.1, "share of the data held out for validation (imdb: of its train split)",
               minimum=0.001, maximum=0.5),
    TaskOption("test_fraction", float, 0.1, "share held out for test (imdb uses its official test split)",
               minimum=0.001, maximum=0.5),
    TaskOption("n_reviews", int, 10000, "synthetic: reviews generated", minimum=10, maximum=10_000_000),
    TaskOption("p_closing", float, 0.25, "synthetic: share of reviews with a late sentence agreeing with the label",
               minimum=0.0, maximum=1.0),
    TaskOption("text_column", str, "text", "csv: name of the text column"),
    TaskOption("label_column", str, "label", "csv: name of the label column (0/1, neg/pos, negative/positive)"),
    TaskOption("delimiter", str, "", "csv: field delimiter (default: tab for .tsv, comma otherwise; 'tab' for a tab)"),
    TaskOption("inspect", int, 3, "test reviews in gates.csv besides the seeds' example", minimum=0, maximum=1000),
    TaskOption("solved_at", float, 0.0, "test accuracy that counts as solved (0: the source's default)",
               minimum=0.0, maximum=1.0),
)


def resolve_source(source: str, path: str) -> tuple[str, str]:
    """``(source, how it was chosen)``: ``auto`` becomes what ``path`` holds (synthetic without a path). A path
    that does not exist stops the run whatever the source; synthetic data takes no path."""
    if path:
        data.require_path(path)
    if source == "synthetic" and path:
        raise HarnessError(f"source=synthetic generates its reviews and reads no path; drop --task-opt path={path} "
                           f"or name the data with --task-opt {data.CHOICES}")
    if source != AUTO:
        return source, "--task-opt source"
    if not path:
        return "synthetic", "default (no path given)"
    return data.infer_source(path), "inferred from what path holds"


def resolve_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The checked options (every one filled in by the harness from :data:`OPTIONS`) with ``source=auto``
    resolved (:func:`resolve_source`) and ``embed_dim=0`` and ``vocab_size=0`` replaced by the source's sizes
    (:data:`EMBED_DIM`, :data:`VOCAB_SIZE`)."""
    resolved = dict(options)
    resolved["source"], resolved["source_chosen"] = resolve_source(resolved["source"], resolved["path"])
    if resolved["embed_dim"] == 0:
        resolved["embed_dim"] = EMBED_DIM[resolved["source"]]
    if resolved["vocab_size"] == 0:
        resolved["vocab_size"] = VOCAB_SIZE[resolved["source"]]
    if resolved["vocab_size"] < 2:
        raise HarnessError("--task-opt vocab_size must be 0 (the source's default) or at least 2")
    return resolved


class SentimentHead(TaskHead):
    """Embedding in, dropout + linear out: the seeds' SentimentRNN around the cell.

    ``readout`` returns the logit of "positive" at the last step; the sigmoid that ends the
    seeds' model is folded into the loss (BCE with logits) and applied in :meth:`probability`.
    """

    def __init__(self, vocab_size: int, embed_dim: int, hidden_size: int, out_dropout: float):
        super().__init__()
        self.input_size = embed_dim
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.drop = nn.Dropout(out_dropout)
        self.fc = nn.Linear(hidden_size, 1)

    def embed(self, x: Tensor) -> Tensor:
        """x: (T, B) token ids -> (T, B, E)."""
        return self.embedding(x)

    def step_logits(self, h: Tensor) -> Tensor:
        """h: (T, B, H) -> (T, B): the logit the readout would give if the review ended at each step."""
        return self.fc(self.drop(h)).squeeze(-1)

    def readout(self, h: Tensor) -> Tensor:
        """h: (T, B, H) -> (B,) logit at the last step (left padding puts the last real token there)."""
        return self.step_logits(h[-1:])[0]

    @staticmethod
    def probability(logit: Tensor) -> Tensor:
        """The seeds' sigmoid output: P(positive)."""
        return torch.sigmoid(logit)


def label_entropy(p: float) -> float:
    """Binary entropy in nats: the BCE of always predicting probability ``p``."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


class SentimentTask(Task):
    name = "sentiment"
    accuracy_name = "test accuracy (positive vs negative)"
    loss_unit = "binary cross-entropy (nats)"

    def __init__(self, cfg: TaskConfig):
        opts = resolve_options(cfg.options)
        self.opts = opts
        self.source = opts["source"]
        self.seq_len = cfg.seq_len
        self.batch_size = cfg.batch_size
        self.seed = cfg.seed
        self.solved_at = opts["solved_at"] or SOLVED_AT[self.source]
        self.solved_rule = f"test accuracy >= {self.solved_at:g} ({self.source})"

        splits, self.split_method = self._load(opts, cfg.seed)
        tokens = {name: [tokenize(text) for text, _ in examples] for name, examples in splits.items()}
        self.vocab = Vocabulary.build(tokens["train"], opts["vocab_size"])
        self.x = {name: encode(toks, self.vocab, self.seq_len) for name, toks in tokens.items()}      # (T, N)
        self.y = {name: torch.tensor([lab for _, lab in ex], dtype=torch.float32) for name, ex in splits.items()}
        self._stats = self._describe(tokens)
        self.test_reviews = [(f"test[{i}]", tokens["test"][i], int(self.y["test"][i]))
                             for i in range(min(opts["inspect"], len(tokens["test"])))]

        n_train = len(self.y["train"])
        if n_train < self.batch_size:
            raise HarnessError(f"the training split has {n_train} reviews, fewer than --batch-size "
                               f"{self.batch_size}; lower --batch-size or add data")
        self.prior = float(self.y["train"].mean())
        self.baseline = label_entropy(self.prior)
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    # ------------------------------------------------------------------ data

    def _load(self, opts: dict[str, Any], seed: int) -> tuple[dict[str, list[data.Example]], str]:
        source = opts["source"]
        if source == "imdb":
            train, test = data.load_imdb(data.find_imdb(opts["path"], opts["download"]))
            tr, va, _ = data.split_indices(len(train), opts["val_fraction"], 0.0, seed)
            return ({"train": [train[i] for i in tr], "val": [train[i] for i in va], "test": test},
                    "official test split; val drawn from the official train split by seed")
        if source == "synthetic":
            pool = synthetic.generate(opts["n_reviews"], seeding.derived_seed(seed, CORPUS_STREAM),
                                      opts["p_closing"])
        elif source == "rt-polarity":
            if not opts["path"] and not (data.cache_dir() / "rt-polarity").is_dir():
                raise HarnessError("source=rt-polarity needs --task-opt path=DIR, the folder holding "
                                   f"rt-polarity.pos and rt-polarity.neg ({data.POLARITY_URL}), "
                                   f"or a copy in {data.cache_dir() / 'rt-polarity'}")
            pool = data.load_polarity(opts["path"] or data.cache_dir() / "rt-polarity")
        else:
            pool = data.load_table(opts["path"], opts["text_column"], opts["label_column"], opts["delimiter"])
        tr, va, te = data.split_indices(len(pool), opts["val_fraction"], opts["test_fraction"], seed)
        return ({"train": [pool[i] for i in tr], "val": [pool[i] for i in va], "test": [pool[i] for i in te]},
                "random permutation by seed")

    def _describe(self, tokens: dict[str, list[list[str]]]) -> dict[str, Any]:
        lengths = [len(t) for t in tokens["train"]]
        test_ids = self.x["test"]
        real = test_ids != PAD_ID
        return {
            "mean_tokens_train": sum(lengths) / max(1, len(lengths)),
            "truncated_fraction_train": sum(n > self.seq_len for n in lengths) / max(1, len(lengths)),
            "unk_rate_test": float((test_ids[real] == UNK_ID).float().mean()) if real.any() else 0.0,
        }

    def make_head(self, hidden_size: int) -> SentimentHead:
        return SentimentHead(len(self.vocab), self.opts["embed_dim"], hidden_size, self.opts["out_dropout"])

    def train_batch(self, step: int) -> Batch:
        """Epoch ``e`` visits the training set in the order of permutation ``(seed, TRAIN, e)``;
        the incomplete last batch of an epoch is dropped. -> x (T, B) int64, y (B,) float32."""
        n, B = len(self.y["train"]), self.batch_size
        per_epoch = n // B
        epoch, i = divmod(step, per_epoch)
        if epoch != self._epoch:
            self._perm = torch.randperm(n, generator=seeding.generator(self.seed, seeding.TRAIN, epoch))
            self._epoch = epoch
        idx = self._perm[i * B:(i + 1) * B]
        return Batch(self.x["train"][:, idx], self.y["train"][idx])

    def eval_batches(self, split: str):
        """The whole split, in fixed order, in batches of up to 500 reviews."""
        x, y = self.x[split], self.y[split]
        for start in range(0, len(y), EVAL_BATCH):
            yield Batch(x[:, start:start + EVAL_BATCH], y[start:start + EVAL_BATCH])

    # --------------------------------------------------------------- metrics

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """Mean binary cross-entropy of the logits ``pred (B,)`` against ``y (B,)`` in {0, 1}."""
        return F.binary_cross_entropy_with_logits(pred, y.to(pred.dtype))

    def metrics(self, pred: Tensor, y: Tensor) -> dict[str, float]:
        return {"accuracy": ((pred > 0) == (y > 0.5)).float().mean().item()}

    def solved(self, test_metrics: Mapping[str, float]) -> bool:
        return test_metrics["accuracy"] >= self.solved_at

    def config(self) -> dict[str, Any]:
        return {
            "source": SOURCE_LABELS[self.source],
            "source_chosen": self.opts["source_chosen"],
            "path": self.opts["path"],
            "split": {"train": len(self.y["train"]), "val": len(self.y["val"]), "test": len(self.y["test"]),
                      "seed": self.seed, "method": self.split_method},
            "vocab_size": len(self.vocab),
            "vocab_size_limit": self.opts["vocab_size"],
            "vocabulary_from": "training split only",
            "seq_len": self.seq_len,
            "padding": "left (the last step is the last real token); longer reviews keep their first seq_len tokens",
            "embed_dim": self.opts["embed_dim"],
            "out_dropout": self.opts["out_dropout"],
            "label_prior_train": self.prior,
            "loss": "binary cross-entropy on the last step's sigmoid output (computed from logits)",
            **self._stats,
            **({"n_reviews": self.opts["n_reviews"], "p_closing": self.opts["p_closing"]}
               if self.source == "synthetic" else {}),
        }

    # ------------------------------------------------------------ inspection

    def artifacts(self, model: nn.Module, cell_spec, device: torch.device) -> dict[str, Any]:
        """``gates``: per-token gate means of the top layer, for cells that expose their gates."""
        if not cell_spec.exposes_gates:
            return {}
        reviews = [("seeds' example", tokenize(SEED_REVIEW), 1)] + self.test_reviews
        return {"gates": gate_table(model, reviews, self.vocab, self.seq_len, device)}


DESCRIPTION = ("movie-review sentiment, the seeds' SentimentRNN (embedding, cell, dropout, linear, sigmoid); "
               f"default data is {SYNTHETIC}; real reviews: --task-opt path=FILE_OR_DIR (the source is "
               "inferred) or source=rt-polarity|imdb|csv")


# Run defaults for the real corpora: --preset NAME. Each preset also picks its data source; the
# data is not shipped, so its location still comes from --task-opt path=... (or download=true for IMDB).
PRESETS = {
    # Measured: docs/sentiment.md (rt-polarity, >= 0.70 test accuracy for lstm on 2 CPU cores).
    "rt-polarity": {"seq_len": 50, "steps": 400, "hidden_size": 128, "lr": 2e-3,
                    "task_options": {"source": "rt-polarity"}},
    # Not measured (no copy of IMDB here): meant to reach >= 0.85; best on a GPU.
    "imdb": {"seq_len": 400, "steps": 2000, "hidden_size": 256, "lr": 1e-3, "task_options": {"source": "imdb"}},
}


SPEC = TaskSpec(
    name="sentiment",
    description=DESCRIPTION,
    factory=SentimentTask,
    options=OPTIONS,
    defaults={"seq_len": 64, "steps": 1200, "lr": 3e-3, "layers": 2, "dropout": 0.5},
    presets=PRESETS,
)


@hookimpl
def register_tasks(register):
    register(SPEC)
