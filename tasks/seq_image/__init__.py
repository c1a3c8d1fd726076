"""``seq-image``: classify an MNIST or Fashion-MNIST image read a few pixels per step. See ``docs/tasks.md``.

An image's 784 pixels, scaled to [0, 1] (pixel / 255), are read in order: rows top to bottom, each row left to
right (the idx files' order), or in a fixed random order with ``permute=true`` (the same permutation for every
cell, unit and run seed, drawn from ``permute_seed``). Each step reads ``P = pixels_per_step`` consecutive
pixels, so an image is ``T = 784 / P`` steps::

    x (T, B, P) in [0, 1]  -> cell (T, B, H) -> linear readout of h[T - 1] -> logits (1, B, 10)

P = 1 (T = 784) is the sequential / permuted MNIST of Le, Jaitly & Hinton (2015) and Arjovsky et al. (2016);
P = 28 (T = 28) reads the image row by row. ``--seq-len`` and ``pixels_per_step`` name the same thing: T is
``--seq-len`` (which must divide 784) unless ``pixels_per_step`` is given, and then ``--seq-len`` must agree.

Splits: the official 60,000 training images minus a validation set of ``val_size`` images held out by a fixed
permutation (the same whatever the run seed: every seed trains on the same images); the official 10,000 test
images. Memoryless baseline: the cross-entropy of predicting the training split's class frequencies for every
image (ln 10 = 2.303 when balanced). Loss: cross-entropy; accuracy: argmax; solved: test accuracy >= 0.97
(MNIST) or 0.85 (Fashion-MNIST), or ``solved_at``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from harness import Batch, HarnessError, TaskConfig, TaskHead, TaskOption, TaskSpec, hookimpl
from harness.contract import seeding
from tasks.classify import LastStepClassification
from tasks.seq_image import data
from tasks.seq_image.data import N_CLASSES, PIXELS

AUTO = "auto"
SOLVED_AT = {"mnist": 0.97, "fashion-mnist": 0.85}
SPLIT_SEED = 0          # seeds the validation hold-out: the same images for every run seed
SPLIT_STREAM = 21
PERMUTATION_STREAM = 22
EVAL_BATCH = 500        # images per held-out batch (the first validation batch is also the gradient-flow batch)
DIVISORS = tuple(d for d in range(1, PIXELS + 1) if PIXELS % d == 0)

OPTIONS = (
    TaskOption("source", str, AUTO, "data: auto (what path holds; without a path the first copy found in the cache "
               "or Debian's folder, Fashion-MNIST first), mnist or fashion-mnist", choices=(AUTO, *data.SOURCES)),
    TaskOption("path", str, "", "folder holding the four idx files (plain or .gz), or torchvision's root "
               "(ROOT/MNIST/raw, ROOT/FashionMNIST/raw)"),
    TaskOption("download", bool, False, "fetch the official files into $HARNESS_CACHE (default ~/.cache/rnn-harness) "
               "when no copy is found (Fashion-MNIST unless source=mnist)"),
    TaskOption("pixels_per_step", int, 0, "pixels read per step P (1: pixel by pixel, T = 784; 28: row by row, "
               "T = 28); must divide 784. 0: 784 / --seq-len", minimum=0, maximum=PIXELS),
    TaskOption("permute", bool, False, "read the pixels in a fixed random order (permuted MNIST)"),
    TaskOption("permute_seed", int, 0, "seed of that order (the same for every cell, unit and run seed)",
               minimum=0, maximum=2**31 - 1),
    TaskOption("val_size", int, 5000, "training images held out for validation (a fixed choice, whatever the seed)",
               minimum=1, maximum=30_000),
    TaskOption("train_size", int, 0, "training images used, the first of the shuffled rest (0: all of them)",
               minimum=0, maximum=60_000),
    TaskOption("test_size", int, 0, "official test images scored, the first N (0: all 10,000)",
               minimum=0, maximum=10_000),
    TaskOption("solved_at", float, 0.0, "test accuracy that counts as solved (0: 0.97 for mnist, 0.85 for "
               "fashion-mnist)", minimum=0.0, maximum=1.0),
)


def steps_and_width(seq_len: int, pixels_per_step: int) -> tuple[int, int]:
    """``(T, P)`` from ``--seq-len`` and the ``pixels_per_step`` option (0: derived from T); one line otherwise."""
    choices = ", ".join(map(str, DIVISORS))
    if pixels_per_step:
        if PIXELS % pixels_per_step:
            raise HarnessError(f"--task-opt pixels_per_step={pixels_per_step} does not divide the 784 pixels of an "
                               f"image; choose one of {choices}")
        T = PIXELS // pixels_per_step
        if seq_len != T:
            raise HarnessError(f"--task-opt pixels_per_step={pixels_per_step} reads an image in {T} steps but "
                               f"--seq-len is {seq_len}; add --seq-len {T} (or leave pixels_per_step out: "
                               f"--seq-len alone sets it)")
        return T, pixels_per_step
    if PIXELS % seq_len:
        raise HarnessError(f"--seq-len {seq_len} does not divide the 784 pixels of an image into equal steps; "
                           f"choose one of {choices} (28: row by row, 784: pixel by pixel)")
    return seq_len, PIXELS // seq_len


def permutation(seed: int) -> np.ndarray:
    """The fixed pixel order of ``permute=true``: a permutation of 0..783 from ``(seed, PERMUTATION_STREAM)``."""
    return torch.randperm(PIXELS, generator=seeding.generator(seed, PERMUTATION_STREAM)).numpy()


def prior_entropy(labels: Tensor) -> float:
    """Cross-entropy (nats) of predicting the class frequencies of ``labels`` for every example: its entropy."""
    p = torch.bincount(labels, minlength=N_CLASSES).double() / len(labels)
    p = p[p > 0]
    return float(-(p * p.log()).sum())


class SeqImageHead(TaskHead):
    """Pixels in as they are; a linear readout of the last step's hidden state to 10 logits."""

    def __init__(self, pixels_per_step: int, hidden_size: int):
        super().__init__()
        self.input_size = pixels_per_step
        self.out = nn.Linear(hidden_size, N_CLASSES)

    def embed(self, x: Tensor) -> Tensor:
        """x: (T, B, P) in [0, 1] -> (T, B, P) in the model's dtype."""
        return x.to(self.out.weight.dtype)

    def readout(self, h: Tensor) -> Tensor:
        """h: (T, B, H) -> (1, B, 10) logits from the last step, time-major like every prediction (the harness
        joins evaluation batches along dim 1 of a 2-D or larger prediction)."""
        return self.out(h[-1:])


class SeqImageTask(LastStepClassification):
    name = "seq-image"
    accuracy_name = "test accuracy (10 classes)"
    loss_unit = "cross-entropy (nats)"

    def __init__(self, cfg: TaskConfig):
        opts = dict(cfg.options)
        self.seq_len, self.pixels_per_step = steps_and_width(cfg.seq_len, opts["pixels_per_step"])
        self.batch_size, self.seed, self.opts = cfg.batch_size, cfg.seed, opts
        images = data.load(opts["path"], opts["source"], opts["download"])
        self.images = images
        self.source = images.source.name
        self.solved_at = opts["solved_at"] or SOLVED_AT[self.source]
        self.solved_rule = f"test accuracy >= {self.solved_at:g} ({self.source})"
        self.order = permutation(opts["permute_seed"]) if opts["permute"] else np.arange(PIXELS)

        n = len(images.train_labels)
        shuffled = torch.randperm(n, generator=seeding.generator(SPLIT_SEED, SPLIT_STREAM))
        val_idx, rest = shuffled[:opts["val_size"]], shuffled[opts["val_size"]:]
        if opts["train_size"] > len(rest):
            raise HarnessError(f"--task-opt train_size={opts['train_size']} is more than the {len(rest):,} training "
                               f"images left after val_size={opts['val_size']}; lower it (0 uses them all)")
        train_idx = rest[:opts["train_size"]] if opts["train_size"] else rest
        n_test = opts["test_size"] or len(images.test_labels)
        pixels = torch.from_numpy(np.ascontiguousarray(images.train_images[:, self.order]))
        test_pixels = torch.from_numpy(np.ascontiguousarray(images.test_images[:n_test][:, self.order]))
        labels = torch.from_numpy(images.train_labels)
        self.x = {"train": pixels[train_idx], "val": pixels[val_idx], "test": test_pixels}     # (N, 784) uint8
        self.y = {"train": labels[train_idx], "val": labels[val_idx],
                  "test": torch.from_numpy(images.test_labels[:n_test])}
        if len(self.y["train"]) < self.batch_size:
            raise HarnessError(f"the training split has {len(self.y['train'])} images, fewer than --batch-size "
                               f"{self.batch_size}; lower --batch-size or raise train_size")
        self.baseline = prior_entropy(self.y["train"])
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    # ------------------------------------------------------------------ data

    def sequences(self, pixels: Tensor) -> Tensor:
        """(B, 784) uint8 in reading order -> (T, B, P) float32 in [0, 1]."""
        B = pixels.shape[0]
        x = pixels.to(torch.float32).div_(255.0).view(B, self.seq_len, self.pixels_per_step)
        return x.transpose(0, 1).contiguous()

    def make_head(self, hidden_size: int) -> SeqImageHead:
        return SeqImageHead(self.pixels_per_step, hidden_size)

    def train_batch(self, step: int) -> Batch:
        """Epoch ``e`` visits the training split in the order of permutation ``(seed, TRAIN, e)``; an epoch's
        incomplete last batch is dropped. -> x (T, B, P) float32, y (B,) int64."""
        n, B = len(self.y["train"]), self.batch_size
        epoch, i = divmod(step, n // B)
        if epoch != self._epoch:
            self._perm = torch.randperm(n, generator=seeding.generator(self.seed, seeding.TRAIN, epoch))
            self._epoch = epoch
        idx = self._perm[i * B:(i + 1) * B]
        return Batch(self.sequences(self.x["train"][idx]), self.y["train"][idx])

    def eval_batches(self, split: str):
        """The whole split, in a fixed order, in batches of up to 500 images."""
        x, y = self.x[split], self.y[split]
        for start in range(0, len(y), EVAL_BATCH):
            yield Batch(self.sequences(x[start:start + EVAL_BATCH]), y[start:start + EVAL_BATCH])

    # --------------------------------------------------------------- metrics

    def config(self) -> dict[str, Any]:
        opts = self.opts
        return {
            "source": self.images.source.label,
            "folder": str(self.images.folder),
            "files": {name: str(path) for name, path in self.images.files.items()},
            "checks": self.images.checks,
            "sequence_length": self.seq_len,
            "pixels_per_step": self.pixels_per_step,
            "reading_order": (f"a fixed random permutation of the 784 pixels (permute_seed={opts['permute_seed']})"
                              if opts["permute"] else "rows top to bottom, each row left to right"),
            "scaling": "pixel / 255, in [0, 1]",
            "split": {"train": len(self.y["train"]), "val": len(self.y["val"]), "test": len(self.y["test"]),
                      "method": f"validation held out from the official training set by a fixed permutation "
                                f"(seed {SPLIT_SEED}, the same for every run seed); official test set"},
            "label_prior_train": (torch.bincount(self.y["train"], minlength=N_CLASSES).double()
                                  / len(self.y["train"])).tolist(),
            "baseline": "entropy of the training split's class frequencies (nats)",
        }


DESCRIPTION = ("classify MNIST / Fashion-MNIST images read P pixels per step (sequential and permuted MNIST; "
               "T = 784 / P): --task-opt path=DIR or download=true")

PRESETS = {
    # Arjovsky, Shah & Bengio (2016), Section 5.3 "Pixel-by-pixel MNIST": T = 784, the adding problem's models
    # (128 units for the LSTM and the tanh RNN), RMSProp at lr 1e-3 with gradients clipped at 1 (Section 5);
    # batch 20 (n_batch in their complex_RNN_mnist.py); 50,000 training images as in their mnist.pkl.gz split.
    # Their LSTM curves run 164,000 (permuted) and 236,000 (unpermuted) steps; 150,000 here (55 epochs).
    # Add --task-opt permute=true for permuted MNIST. Meant for a GPU (docs/tasks.md has the CPU estimate).
    "paper": {"seq_len": 784, "steps": 150_000, "batch_size": 20, "hidden_size": 128, "optimizer": "rmsprop",
              "lr": 1e-3, "clip": 1.0, "task_options": {"source": "mnist", "pixels_per_step": 1, "val_size": 10_000}},
}

SPEC = TaskSpec(
    name="seq-image",
    description=DESCRIPTION,
    factory=SeqImageTask,
    options=OPTIONS,
    defaults={"seq_len": 28, "steps": 1500, "batch_size": 128, "hidden_size": 64, "lr": 3e-3},
    presets=PRESETS,
)


@hookimpl
def register_tasks(register):
    register(SPEC)
