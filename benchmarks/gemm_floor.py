"""The matrix-multiply floor of an update: what its GEMMs alone cost on this machine.

Every matrix multiply (``mm``, ``addmm``, ``bmm``, ``baddbmm``) that one update launches is
recorded with its shapes by the profiler, then each distinct shape is timed on its own, outside
the update, and the times are summed with their counts. Nothing else an update does (the GRU's
elementwise steps, activations, losses, Adam, Polyak averaging, autograd's bookkeeping) is in
the sum, so no implementation of the same update can run faster than this floor at the same
thread count: it bounds the reachable updates/s from above, measured, not estimated.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

GEMMS: dict[str, Callable[..., torch.Tensor]] = {
    "aten::mm": torch.mm, "aten::addmm": torch.addmm, "aten::bmm": torch.bmm, "aten::baddbmm": torch.baddbmm,
}
# Operand counts: the profiler also lists the scalar arguments (beta, alpha) as empty shapes.
N_OPERANDS = {"aten::mm": 2, "aten::addmm": 3, "aten::bmm": 2, "aten::baddbmm": 3}


def record_gemms(step: Callable[[], None], n_updates: int) -> Counter[tuple[str, tuple[tuple[int, ...], ...]]]:
    """The GEMMs ``step()`` launches (``step`` runs ``n_updates`` updates), by op and operand shapes."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    calls: Counter[tuple[str, tuple[tuple[int, ...], ...]]] = Counter()
    for event in prof.events():
        if event.name in GEMMS:
            shapes = tuple(tuple(s) for s in event.input_shapes[: N_OPERANDS[event.name]])
            calls[(event.name, shapes)] += 1
    if not calls:
        raise RuntimeError("the profiler recorded no matrix multiply: nothing to time")
    return calls


def time_gemm(name: str, shapes: tuple[tuple[int, ...], ...], repeats: int) -> float:
    """Seconds per call of one GEMM at these operand shapes (median of 5 blocks of ``repeats``)."""
    operands = [torch.randn(*s) for s in shapes]
    fn = GEMMS[name]
    for _ in range(10):
        fn(*operands)
    blocks = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn(*operands)
        blocks.append((time.perf_counter() - t0) / repeats)
    return sorted(blocks)[2]


def gemm_floor(step: Callable[[], None], n_updates: int, repeats: int = 50) -> dict[str, Any]:
    """Seconds per update spent in GEMMs alone, with the table of shapes behind the sum."""
    calls = record_gemms(step, n_updates)
    rows = []
    for (name, shapes), count in calls.most_common():
        seconds = time_gemm(name, shapes, repeats)
        rows.append({"op": name.removeprefix("aten::"), "shapes": [list(s) for s in shapes],
                     "calls_per_update": count / n_updates, "us_per_call": seconds * 1e6,
                     "us_per_update": seconds * 1e6 * count / n_updates})
    seconds_per_update = sum(r["us_per_update"] for r in rows) / 1e6
    flops = 0.0
    for (_, shapes), count in calls.items():
        a, b = shapes[-2], shapes[-1]
        batch = a[0] if len(a) == 3 else 1
        flops += 2.0 * batch * a[-2] * a[-1] * b[-1] * count
    return {
        "seconds_per_update": seconds_per_update, "updates_per_s_bound": 1.0 / seconds_per_update,
        "gemm_gflop_per_update": flops / n_updates / 1e9,
        "gemm_calls_per_update": sum(calls.values()) / n_updates, "rows": rows,
    }
