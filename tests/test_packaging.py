"""The wheel installs into a fresh virtualenv, brings only prune_gym-namespaced packages, and every
module of the source tree imports from it (a subpackage missing from pyproject's list would not)."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def source_modules() -> list[str]:
    """Every module under pyproject's package directories, by the name it is installed under."""
    package_dirs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    modules = []
    for package, directory in package_dirs.items():
        for path in sorted((REPO / directory).rglob("*.py")):
            name = ".".join((package, *path.relative_to(REPO / directory).with_suffix("").parts))
            modules.append(name.removesuffix(".__init__"))
    return modules


def test_wheel_installs_in_a_fresh_venv_without_clobbering_other_names(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", "build", "dist", "*.egg-info", ".pytest_cache", "runs"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("prune_gym-*.whl"))
    top_level = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in top_level if not t.endswith(".dist-info")} == {"prune_gym"}

    env = tmp_path / "fresh"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    # The heavy dependencies (torch...) come from this environment's site-packages, not a new download.
    fresh_site = Path(subprocess.check_output([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                                              text=True).strip())
    (fresh_site / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, timeout=300)
    modules = source_modules()
    assert ("prune_gym.models" in modules and "prune_gym.agents.loop" in modules
            and "prune_gym.agents.searchers.tpe" in modules)
    probe = "; ".join(f"import {m}" for m in modules) + "; print(prune_gym.__file__)"
    out = subprocess.run([str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).is_relative_to(fresh_site)
    assert (env / "bin" / "prune-gym").is_file()
    # The history library ships inside the wheel, and unpacks verified from there; so do the networks it pruned.
    library = subprocess.run([str(python), "-c", "from prune_gym.history.library import library_path; "
                              "from prune_gym.pretrain import default_checkpoint; print(library_path()); "
                              "print(default_checkpoint('resnet56', 'fashion-mnist'))"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "PRUNE_GYM_HOME": str(tmp_path / "home")})
    assert library.returncode == 0, library.stderr
    unpacked, checkpoint = map(Path, library.stdout.split())
    assert unpacked.is_relative_to(tmp_path / "home") and checkpoint.is_relative_to(fresh_site)
