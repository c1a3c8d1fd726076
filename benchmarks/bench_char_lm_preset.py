"""The CPU cost of char-lm's ``ptb-char`` preset, estimated from a few steps of its model (docs/tasks.md, char-lm),
and of encoding a text8-sized corpus.

    python benchmarks/bench_char_lm_preset.py                  # one thread; about a minute on 2 cores
    python benchmarks/bench_char_lm_preset.py --threads 2 --steps 8
    python benchmarks/bench_char_lm_preset.py --encode         # vocabulary and ids of 100M characters (1.5 GB)

The preset's model (Cooijmans et al. 2016's LSTM baseline): one-hot input over PTB-char's 51 symbols (50
characters and <unk>), a 1000-unit nn.LSTM and a linear readout, trained at T = 100, batch 64 with Adam and
clipping, the state carried and detached between windows as the runner does; evaluation windows of 16 streams.
Random symbols stand in for the text (the cost does not depend on it). Prints the median time of a training step
and of an evaluation window after warm-up, and the preset's projected training time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from harness.plugins.model import TaskModel, build_cell
from harness.plugins.registry import load_registry
from tasks.char_lm import CharHead, PRESETS

SYMBOLS = 51  # about PTB-char's vocabulary


def encode() -> None:
    """Build the vocabulary of 90M random a-z/space characters and encode all 100M: text8's sizes."""
    import numpy as np

    from tasks.char_lm.vocab import Vocabulary

    alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     ", dtype=np.uint8)
    text = np.random.default_rng(0).choice(alphabet, 100_000_000).tobytes().decode("latin-1")
    start = time.perf_counter()
    vocab = Vocabulary.build(text[:90_000_000])
    built = time.perf_counter()
    for a, b in ((0, 90_000_000), (90_000_000, 95_000_000), (95_000_000, 100_000_000)):
        vocab.encode(text[a:b])
    print(f"text8-sized corpus: vocabulary {built - start:.1f} s, encoding {time.perf_counter() - built:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=8, help="training steps timed (the first two are warm-up)")
    parser.add_argument("--encode", action="store_true", help="time the vocabulary and encoding of 100M characters")
    args = parser.parse_args()
    if args.encode:
        encode()
        return
    torch.set_flush_denormal(True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    preset = PRESETS["ptb-char"]
    T, B, H = preset["seq_len"], preset["batch_size"], preset["hidden_size"]
    head = CharHead(SYMBOLS, 0, H)
    model = TaskModel(head, build_cell(load_registry().cell("lstm"), head.input_size, H))
    optimizer = torch.optim.Adam(model.parameters(), lr=preset["lr"])
    x, y = torch.randint(0, SYMBOLS, (T, B)), torch.randint(0, SYMBOLS, (T, B))
    state, train = None, []
    for _ in range(args.steps):
        start = time.perf_counter()
        pred, final = model.forward_with_state(x, state)
        state = tuple(s.detach() for s in final)
        loss = F.cross_entropy(pred.reshape(-1, SYMBOLS), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), preset["clip"])
        optimizer.step()
        train.append(time.perf_counter() - start)
    model.eval()
    evaluation, state = [], None
    with torch.no_grad():
        for _ in range(6):
            start = time.perf_counter()
            _, state = model.forward_with_state(x[:, :16], state)
            evaluation.append(time.perf_counter() - start)
    step, window = statistics.median(train[2:]), statistics.median(evaluation[1:])
    print(f"threads {args.threads}: training step {step:.2f} s (range {min(train[2:]):.2f}-{max(train[2:]):.2f}), "
          f"evaluation window {window:.3f} s; {preset['steps']:,} steps of the preset: {preset['steps'] * step / 3600:.1f} h")


if __name__ == "__main__":
    main()
