"""What the platform writes under a home is its owner's only: files 0600, folders 0700 (issue 15,
point 6), whatever umask the shell that started it had."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from ml.core.settings import get_settings
from ml.ops.airflow import Services, shell_exports


def _readable_by_others(root) -> list[str]:
    return sorted(
        f"{p.relative_to(root)} {stat.filemode(p.stat().st_mode)}"
        for p in [root, *root.rglob("*")]
        if p.stat().st_mode & 0o077
    )


def test_what_the_cli_writes_is_its_owners_only(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "TENANTFLOW_HOME": str(home), "TENANTFLOW_LANDING_SETTLE_SECONDS": "0"}
    cli = [sys.executable, "-m", "ml.ops.cli"]
    old = os.umask(0o022)  # a usual login shell's: files 0644, folders 0755
    try:
        for args in (
            ["generate", "--tenants", "2", "--users", "40", "--items", "20", "--days", "2", "--end-date", "2026-11-20"]
            + ["--register"],
            ["ingest", "--start", "2026-11-19", "--end", "2026-11-21"],
        ):
            done = subprocess.run([*cli, *args], env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr[-2000:]
    finally:
        os.umask(old)
    assert list(home.glob("lake/region=*/tenant=*/date=*/part-0.parquet")), "nothing was ingested"
    assert _readable_by_others(home) == []


def test_airflows_processes_and_a_hand_started_shell_write_private_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TENANTFLOW_HOME", str(tmp_path / "home"))
    settings = get_settings()
    made = tmp_path / "made-by-a-service"
    old = os.umask(0o022)
    try:
        services = Services(settings)
        services.start("writer", [sys.executable, "-c", f"open({str(made)!r}, 'w').write('tenant data')"])
        assert services.procs["writer"].wait(60) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    assert "\numask 077" in shell_exports(settings)
