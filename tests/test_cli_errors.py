"""Every way a user can get the CLI wrong ends in one located message and an exit code.

A traceback tells the user nothing they can act on and hides which file or option
is at fault, so each case here goes through the real `kimi-tui` process and checks
the exit code, that the message names the path or option, and that no traceback
leaks. Permission cases run the CLI as an unprivileged user (root ignores file
modes), and the read-only case uses a read-only bind mount inside a private mount
namespace, so the mount dies with the process even if the test is killed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kimi_tui.config import render_default_config
from kimi_tui.project import sample_config

NOBODY = 65534


def kimi(*args: str, prefix: list[str] | None = None, cwd: Path | None = None, env: dict | None = None,
         code: int | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run([*(prefix or []), sys.executable, "-m", "kimi_tui", *args], capture_output=True,
                         text=True, timeout=120, cwd=cwd, env=env)
    both = out.stdout + out.stderr
    assert "Traceback" not in both, both
    if code is not None:
        assert out.returncode == code, both
    return out


def assert_one_error(stderr: str) -> None:
    """One `kimi-tui: error:` line; any other line is a kimi-tui note, never a stray message."""
    lines = stderr.splitlines()
    assert [line for line in lines if line.startswith("kimi-tui: error: ")] and all(
        line.startswith("kimi-tui: ") for line in lines), stderr
    assert sum(line.startswith("kimi-tui: error: ") for line in lines) == 1, stderr


def make_project(root: Path) -> Path:
    """A project folder without a subprocess: the sample's config, no audio (none is read here)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "kimi-tui.toml").write_text(render_default_config(sample_config()), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("cli-errors") / "p")


# --- init -----------------------------------------------------------------------------------


def _init_over_file(tmp: Path) -> tuple[list[str], list[str]]:
    (tmp / "afile").write_text("not a folder\n")
    return ["init", str(tmp / "afile"), "--sample"], [str(tmp / "afile"), "is a file, not a folder"]


def _init_under_file(tmp: Path) -> tuple[list[str], list[str]]:
    (tmp / "afile").write_text("not a folder\n")
    return ["init", str(tmp / "afile" / "sub"), "--sample"], [str(tmp / "afile"), "is a file, not a folder"]


def _init_with_file_named_runs(tmp: Path) -> tuple[list[str], list[str]]:
    (tmp / "p").mkdir()
    (tmp / "p" / "runs").write_text("my notes\n")
    return ["init", str(tmp / "p"), "--sample"], [str(tmp / "p" / "runs"), "is a file", "nothing was changed"]


def _init_with_file_named_sample(tmp: Path) -> tuple[list[str], list[str]]:
    (tmp / "p").mkdir()
    (tmp / "p" / "sample").write_text("x\n")
    return ["init", str(tmp / "p"), "--sample"], [str(tmp / "p" / "sample"), "already exists"]


def _init_over_project(tmp: Path) -> tuple[list[str], list[str]]:
    make_project(tmp / "p")
    return ["init", str(tmp / "p"), "--sample"], [str(tmp / "p" / "kimi-tui.toml"), "already exists",
                                                  "nothing was changed"]


def _init_config_is_folder(tmp: Path) -> tuple[list[str], list[str]]:
    (tmp / "p" / "kimi-tui.toml").mkdir(parents=True)
    return ["init", str(tmp / "p"), "--sample", "--exist-ok"], [str(tmp / "p" / "kimi-tui.toml"), "is a folder"]


def _init_missing_train_csv(tmp: Path) -> tuple[list[str], list[str]]:
    (tmp / "wavs").mkdir()
    return (["init", str(tmp / "p"), "--train-csv", str(tmp / "nope.csv"), "--train-audio", str(tmp / "wavs")],
            ["--train-csv", "nope.csv", "no such file"])


# --- a project that cannot be opened --------------------------------------------------------


def _project_is_file(tmp: Path) -> tuple[list[str], list[str]]:
    (tmp / "afile").write_text("x\n")
    return ["status", "--project", str(tmp / "afile")], [str(tmp / "afile"), "is a file, not a project folder"]


def _config_is_folder(tmp: Path) -> tuple[list[str], list[str]]:
    (tmp / "p" / "kimi-tui.toml").mkdir(parents=True)
    return ["run", "prepare", "--project", str(tmp / "p")], [str(tmp / "p" / "kimi-tui.toml"), "is a folder"]


def _config_binary(tmp: Path) -> tuple[list[str], list[str]]:
    make_project(tmp / "p")
    (tmp / "p" / "kimi-tui.toml").write_bytes(bytes(range(256)) * 4)
    return ["status", "--project", str(tmp / "p")], ["kimi-tui.toml", "not valid UTF-8", "save it as UTF-8"]


def _config_gbk(tmp: Path) -> tuple[list[str], list[str]]:
    make_project(tmp / "p")
    (tmp / "p" / "kimi-tui.toml").write_bytes('[project]\nname = "普通话"\n'.encode("gbk"))
    return ["doctor", "--project", str(tmp / "p")], ["kimi-tui.toml", "not valid UTF-8"]


def _no_project(tmp: Path) -> tuple[list[str], list[str]]:
    return ["run", "prepare", "--project", str(tmp / "nowhere")], [str(tmp / "nowhere"), "not a kimi-tui project"]


def _unknown_run(tmp: Path) -> tuple[list[str], list[str]]:
    make_project(tmp / "p")
    return ["stop", "nope", "--project", str(tmp / "p")], ["no run 'nope'", str(tmp / "p" / "runs")]


def _missing_evaluation(tmp: Path) -> tuple[list[str], list[str]]:
    make_project(tmp / "p")
    return (["report", "--project", str(tmp / "p"), "--evaluation", str(tmp / "gone")],
            [str(tmp / "gone"), "evaluation"])


# --- score ------------------------------------------------------------------------------------


def _score(tmp: Path, ref_name: str, ref: str) -> tuple[list[str], list[str]]:
    (tmp / ref_name).write_text(ref, encoding="utf-8")
    (tmp / "hyp.csv").write_text("id,text\na,你好\n", encoding="utf-8")
    return ["score", str(tmp / ref_name), str(tmp / "hyp.csv")], [ref_name, "no utterances"]


def _score_ref_folder(tmp: Path) -> tuple[list[str], list[str]]:
    (tmp / "hyp.csv").write_text("id,text\na,你好\n", encoding="utf-8")
    return ["score", str(tmp), str(tmp / "hyp.csv")], [str(tmp), "is a folder"]


def _score_missing(tmp: Path) -> tuple[list[str], list[str]]:
    (tmp / "ref.csv").write_text("id,text\na,你好\n", encoding="utf-8")
    return ["score", str(tmp / "ref.csv"), str(tmp / "nope.tsv")], ["nope.tsv", "no such file"]


CASES = {
    "init-over-a-file": _init_over_file,
    "init-under-a-file": _init_under_file,
    "init-folder-with-a-file-named-runs": _init_with_file_named_runs,
    "init-folder-with-a-file-named-sample": _init_with_file_named_sample,
    "init-over-a-project": _init_over_project,
    "init-config-is-a-folder": _init_config_is_folder,
    "init-missing-train-csv": _init_missing_train_csv,
    "init-empty-dir": lambda tmp: (["init", "", "--sample"], ["DIR is empty", "kimi-tui init ."]),
    "project-is-a-file": _project_is_file,
    "config-is-a-folder": _config_is_folder,
    "config-binary-garbage": _config_binary,
    "config-gbk-not-utf8": _config_gbk,
    "no-project": _no_project,
    "stop-unknown-run": _unknown_run,
    "report-missing-evaluation": _missing_evaluation,
    "score-empty-ref": lambda tmp: _score(tmp, "ref.csv", ""),
    "score-blank-ref": lambda tmp: _score(tmp, "ref.txt", "\n\n  \n"),
    "score-header-only-csv": lambda tmp: _score(tmp, "ref.csv", "id,text\n"),
    "score-header-only-tsv": lambda tmp: _score(tmp, "ref.tsv", "id\ttext\r\n"),
    "score-ref-is-a-folder": _score_ref_folder,
    "score-missing-hyp": _score_missing,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_error_is_one_located_message(tmp_path: Path, case: str) -> None:
    argv, expected = CASES[case](tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    out = kimi(*argv, cwd=tmp_path, code=2)
    assert_one_error(out.stderr)
    for text in expected:
        assert text in out.stderr, (text, out.stderr)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing half-made


def test_an_empty_hypothesis_file_scores_every_reference_as_missing(tmp_path: Path) -> None:
    (tmp_path / "ref.csv").write_text("id,text\na,你好\nb,世界\n", encoding="utf-8")
    for hyp in ("empty.csv", "empty.jsonl"):
        (tmp_path / hyp).write_text("", encoding="utf-8")
        out = kimi("score", str(tmp_path / "ref.csv"), str(tmp_path / hyp), code=0)
        assert f"{hyp} has no utterances: all 2 references are scored as missing" in out.stderr
        assert "CER 100.00%" in out.stdout and "missing hyps 2" in out.stdout


# --- numeric options --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, value, allowed",
    [
        ("--gpus", "-1", "at least 1"), ("--gpus", "0", "at least 1"), ("--gpus", "two", "whole number"),
        ("--epochs", "0", "at least 1"), ("--samples", "-3", "at least 1"), ("--batch-size", "0", "at least 1"),
        ("--grad-accum", "0", "at least 1"), ("--tokens", "0", "at least 1"),
        ("--save-steps", "0", "'auto'"), ("--save-steps", "often", "'auto'"),
        ("--save-total-limit", "-1", "at least 0"), ("--gpu-memory-gb", "-80", "above 0"),
        ("--host-ram-gb", "nan", "finite number above 0"), ("--zero-stage", "1", "choose from"),
    ],
)
def test_nonsense_numbers_are_refused_naming_the_option_and_range(option: str, value: str, allowed: str) -> None:
    out = kimi("doctor", f"{option}={value}", code=2)
    assert f"error: argument {option}: " in out.stderr and allowed in out.stderr, out.stderr


# --- permissions, read-only file systems --------------------------------------------------------


@pytest.fixture(scope="module")
def unprivileged() -> list[str]:
    """The command prefix that runs the CLI as a user file modes apply to."""
    if os.geteuid() != 0:
        return []
    for prefix in (["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"],
                   ["runuser", "-u", "nobody", "--"]):
        if shutil.which(prefix[0]) and subprocess.run(
                [*prefix, sys.executable, "-c", "import kimi_tui.cli"], capture_output=True, timeout=60).returncode == 0:
            return prefix
    pytest.skip("running as root and neither setpriv nor runuser can run this Python as nobody: "
                "root ignores file modes, so an unreadable folder cannot be made")


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temp folder the unprivileged user can traverse (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="kimi-tui-cli-errors-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for sub in [path, *path.rglob("*")]:  # modes that lock out even the owner, when not root
            if sub.is_dir() and not sub.is_symlink():
                sub.chmod(0o755)
        shutil.rmtree(path, ignore_errors=True)


# Modes that lock out the owner too, so the cases also hold when the suite does not run as root.


def _unreadable_folder(p: Path) -> tuple[list[str], list[str]]:
    p.chmod(0o000)
    return ["status", "--project", str(p)], [str(p), "permission denied", "uid"]


def _unreadable_config(p: Path) -> tuple[list[str], list[str]]:
    (p / "kimi-tui.toml").chmod(0o000)
    return ["doctor", "--project", str(p)], [str(p / "kimi-tui.toml"), "cannot read", "Permission denied"]


def _runs_not_writable(p: Path) -> tuple[list[str], list[str]]:
    (p / "runs").mkdir(mode=0o555)
    (p / "runs").chmod(0o555)
    return ["run", "prepare", "--project", str(p)], [str(p / "runs"), "permission denied", "may not read or write"]


def _init_in_unwritable_folder(p: Path) -> tuple[list[str], list[str]]:
    p.chmod(0o555)
    return ["init", str(p / "new"), "--sample"], [str(p), "not writable", "nothing was changed"]


def _init_under_unreadable_folder(p: Path) -> tuple[list[str], list[str]]:
    p.chmod(0o000)
    return ["init", str(p / "new"), "--sample"], [str(p / "new"), "may not be read"]


PERMISSION_CASES = {
    "unreadable-project-folder": _unreadable_folder,
    "unreadable-config": _unreadable_config,
    "runs-not-writable": _runs_not_writable,
    "init-in-unwritable-folder": _init_in_unwritable_folder,
    "init-under-unreadable-folder": _init_under_unreadable_folder,
}


@pytest.mark.parametrize("case", sorted(PERMISSION_CASES))
def test_permission_problems_name_the_path(unprivileged: list[str], shared_tmp: Path, case: str) -> None:
    p = make_project(shared_tmp / "p")
    argv, expected = PERMISSION_CASES[case](p)
    before = sorted(shared_tmp.rglob("*"))
    out = kimi(*argv, prefix=unprivileged, cwd=shared_tmp, code=2)
    assert_one_error(out.stderr)
    for text in expected:
        assert text in out.stderr, (text, out.stderr)
    assert sorted(shared_tmp.rglob("*")) == before  # no half-created run folder, no project


def test_a_read_only_runs_folder_starts_nothing(tmp_path: Path) -> None:
    p = make_project(tmp_path / "p")
    runs = p / "runs"
    runs.mkdir()
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("a read-only bind mount needs root and unshare")
    # A private mount namespace: the mount exists only for this one command, nothing to undo.
    script = ('mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 97; shift; exec "$@"')
    out = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(runs),
         sys.executable, "-m", "kimi_tui", "run", "prepare", "--project", str(p)],
        capture_output=True, text=True, timeout=120,
    )
    if out.returncode == 97 or "unshare failed" in out.stderr:
        pytest.skip(f"mount refused here: {out.stderr.strip()}")
    assert "Traceback" not in out.stdout + out.stderr
    assert out.returncode == 2, out.stdout + out.stderr
    assert_one_error(out.stderr)
    assert str(runs) in out.stderr and "read-only" in out.stderr
    assert list(runs.iterdir()) == []


# --- Ctrl-C -------------------------------------------------------------------------------------


def test_ctrl_c_while_a_command_waits_is_a_message_and_130(tmp_path: Path) -> None:
    """Ctrl-C while doctor waits on the interpreter it probes: one line, exit 130."""
    mark = tmp_path / "probing"
    python = tmp_path / "slow-python"
    python.write_text('#!/bin/sh\ntouch "$MARK"\nexec sleep 60\n')
    python.chmod(0o755)
    # As from a terminal: SIGINT at its default. A suite started in the background by a shell without
    # job control inherits it ignored, and Python then installs no Ctrl-C handler at all.
    proc = subprocess.Popen([sys.executable, "-m", "kimi_tui", "doctor", "--python", str(python)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MARK": str(mark)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not mark.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in stdout + stderr
    assert proc.returncode == 130 and "kimi-tui: interrupted (Ctrl-C)" in stderr, stderr
