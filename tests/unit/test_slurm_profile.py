"""`monkeyflow slurm-profile`: the SLURM site profile, with fake `scontrol`/`sacct`/`sinfo` on PATH.

PATH holds only the fake commands, so a real SLURM client on the machine is never asked.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from monkeyflow import slurm
from monkeyflow.cli import main

CONFIG_NO_ACCOUNTING = """Configuration data as of 2026-12-02T10:00:00
AccountingStorageType   = accounting_storage/none
ClusterName             = localcluster
MinJobAge               = 300 sec
"""
CONFIG_ACCOUNTING = CONFIG_NO_ACCOUNTING.replace(
    "accounting_storage/none", "accounting_storage/slurmdbd"
)


def fake(bin_dir: Path, name: str, stdout: str = "", rc: int = 0, stderr: str = "", sleep=0):
    """A fake command that records its arguments in `<name>.calls` and answers as told."""
    script = bin_dir / name
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{bin_dir}/{name}.calls"\n'
        + (f"exec /bin/sleep {sleep}\n" if sleep else "")
        + f"/bin/cat <<'EOF'\n{stdout}EOF\n"
        + (f"/bin/cat >&2 <<'EOF'\n{stderr}\nEOF\n" if stderr else "")
        + f"exit {rc}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.fixture
def bin_dir(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return folder


def written(tmp_path) -> tuple[Path, dict]:
    path = tmp_path / "xdg" / "snakemake" / "slurm" / "config.yaml"
    return path, yaml.safe_load(path.read_text())


def test_accounting_off_gives_squeue_and_no_account_and_never_calls_sacct(
    bin_dir, tmp_path, capsys
):
    fake(bin_dir, "scontrol", CONFIG_NO_ACCOUNTING)
    fake(bin_dir, "sacct", "", rc=1, stderr="sacct: error: Slurm accounting storage is disabled")
    fake(bin_dir, "sinfo", "debug*\ngpu\n")
    assert main(["slurm-profile", "--partition", "gpu"]) == 0
    path, profile = written(tmp_path)
    assert profile["executor"] == "slurm"
    assert profile["slurm-status-command"] == "squeue"
    assert profile["slurm-no-account"] is True
    assert profile["slurm-requeue"] is True and profile["latency-wait"] == 60
    assert profile["default-resources"]["slurm_partition"] == "'gpu'"
    assert "slurm_account" not in profile["default-resources"]
    assert not (bin_dir / "sacct.calls").exists()  # scontrol already said accounting is off
    out = capsys.readouterr()
    assert f"wrote {path}" in out.out and "slurm-status-command: squeue" in out.out
    assert "accounting is off (AccountingStorageType=accounting_storage/none)" in out.out
    assert "snakemake --profile slurm" in out.err


def test_working_accounting_gives_sacct_and_keeps_the_account(bin_dir, tmp_path):
    fake(bin_dir, "scontrol", CONFIG_ACCOUNTING)
    fake(bin_dir, "sacct", "")
    fake(bin_dir, "sinfo", "debug*\n")
    assert main(["slurm-profile", "--account", "proj-1,proj-2"]) == 0
    _, profile = written(tmp_path)
    assert profile["slurm-status-command"] == "sacct"
    assert "slurm-no-account" not in profile
    assert profile["default-resources"]["slurm_account"] == "'proj-1,proj-2'"
    assert "slurm_partition" not in profile["default-resources"]
    assert "--starttime=now" in (bin_dir / "sacct.calls").read_text()


def test_sacct_saying_accounting_is_disabled_without_scontrol(bin_dir, tmp_path):
    fake(bin_dir, "sacct", "", rc=1, stderr="sacct: error: Slurm accounting storage is disabled")
    assert main(["slurm-profile"]) == 0
    path, profile = written(tmp_path)
    assert profile["slurm-status-command"] == "squeue" and profile["slurm-no-account"] is True
    assert "`scontrol show config` did not answer" in path.read_text()


def test_nothing_answers_falls_back_to_squeue_but_keeps_account_guessing(bin_dir, tmp_path):
    assert main(["slurm-profile"]) == 0  # no SLURM command on PATH at all
    path, profile = written(tmp_path)
    assert profile["slurm-status-command"] == "squeue"
    assert "slurm-no-account" not in profile  # accounting unknown, not off
    assert "sacct does not answer here" in path.read_text()


def test_a_hanging_scontrol_counts_as_not_answering(bin_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(slurm, "COMMAND_TIMEOUT_S", 1)
    fake(bin_dir, "scontrol", CONFIG_ACCOUNTING, sleep=30)
    fake(bin_dir, "sacct", "")
    assert main(["slurm-profile"]) == 0
    path, profile = written(tmp_path)
    assert "`scontrol show config` did not answer" in path.read_text()
    assert profile["slurm-status-command"] == "sacct"  # sacct still answered


def test_short_min_job_age_warns(bin_dir, tmp_path, capsys):
    fake(bin_dir, "scontrol", CONFIG_NO_ACCOUNTING.replace("300 sec", "60 sec"))
    assert main(["slurm-profile"]) == 0
    assert "MinJobAge is 60 s" in capsys.readouterr().err


def test_never_overwrites_without_force(bin_dir, tmp_path, capsys):
    fake(bin_dir, "scontrol", CONFIG_NO_ACCOUNTING)
    assert main(["slurm-profile", "--partition", "a"]) == 0
    path, _ = written(tmp_path)
    before = path.read_bytes()
    assert main(["slurm-profile", "--partition", "b"]) == 1
    assert "exists; pass --force" in capsys.readouterr().err
    assert path.read_bytes() == before
    assert main(["slurm-profile", "--partition", "b", "--force"]) == 0
    assert written(tmp_path)[1]["default-resources"]["slurm_partition"] == "'b'"


def test_dest_folder_and_a_competing_profile_file(bin_dir, tmp_path, capsys):
    dest = tmp_path / "site"
    assert main(["slurm-profile", "--dest", str(dest)]) == 0
    assert (dest / "config.yaml").exists()
    assert f"snakemake --profile {dest}" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    (other / "profile.yaml").write_text("executor: local\n")
    assert main(["slurm-profile", "--dest", str(other), "--force"]) == 1
    assert "profile.yaml, which Snakemake may read instead" in capsys.readouterr().err
    assert not (other / "config.yaml").exists()


def test_bad_names_and_unknown_partitions_are_refused(bin_dir, tmp_path, capsys):
    fake(bin_dir, "sinfo", "debug*\ngpu\n")
    assert main(["slurm-profile", "--partition", "gpu'; rm -rf /"]) == 1
    assert "use letters, digits" in capsys.readouterr().err
    assert main(["slurm-profile", "--partition", "bigmem"]) == 1
    assert "no partition 'bigmem' on this cluster; sinfo lists: debug, gpu" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "xdg").exists()


def test_snakemake_reads_the_written_profile(bin_dir, tmp_path):
    from snakemake.profiles import ProfileConfigFileParser

    fake(bin_dir, "scontrol", CONFIG_NO_ACCOUNTING)
    assert main(["slurm-profile", "--partition", "debug", "--account", "none"]) == 0
    path, _ = written(tmp_path)
    with path.open() as stream:
        parsed = ProfileConfigFileParser().parse(stream)
    assert parsed["executor"] == "slurm" and parsed["slurm-status-command"] == "squeue"
    # string resources reach Snakemake as Python string literals
    assert "slurm_partition='debug'" in parsed["default-resources"]
    assert "slurm_account='none'" in parsed["default-resources"]
