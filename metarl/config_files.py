"""Finding experiment configs: ``--config ant_fb.yaml`` (a bare name, from any folder) or a path."""

from __future__ import annotations

import os
from pathlib import Path

from metarl.cli_errors import ConfigError


def _config_dir() -> Path:
    """The repository's top-level configs/ in a source checkout; in an installed wheel, the same
    files packaged as ``metarl.configs`` (pyproject.toml maps the folder there)."""
    checkout = Path(__file__).resolve().parent.parent / "configs"
    if checkout.is_dir():
        return checkout
    return Path(__file__).resolve().parent / "configs"


#: The shipped configs.
CONFIG_DIR = _config_dir()


class ConfigNotFoundError(ConfigError, FileNotFoundError):
    """A --config that is neither a file nor a shipped config."""


#: Sub-folders of shipped overlays, named with their folder: ``--config table1_printed/cheetah_fb.yaml``.
OVERLAY_DIRS = ("table1_printed",)


def shipped_configs() -> list[str]:
    """The experiment configs and overlays (configs/sweeps/ holds W&B sweep definitions, not configs)."""
    if not CONFIG_DIR.is_dir():
        return []
    names = sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))
    for sub in OVERLAY_DIRS:
        names += sorted(f"{sub}/{p.name}" for p in (CONFIG_DIR / sub).glob("*.yaml"))
    return names


def resolve_config(name: str) -> str:
    """A path that exists, else the shipped config of that name (".yaml" optional; an overlay in a
    sub-folder is named with its folder, e.g. "table1_printed/cheetah_fb.yaml")."""
    if not name.strip():
        raise ConfigNotFoundError("--config is empty: give a YAML file or a shipped config's name; shipped configs: "
                                  + ", ".join(shipped_configs()))
    if os.path.isdir(name):
        raise ConfigError(f"config {name!r} is a folder, not a YAML file; shipped configs: "
                          + ", ".join(shipped_configs()))
    if os.path.exists(name):
        check_config_file(name)
        return name
    # "configs/ant_fb.yaml" typed outside the repository means the shipped one too.
    for candidate in (name, f"{name}.yaml"):
        for path in (CONFIG_DIR / candidate, CONFIG_DIR.parent / candidate):
            if path.is_file():
                check_config_file(str(path))
                return str(path)
    raise ConfigNotFoundError(
        f"config {name!r} not found: it is not a file, nor a shipped config; shipped configs: "
        + ", ".join(shipped_configs())
    )


def method_of(config_path: str) -> str | None:
    """The method a config file selects (``model.class_path: metarl.methods.<method>.X``), if any."""
    import yaml

    try:
        data = yaml.safe_load(Path(config_path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # reported when the CLI parses the file
    class_path = ((data or {}).get("model") or {}).get("class_path") if isinstance(data, dict) else None
    if not isinstance(class_path, str):
        return None
    parts = class_path.split(".")
    if parts[:2] == ["metarl", "methods"] and len(parts) > 3:
        return parts[2]
    return "mql" if class_path == "metarl.training.MetaTrainModule" else None  # checkpoints before methods/


def method_part(overlay: str, method: str | None) -> str | None:
    """An overlay's method-specific part: ``debug.yaml`` works on every method's configs because its
    keys that only one method has live in ``debug/<method>.yaml``, added right after it."""
    path = Path(overlay)
    part = path.parent / path.stem / f"{method}.yaml"
    return str(part) if method and part.is_file() else None


def check_config_file(path: str) -> None:
    """A config file that jsonargparse would report without its name (or with a traceback): not
    readable, empty, not text, not YAML, or not a mapping of sections."""
    import yaml

    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"config {path} cannot be read: {err.strerror or err}") from err
    if not raw.strip():
        raise ConfigError(f"config {path} is empty: a config is a YAML mapping of sections (trainer:, model:, ...)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"config {path} is not a text (UTF-8) YAML file: byte {err.start} is {raw[err.start]:#04x}"
                          ) from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        context = getattr(err, "context", None)
        raise ConfigError(f"config {path} is not valid YAML{where}: {problem}"
                          + (f" ({context})" if context else "")) from err
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a YAML mapping of sections (trainer:, model:, ...), "
                          f"got a {type(data).__name__}")


def resolve_argv(argv: list[str]) -> list[str]:
    """Replace the value of every --config by the file it names (plus an overlay's method part)."""
    out: list[str] = []
    method: str | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if (arg == "--config" and i + 1 < len(argv)) or arg.startswith("--config="):
            value = argv[i + 1] if arg == "--config" else arg.split("=", 1)[1]
            path = resolve_config(value)
            method = method_of(path) or method
            out += ["--config", path]
            part = method_part(path, method)
            if part:
                out += ["--config", part]
            i += 2 if arg == "--config" else 1
            continue
        out.append(arg)
        i += 1
    return out
