"""A really full disk, on a small tmpfs: torch and safetensors report it as their own errors, the
supervisor must still write how the run ended, init and the config panel must say it in one line.

The tmpfs needs root (CAP_SYS_ADMIN); without it every test here skips saying so, and
tests/test_disk_full.py keeps the simulated ENOSPC of the same story.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_resumed_to_the_end, copy_converted

from kimi_tui.checkpoints import list_checkpoints
from kimi_tui.events import read_events
from kimi_tui.fsutil import DiskFullError, atomic_write_json
from kimi_tui.pipeline import start
from kimi_tui.project import Project, init_project
from kimi_tui.runs import StagePlan, read_run, start_stage, wait_run
from kimi_tui.supervisor import RESERVE
from kimi_tui.workers.disk_full import handle_disk_full, is_disk_full


def _mount(folder: Path, size: str) -> str | None:
    """Mount a tmpfs of ``size`` on ``folder``; None, or why it cannot be done here."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr.strip() or f"mount exited {done.returncode}")


@pytest.fixture
def small_fs(tmp_path: Path):
    """A factory: small_fs("1m") -> a folder on a fresh tmpfs of that size, unmounted at teardown."""
    mounted: list[Path] = []

    def mount(size: str, name: str = "fs") -> Path:
        folder = tmp_path / name
        why = _mount(folder, size)
        if why is not None:
            pytest.skip(f"a real full disk needs a tmpfs mount, not allowed here: {why}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)  # still busy: detach it


def fill(folder: Path, leave: int = 0) -> Path:
    """A filler file taking every byte of the file system but ``leave``."""
    filler = folder / "filler"
    with open(filler, "wb") as fh:
        while True:
            free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize - leave
            if free <= 0:
                break
            try:
                fh.write(b"\xa5" * min(free, 1 << 20))
                fh.flush()
            except OSError:
                break
    return filler


def parsed_status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text(encoding="utf-8"))


def events_parse(run_dir: Path) -> list[dict]:
    lines = (run_dir / "events.jsonl").read_bytes().splitlines()
    return [json.loads(line) for line in lines]  # every line, not only those read_events keeps


# --- what torch and safetensors raise -------------------------------------------------------------


def test_torch_and_safetensors_write_failures_on_a_full_disk_are_recognised(small_fs, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    disk = small_fs("256k")
    big = {"w": torch.zeros(200_000)}
    failures = []
    for write in (lambda: torch.save(big, disk / "optimizer.pt"),
                  lambda: torch.save(big, disk / "legacy.pt", _use_new_zipfile_serialization=False),
                  lambda: save_file(big, str(disk / "model.safetensors"))):
        with pytest.raises(Exception) as caught:
            write()
        failures.append(caught.value)
        assert is_disk_full(caught.value, disk), repr(caught.value)
        for name in os.listdir(disk):
            os.unlink(disk / name)
    assert not isinstance(failures[0], OSError)  # torch's zip writer: RuntimeError("... unexpected pos ...")
    # The same error text on a disk with room is not a full disk: the file system is the evidence.
    assert not is_disk_full(failures[0], tmp_path)
    roomy = small_fs("256k", name="roomy")
    assert not is_disk_full(RuntimeError("unexpected pos 704 vs 598"), roomy)
    assert not is_disk_full(ValueError("bad shape"), disk)


def test_the_message_for_a_torch_error_names_the_disk_and_removes_the_half_written_checkpoint(small_fs) -> None:
    import torch

    out = small_fs("512k")
    done = out / "checkpoint-1"
    done.mkdir()
    (done / "model.safetensors").write_bytes(b"\0" * 1000)
    (done / "trainer_state.json").write_text("{}")
    half = out / "checkpoint-2"
    half.mkdir()
    with pytest.raises(RuntimeError) as caught:
        torch.save({"w": torch.zeros(400_000)}, half / "optimizer.pt")
    assert is_disk_full(caught.value, out)
    message = handle_disk_full(out, caught.value)
    assert not half.exists() and done.exists()
    assert f"the disk holding {out} is full (RuntimeError:" in message
    assert "The half-written checkpoint-2 was removed." in message
    assert "Complete and intact: checkpoint-1." in message and "kimi-tui run train --resume" in message


# --- the supervisor on a disk without a byte free -------------------------------------------------


FILL_AND_FAIL = (
    "import os, sys\n"
    "d = os.environ['KIMI_TUI_RUN_DIR']\n"
    "{before}"
    "try:\n"
    "    with open(os.path.join(d, 'big.bin'), 'wb') as fh:\n"
    "        while True:\n"
    "            fh.write(b'x' * 65536)\n"
    "except OSError as exc:\n"
    "    try:\n"  # stdout.log is on the full disk too: this line may not fit
    "        print('error: train: cannot write big.bin:', exc.strerror, flush=True)\n"
    "    except OSError:\n"
    "        pass\n"
    "sys.exit(3)\n"
)


def _assert_failed_with_reason(run_dir: Path) -> dict:
    info = wait_run(run_dir, poll_s=0.05)
    status = parsed_status(run_dir)
    assert info.state == "failed" and info.exit_code == 3, status
    assert status["state"] == "failed" and status["exit_code"] == 3
    assert "full" in status["reason"].lower() or "no space left" in status["reason"].lower(), status["reason"]
    assert events_parse(run_dir)[-1]["state"] == "failed"
    assert not (run_dir / RESERVE).exists()
    return status


def test_a_worker_that_fills_the_disk_ends_failed_with_its_reason(small_fs) -> None:
    runs = small_fs("1m")
    run_dir = start_stage(runs, StagePlan(stage="train", argv=[sys.executable, "-c", FILL_AND_FAIL.format(before="")]))
    status = _assert_failed_with_reason(run_dir)
    assert status["reason"].startswith(("error: train: cannot write big.bin: No space left on device",
                                        f"disk full: the disk holding {run_dir} has no space left")), status


def test_with_its_reserve_gone_the_final_status_is_written_in_place_and_parses(small_fs) -> None:
    runs = small_fs("1m")
    steal = "os.unlink(os.path.join(d, '.reserve'))\n"  # as if another process took that space
    run_dir = start_stage(runs, StagePlan(stage="train", argv=[sys.executable, "-c", FILL_AND_FAIL.format(before=steal)]))
    _assert_failed_with_reason(run_dir)


def test_atomic_writes_on_a_full_disk_raise_one_clear_error_and_keep_the_old_file(small_fs) -> None:
    disk = small_fs("256k")
    target = disk / "status.json"
    atomic_write_json(target, {"state": "running"})
    fill(disk)
    with pytest.raises(DiskFullError) as caught:
        atomic_write_json(target, {"state": "failed", "reason": "x" * 10_000})
    assert isinstance(caught.value, OSError)
    assert str(caught.value).startswith(f"cannot write {target}: the disk holding it is full")
    assert json.loads(target.read_text()) == {"state": "running"}
    assert sorted(os.listdir(disk)) == ["filler", "status.json"]  # no temporary file left


# --- a project moved while its run goes on --------------------------------------------------------


def test_a_run_whose_project_was_moved_while_it_ran_ends_succeeded_in_the_new_place(tmp_path: Path) -> None:
    project = tmp_path / "project"
    wait_for_move = (
        "import os, sys, time\n"
        "d = os.environ['KIMI_TUI_RUN_DIR']\n"
        "deadline = time.monotonic() + 60\n"
        "while os.path.exists(d) and time.monotonic() < deadline:\n"
        "    time.sleep(0.02)\n"
        "sys.exit(0 if not os.path.exists(d) else 9)\n"
    )
    run_dir = start_stage(project / "runs", StagePlan(stage="test", argv=[sys.executable, "-c", wait_for_move]))
    deadline = time.monotonic() + 60
    while read_run(run_dir).state != "running":
        assert time.monotonic() < deadline, read_run(run_dir)
        time.sleep(0.02)
    moved = tmp_path / "moved"
    os.rename(project, moved)
    new_dir = moved / "runs" / run_dir.name
    info = wait_run(new_dir, poll_s=0.05)
    assert info.state == "succeeded" and info.exit_code == 0, parsed_status(new_dir)
    assert parsed_status(new_dir)["state"] == "succeeded"
    assert [e.get("state") for e in read_events(new_dir / "events.jsonl") if e["type"] == "state"] == [
        "running", "succeeded"]
    assert not run_dir.exists() and not (new_dir / RESERVE).exists()


# --- init, the config panel and `run` on a full disk ----------------------------------------------


def test_init_sample_on_a_full_disk_is_one_message_and_leaves_nothing_so_init_works_after(small_fs, capsys) -> None:
    from kimi_tui.cli import main

    disk = small_fs("512k")  # the sample is ~1.6 MB
    root = disk / "p"
    assert main(["init", str(root), "--sample"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kimi-tui: error: cannot create the project in {root}: the disk holding it is full")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"`kimi-tui init {root} --sample` again" in err
    assert not root.exists()
    subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)  # space freed
    assert main(["init", str(root), "--sample"]) == 0
    assert (root / "kimi-tui.toml").is_file()


def test_run_on_a_full_disk_is_one_line_naming_the_disk(small_fs, capsys) -> None:
    from kimi_tui.cli import main

    root = small_fs("8m")
    init_project(root, sample=True)
    fill(root)
    assert main(["run", "prepare", "--project", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kimi-tui: error:") and "full" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


async def test_saving_the_config_on_a_full_disk_opens_one_modal_with_the_message(small_fs) -> None:
    from textual.widgets import Input

    from tui_helpers import wait_for, wait_for_panel
    from kimi_tui.tui.app import KimiTuiApp
    from kimi_tui.tui.config_panel import ConfigPanel
    from kimi_tui.tui.error_modal import ErrorModal

    root = small_fs("8m")
    project = init_project(root, sample=True)
    before = project.config_path.read_text(encoding="utf-8")
    fill(root)
    app = KimiTuiApp(project.root)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: bool(pilot.app.screen.query("TabbedContent")))
        await pilot.press("2")
        panel = await wait_for_panel(pilot, ConfigPanel)
        field = panel.query_one("#cfg-train-epochs", Input)
        field.focus()
        await pilot.pause()
        await pilot.press("end", *["backspace"] * len(field.value), "4", "2")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal))
        modal = app.screen
        assert f"cannot write {project.config_path}: the disk holding it is full" in modal.message
        assert modal.detail == ""  # no traceback behind it
        assert sum(isinstance(s, ErrorModal) for s in app.screen_stack) == 1
    assert project.config_path.read_text(encoding="utf-8") == before


# --- the sample's training on a disk that fills up at the second checkpoint -------------------------


def stage(project: Project, name: str, resume: bool = False):
    run_dir = start(project, name, resume=resume)
    info = wait_run(run_dir, poll_s=0.1)
    return info, run_dir, (run_dir / "stdout.log").read_text(encoding="utf-8", errors="replace")


@pytest.mark.slow
def test_the_sample_training_on_a_really_full_disk_fails_cleanly_and_resumes(converted_sample, small_fs) -> None:
    root = small_fs("64m")
    # 9 clips, batch 9: one step an epoch, a checkpoint each
    project = copy_converted(converted_sample, root / "p", **{
        "train.epochs": 3, "train.save_steps": 1, "train.logging_steps": 1})
    # A checkpoint is the weights (W) and Adam's two moments (2 W): room for checkpoint-1 and
    # the weights of checkpoint-2, so its optimizer.pt is what meets the full disk.
    weights = (project.base_model_dir / "model.safetensors").stat().st_size
    filler = fill(root, leave=int(4.5 * weights))

    info, run_dir, log = stage(project, "train")
    status = parsed_status(run_dir)
    assert info.state == "failed" and info.exit_code == 2, log[-3000:]
    assert f"the disk holding {project.training_dir} is full" in log, log[-3000:]
    assert "The half-written checkpoint-2 was removed." in log
    assert "Complete and intact: checkpoint-1." in log and "kimi-tui run train --resume" in log
    assert "Traceback" not in log
    assert [(c.name, c.complete) for c in list_checkpoints(project.training_dir)] == [("checkpoint-1", True)]
    assert "is full" in status["reason"] and status["exit_code"] == 2
    events_parse(run_dir)

    filler.unlink()  # the user frees space
    info, run_dir, log = stage(project, "train", resume=True)
    assert info.state == "succeeded", log[-3000:]
    assert_resumed_to_the_end(project, log)
