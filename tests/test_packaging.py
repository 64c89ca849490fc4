"""The wheel installs into a fresh virtualenv and brings only prune_gym-namespaced packages."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PUBLIC_PACKAGES = ["prune_gym", "prune_gym.agents", "prune_gym.history", "prune_gym.benchmarks"]


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
    probe = "; ".join(f"import {p}" for p in PUBLIC_PACKAGES) + "; print(prune_gym.__file__)"
    out = subprocess.run([str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).is_relative_to(fresh_site)
    assert (env / "bin" / "prune-gym").is_file()
