"""The Run panel as a user at 80x24 sees it: stages, a started stage's log and
state, a run started elsewhere picked up and followed, a log that stays bounded,
the GPU view with and without a driver, and a stop that asks first.

Fake runs are run directories written by the test: status.json says running, and a
sleeping process of the test's own, marked as the run's (RUN_ENV) in a session of its
own, makes it alive; a confirmed stop signals that process only, never pytest.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from tui_helpers import wait_for_panel
from kimi_tui.gpu import GpuProcess, GpuReading, GpuSnapshot, read_gpus
from kimi_tui.project import init_project
from kimi_tui.runs import RUN_ENV
from kimi_tui.tui.app import KimiTuiApp
from kimi_tui.tui.confirm_modal import ConfirmModal
from kimi_tui.tui.run_panel import RunPanel
from kimi_tui.tui.widgets import gpu_view
from kimi_tui.tui.widgets.log_view import MAX_LINES, LogView
from kimi_tui.tui.widgets.stage_list import RunList, StageList

SIZE = (80, 24)


@pytest.fixture
def project(tmp_path):
    return init_project(tmp_path / "p", sample=True)


def screen_text(app) -> str:
    """The screen as plain text, the way export_screenshot sees it."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


async def wait_until(pilot, predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}; the screen shows:\n{screen_text(pilot.app)}")


async def open_run_panel(pilot) -> RunPanel:
    await pilot.pause()
    pilot.app.screen.action_show("run")  # what key 3 does (another panel's input may hold the focus)
    return await wait_for_panel(pilot, RunPanel)  # the panel is built on first show


RUN_PROCESSES: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _end_fake_run_processes():
    yield
    while RUN_PROCESSES:
        proc = RUN_PROCESSES.pop()
        proc.kill()
        proc.wait()


def fake_run(project, stage: str = "train", lines: str = "", events: list[dict] | None = None, **status) -> Path:
    run_id = time.strftime("%Y%m%d-%H%M%S-000000") + f"-{stage}"
    run_dir = project.runs_dir / run_id
    run_dir.mkdir(parents=True)
    now = time.time()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True,
                             env={**os.environ, RUN_ENV: f"{run_id}/"})
    RUN_PROCESSES.append(alive)
    (run_dir / "status.json").write_text(json.dumps({
        "run_id": run_id, "stage": stage, "state": "running", "created": now, "started": now,
        "host": socket.gethostname(), "supervisor_pid": alive.pid, "pid": alive.pid, **status,
    }))
    (run_dir / "stdout.log").write_text(lines, encoding="utf-8")
    with open(run_dir / "events.jsonl", "w", encoding="utf-8") as fh:
        for event in events or []:
            fh.write(json.dumps(event) + "\n")
    return run_dir


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def progress_events(step: int, total: int, t0: float, loss: float | None = None) -> bytes:
    out = [{"t": t0 + step / 10, "type": "progress", "step": step, "total": total}]
    if loss is not None:
        out.append({"t": t0 + step / 10, "type": "metric", "step": step, "loss": loss, "learning_rate": 1e-5})
    return "".join(json.dumps(e) + "\n" for e in out).encode()


async def test_lists_every_stage_and_says_idle(project):
    app = KimiTuiApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_run_panel(pilot)
        await wait_until(pilot, lambda: "idle" in str(panel.border_title), "the idle status")
        stages = ("prepare", "extract", "convert", "train", "export", "evaluate", "all")
        # The title changes before the next frame is drawn: wait for the screen itself.
        await wait_until(pilot, lambda: "never run" in (t := screen_text(app)) and all(s in t for s in stages),
                         "every stage on screen")
        assert str(panel.border_title) == "Run · idle"
        await wait_until(pilot, lambda: app.focused is panel.query_one(StageList), "the stage list focused")


async def test_shows_no_nvidia_gpu_on_a_machine_without_a_driver(project):
    if read_gpus().available:
        pytest.skip("this machine has an NVIDIA GPU")
    app = KimiTuiApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        await open_run_panel(pilot)
        await wait_until(pilot, lambda: "no NVIDIA GPU" in screen_text(app), "the no-GPU state")


async def test_gpu_processes_are_tagged_with_the_run_that_owns_them(project, monkeypatch):
    snapshot = GpuSnapshot(True, "", [GpuReading(0, "NVIDIA H100 80GB HBM3", 30 * 1024**3, 80 * 1024**3, 87,
                                                 [GpuProcess(os.getpid(), 12 * 1024**3)])])
    monkeypatch.setattr(gpu_view, "read_gpus", lambda: snapshot)
    fake_run(project, "train", "training\n", pgid=os.getpgid(0))  # this test's own group: "the run's"
    app = KimiTuiApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_run_panel(pilot)
        await wait_until(pilot, lambda: "train running" in str(panel.border_title), "the fake run")
        if panel.has_class("-chart-loss"):
            await pilot.press("g")
        await wait_until(pilot, lambda: f"pid {os.getpid()} train" in screen_text(app), "the process tagged train")
        text = screen_text(app)
        assert "H100 80GB HBM3" in text and "87%" in text
        assert "30.0/80 GiB" in text and "12.0 GiB" in text


async def test_starting_prepare_with_its_key_runs_it_and_shows_its_log(project):
    app = KimiTuiApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_run_panel(pilot)
        assert panel.query_one(StageList).selected_stage == "prepare"
        await pilot.press("s")
        await wait_until(pilot, lambda: list(project.runs_dir.glob("*-prepare")), "runs/*-prepare")
        log = panel.query_one(LogView)
        await wait_until(pilot, lambda: any("samples written" in line for line in log.lines), "prepare's output")
        await wait_until(pilot, lambda: panel.query_one(StageList).states["prepare"] == "succeeded",
                         "prepare to succeed")
        await wait_until(pilot, lambda: "prepare succeeded" in str(panel.border_title), "the status")
        text = screen_text(app)
        assert "samples written" in text
        assert "✔ prepare  succeeded" in text


async def test_a_stage_that_cannot_start_says_why_and_starts_nothing(project):
    app = KimiTuiApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_run_panel(pilot)
        await pilot.press("down")  # extract, which needs prepare's output
        await pilot.press("s")
        await wait_until(pilot, lambda: any("run the prepare stage first" in n.message for n in app._notifications),
                         "the notification")
        assert [n.severity for n in app._notifications] == ["error"]
        assert not list(project.runs_dir.glob("*-extract"))
        assert not isinstance(app.screen, ConfirmModal) and app.screen is panel.screen  # no modal


async def test_an_existing_run_is_followed_live(project):
    t0 = time.time()
    run_dir = fake_run(project, "train", "loading model\nstep 1 of 200\n",
                       [json.loads(line) for line in progress_events(50, 200, t0, loss=2.5).decode().splitlines()])
    app = KimiTuiApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_run_panel(pilot)
        log = panel.query_one(LogView)
        await wait_until(pilot, lambda: "step 1 of 200" in screen_text(app), "the existing log lines")
        await wait_until(pilot, lambda: "train running 50/200" in str(panel.border_title), "progress in the status")
        assert "50/200" in screen_text(app)

        # More output: a line cut mid-character, a redrawn progress bar, an invalid byte.
        first, rest = "训练".encode()[:2], "训练".encode()[2:]
        append(run_dir / "stdout.log", b"step 2 " + first)
        append(run_dir / "stdout.log", rest + b" of 200\n\r 50%|###   \r100%|######\nbad \xff byte\nhalf a li")
        append(run_dir / "events.jsonl", progress_events(100, 200, t0, loss=1.5) + b'{"t": 1, "type": "prog')
        await wait_until(pilot, lambda: "step 2 训练 of 200" in log.lines, "the appended lines")
        await wait_until(pilot, lambda: "100/200" in str(panel.border_title), "the new progress")
        assert "100%|######" in log.lines and not any("50%" in line for line in log.lines)
        assert "bad \ufffd byte" in log.lines
        assert log.partial == "half a li"
        text = screen_text(app)
        assert "step 2 训练 of 200" in text and "half a li" in text and "100/200" in text
        assert "ETA" in str(panel.border_title)
        assert panel.progress.loss == 1.5

        append(run_dir / "stdout.log", b"ne\n")
        await wait_until(pilot, lambda: "half a line" in log.lines and not log.partial, "the line completed")


async def test_the_log_keeps_at_most_its_bound(project):
    run_dir = fake_run(project, "extract", "".join(f"old line {i}\n" for i in range(MAX_LINES + 5000)))
    app = KimiTuiApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        panel = await wait_for_panel(pilot, RunPanel)  # reads while its tab is still hidden
        log = panel.query_one(LogView)
        last_old = f"old line {MAX_LINES + 4999}"
        await wait_until(pilot, lambda: log.lines and log.lines[-1] == last_old, "the old lines")
        assert len(log.lines) == MAX_LINES
        await open_run_panel(pilot)
        await wait_until(pilot, lambda: last_old in screen_text(app), "the newest line in view")
        # 12,000 more in one go, as a fast writer would
        append(run_dir / "stdout.log", "".join(f"new line {i}\n" for i in range(12_000)).encode())
        await wait_until(pilot, lambda: log.lines[-1] == "new line 11999", "the new lines")
        assert len(log.lines) == MAX_LINES
        assert log.lines[0] == "new line 2000"
        await wait_until(pilot, lambda: "new line 11999" in screen_text(app), "the newest line in view")


async def test_stop_asks_first(project):
    run_dir = fake_run(project, "train", "training\n")
    app = KimiTuiApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_run_panel(pilot)
        await wait_until(pilot, lambda: "train running" in str(panel.border_title), "the run")
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question")
        assert "Stop the train run" in screen_text(app)
        await pilot.press("n")
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmModal), "the question to close")
        assert json.loads((run_dir / "status.json").read_text())["state"] == "running"

        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question again")
        await pilot.press("y")
        await wait_until(pilot, lambda: json.loads((run_dir / "status.json").read_text())["state"] == "stopped",
                         "the run to be stopped")
        await wait_until(pilot, lambda: panel.query_one(StageList).states["train"] == "stopped", "the stage list")


async def test_a_damaged_run_folder_is_listed_as_damaged_and_the_others_still_work(project):
    good = fake_run(project, "train", "training\n")
    broken = project.runs_dir / "20260101-000000-000000-prepare"
    broken.mkdir()
    (broken / "status.json").write_text('["not", "an", "object"]')
    app = KimiTuiApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_run_panel(pilot)
        await wait_until(pilot, lambda: "train running" in str(panel.border_title), "the good run followed")
        runs = panel.query_one(RunList)
        await wait_until(pilot, lambda: [r.run_id for r in runs.runs] == [good.name, broken.name], "both runs listed")
        assert runs.runs[1].state == "damaged" and "JSON list" in runs.runs[1].problem
        assert panel.query_one(StageList).states["prepare"] == "damaged"
        assert "damaged" in str(runs.get_option_at_index(1).prompt)
        assert app.screen is panel.screen  # no error dialog
        await pilot.press("x")  # the followed good run still stops
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question")
        await pilot.press("y")
        await wait_until(pilot, lambda: json.loads((good / "status.json").read_text())["state"] == "stopped",
                         "the good run to be stopped")


async def test_a_real_run_stopped_from_the_panel_is_recorded_stopped_not_failed(project):
    from kimi_tui.runs import StagePlan, read_run, start_stage

    plan = StagePlan(stage="train", argv=[sys.executable, "-c", "import time; print('working', flush=True); time.sleep(600)"])
    run_dir = start_stage(project.runs_dir, plan)
    app = KimiTuiApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_run_panel(pilot)
        await wait_until(pilot, lambda: "train running" in str(panel.border_title), "the real run")
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question")
        await pilot.press("y")
        await wait_until(pilot, lambda: read_run(run_dir).state not in ("starting", "running"), "the run to end")
        assert read_run(run_dir).state == "stopped"
        await wait_until(pilot, lambda: panel.query_one(StageList).states["train"] == "stopped", "the stage list")
        assert "failed" not in screen_text(app)


def ended_run(project, stage: str, state: str, events: list[dict], **status) -> Path:
    run_id = time.strftime("%Y%m%d-%H%M%S-000000") + f"-{stage}"
    run_dir = project.runs_dir / run_id
    run_dir.mkdir(parents=True)
    now = time.time()
    (run_dir / "status.json").write_text(json.dumps({
        "run_id": run_id, "stage": stage, "state": state, "created": now - 5, "started": now - 5, "ended": now,
        "exit_code": 0 if state == "succeeded" else 1, "host": socket.gethostname(), **status,
    }))
    (run_dir / "stdout.log").write_text("done\n", encoding="utf-8")
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return run_dir


async def test_a_succeeded_stage_shows_complete_not_its_last_progress_event(project):
    ended_run(project, "evaluate", "succeeded", [{"t": time.time(), "type": "progress", "step": 1, "total": 2}])
    app = KimiTuiApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_run_panel(pilot)
        await wait_until(pilot, lambda: "evaluate succeeded" in str(panel.border_title), "the run")
        await wait_until(pilot, lambda: "2/2" in screen_text(app), "the complete count")
        text = screen_text(app)
        assert "100%" in text and "50%" not in text and "1/2" not in text


async def test_the_deciding_line_of_a_failure_is_shown_whole_at_80_columns(project):
    reason = ("CUDA out of memory: tried to allocate 2.00 GiB on GPU 0 with 1.10 GiB free; "
              "lower train.batch_size in kimi-tui.toml line 31 or set train.gradient_checkpointing = true")
    ended_run(project, "train", "failed",
              [{"t": time.time(), "type": "progress", "step": 3, "total": 200},
               {"t": time.time(), "type": "error", "message": reason}], reason=reason)
    app = KimiTuiApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_run_panel(pilot)
        await wait_until(pilot, lambda: "train failed" in str(panel.border_title), "the failed run")
        await wait_until(pilot, lambda: "gradient_checkpointing" in screen_text(app), "the reason's end")
        flat = " ".join(screen_text(app).split())
        for word in reason.split():
            assert word in flat, word
        assert "failed (exit 1)" in screen_text(app)


async def test_start_all_over_an_earlier_runs_outputs_asks_first(project):
    (project.root / "data").mkdir(exist_ok=True)
    project.train_jsonl.write_text('{"id": "a"}\n', encoding="utf-8")
    (project.training_dir / "checkpoint-10").mkdir(parents=True)
    app = KimiTuiApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_run_panel(pilot)
        await wait_until(pilot, lambda: "idle" in str(panel.border_title), "the idle status")
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question")
        text = screen_text(app)
        assert "Start every stage again?" in text and "training/" in text and "data/train.jsonl" in text
        await pilot.press("n")
        await wait_until(pilot, lambda: app.screen is panel.screen, "the question to close")
        assert not project.runs_dir.exists() or not [p for p in project.runs_dir.iterdir() if p.is_dir()]
        assert (project.training_dir / "checkpoint-10").is_dir()


async def test_starting_on_a_dataset_with_no_usable_sample_is_refused_with_a_dialog_saying_why(project):
    from kimi_tui.tui.error_modal import ErrorModal

    (project.root / "data").mkdir(exist_ok=True)
    project.train_jsonl.write_text("", encoding="utf-8")  # what prepare leaves when every row has an error
    project.findings_json.write_text(json.dumps({"train": {"findings": [
        {"level": "error", "code": "audio_missing", "message": "utt001.wav not found in wavs/",
         "source": "train.csv", "line": 2, "utt_id": "utt001", "audio": None, "fix": "set data.train_audio"},
    ]}}), encoding="utf-8")
    app = KimiTuiApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_run_panel(pilot)
        await wait_until(pilot, lambda: "idle" in str(panel.border_title), "the idle status")
        await pilot.press("down")  # extract
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorModal), "the dialog")
        text = screen_text(app)
        assert "Cannot start extract" in text and "no usable training sample" in text
        assert "train.csv:2: utt001.wav not found in wavs/" in text and "data.train_audio" in text
        assert not list(project.runs_dir.glob("*-extract"))
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is panel.screen, "the dialog to close")


def eta_seconds_in(text: str) -> int:
    h, m, s = (int(x) for x in text.split("ETA ")[1].split()[0].split(":"))
    return h * 3600 + m * 60 + s


async def test_eta_follows_the_recent_pace_not_the_average_since_the_start(project):
    # 100 steps at 10 st/s, then the machine got busy: 40 steps at 1 st/s up to now; 160 steps left.
    now = time.time()
    events = [{"t": now - 50 + s / 10, "type": "progress", "step": s, "total": 300} for s in range(101)]
    events += [{"t": now - 40 + i, "type": "progress", "step": 100 + i, "total": 300} for i in range(1, 41)]
    fake_run(project, "train", "training\n", events)
    app = KimiTuiApp(project.root)
    async with app.run_test(size=(100, 24)) as pilot:
        panel = await open_run_panel(pilot)
        await wait_until(pilot, lambda: "140/300" in str(panel.border_title) and "ETA" in str(panel.border_title),
                         "the progress")
        # The average since the start (2.8 st/s) would say about a minute.
        assert 120 <= eta_seconds_in(str(panel.border_title)) <= 160
        await wait_until(pilot, lambda: "1.0 st/s" in screen_text(app), "the recent rate")


async def test_quitting_says_which_runs_keep_running(project):
    run_dir = fake_run(project, "train", "training\n", [{"t": time.time(), "type": "progress", "step": 3, "total": 9}])
    app = KimiTuiApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_run_panel(pilot)
        await wait_until(pilot, lambda: "train running" in str(panel.border_title), "the run")
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, "the app to quit")
    line = app.still_running()
    assert line is not None and f"train {run_dir.name}" in line and "1 run keeps running" in line
    assert f"kimi-tui status --project {project.root}" in line
    assert RUN_PROCESSES[-1].poll() is None  # the run's process is untouched


async def test_the_progress_line_grows_when_a_failure_reason_arrives_after_its_first_draw(tmp_path) -> None:
    """The reason is read a moment after the run's state (status.json, then events.jsonl): the line
    was measured once, without it, and the reason was cut after its first wrapped line (CI saw it)."""
    from textual.app import App

    from kimi_tui.progress import RunProgress
    from kimi_tui.runs import RunInfo
    from kimi_tui.tui.run_panel import ProgressLine

    class One(App):
        def compose(self):
            yield ProgressLine(id="line")

    info = RunInfo("r", tmp_path, "train", "failed", 1, 1.0, 1.0, 6.0, None, None, "h", {})
    app = One()
    async with app.run_test(size=(80, 24)) as pilot:
        line = app.query_one(ProgressLine)
        line.show(info, RunProgress())
        await pilot.pause()
        assert line.size.height == 1
        later = RunProgress()
        later.last_error = "x" * 150 + " the end"  # three lines at 80 columns
        line.show(info, later)
        await wait_until(pilot, lambda: line.size.height >= 3, "the line to hold the reason")
