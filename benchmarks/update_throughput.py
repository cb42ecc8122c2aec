"""Update throughput: metarl's TD3+GRU update against a plain-PyTorch loop doing identical work.

The Ant-FB config's update (batch 256, GRU over H = 20 steps with hidden 15, 300-300 actor and twin
critics, policy delay 2, Polyak averaging, Adam), four GRUs (actor, critic and both targets):

- ``naive``: the straightforward plain-PyTorch TD3 step, written here without metarl code:
  ``nn.GRU`` context encoders, separate modules, default ``torch.optim.Adam``, the TD3 reference
  Polyak loop. It does what metarl's update does: the target actor and critic on the next
  history, the critic step, and every second update the actor step with the critic frozen and its
  context re-encoded under ``no_grad`` after the critic step, then Polyak on all four target nets.
- ``metarl``: ``MQLMetaTrain.td3_update`` of the module that ``python -m metarl fit --config
  ant_fb.yaml`` builds, with its own optimizers (``make_optimizers``): the default fast path.
- ablations of metarl, to show what each part of the fast path buys (same code, switches off):
  ``metarl_fast_off`` (``encoder.fast: false`` and a plain ``torch.optim.Adam``: the update as it
  was before the fast path) and ``metarl_plain_adam`` (fused GRU path, plain Adam).

All loops train on the same pre-drawn random batches (the shapes and keys of a replay sample) and
the same target-smoothing noise; replay sampling is excluded from every loop. They run in rounds,
interleaved (the order rotates each round), so a shared machine's load hits them alike; the
per-round ratio metarl / naive is the result, with its spread over the rounds. ``--threads 2 1``
measures at each torch intra-op thread count in turn (all loops alike). At each thread count the
GEMM floor of metarl's update is measured too (``benchmarks/gemm_floor.py``): the time its matrix
multiplies alone take, an upper bound on the updates/s of any implementation of the same update.

    python benchmarks/update_throughput.py [--rounds 7] [--updates 200] [--threads N [N ...]] [--no-ablations]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable from a checkout

from benchmarks.common import build_module, provenance, stamp  # noqa: E402
from benchmarks.gemm_floor import gemm_floor  # noqa: E402
from metarl import keys  # noqa: E402

CONFIG = "ant_fb"
N_BATCHES = 8  # a pool of distinct batches, cycled


# ------------------------------------------------------------------------------------ naive loop
class PlainEncoder(nn.Module):
    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(in_dim, hidden, batch_first=True)

    def forward(self, history: Tensor) -> Tensor:
        return self.gru(history)[1][-1]


def plain_mlp(in_dim: int, hidden: list[int], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), nn.ReLU()]
        in_dim = h
    return nn.Sequential(*layers, nn.Linear(in_dim, out_dim))


class PlainActor(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, z_dim: int, hidden: list[int]) -> None:
        super().__init__()
        self.net = plain_mlp(obs_dim + z_dim, hidden, act_dim)

    def forward(self, obs: Tensor, z: Tensor) -> Tensor:
        return torch.tanh(self.net(torch.cat([obs, z], -1)))


class PlainCritic(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, z_dim: int, hidden: list[int]) -> None:
        super().__init__()
        self.q1 = plain_mlp(obs_dim + act_dim + z_dim, hidden, 1)
        self.q2 = plain_mlp(obs_dim + act_dim + z_dim, hidden, 1)

    def forward(self, obs: Tensor, action: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.cat([obs, action, z], -1)
        return self.q1(x), self.q2(x)


class PlainTD3:
    """The straightforward TD3+GRU step of MQL in plain PyTorch."""

    def __init__(self, sizes: dict[str, Any]) -> None:
        o, a, z, hid = sizes["obs_dim"], sizes["act_dim"], sizes["z_dim"], sizes["hidden"]
        self.s = sizes
        self.actor_enc, self.critic_enc = PlainEncoder(a + 1 + o, z), PlainEncoder(a + 1 + o, z)
        self.actor, self.critic = PlainActor(o, a, z, hid), PlainCritic(o, a, z, hid)
        self.actor_enc_t, self.critic_enc_t, self.actor_t, self.critic_t = (
            copy.deepcopy(m).requires_grad_(False) for m in (self.actor_enc, self.critic_enc, self.actor, self.critic)
        )
        critic_params = [*self.critic.parameters(), *self.critic_enc.parameters()]
        actor_params = [*self.actor.parameters(), *self.actor_enc.parameters()]
        self.critic_opt = torch.optim.Adam(critic_params, lr=sizes["critic_lr"])
        self.actor_opt = torch.optim.Adam(actor_params, lr=sizes["actor_lr"])
        self.pairs = [(self.actor_t, self.actor), (self.critic_t, self.critic),
                      (self.actor_enc_t, self.actor_enc), (self.critic_enc_t, self.critic_enc)]

    def update(self, b: dict[str, Tensor], i: int) -> None:
        s = self.s
        with torch.no_grad():
            next_action = self.actor_t(b["next_obs"], self.actor_enc_t(b["next_hist"]))
            noise = (b["noise"] * s["policy_noise"]).clamp(-s["noise_clip"], s["noise_clip"])
            next_action = (next_action + noise).clamp(-1.0, 1.0)
            tq1, tq2 = self.critic_t(b["next_obs"], next_action, self.critic_enc_t(b["next_hist"]))
            y = b["reward"] + s["gamma"] * (1.0 - b["terminated"]) * torch.min(tq1, tq2)
        q1, q2 = self.critic(b["obs"], b["action"], self.critic_enc(b["hist"]))
        critic_loss = ((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean()
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        if i % s["policy_freq"] == 0:
            self.critic.requires_grad_(False)
            self.critic_enc.requires_grad_(False)
            z_actor = self.actor_enc(b["hist"])
            with torch.no_grad():
                z_critic = self.critic_enc(b["hist"])
            x = torch.cat([b["obs"], self.actor(b["obs"], z_actor), z_critic], -1)
            actor_loss = -self.critic.q1(x).mean()
            self.actor_opt.zero_grad()
            actor_loss.backward()
            self.actor_opt.step()
            self.critic.requires_grad_(True)
            self.critic_enc.requires_grad_(True)
            with torch.no_grad():
                for target, online in self.pairs:
                    for tp, p in zip(target.parameters(), online.parameters(), strict=True):
                        tp.data.copy_(s["tau"] * p.data + (1 - s["tau"]) * tp.data)


# ------------------------------------------------------------------------------------ metarl
class MetarlLoop:
    def __init__(self, fast: bool, fused_adam: bool) -> None:
        overrides = [
            f"--model.init_args.encoder.init_args.fast={str(fast).lower()}",
            "--model.init_args.collect.replay_size=10000",  # the replay is not used here
        ]
        argv, sys.argv = sys.argv, sys.argv[:1]  # the CLI parses only the overrides, not this script's flags
        try:
            self.module = build_module(CONFIG, *overrides)
        finally:
            sys.argv = argv
        if fused_adam:
            self.critic_opt, self.actor_opt = self.module.make_optimizers()
        else:
            m = self.module
            self.critic_opt = torch.optim.Adam(m._critic_side_params(), lr=m.critic.lr)
            self.actor_opt = torch.optim.Adam(m._actor_side_params(), lr=m.actor.lr)

    def update(self, b: TensorDict, i: int) -> None:
        m = self.module
        m.td3_update(b, i, self.critic_opt, self.actor_opt, m.td3, b["noise"])


# ------------------------------------------------------------------------------------ harness
def widths(mlp: nn.Sequential) -> list[int]:
    return [layer.out_features for layer in mlp if isinstance(layer, nn.Linear)][:-1]


def sizes_of(module: Any) -> dict[str, Any]:
    td3 = module.td3
    return {
        "obs_dim": module.obs_dim, "act_dim": module.act_dim, "z_dim": module.critic_encoder.hidden_size,
        "history_len": module.history_len, "batch_size": module.batch_size,
        "hidden": widths(module.critic.q1), "actor_hidden": widths(module.actor.net),
        "critic_lr": module.critic.lr, "actor_lr": module.actor.lr, "gamma": td3.gamma, "tau": td3.tau,
        "policy_noise": td3.policy_noise, "noise_clip": td3.noise_clip, "policy_freq": td3.policy_freq,
        "shared_encoder": module.shared_encoder,
    }


def make_batches(s: dict[str, Any], n: int, seed: int) -> list[TensorDict]:
    g = torch.Generator().manual_seed(seed)
    b, h, o, a = s["batch_size"], s["history_len"], s["obs_dim"], s["act_dim"]

    def rand(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g)

    out = []
    for _ in range(n):
        out.append(TensorDict({
            keys.OBS: rand(b, o), keys.ACTION: rand(b, a).clamp(-1, 1), keys.HISTORY: rand(b, h, a + 1 + o),
            "noise": rand(b, a),
            "next": {"observation": rand(b, o), "reward": rand(b, 1),
                     "terminated": torch.rand(b, 1, generator=g) < 0.01, "history": rand(b, h, a + 1 + o)},
        }, batch_size=[b]))
    return out


def plain_view(td: TensorDict) -> dict[str, Tensor]:
    return {"obs": td[keys.OBS], "action": td[keys.ACTION], "hist": td[keys.HISTORY], "next_obs": td[keys.NEXT_OBS],
            "next_hist": td[keys.NEXT_HISTORY], "reward": td[keys.REWARD],
            "terminated": td[keys.TERMINATED].float(), "noise": td["noise"]}


def timed(loop: Any, batches: list[Any], start: int, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(start, start + n):
        loop.update(batches[i % len(batches)], i)
    return n / (time.perf_counter() - t0)


def measure(loops: dict[str, Any], inputs: dict[str, Any], rounds: int, updates: int, warmup: int) -> dict[str, Any]:
    names = list(loops)
    for name in names:
        timed(loops[name], inputs[name], 0, warmup)
    rates: dict[str, list[float]] = {name: [] for name in names}
    step = warmup
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            rates[name].append(timed(loops[name], inputs[name], step, updates))
        step += updates
        print(f"  round {r + 1}/{rounds}: " + "  ".join(f"{n} {rates[n][-1]:.1f}/s" for n in names), flush=True)

    def summary(xs: list[float]) -> dict[str, float]:
        return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}

    ratios = {name: [m / n for m, n in zip(rates[name], rates["naive"], strict=True)]
              for name in names if name != "naive"}
    return {
        "updates_per_s": {name: {"rounds": rates[name], **summary(rates[name])} for name in names},
        "ratio_to_naive": {name: {"rounds": ratios[name], **summary(ratios[name])} for name in ratios},
    }


def floor_of(loop: MetarlLoop, batches: list[TensorDict], n_updates: int) -> dict[str, Any]:
    """metarl's update with everything but its GEMMs free: an upper bound on any implementation
    of the same update at this thread count (``benchmarks/gemm_floor.py``). ``n_updates`` covers one
    policy-delay cycle, so the actor step is counted at its real frequency."""
    def step() -> None:
        for i in range(n_updates):
            loop.update(batches[i % len(batches)], i)

    return gemm_floor(step, n_updates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--updates", type=int, default=200, help="updates per loop per round")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="torch intra-op thread counts to measure, in turn (default: torch's default only)")
    parser.add_argument("--no-ablations", action="store_true", help="only naive and metarl")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "update_throughput.json")
    args = parser.parse_args()
    for name in ("rounds", "updates"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    default_threads = torch.get_num_threads()
    threads = args.threads or [default_threads]
    if any(n < 1 for n in threads):
        parser.error(f"--threads must be >= 1, got {threads}")

    load_before = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    torch.manual_seed(0)
    loops: dict[str, Any] = {"metarl": MetarlLoop(fast=True, fused_adam=True)}
    if not args.no_ablations:
        loops["metarl_plain_adam"] = MetarlLoop(fast=True, fused_adam=False)
        loops["metarl_fast_off"] = MetarlLoop(fast=False, fused_adam=False)
    sizes = sizes_of(loops["metarl"].module)
    if sizes["actor_hidden"] != sizes["hidden"] or sizes["shared_encoder"]:
        raise SystemExit(f"the naive loop implements {CONFIG}'s layout (equal actor/critic MLPs, 4 GRUs); got {sizes}")
    torch.manual_seed(0)
    loops = {"naive": PlainTD3(sizes), **loops}
    batches = make_batches(sizes, N_BATCHES, seed=1)
    inputs = {name: [plain_view(b) for b in batches] if name == "naive" else batches for name in loops}

    by_threads = {}
    for n in threads:
        torch.set_num_threads(n)
        print(f"torch threads {n}:", flush=True)
        by_threads[str(n)] = res = measure(loops, inputs, args.rounds, args.updates, args.warmup)
        res["gemm_floor"] = floor_of(loops["metarl"], batches, sizes["policy_freq"])
    torch.set_num_threads(default_threads)

    result = {
        "benchmark": "update_throughput",
        "config": CONFIG,
        "sizes": sizes,
        "rounds": args.rounds, "updates_per_round": args.updates, "warmup_updates": args.warmup,
        "replay_sampling": "excluded from every loop (pre-drawn random batches with a replay sample's keys and shapes)",
        "loops": {
            "naive": "plain PyTorch: nn.GRU encoders, separate modules, default Adam, TD3-reference Polyak loop",
            "metarl": "MQLMetaTrain.td3_update with make_optimizers(): fused GRU, batched encoders, fused Adam",
            "metarl_plain_adam": "as metarl with torch.optim.Adam (no fused kernel)",
            "metarl_fast_off": "encoder.fast=false (nn.GRU, one call per encoder) and torch.optim.Adam",
        },
        "torch_default_threads": default_threads,
        "load_avg_1_5_15min_before": load_before,
        "by_threads": by_threads,
        "gpu": "not measured: no GPU was lent to this task",
        **provenance(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out.with_suffix(".png"))
    for n, res in by_threads.items():
        print(f"torch threads {n}:")
        for name, r in res["updates_per_s"].items():
            line = f"  {name:20s} {r['median']:7.1f} updates/s (rounds {r['min']:.1f}-{r['max']:.1f})"
            if name in res["ratio_to_naive"]:
                rr = res["ratio_to_naive"][name]
                line += f"   x{rr['median']:.2f} naive (rounds x{rr['min']:.2f}-x{rr['max']:.2f})"
            print(line)
        floor, naive = res["gemm_floor"], res["updates_per_s"]["naive"]["median"]
        bound = floor["updates_per_s_bound"]
        print(f"  GEMM floor: {floor['seconds_per_update'] * 1e3:.2f} ms per update "
              f"({floor['gemm_gflop_per_update']:.2f} GFLOP) -> at most {bound:.0f} updates/s = "
              f"x{bound / naive:.2f} naive for any implementation")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(result["by_threads"].items())
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4), squeeze=False)
    for ax, (n, res) in zip(axes[0], panels, strict=True):
        names = list(res["updates_per_s"])
        med = [res["updates_per_s"][k]["median"] for k in names]
        lo = [m - res["updates_per_s"][k]["min"] for k, m in zip(names, med, strict=True)]
        hi = [res["updates_per_s"][k]["max"] - m for k, m in zip(names, med, strict=True)]
        ax.bar(names, med, yerr=[lo, hi], capsize=4, color=["0.6"] + ["tab:blue"] * (len(names) - 1))
        for i, k in enumerate(names):
            label = f"{med[i]:.0f}/s" + (f"\nx{res['ratio_to_naive'][k]['median']:.2f}" if k != "naive" else "")
            ax.text(i, med[i] * 0.5, label, ha="center", va="center", color="white", fontsize=9)
        bound, naive = res["gemm_floor"]["updates_per_s_bound"], res["updates_per_s"]["naive"]["median"]
        ax.axhline(bound, color="tab:red", ls="--", lw=1, label=f"GEMM floor: at most {bound:.0f}/s")
        ax.axhline(3 * naive, color="k", ls=":", lw=1, label=f"3x naive = {3 * naive:.0f}/s")
        ax.legend(fontsize=7, loc="upper left")
        ax.set_ylabel("updates / s (median of rounds; bars: min-max)")
        ax.set_title(f"torch threads {n}", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    s = result["sizes"]
    fig.suptitle(f"TD3+GRU update, {result['config']}: batch {s['batch_size']}, H {s['history_len']}, "
                 f"GRU hidden {s['z_dim']}, MLPs {'-'.join(map(str, s['hidden']))}, 4 GRUs; "
                 f"{result['rounds']} rounds x {result['updates_per_round']} updates", fontsize=9)
    fig.text(0.01, 0.01, stamp(result) + f", load avg {result['machine'].get('load_avg_1_5_15min')}", fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
