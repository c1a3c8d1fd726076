"""An LSTM in NumPy alone: forward and backward through time, side by side.

No torch in this file. ``T`` steps, ``B`` batch, ``I`` inputs, ``H`` hidden
units, ``L`` layers. Parameters use ``torch.nn.LSTM``'s layout, so weights
copy over one to one: ``w_ih (4H, I)``, ``w_hh (4H, H)``, ``b_ih (4H,)``,
``b_hh (4H,)``, the four gate blocks in the order ``i, f, g, o``.

The equations (one step, one layer), with the seed documents' names beside
the usual ones; ``x_t``, ``h_t`` and ``c_t`` are column vectors, one column
per sequence of the batch::

    z     = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh   all four gates, (4H, B)
    i     = sigmoid(z_i)            input gate
    f     = sigmoid(z_f)            forget gate
    g     = tanh(z_g)               cell candidate
    o     = sigmoid(z_o)            output gate
    learn = i * g                   learn gate
    c_t   = f * c_{t-1} + learn     remember gate (the new cell state)
    h_t   = o * tanh(c_t)           use gate (the new hidden state)

Layout. The stack functions take and return the harness's batch-major arrays
(``x (T, B, I)``, ``out (T, B, H)``, states ``(L, B, H)``). Inside a layer,
vectors are columns, as in the equations:

* per-step arrays (``gates (T, 4, H, B)``, ``cs (T+1, H, B)``) keep step
  ``t`` contiguous, so every gate is one contiguous ``(H, B)`` block;
* arrays that feed a matmul over all steps keep the time index inside the
  columns (``hs (H, T+1, B)``, the gradient ``dz (4H, T, B)``), so that
  ``[h_0 .. h_{T-1}]`` is one ``(H, T*B)`` matrix without a copy.

Speed. ``W_ih x_t`` for every step is one batched matmul before the loop;
each step then does one matmul ``W_hh h_{t-1}`` (``(4H, H) @ (H, B)``) and
elementwise updates into preallocated arrays (``out=``, no temporaries); the
backward pass does one matmul ``W_hh^T dz_t`` per step and forms ``dW_ih``,
``dW_hh``, ``db`` and ``dx`` after its loop, each as one matmul (or sum) over
all ``T*B`` columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


# sigmoid(z) = (1 + tanh(z / 2)) / 2. Halving the rows of the sigmoid gates (i, f, o) in the weights and
# biases before the loop (exact in floating point) lets one tanh call serve all four gates; each sigmoid
# gate then only needs ``half_up``. No exp, so no overflow for large |z|.
SIGMOID_ROWS = np.array([0.5, 0.5, 1.0, 0.5])                     # per gate block i, f, g, o


def half_up(t: np.ndarray) -> np.ndarray:
    """``t -> (1 + t) / 2`` in place: ``sigmoid(z)`` from ``t = tanh(z / 2)``."""
    t *= 0.5
    t += 0.5
    return t


def sigmoid_grad(s: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``sigmoid'(z) = s (1 - s)`` from ``s = sigmoid(z)``, into ``out``."""
    np.subtract(1.0, s, out=out)
    out *= s
    return out


def tanh_grad(t: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``tanh'(z) = 1 - t^2`` from ``t = tanh(z)``, into ``out``."""
    np.multiply(t, t, out=out)
    np.subtract(1.0, out, out=out)
    return out


@dataclass
class LayerCache:
    """What one layer's forward pass keeps for its backward pass.

    ``x (I, T*B)`` the layer input as columns; ``hs (H, T+1, B)`` with
    ``hs[:, 0] = h0``; ``cs (T+1, H, B)`` with ``cs[0] = c0``;
    ``gates (T, 4, H, B)`` the activations ``i, f, g, o``;
    ``tanh_c (T, H, B)`` = ``tanh(c_t)``; ``w_ih``, ``w_hh`` the weights used.
    """

    x: np.ndarray
    hs: np.ndarray
    cs: np.ndarray
    gates: np.ndarray
    tanh_c: np.ndarray
    w_ih: np.ndarray
    w_hh: np.ndarray


def layer_forward(x: np.ndarray, h0: np.ndarray, c0: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray,
                  b_ih: np.ndarray, b_hh: np.ndarray, empty=np.empty) -> LayerCache:
    """One layer over the whole sequence.

    :param x: ``(I, T, B)`` inputs as columns (a transposed view is fine).
    :param h0: ``(H, B)``; ``c0``: ``(H, B)``; weights as in ``torch.nn.LSTM``.
    :param empty: allocates the cache's arrays, ``np.empty`` or a :class:`~cells.numpy_lstm.pool.Lease`.
    :returns: the cache; the outputs are ``hs[:, 1:]``, the final state ``hs[:, -1]`` and ``cs[-1]``.
    """
    I, T, B = x.shape
    H = w_hh.shape[1]
    dtype = w_hh.dtype
    scale = np.repeat(SIGMOID_ROWS.astype(dtype), H)[:, None]     # (4H, 1): halves the i, f, o rows
    w_ih_s = np.multiply(w_ih, scale, out=empty(w_ih.shape, dtype))
    w_hh_s = np.multiply(w_hh, scale, out=empty(w_hh.shape, dtype))
    bias_s = ((b_ih + b_hh)[:, None] * scale).reshape(4, H, 1)
    gates = np.matmul(w_ih_s, x.transpose(1, 0, 2), out=empty((T, 4 * H, B), dtype))  # W_ih x_t, all steps
    gates = gates.reshape(T, 4, H, B)
    hs = empty((H, T + 1, B), dtype)
    cs = empty((T + 1, H, B), dtype)
    tanh_c = empty((T, H, B), dtype)
    learn = np.empty((H, B), dtype)
    rec = np.empty((4, H, B), dtype)
    hs[:, 0], cs[0] = h0, c0
    for t in range(T):
        z = gates[t]                                               # (4, H, B), turned into the activations in place
        np.matmul(w_hh_s, hs[:, t], out=rec.reshape(4 * H, B))
        z += rec
        z += bias_s                                                # z = W_ih x_t + W_hh h_{t-1} + b, i f o rows halved
        np.tanh(z, out=z)                                          # tanh(z_g), and tanh(z/2) for i, f, o
        i = half_up(z[0])                                          # input gate     i = sigmoid(z_i)
        f = half_up(z[1])                                          # forget gate    f = sigmoid(z_f)
        g = z[2]                                                   # cell candidate g = tanh(z_g)
        o = half_up(z[3])                                          # output gate    o = sigmoid(z_o)
        np.multiply(i, g, out=learn)                               # learn gate:    i * g
        np.multiply(f, cs[t], out=cs[t + 1])
        cs[t + 1] += learn                                         # remember gate: c_t = f * c_{t-1} + learn
        np.tanh(cs[t + 1], out=tanh_c[t])
        np.multiply(o, tanh_c[t], out=hs[:, t + 1])                # use gate:      h_t = o * tanh(c_t)
    return LayerCache(x.reshape(I, T * B), hs, cs, gates, tanh_c, w_ih, w_hh)


def layer_backward(d_hs: np.ndarray, d_hT: np.ndarray, d_cT: np.ndarray, cache: LayerCache,
                   dx_as: str | None = "rows", empty=np.empty):
    """Backward through time for one layer.

    :param d_hs: ``(H, T, B)`` (any strides) dL/d(output h_t) from above, not through the recurrence.
    :param d_hT: ``(H, B)`` dL/d(final h); ``d_cT``: ``(H, B)`` dL/d(final c).
    :param dx_as: ``"rows"`` for ``dx (T, B, I)``, ``"cols"`` for ``dx (I, T, B)``, ``None`` to skip it.
    :param empty: allocates scratch arrays (``dz``, and ``dx`` when ``dx_as="cols"``).
    :returns: ``dx``, ``dh0 (H, B)``, ``dc0 (H, B)``, ``dw_ih (4H, I)``, ``dw_hh (4H, H)``,
        ``db (4H,)`` (the same for ``b_ih`` and ``b_hh``).
    """
    x, hs, cs, tanh_c = cache.x, cache.hs, cache.cs, cache.tanh_c
    H, T1, B = hs.shape
    T = T1 - 1
    dtype = hs.dtype
    dz = empty((4, H, T, B), dtype)                                # dL/dz for every step, time inside the columns
    p = np.empty((4, H, B), dtype)                                 # one step's chain-rule factors
    dh = np.empty((H, B), dtype)
    dc = np.empty((H, B), dtype)
    dh_next = np.array(d_hT, dtype=dtype, copy=True)              # dL/dh_t arriving from step t+1
    dc_next = np.array(d_cT, dtype=dtype, copy=True)              # dL/dc_t arriving from step t+1
    w_hh_t = cache.w_hh.T
    for t in reversed(range(T)):
        i, f, g, o = cache.gates[t]
        np.add(d_hs[:, t], dh_next, out=dh)                        # dL/dh_t: from the output at t and from step t+1
        tanh_grad(tanh_c[t], out=dc); dc *= o; dc *= dh; dc += dc_next  # dL/dc_t = dL/dh_t o tanh'(c_t) + from c_{t+1}
        sigmoid_grad(i, out=p[0]); p[0] *= g                       # input gate:  dc_t/dz_i = g sigmoid'(z_i)
        sigmoid_grad(f, out=p[1]); p[1] *= cs[t]                   # forget gate: dc_t/dz_f = c_{t-1} sigmoid'(z_f)
        tanh_grad(g, out=p[2]); p[2] *= i                          # candidate:   dc_t/dz_g = i tanh'(z_g)
        sigmoid_grad(o, out=p[3]); p[3] *= tanh_c[t]               # output gate: dh_t/dz_o = tanh(c_t) sigmoid'(z_o)
        np.multiply(p[:3], dc, out=dz[:3, :, t])                   # dL/dz_{i,f,g} = dL/dc_t dc_t/dz
        np.multiply(p[3], dh, out=dz[3, :, t])                     # dL/dz_o = dL/dh_t dh_t/dz_o
        np.multiply(dc, f, out=dc_next)                            # dL/dc_{t-1}, through c_t = f c_{t-1} + learn
        np.matmul(w_hh_t, dz[:, :, t].reshape(4 * H, B), out=dh_next)  # dL/dh_{t-1} = W_hh^T dL/dz

    # Sums over steps: one matmul (or sum) over all T*B columns each.
    dz = dz.reshape(4 * H, T * B)
    dw_ih = dz @ x.T
    dw_hh = dz @ hs[:, :T].reshape(H, T * B).T
    db = dz.sum(axis=1)
    if dx_as == "rows":
        dx = (dz.T @ cache.w_ih).reshape(T, B, -1)                 # dL/dx_t = W_ih^T dL/dz, batch-major
    elif dx_as == "cols":                                          # scratch for the layer below
        dx = np.matmul(cache.w_ih.T, dz, out=empty((cache.w_ih.shape[1], T * B), dtype)).reshape(-1, T, B)
    else:
        dx = None
    return dx, dh_next, dc_next, dw_ih, dw_hh, db


# ------------------------------------------------------------------ stacks


@dataclass
class StackCache:
    """Every layer's cache, and the dropout masks applied to the inputs of layers ``1..L-1``."""

    layers: list[LayerCache]
    masks: list[np.ndarray | None]


def stack_forward(x: np.ndarray, h0: np.ndarray, c0: np.ndarray, weights: list[tuple[np.ndarray, ...]],
                  masks: list[np.ndarray | None] | None = None, empty=np.empty):
    """``L`` layers; layer ``l`` reads layer ``l-1``'s outputs (times ``masks[l-1]`` when given).

    :param x: ``(T, B, I)``; ``h0``, ``c0``: ``(L, B, H)``.
    :param weights: per layer ``(w_ih, w_hh, b_ih, b_hh)``.
    :param masks: per gap between layers, ``None`` or a dropout mask (0 or ``1/(1-p)``) in the
        layers' column layout ``(H, T, B)``.
    :param empty: allocates the cache's arrays (the outputs are always new arrays).
    :returns: ``out (T, B, H)``, ``hT (L, B, H)``, ``cT (L, B, H)``, cache.
    """
    L = len(weights)
    masks = list(masks) if masks is not None else [None] * (L - 1)
    caches = []
    layer_in = np.ascontiguousarray(x).transpose(2, 0, 1)          # (I, T, B), a view
    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
        if layer > 0 and masks[layer - 1] is not None:             # dropout between layers
            layer_in = np.multiply(layer_in, masks[layer - 1], out=empty(layer_in.shape, layer_in.dtype))
        cache = layer_forward(layer_in, h0[layer].T, c0[layer].T, w_ih, w_hh, b_ih, b_hh, empty)
        caches.append(cache)
        layer_in = cache.hs[:, 1:]
    out = np.ascontiguousarray(caches[-1].hs[:, 1:].transpose(1, 2, 0))
    hT = np.stack([c.hs[:, -1].T for c in caches])
    cT = np.stack([c.cs[-1].T for c in caches])
    return out, hT, cT, StackCache(caches, masks)


def stack_backward(d_out: np.ndarray, d_hT: np.ndarray, d_cT: np.ndarray, cache: StackCache, need_dx: bool = True,
                   empty=np.empty):
    """Backward through the stack, top layer first.

    :param d_out: ``(T, B, H)``; ``d_hT``, ``d_cT``: ``(L, B, H)``.
    :returns: ``dx (T, B, I)`` or ``None``, ``dh0 (L, B, H)``, ``dc0 (L, B, H)``,
        and per layer ``(dw_ih, dw_hh, db_ih, db_hh)``.
    """
    L = len(cache.layers)
    dh0 = np.empty(d_hT.shape, d_out.dtype)
    dc0 = np.empty(d_cT.shape, d_out.dtype)
    grads: list[tuple[np.ndarray, ...]] = [()] * L
    d_hs = d_out.transpose(2, 0, 1)                                # (H, T, B), a view
    dx = None
    for layer in reversed(range(L)):
        dx_as = "cols" if layer > 0 else ("rows" if need_dx else None)
        dx, dh, dc, dw_ih, dw_hh, db = layer_backward(d_hs, d_hT[layer].T, d_cT[layer].T, cache.layers[layer],
                                                      dx_as, empty)
        dh0[layer], dc0[layer] = dh.T, dc.T
        grads[layer] = (dw_ih, dw_hh, db, db.copy())
        if layer > 0 and cache.masks[layer - 1] is not None:
            d_hs = np.multiply(dx, cache.masks[layer - 1], out=dx)
        elif layer > 0:
            d_hs = dx
    return dx, dh0, dc0, grads


# ------------------------------------------------------------------ checks


def check_gradients(seed: int = 0, T: int = 4, B: int = 3, I: int = 2, H: int = 3, L: int = 2,
                    eps: float = 1e-5) -> float:
    """Finite differences against :func:`stack_backward`, in float64; returns the worst relative error.

    The loss is a random linear function of the outputs and the final state,
    so every path (outputs, ``hT``, ``cT``, dropout between layers) carries gradient.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((L, B, H))
    c0 = rng.standard_normal((L, B, H))
    shapes = [((4 * H, I if layer == 0 else H), (4 * H, H), (4 * H,), (4 * H,)) for layer in range(L)]
    weights = [tuple(rng.standard_normal(s) * 0.5 for s in layer_shapes) for layer_shapes in shapes]
    masks = [rng.choice([0.0, 2.0], size=(H, T, B)) for _ in range(L - 1)]
    w_out, w_h, w_c = rng.standard_normal((T, B, H)), rng.standard_normal((L, B, H)), rng.standard_normal((L, B, H))

    def loss() -> float:
        out, hT, cT, _ = stack_forward(x, h0, c0, weights, masks)
        return float((out * w_out).sum() + (hT * w_h).sum() + (cT * w_c).sum())

    _, _, _, cache = stack_forward(x, h0, c0, weights, masks)
    dx, dh0, dc0, dweights = stack_backward(w_out, w_h, w_c, cache)
    pairs = [(x, dx), (h0, dh0), (c0, dc0)] + [(w, dw) for ws, dws in zip(weights, dweights) for w, dw in zip(ws, dws)]
    worst = 0.0
    for value, analytic in pairs:
        for index in np.ndindex(value.shape):
            old = value[index]
            value[index] = old + eps
            up = loss()
            value[index] = old - eps
            down = loss()
            value[index] = old
            numeric = (up - down) / (2 * eps)
            worst = max(worst, abs(numeric - analytic[index]) / max(1e-8, abs(numeric) + abs(analytic[index])))
    return worst
