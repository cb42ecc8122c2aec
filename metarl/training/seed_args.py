"""``--seeds`` on the command line (training/seeds.py runs them): reading it, checking a checkpoint's
seeds against it, and building one method module per seed through the CLI's own parser."""

from __future__ import annotations

import sys
from typing import Any

from metarl.cli_errors import ConfigError
from metarl.training.resume import CheckpointError
from metarl.training.seeds import MultiSeed, parse_seeds


def read_seeds(cfg: Any) -> list[int] | None:
    """The seeds of a multi-seed run, or None. One seed is a plain run with ``model.init_args.seed`` set
    to it (``cfg`` is changed in place)."""
    try:
        seeds = parse_seeds(cfg.get("seeds"))
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if seeds is not None:
        cfg["seeds"] = seeds  # the saved config.yaml lists them, however they were written
    if seeds is not None and len(seeds) == 1:
        cfg["model.init_args.seed"] = seeds[0]
        return None
    return seeds


def _listed(seeds: list[int]) -> str:
    return ",".join(map(str, seeds))


def check_checkpoint_seeds(cfg: Any, sub: str, seeds: list[int] | None, ckpt_path: str, ckpt: dict[str, Any],
                           hparams: dict[str, Any], config_args: dict[str, Any]) -> list[int] | None:
    """The run's seeds once the checkpoint is known: they must be the checkpoint's (``fit``), or are
    taken from it (``test`` / ``validate`` without ``--seeds``). CheckpointError (one line) otherwise.
    ``config_args`` (the model's init args from the config) get the checkpoint's ``seed`` for a
    multi-seed checkpoint: the config's own ``seed`` does not apply to it."""
    saved = ckpt["metarl"].get("seeds")
    if saved is not None and seeds is None and sub != "fit" and cfg.get("seeds") is None:
        seeds = list(saved)
        cfg["seeds"] = list(saved)
        print(f"metarl: checkpoint {ckpt_path} holds seeds {_listed(saved)}: {sub} runs all of them", file=sys.stderr)
    if saved is not None and seeds is not None:
        config_args["seed"] = hparams.get("seed", config_args.get("seed"))  # the first seed's, as saved
    if saved == seeds:
        return seeds
    held = f"seeds {_listed(saved)}" if saved else f"a single-seed run (seed {hparams.get('seed')})"
    wanted = f"seeds {_listed(seeds)}" if seeds else f"a single seed ({config_args.get('seed')})"
    hint = f"; add --seeds {_listed(saved)}" if saved else "; leave out --seeds"
    raise CheckpointError(f"checkpoint {ckpt_path} holds {held}, but this {sub} asks for {wanted}{hint}")


def instantiate_seeds(cli: Any, seeds: list[int]) -> None:
    """``LightningCLI.instantiate_classes`` for a multi-seed run: one method module per seed, each
    built as a single-seed run with ``model.init_args.seed=k`` (its saved hyperparameters say seed k),
    in a :class:`MultiSeed`; the rest (trainer, callbacks, loggers) once, from the first seed's config."""
    cfg = cli.config[cli.subcommand]
    members, first_init = [], None
    for k in seeds:
        cfg["model.init_args.seed"] = k
        if hasattr(cli, "config_dump"):
            del cli.config_dump  # Lightning dumps the hyperparameters from the config: once per seed
        init = cli.parser.instantiate_classes(cli.config)
        members.append(cli._get(init, "model"))
        first_init = first_init or init
    cfg["model.init_args.seed"] = seeds[0]
    if hasattr(cli, "config_dump"):
        del cli.config_dump
    cli.config_init = first_init
    cli.datamodule = cli._get(first_init, "data")
    cli.model = MultiSeed(members)
    cli._add_configure_optimizers_method_to_model(cli.subcommand)
    cli.trainer = cli.instantiate_trainer()
