"""A regular (non-editable) install ships every package and the configs: ``--config ant_fb.yaml``
works from any folder there too, not only from a source checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest itself depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "metarl").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    missing = on_disk - listed
    assert not missing, f"add these packages to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy, so the checkout gets no build/ or egg-info folders.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("metarl", "configs"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, capture_output=True, text=True)
    (whl,) = out.glob("metarl-*.whl")
    return whl


def test_wheel_ships_every_config(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for config in (ROOT / "configs").rglob("*.yaml"):
        packaged = "metarl/configs/" + config.relative_to(ROOT / "configs").as_posix()
        assert packaged in names, f"{packaged} missing from {wheel.name}"


def test_bare_config_name_resolves_in_an_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import metarl, metarl.config_files as c; print(metarl.__file__); "
            "print(c.resolve_config('ant_fb.yaml')); print(c.resolve_config('configs/cheetah_fb.yaml')); "
            "print(c.resolve_config('table1_printed/cheetah_fb.yaml'))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    module, ant, cheetah, printed = (Path(p) for p in out)
    assert module.is_relative_to(site), f"imported {module}, not the wheel's metarl"
    assert ant == site / "metarl" / "configs" / "ant_fb.yaml"
    assert cheetah == site / "metarl" / "configs" / "cheetah_fb.yaml"
    assert printed == site / "metarl" / "configs" / "table1_printed" / "cheetah_fb.yaml"
    assert "family: ant-fb" in ant.read_text()
