"""`pip install` enables the extension: the wheel ships the server config, and `jupyter server extension list`
shows specflow_nb.server enabled and OK."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG_JSON = "etc/jupyter/jupyter_server_config.d/specflow_nb.json"


def _extension_list(env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter_server", "extension", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    # jupyter prints the list on stderr (colour codes included): strip them
    return re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)


def _sections(listing: str) -> dict[str, str]:
    """Config dir → its part of the listing."""
    parts = re.split(r"^Config dir: (.+)$", listing, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_installed_package_lists_the_extension_enabled_and_ok() -> None:
    """The development install (`pip install -e .`) placed the config in this environment's etc/jupyter."""
    listing = _extension_list()
    assert re.search(r"specflow_nb\.server\s+enabled", listing), listing
    assert re.search(r"specflow_nb\.server\s+OK", listing), listing


def test_wheel_installs_the_config_and_the_openapi_document(tmp_path: Path) -> None:
    pytest.importorskip("hatchling", reason="the wheel is built without isolation: needs hatchling (test extra)")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = wheels.glob("specflow_nb-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "specflow_nb/server/openapi.json" in names
    assert any(n.endswith(".data/data/" + CONFIG_JSON) for n in names), names

    # A fresh environment that sees this one's packages (jupyter_server…) through a .pth, so the install is quick
    # and offline; the wheel's data files land in the new environment's own etc/jupyter.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    new_site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (new_site / "_outer_env.pth").write_text(f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (venv / CONFIG_JSON).is_file()
    listing = subprocess.run(
        [str(python), "-m", "jupyter_server", "extension", "list"], capture_output=True, text=True, timeout=60
    )
    sections = _sections(re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr))
    ours = sections.get(str(venv / "etc" / "jupyter"), "")
    assert re.search(r"specflow_nb\.server\s+enabled", ours), sections
    assert re.search(r"specflow_nb\.server\s+OK", ours), sections
