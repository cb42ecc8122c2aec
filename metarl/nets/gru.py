"""A fused one-layer GRU for MQL's context encoders: several GRUs at once, final state only.

``nn.GRU`` on CPU spends most of an MQL update in per-time-step overhead: at MQL's sizes (batch 256,
20 steps, hidden 15) every step is a handful of tiny kernels plus autograd bookkeeping, and its
backward replays the step graph op by op. This module computes the same function with

* one input-projection matmul over all time steps per input, shared by the GRUs that read it (the
  two target encoders read the same next history; the actor and critic encoders the same history);
* five in-place ops per time step for all the GRUs of a call, on a features-major layout
  ``[G, features, batch]`` whose gate blocks are contiguous, with ``tanh`` rewritten through
  ``sigmoid`` (``tanh(a) = 2 sigmoid(2a) - 1``, the state kept as ``u = (h + 1) / 2``, the factors
  folded into the weights) because ATen's CPU ``tanh`` costs several times a ``sigmoid``;
* a hand-written backward: two ops per time step (one broadcast multiply, one small matmul), the
  weight gradients as two matmuls over all steps afterwards;
* the per-step loops on one intra-op thread (see ``_one_thread``); the input projection and the
  weight-gradient matmuls, which are large, use all of torch's threads.

It returns what ``nn.GRU(...)(x)[1][-1]`` returns (the final hidden state from a zero initial state)
and its gradients w.r.t. the GRU parameters, equal up to fp32 rounding (``tests/test_fast_update.py``
checks both in float64 against ``nn.GRU`` and in float32 inside the TD3 update). Gradients w.r.t. the
inputs are not implemented: MQL's histories are data.

The parameters stay those of the ``nn.GRU`` modules (same names in checkpoints); only the arithmetic
is replaced. Measured in BENCHMARKS.md, "Update throughput".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

__all__ = ["fused_gru"]


@contextmanager
def _one_thread(like: Tensor) -> Iterator[None]:
    """CPU: run the per-step loop on one intra-op thread. Its ops are small (a step is a few thousand
    elements, the matmuls are [45 x 15] by [15 x 256]); a parallel region costs more than it
    saves, and with other processes on the cores a thread that waits for a descheduled peer costs
    milliseconds."""
    n = torch.get_num_threads()
    if like.device.type != "cpu" or n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _transformed(w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Weights of the u-form recurrence, stacked over groups ``[G, ...]``.

    h = 2u - 1 and tanh(a) = 2 sigmoid(2a) - 1 give, with gates (r, z, n) as in ``nn.GRU``::

        A   = [p_r; p_z; q] = c + Wt u      Wt = [2 W_hr; 2 W_hz; 4 W_hn]
        r, z = sigmoid(p_r), sigmoid(p_z)
        s    = sigmoid(g_n + r * q)
        u'   = s + z (u - s)                (= lerp(s, u, z))

    where the input projection ``gi = W_ext x + b_ext`` has blocks ``[g_n; c_r; c_z; c_q]``::

        W_ext = [2 W_in; W_ir; W_iz; 0]
        b_ext = [2 b_in; b_ir + bt_r; b_iz + bt_z; bt_n]
        bt    = [b_hr - W_hr 1; b_hz - W_hz 1; 2 (b_hn - W_hn 1)]
    """
    g_n, z3, d = w_ih.shape
    z = z3 // 3
    wt = w_hh * 2
    wt[:, 2 * z:] *= 2
    bt = b_hh - w_hh.sum(-1)
    bt[:, 2 * z:] *= 2
    w_ext = w_ih.new_zeros(g_n, 4 * z, d)
    torch.mul(w_ih[:, 2 * z:], 2, out=w_ext[:, :z])
    w_ext[:, z:3 * z] = w_ih[:, :2 * z]
    b_ext = torch.cat([b_ih[:, 2 * z:] * 2, b_ih[:, :2 * z] + bt[:, :2 * z], bt[:, 2 * z:]], 1)
    return wt, w_ext, b_ext


def _recurrence(xs: Sequence[Tensor], w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor):
    """Runs G GRUs (weights stacked on dim 0), group g over xs[g] [B, T, D]. Returns h_T [G, B, Z]
    and what the backward needs."""
    g_n, z3, d = w_ih.shape
    z = z3 // 3
    b, t_len, _ = xs[0].shape
    wt, w_ext, b_ext = _transformed(w_ih, w_hh, b_ih, b_hh)
    # gi[t, g] = W_ext[g] @ xs[g][:, t, :]^T + b_ext[g]: [T, G, 4Z, B]; one batched matmul per
    # distinct input (the groups reading it are adjacent in the result).
    gi = xs[0].new_empty(t_len, g_n, 4 * z, b)
    g = 0
    while g < g_n:
        e = g + 1
        while e < g_n and xs[e] is xs[g]:
            e += 1
        k = (e - g) * 4 * z
        torch.baddbmm(
            b_ext[g:e].reshape(1, k, 1).expand(t_len, k, b), w_ext[g:e].reshape(1, k, d).expand(t_len, k, d),
            xs[g].permute(1, 2, 0), out=gi[:, g:e].view(t_len, k, b),
        )
        g = e
    u, a, s = _steps(gi, wt)
    h = (u[t_len] * 2 - 1).transpose(1, 2)
    return h, wt, u, a, s


def _steps(gi: Tensor, wt: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The u-form recurrence over the input projections ``gi`` [T, G, 4Z, B] (blocks
    ``[g_n; c_r; c_z; c_q]``, overwritten) with ``Wt`` [G, 3Z, Z]: the states ``u`` [T + 1, G, Z, B]
    (u_0 = 1/2, i.e. h_0 = 0), the gates ``a = gi[:, :, Z:]`` and ``s``, all kept for the backward."""
    t_len, g_n, z4, b = gi.shape
    z = z4 // 4
    # In place, step by step: gi[t, :, Z:] becomes A_t = [p_r; p_z; q], then sigmoid on p_r, p_z.
    u = gi.new_empty(t_len + 1, g_n, z, b)
    u[0].fill_(0.5)  # h0 = 0
    s = gi.new_empty(t_len, g_n, z, b)
    a = gi[:, :, z:]
    a_l, gn_l = a.unbind(0), gi[:, :, :z].unbind(0)
    u_l, s_l = u.unbind(0), s.unbind(0)
    rz_l, r_l, z_l, q_l = (a[:, :, :2 * z].unbind(0), a[:, :, :z].unbind(0), a[:, :, z:2 * z].unbind(0),
                           a[:, :, 2 * z:].unbind(0))
    with _one_thread(gi):
        for t in range(t_len):
            a_l[t].baddbmm_(wt, u_l[t])
            rz_l[t].sigmoid_()
            torch.addcmul(gn_l[t], r_l[t], q_l[t], out=s_l[t]).sigmoid_()
            torch.lerp(s_l[t], u_l[t], z_l[t], out=u_l[t + 1])
    return u, a, s


class _FusedGRU(torch.autograd.Function):
    """G GRUs, group g over xs[g]; gradients for the groups whose weights require them."""

    @staticmethod
    def forward(ctx, n_x: int, *args: Tensor) -> Tensor:  # type: ignore[override]
        xs, weights = args[:n_x], args[n_x:]
        if n_x == 1:
            xs = xs * (len(weights) // 4)
        w_ih, w_hh, b_ih, b_hh = (torch.stack(weights[i::4]) for i in range(4))
        h, wt, u, a, s = _recurrence(xs, w_ih, w_hh, b_ih, b_hh)
        ctx.n_x = n_x
        ctx.save_for_backward(wt, u, a, s, *args[:n_x])
        return h

    @staticmethod
    def backward(ctx, dh: Tensor):  # type: ignore[override]
        wt_all, u_all, a_all, s_all, *xs = ctx.saved_tensors
        n_x = ctx.n_x
        g_n = wt_all.shape[0]
        if any(ctx.needs_input_grad[1:1 + n_x]):
            raise NotImplementedError("fused_gru: gradients w.r.t. the input sequences are not implemented")
        grads: list[Tensor | None] = [None] * (4 * g_n)
        first = 1 + n_x
        for g in range(g_n):
            if any(ctx.needs_input_grad[first + 4 * g: first + 4 * g + 4]):
                grads[4 * g: 4 * g + 4] = _group_backward(
                    xs[g if n_x > 1 else 0], wt_all[g], u_all[:, g], a_all[:, g], s_all[:, g], dh[g]
                )
        return (None, *([None] * n_x), *grads)


def _group_backward(x: Tensor, wt: Tensor, u_all: Tensor, a: Tensor, s: Tensor, dh: Tensor) -> list[Tensor]:
    """Gradients of one group's (w_ih, w_hh, b_ih, b_hh) from dL/dh_T [B, Z]."""
    t_len, z3, b = a.shape
    z = z3 // 3
    # Features-major views [Z, T, B] of what the forward saved ([T, Z, B]).
    a = a.transpose(0, 1)
    r, zg, q = a[:z], a[z:2 * z], a[2 * z:]
    s, u = s.transpose(0, 1), u_all[:t_len].transpose(0, 1)
    # dL/d[g_n; p_r; p_z; q; u] at step t = du_{t+1} * C[:, :, t], blocks on dim 0: [5, Z, T, B]
    c = a.new_empty(5, z, t_len, b)
    cs, cr, cz, cq, cid = c.unbind(0)
    one_m_z = 1 - zg
    torch.mul(one_m_z * s, 1 - s, out=cs)
    torch.mul(cs, r, out=cq)
    torch.mul(cq, q * (1 - r), out=cr)
    torch.mul((u - s) * zg, one_m_z, out=cz)
    cid.copy_(zg)
    # du_t = [Wt^T, I] @ (du_{t+1} * C_t)[p_r, p_z, q, u blocks]
    w_back = torch.cat([wt.t(), torch.eye(z, dtype=wt.dtype, device=wt.device)], 1)  # [Z, 4Z]
    d = a.new_empty(5, z, t_len, b)
    d_l, c_l = d.unbind(2), c.unbind(2)
    dtail_l = d[1:].reshape(4 * z, t_len, b).unbind(1)
    du = dh.t().mul(2)  # dL/du_T = 2 dL/dh_T
    with _one_thread(du):
        for t in range(t_len - 1, -1, -1):
            torch.mul(du.unsqueeze(0), c_l[t], out=d_l[t])
            if t:
                du = torch.mm(w_back, dtail_l[t])
    dgi = d[:4].reshape(4 * z, t_len * b)  # dL/dgi, blocks [g_n; c_r; c_z; c_q], columns (t, b)
    # dWt = sum over (t, b) of dA u^T: [3Z, Z]. MKL's sgemm is 2x slower for 15 columns than for
    # 16 (measured), so u gets zero rows up to a multiple of 16.
    u_pad = a.new_zeros(-(-z // 16) * 16, t_len, b)
    u_pad[:z] = u
    dwt = torch.mm(dgi[z:], u_pad.view(-1, t_len * b).t())[:, :z]
    dw_ext = torch.mm(dgi[:3 * z], x.transpose(0, 1).reshape(t_len * b, -1))  # [3Z, D] (block 4 has no weights)
    db_ext = dgi.sum(1)  # [4Z]
    # back to nn.GRU's parameters (gate order r, z, n); see _transformed
    dw_ih = torch.cat([dw_ext[z:3 * z], 2 * dw_ext[:z]])
    db_ih = torch.cat([db_ext[z:3 * z], 2 * db_ext[:z]])
    db_hh = db_ext[z:].clone()
    db_hh[2 * z:] *= 2
    dw_hh = dwt * 2
    dw_hh[2 * z:] *= 2
    dw_hh -= db_hh.unsqueeze(1)
    return [dw_ih, dw_hh, db_ih, db_hh]


def fused_gru(x: Tensor | Sequence[Tensor], grus: Sequence[nn.GRU]) -> Tensor:
    """Final hidden states ``[G, B, Z]`` of the GRUs ``grus`` (equal sizes) from a zero state, GRU g
    run over ``x[g]`` (or all over ``x``), each input ``[B, T, D]``: the same as
    ``torch.stack([g(x_g)[1][-1] for g, x_g in zip(grus, xs)])``, computed at once. Inputs that are
    the same tensor object are projected together.

    Gradients flow to every GRU parameter that requires one (none to the inputs).
    """
    xs = [x] * len(grus) if isinstance(x, Tensor) else list(x)
    if len(xs) != len(grus) or not grus:
        raise ValueError(f"fused_gru: one input per GRU, got {len(xs)} inputs for {len(grus)} GRUs")
    shape = xs[0].shape
    if len(shape) != 3 or shape[1] == 0 or any(t.shape != shape for t in xs):
        shapes = [tuple(t.shape) for t in xs]
        raise ValueError(f"fused_gru: inputs must share one shape [B, T, D] with T >= 1, got {shapes}")
    weights = [w for g in grus for w in (g.weight_ih_l0, g.weight_hh_l0, g.bias_ih_l0, g.bias_hh_l0)]
    if torch.is_grad_enabled() and any(w.requires_grad for w in weights):
        # One input shared by all GRUs is passed once; otherwise one per GRU (the backward reads
        # group g's input as xs[g]).
        if all(t is xs[0] for t in xs):
            return _FusedGRU.apply(1, xs[0], *weights)
        return _FusedGRU.apply(len(xs), *xs, *weights)
    w_ih, w_hh, b_ih, b_hh = (torch.stack(weights[i::4]) for i in range(4))
    with _one_thread(xs[0]):
        return _recurrence(xs, w_ih, w_hh, b_ih, b_hh)[0]
