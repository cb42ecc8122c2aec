"""The fused GRU of ``metarl.nets.gru`` with seeds as a batch dimension.

N independent seeds each have E GRUs (MQL: the actor's and critic's encoders and their targets); each
GRU's parameters are stacked over the seeds, ``weight_ih_l0`` ``[N, 3Z, D]`` and so on. One call runs
all N x E GRUs as the groups of one fused recurrence (the u-form arithmetic of ``metarl.nets.gru``:
its ``_transformed`` weights, its five in-place ops per step), so the per-time-step cost (five in-place ops forward, two backward)
is paid once for all seeds instead of once per seed. What changes against the single-seed kernel:

* groups are seed-major (group ``n * E + e`` is GRU e of seed n), so that the GRUs of one seed that read
  the same input are adjacent: their input projection is one ``[k, D] @ [D, T B]`` product per seed,
  batched over the seeds, and one pass that adds the bias and puts time outside (instead of T small
  ``[k, D] @ [D, B]`` products, which run far below MKL's rate at MQL's D: BENCHMARKS.md);
* the backward runs once per GRU over all its seeds at once (the groups ``e::E``, a strided view: no
  copy), with batched matmuls where the single-seed kernel has plain ones, and its per-step tensors
  time-major, so that each step reads and writes contiguous memory.

Seed n's result and gradients are those of the single-seed kernel on seed n's weights and input, up to
fp32 rounding (``tests/test_seed_batched.py``); no operation mixes seeds. Measured in BENCHMARKS.md,
"Seed-batched update".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from metarl.nets.gru import _one_thread, _steps, _transformed

__all__ = ["stacked_gru"]


def _time_major(x: Tensor) -> Tensor:
    """``[N, B, T, D]`` -> ``[N, T B, D]``, rows in (t, b) order: the projection's operand and the
    backward's (saved once)."""
    n, b, t_len, d = x.shape
    return x.transpose(1, 2).reshape(n, t_len * b, d)


def _project(x_tb: Sequence[Tensor], w_ext: Tensor, b_ext: Tensor, n_e: int, b: int) -> Tensor:
    """gi[t, n E + e] = W_ext[n E + e] @ xs[e][n, :, t, :]^T + b_ext[n E + e]: ``[T, N E, 4Z, B]``.

    Per run of adjacent GRUs reading the same input, one ``[k, D] @ [D, T B]`` product per seed
    (batched over the seeds), then one pass that adds the bias and moves time outside. The
    single-seed kernel's T small ``[k, D] @ [D, B]`` products instead run far below MKL's rate at
    MQL's D (BENCHMARKS.md, "Seed-batched update")."""
    n, tb, d = x_tb[0].shape
    t_len, z4 = tb // b, w_ext.shape[1]
    gi = x_tb[0].new_empty(t_len, n, n_e * z4, b)
    w = w_ext.view(n, n_e * z4, d)
    bias = b_ext.view(1, n, n_e * z4, 1)
    e0 = 0
    while e0 < n_e:
        e1 = e0 + 1
        while e1 < n_e and x_tb[e1] is x_tb[e0]:
            e1 += 1
        rows = slice(e0 * z4, e1 * z4)
        prod = torch.bmm(w[:, rows], x_tb[e0].transpose(1, 2))  # [N, k, T B]
        torch.add(prod.view(n, -1, t_len, b).permute(2, 0, 1, 3), bias[:, :, rows], out=gi[:, :, rows])
        e0 = e1
    return gi.view(t_len, n * n_e, z4, b)


def _stacked_weights(weights: Sequence[Tensor], n_e: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-GRU ``[N, ...]`` parameters (4 per GRU) -> seed-major ``[N E, ...]`` stacks."""
    out = []
    for i in range(4):
        w = torch.stack(weights[i::4], 1)  # [N, E, ...]
        out.append(w.view(w.shape[0] * n_e, *w.shape[2:]))
    return out[0], out[1], out[2], out[3]


def _forward(x_tb: Sequence[Tensor], weights: Sequence[Tensor], b: int) -> tuple[Tensor, ...]:
    n_e = len(x_tb)
    w_ih, w_hh, b_ih, b_hh = _stacked_weights(weights, n_e)
    wt, w_ext, b_ext = _transformed(w_ih, w_hh, b_ih, b_hh)
    gi = _project(x_tb, w_ext, b_ext, n_e, b)
    u, a, s = _steps(gi, wt)
    n = x_tb[0].shape[0]
    h = (u[-1] * 2 - 1).view(n, n_e, -1, b).permute(1, 0, 3, 2)  # [E, N, B, Z]
    return h, wt, u, a, s


class _StackedGRU(torch.autograd.Function):
    """E GRUs stacked over N seeds, GRU e over ``x_tb[e]`` (``_time_major`` of its ``[N, B, T, D]``
    input); gradients for the GRUs whose weights require them."""

    @staticmethod
    def forward(ctx, n_e: int, b: int, *args: Tensor) -> Tensor:  # type: ignore[override]
        x_tb, weights = args[:n_e], args[n_e:]
        h, wt, u, a, s = _forward(x_tb, weights, b)
        ctx.n_e = n_e
        ctx.save_for_backward(wt, u, a, s, *x_tb)
        return h

    @staticmethod
    def backward(ctx, dh: Tensor):  # type: ignore[override]
        wt, u, a, s, *x_tb = ctx.saved_tensors
        n_e = ctx.n_e
        if any(ctx.needs_input_grad[2:2 + n_e]):
            raise NotImplementedError("stacked_gru: gradients w.r.t. the input sequences are not implemented")
        grads: list[Tensor | None] = [None] * (4 * n_e)
        first = 2 + n_e
        for e in range(n_e):
            if any(ctx.needs_input_grad[first + 4 * e: first + 4 * e + 4]):
                grads[4 * e: 4 * e + 4] = _groups_backward(
                    x_tb[e], wt[e::n_e], u[:, e::n_e], a[:, e::n_e], s[:, e::n_e], dh[e]
                )
        return (None, None, *([None] * n_e), *grads)


def _groups_backward(x_tb: Tensor, wt: Tensor, u_all: Tensor, a: Tensor, s: Tensor, dh: Tensor) -> list[Tensor]:
    """Gradients of G groups' (w_ih, w_hh, b_ih, b_hh), each ``[G, ...]``, from dL/dh_T ``[G, B, Z]``:
    ``metarl.nets.gru._group_backward`` with a leading group dimension, its per-step tensors kept
    time-major (``[T, G, 5, Z, B]``: each step reads and writes one contiguous block). ``x_tb``
    ``[G, T B, D]``, ``wt`` ``[G, 3Z, Z]``, ``u_all`` ``[T + 1, G, Z, B]``, ``a`` ``[T, G, 3Z, B]``,
    ``s`` ``[T, G, Z, B]`` (group-strided views of what the forward saved)."""
    t_len, g_n, z3, b = a.shape
    z = z3 // 3
    r, zg, q = a[:, :, :z], a[:, :, z:2 * z], a[:, :, 2 * z:]
    u = u_all[:t_len]
    # dL/d[g_n; p_r; p_z; q; u] at step t = du_{t+1} * C[t], blocks on dim 2: [T, G, 5, Z, B]
    c = a.new_empty(t_len, g_n, 5, z, b)
    cs, cr, cz, cq, cid = c.unbind(2)
    one_m_z = 1 - zg
    torch.mul(one_m_z * s, 1 - s, out=cs)
    torch.mul(cs, r, out=cq)
    torch.mul(cq, q * (1 - r), out=cr)
    torch.mul((u - s) * zg, one_m_z, out=cz)
    cid.copy_(zg)
    # du_t = [Wt^T, I] @ (du_{t+1} * C_t)[p_r, p_z, q, u blocks]
    eye = torch.eye(z, dtype=wt.dtype, device=wt.device).expand(g_n, z, z)
    w_back = torch.cat([wt.transpose(1, 2), eye], 2)  # [G, Z, 4Z]
    d = torch.empty_like(c)
    d_l, c_l = d.unbind(0), c.unbind(0)
    dtail_l = d[:, :, 1:].reshape(t_len, g_n, 4 * z, b).unbind(0)
    du = dh.transpose(1, 2).mul(2)  # dL/du_T = 2 dL/dh_T: [G, Z, B]
    with _one_thread(du):
        for t in range(t_len - 1, -1, -1):
            torch.mul(du.unsqueeze(1), c_l[t], out=d_l[t])
            if t:
                du = torch.bmm(w_back, dtail_l[t])
    # dL/dgi [G, 4Z, (t, b)], blocks [g_n; c_r; c_z; c_q]: one copy to put time inside.
    dgi = d[:, :, :4].permute(1, 2, 3, 0, 4).reshape(g_n, 4 * z, t_len * b)
    # dWt = sum over (t, b) of dA u^T; u gets zero rows up to a multiple of 16 (see gru.py).
    u_pad = a.new_zeros(g_n, -(-z // 16) * 16, t_len, b)
    u_pad[:, :z] = u.permute(1, 2, 0, 3)
    dwt = torch.bmm(dgi[:, z:], u_pad.view(g_n, -1, t_len * b).transpose(1, 2))[:, :, :z]
    dw_ext = torch.bmm(dgi[:, :3 * z], x_tb)  # [G, 3Z, D]
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
    by_id: dict[int, Tensor] = {}
    x_tb = [by_id.setdefault(id(x), _time_major(x)) for x in xs]  # one copy per distinct input
    b = shape[1]
    if torch.is_grad_enabled() and any(w.requires_grad for w in flat):
        return _StackedGRU.apply(len(xs), b, *x_tb, *flat)
    with _one_thread(xs[0]):
        return _forward(x_tb, flat, b)[0]
