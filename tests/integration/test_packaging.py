"""The wheel carries the default tenants file, and code installed from the wheel finds it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Runs against the unpacked wheel only: the current directory is elsewhere and PYTHONPATH puts the
# wheel's packages before the editable install of the source checkout.
LOAD_DEFAULT = (
    "import json, agent.tenants as t; registry = t.TenantRegistry.from_file(t.TenantSettings().file); "
    "print(json.dumps([t.__file__, str(t.DEFAULT_TENANTS_FILE), registry.ids()]))"
)


def test_wheel_has_a_default_tenants_file_that_the_code_finds(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "--target", "wheel", "--directory", str(dist)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        assert "agent/config/tenants.yaml" in archive.namelist()
        archive.extractall(site)
    packaged = site / "agent" / "config" / "tenants.yaml"
    assert packaged.read_bytes() == (REPO / "config" / "tenants.yaml").read_bytes()

    env = {k: v for k, v in os.environ.items() if k != "SALES_AGENT_TENANTS_FILE"}
    env["PYTHONPATH"] = str(site)
    done = subprocess.run(
        [sys.executable, "-c", LOAD_DEFAULT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    module_file, default_file, tenant_ids = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(module_file).is_relative_to(site)
    assert Path(default_file) == packaged.resolve()
    assert tenant_ids == ["acme", "globex"]
