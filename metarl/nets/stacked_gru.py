"""The fused GRU of ``metarl.nets.gru`` with seeds as a batch dimension.

N independent seeds each have E GRUs (MQL: the actor's and critic's encoders and their targets); each
GRU's parameters are stacked over the seeds, ``weight_ih_l0`` ``[N, 3Z, D]`` and so on. One call runs
all N x E GRUs as the groups of one fused recurrence (the same u-form arithmetic, ``_transformed`` and
``_steps`` of ``metarl.nets.gru``), so the per-time-step cost (five in-place ops forward, two backward)
is paid once for all seeds instead of once per seed. What changes against the single-seed kernel:

* groups are seed-major (group ``n * E + e`` is GRU e of seed n), so that the GRUs of one seed that read
  the same input are adjacent: the input projection of a run of such GRUs is one batched matmul over
  (time step, seed), with the bias folded in as a column of ones;
* the backward runs once per GRU over all its seeds at once (the groups ``e::E``, a strided view: no
  copy), with batched matmuls where the single-seed kernel has plain ones.

Seed n's result and gradients are those of the single-seed kernel on seed n's weights and input, up to
fp32 rounding (``tests/test_seed_batched.py``); no operation mixes seeds. Measured in BENCHMARKS.md,
"Seed-batched update": on the 2-core CPU at MQL's sizes (batch 256) it is no faster than the seeds'
single-seed kernels one after another (its per-step work is per element, and a step's working set
grows N-fold); the fewer, larger ops are meant for a GPU and for small batches (acting).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from metarl.nets.gru import _one_thread, _steps, _transformed

__all__ = ["stacked_gru"]


def _project(xs: Sequence[Tensor], w_ext: Tensor, b_ext: Tensor, n_e: int) -> Tensor:
    """gi[t, n E + e] = W_ext[n E + e] @ xs[e][n, :, t, :]^T + b_ext[n E + e]: ``[T, N E, 4Z, B]``.
    One batched matmul over (t, n) per run of adjacent GRUs reading the same input."""
    n, b, t_len, d = xs[0].shape
    z4 = w_ext.shape[1]
    gi = xs[0].new_empty(t_len, n, n_e * z4, b)
    w_aug = torch.cat([w_ext, b_ext.unsqueeze(2)], 2).view(n, n_e * z4, d + 1)
    e0 = 0
    while e0 < n_e:
        e1 = e0 + 1
        while e1 < n_e and xs[e1] is xs[e0]:
            e1 += 1
        k = (e1 - e0) * z4
        x_aug = xs[e0].new_empty(t_len, n, d + 1, b)  # [x; 1]^T per (t, seed)
        x_aug[:, :, :d].copy_(xs[e0].permute(2, 0, 3, 1))
        x_aug[:, :, d].fill_(1.0)
        w = w_aug[:, e0 * z4:e1 * z4].expand(t_len, n, k, d + 1).reshape(t_len * n, k, d + 1)
        torch.bmm(w, x_aug.view(t_len * n, d + 1, b), out=gi[:, :, e0 * z4:e1 * z4].view(t_len * n, k, b))
        e0 = e1
    return gi.view(t_len, n * n_e, z4, b)


def _stacked_weights(weights: Sequence[Tensor], n_e: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-GRU ``[N, ...]`` parameters (4 per GRU) -> seed-major ``[N E, ...]`` stacks."""
    out = []
    for i in range(4):
        w = torch.stack(weights[i::4], 1)  # [N, E, ...]
        out.append(w.view(w.shape[0] * n_e, *w.shape[2:]))
    return out[0], out[1], out[2], out[3]


def _forward(xs: Sequence[Tensor], weights: Sequence[Tensor]) -> tuple[Tensor, ...]:
    n_e = len(xs)
    w_ih, w_hh, b_ih, b_hh = _stacked_weights(weights, n_e)
    wt, w_ext, b_ext = _transformed(w_ih, w_hh, b_ih, b_hh)
    gi = _project(xs, w_ext, b_ext, n_e)
    u, a, s = _steps(gi, wt)
    n, b, t_len = xs[0].shape[0], xs[0].shape[1], xs[0].shape[2]
    h = (u[t_len] * 2 - 1).view(n, n_e, -1, b).permute(1, 0, 3, 2)  # [E, N, B, Z]
    return h, wt, u, a, s


class _StackedGRU(torch.autograd.Function):
    """E GRUs stacked over N seeds, GRU e over xs[e] ``[N, B, T, D]``; gradients for the GRUs whose
    weights require them."""

    @staticmethod
    def forward(ctx, n_e: int, *args: Tensor) -> Tensor:  # type: ignore[override]
        xs, weights = args[:n_e], args[n_e:]
        h, wt, u, a, s = _forward(xs, weights)
        ctx.n_e = n_e
        ctx.save_for_backward(wt, u, a, s, *xs)
        return h

    @staticmethod
    def backward(ctx, dh: Tensor):  # type: ignore[override]
        wt, u, a, s, *xs = ctx.saved_tensors
        n_e = ctx.n_e
        if any(ctx.needs_input_grad[1:1 + n_e]):
            raise NotImplementedError("stacked_gru: gradients w.r.t. the input sequences are not implemented")
        grads: list[Tensor | None] = [None] * (4 * n_e)
        first = 1 + n_e
        for e in range(n_e):
            if any(ctx.needs_input_grad[first + 4 * e: first + 4 * e + 4]):
                grads[4 * e: 4 * e + 4] = _groups_backward(
                    xs[e], wt[e::n_e], u[:, e::n_e], a[:, e::n_e], s[:, e::n_e], dh[e]
                )
        return (None, *([None] * n_e), *grads)


def _groups_backward(x: Tensor, wt: Tensor, u_all: Tensor, a: Tensor, s: Tensor, dh: Tensor) -> list[Tensor]:
    """Gradients of G groups' (w_ih, w_hh, b_ih, b_hh), each ``[G, ...]``, from dL/dh_T ``[G, B, Z]``:
    ``metarl.nets.gru._group_backward`` with a leading group dimension. ``x`` ``[G, B, T, D]``, ``wt``
    ``[G, 3Z, Z]``, ``u_all`` ``[T + 1, G, Z, B]``, ``a`` ``[T, G, 3Z, B]``, ``s`` ``[T, G, Z, B]``."""
    t_len, g_n, z3, b = a.shape
    z = z3 // 3
    # Features-major views [G, Z, T, B] of what the forward saved ([T, G, Z, B]).
    a = a.permute(1, 2, 0, 3)
    r, zg, q = a[:, :z], a[:, z:2 * z], a[:, 2 * z:]
    s, u = s.permute(1, 2, 0, 3), u_all[:t_len].permute(1, 2, 0, 3)
    # dL/d[g_n; p_r; p_z; q; u] at step t = du_{t+1} * C[:, :, :, t], blocks on dim 1: [G, 5, Z, T, B]
    c = a.new_empty(g_n, 5, z, t_len, b)
    cs, cr, cz, cq, cid = c.unbind(1)
    one_m_z = 1 - zg
    torch.mul(one_m_z * s, 1 - s, out=cs)
    torch.mul(cs, r, out=cq)
    torch.mul(cq, q * (1 - r), out=cr)
    torch.mul((u - s) * zg, one_m_z, out=cz)
    cid.copy_(zg)
    # du_t = [Wt^T, I] @ (du_{t+1} * C_t)[p_r, p_z, q, u blocks]
    eye = torch.eye(z, dtype=wt.dtype, device=wt.device).expand(g_n, z, z)
    w_back = torch.cat([wt.transpose(1, 2), eye], 2)  # [G, Z, 4Z]
    d = a.new_empty(g_n, 5, z, t_len, b)
    d_l, c_l = d.unbind(3), c.unbind(3)
    dtail_l = d[:, 1:].reshape(g_n, 4 * z, t_len, b).unbind(2)
    du = dh.transpose(1, 2).mul(2)  # dL/du_T = 2 dL/dh_T: [G, Z, B]
    with _one_thread(du):
        for t in range(t_len - 1, -1, -1):
            torch.mul(du.unsqueeze(1), c_l[t], out=d_l[t])
            if t:
                du = torch.bmm(w_back, dtail_l[t])
    dgi = d[:, :4].reshape(g_n, 4 * z, t_len * b)  # dL/dgi, blocks [g_n; c_r; c_z; c_q], columns (t, b)
    # dWt = sum over (t, b) of dA u^T; u gets zero rows up to a multiple of 16 (see gru.py).
    u_pad = a.new_zeros(g_n, -(-z // 16) * 16, t_len, b)
    u_pad[:, :z] = u
    dwt = torch.bmm(dgi[:, z:], u_pad.view(g_n, -1, t_len * b).transpose(1, 2))[:, :, :z]
    dw_ext = torch.bmm(dgi[:, :3 * z], x.transpose(1, 2).reshape(g_n, t_len * b, -1))  # [G, 3Z, D]
    db_ext = dgi.sum(2)  # [G, 4Z]
    # back to nn.GRU's parameters (gate order r, z, n); see gru._transformed
    dw_ih = torch.cat([dw_ext[:, z:3 * z], 2 * dw_ext[:, :z]], 1)
    db_ih = torch.cat([db_ext[:, z:3 * z], 2 * db_ext[:, :z]], 1)
    db_hh = db_ext[:, z:].clone()
    db_hh[:, 2 * z:] *= 2
    dw_hh = dwt * 2
    dw_hh[:, 2 * z:] *= 2
    dw_hh -= db_hh.unsqueeze(2)
    return [dw_ih, dw_hh, db_ih, db_hh]


def stacked_gru(xs: Sequence[Tensor], weights: Sequence[Sequence[Tensor]]) -> Tensor:
    """Final hidden states ``[E, N, B, Z]`` of E GRUs stacked over N seeds, from a zero state: GRU e of
    seed n over ``xs[e][n]`` (inputs ``[N, B, T, D]``; GRUs reading the same tensor object are
    projected together). ``weights[e]`` is GRU e's ``(w_ih [N, 3Z, D], w_hh [N, 3Z, Z], b_ih [N, 3Z],
    b_hh [N, 3Z])`` in ``nn.GRU``'s gate order. ``out[e, n]`` equals ``nn.GRU`` with seed n's weights
    run over ``xs[e][n]`` (``h_n[-1]``).

    Gradients flow to every weight that requires one (none to the inputs).
    """
    xs = list(xs)
    if len(xs) != len(weights) or not xs:
        raise ValueError(f"stacked_gru: one input per GRU, got {len(xs)} inputs for {len(weights)} GRUs")
    shape = xs[0].shape
    if len(shape) != 4 or shape[2] == 0 or any(t.shape != shape for t in xs):
        raise ValueError(f"stacked_gru: inputs must share one shape [N, B, T, D] with T >= 1, "
                         f"got {[tuple(t.shape) for t in xs]}")
    flat = [w for ws in weights for w in ws]
    n = shape[0]
    if any(w.shape[0] != n for w in flat):
        raise ValueError(f"stacked_gru: every weight must be stacked over the {n} seeds of the inputs, "
                         f"got {[tuple(w.shape) for w in flat]}")
    if torch.is_grad_enabled() and any(w.requires_grad for w in flat):
        return _StackedGRU.apply(len(xs), *xs, *flat)
    with _one_thread(xs[0]):
        return _forward(xs, flat)[0]
