"""Progress a user can trust: a rate from the recent pace (not since the start), an ETA that
counts down without reading 0 while a step is under way, `kimi-tui status` showing them for a
running stage, workers reporting every optimizer step at most once a second, and the CPU
thread count a busy machine gets. Headless, no training: the callbacks get fake Trainer states."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from kimi_tui.events import EventWriter, read_events, read_events_tail
from kimi_tui.progress import StepProgress, duration, eta_seconds, keep_running_line, recent_rate, run_progress
from kimi_tui.workers.cpu_threads import THREADS_ENV, choose_threads, limit_cpu_threads

REPO = Path(__file__).resolve().parents[1]


def steps_at(rate: float, start_t: float, start_step: int, n: int) -> list[tuple[float, int]]:
    return [(start_t + i / rate, start_step + i) for i in range(n)]


def test_the_rate_follows_the_recent_pace_not_the_average_since_start():
    # 100 steps at 10 st/s, then the machine got busy: 40 s at 1 st/s.
    fast = steps_at(10.0, 1000.0, 0, 101)
    slow = steps_at(1.0, fast[-1][0] + 1, 101, 40)
    rate = recent_rate(fast + slow)
    assert rate == pytest.approx(1.0)
    # The old average since the start would have said ~3.5 st/s and an ETA a third of the truth.
    p = StepProgress()
    for t, step in fast + slow:
        p.add(t, step, 300)
    now = slow[-1][0]
    assert p.eta_s(now) == pytest.approx(300 - 140, rel=0.01)


def test_a_step_longer_than_the_window_is_measured_over_the_last_interval():
    samples = [(0.0, 0), (100.0, 1), (200.0, 2)]
    assert recent_rate(samples) == pytest.approx(0.01)


def test_the_same_step_said_twice_does_not_stop_the_rate():
    samples = [(0.0, 0), (10.0, 10), (10.5, 10)]  # the last step, then the end of training
    assert recent_rate(samples) == pytest.approx(10 / 10.5)
    assert recent_rate([(0.0, 5), (1.0, 5)]) is None
    assert recent_rate([(0.0, 5)]) is None


def test_eta_counts_down_but_never_below_the_steps_after_the_current_one():
    assert eta_seconds(10, 20, 1.0, last_t=100.0, now=100.0) == pytest.approx(10.0)
    assert eta_seconds(10, 20, 1.0, last_t=100.0, now=100.4) == pytest.approx(9.6)
    # A step that takes far longer than the rate: 9 s left (the 9 steps after it), not 0.
    assert eta_seconds(10, 20, 1.0, last_t=100.0, now=160.0) == pytest.approx(9.0)
    assert eta_seconds(20, 20, 1.0, last_t=100.0, now=160.0) == 0.0
    assert eta_seconds(1, 20, None, last_t=0, now=0) is None


def test_a_new_count_starts_its_own_rate():
    p = StepProgress()
    for t, step in steps_at(10.0, 0.0, 0, 20):
        p.add(t, step, 20)
    p.add(10.0, 0, 5)  # the next phase
    assert p.rate() is None and (p.step, p.total) == (0, 5)
    p.add(12.0, 1, 5)
    assert p.rate() == pytest.approx(0.5)
    assert p.summary(now=12.0) == "1/5 (20%) · 2.0 s/st · ETA 0:00:08"


def test_the_events_tail_is_read_from_the_end_of_a_long_file(tmp_path):
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    for step in range(5000):
        writer.progress(step, 5000)
    size = path.stat().st_size
    tail = read_events_tail(path, max_bytes=4096)
    assert 0 < len(tail) < 100 and tail[-1]["step"] == 4999
    assert [e["step"] for e in tail] == list(range(tail[0]["step"], 5000))  # no cut line, none lost
    assert size > 200_000
    with open(path, "ab") as fh:
        fh.write(b'{"t": 1, "type": "progr')  # a writer killed mid-line
    assert read_events_tail(path, max_bytes=4096)[-1]["step"] == 4999
    assert read_events_tail(tmp_path / "missing.jsonl") == []
    assert [e["step"] for e in read_events_tail(path, max_bytes=10**9)] == list(range(5000))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_step_progress_writes_at_most_one_event_a_second_and_always_the_last(tmp_path, monkeypatch):
    import kimi_tui.events as events_module

    clock = FakeClock()
    monkeypatch.setattr(events_module, "monotonic", clock)
    writer = EventWriter(tmp_path / "events.jsonl")
    for step in range(1, 301):  # 300 steps at 100 st/s
        clock.now = step / 100
        writer.step_progress(step, 300)
    steps = [e["step"] for e in read_events(tmp_path / "events.jsonl")]
    assert steps[0] == 1 and steps[-1] == 300
    assert 3 <= len(steps) <= 5  # three seconds of training: one a second, plus the last


def trainer_state(step: int, total: int = 200) -> SimpleNamespace:
    return SimpleNamespace(global_step=step, max_steps=total, epoch=step / 10, is_world_process_zero=True)


@pytest.mark.parametrize("worker", ["whisper", "kimi-audio"])
def test_training_reports_progress_between_logging_steps(tmp_path, monkeypatch, worker):
    """A slow step (2 s each) is reported every step, not only every logging_steps (10)."""
    import kimi_tui.events as events_module

    clock = FakeClock()
    monkeypatch.setattr(events_module, "monotonic", clock)
    writer = EventWriter(tmp_path / "events.jsonl")
    if worker == "whisper":
        from kimi_tui.workers.whisper_worker import make_callback

        callback = make_callback(writer, {})
    else:
        from kimi_tui.workers.kimi_audio_worker import make_callback

        callback = make_callback(writer, 200, True)
    args = SimpleNamespace(num_train_epochs=20, output_dir=str(tmp_path))
    for step in range(1, 13):
        clock.now = 2.0 * step
        callback.on_step_end(args, trainer_state(step), SimpleNamespace())
        if step % 10 == 0:
            callback.on_log(args, trainer_state(step), SimpleNamespace(), logs={"loss": 1.0, "learning_rate": 1e-3, "epoch": 1.0})
    progress = [e["step"] for e in read_events(tmp_path / "events.jsonl") if e["type"] == "progress"]
    assert progress == list(range(1, 13))


# -- kimi-tui status ----------------------------------------------------------------------


def running_run(root: Path, events: list[dict]) -> tuple[Path, subprocess.Popen]:
    from kimi_tui.runs import RUN_ENV

    run_id = time.strftime("%Y%m%d-%H%M%S-000000") + "-train"
    run_dir = root / "runs" / run_id
    run_dir.mkdir(parents=True)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True,
                             env={**os.environ, RUN_ENV: f"{run_id}/"})
    now = time.time()
    (run_dir / "status.json").write_text(json.dumps({
        "run_id": run_id, "stage": "train", "state": "running", "created": now, "started": now,
        "host": socket.gethostname(), "supervisor_pid": alive.pid, "pid": alive.pid,
    }))
    (run_dir / "stdout.log").write_text("", encoding="utf-8")
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return run_dir, alive


@pytest.fixture
def train_running(tmp_path):
    from kimi_tui.project import init_project

    project = init_project(tmp_path / "p", sample=True)
    now = time.time()
    # 30 steps at 0.5 st/s, the last one just now: 170 steps left, 340 s.
    events = [{"t": now - (30 - s) * 2.0, "type": "progress", "step": s, "total": 200} for s in range(31)]
    events.insert(5, {"t": now - 50, "type": "metric", "step": 5, "loss": 2.0})
    run_dir, alive = running_run(project.root, events)
    yield project, run_dir
    alive.kill()
    alive.wait()


def kimi(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kimi_tui", *args], capture_output=True, text=True, cwd=REPO)


def test_status_shows_step_rate_and_eta_of_a_running_stage(train_running):
    project, run_dir = train_running
    proc = kimi("status", "--project", str(project.root))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if run_dir.name in line)
    detail = lines[at + 1]
    assert "step 30/200 (15%)" in detail and "2.0 s/st" in detail
    eta = detail.split("ETA ")[1]
    h, m, s = (int(x) for x in eta.split(":"))
    assert 300 <= h * 3600 + m * 60 + s <= 340  # 340 s at the last event, counting down since

    proc = kimi("status", "--project", str(project.root), "--json")
    assert proc.returncode == 0, proc.stderr
    run = next(r for r in json.loads(proc.stdout)["runs"] if r["run_id"] == run_dir.name)
    assert run["progress"]["step"] == 30 and run["progress"]["total"] == 200
    assert run["progress"]["steps_per_s"] == pytest.approx(0.5)
    assert 300 <= run["progress"]["eta_s"] <= 340


def test_run_progress_reads_only_the_tail(train_running):
    _, run_dir = train_running
    with open(run_dir / "events.jsonl", "ab") as fh:
        fh.write(b"x" * 1_000_000 + b"\n")  # a garbled megabyte before the latest events
        t = time.time()
        for s in (31, 32):
            fh.write((json.dumps({"t": t + s, "type": "progress", "step": s, "total": 200}) + "\n").encode())
    p = run_progress(run_dir)
    assert (p.step, p.total) == (32, 200)


# -- quitting the TUI -----------------------------------------------------------------------


def test_quitting_names_the_runs_that_keep_running(train_running):
    from kimi_tui.runs import list_runs

    project, run_dir = train_running
    line = keep_running_line(list_runs(project.runs_dir), project.root)
    assert line == (f"1 run keeps running: train {run_dir.name}; "
                    f"follow with kimi-tui status --project {project.root}")
    assert keep_running_line([], project.root) is None


# -- CPU threads ------------------------------------------------------------------------------


def test_threads_are_few_and_one_when_the_cores_are_taken():
    assert choose_threads(2, 0.0) == 2
    assert choose_threads(64, 0.0) == 4
    assert choose_threads(2, 6.0) == 1
    assert choose_threads(16, 13.0) == 3


def test_thread_settings_reach_the_libraries_and_a_users_own_is_kept():
    env: dict[str, str] = {}
    assert limit_cpu_threads(env, cores=2, load=8.0) == 1
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    env = {THREADS_ENV: "3"}
    assert limit_cpu_threads(env, cores=2, load=8.0) == 3 and env["OMP_NUM_THREADS"] == "3"
    env = {THREADS_ENV: "0"}
    assert limit_cpu_threads(env) is None and "OMP_NUM_THREADS" not in env
    env = {"OMP_NUM_THREADS": "7"}
    assert limit_cpu_threads(env) is None and env == {"OMP_NUM_THREADS": "7"}
    with pytest.raises(ValueError, match=f"{THREADS_ENV}='many'"):
        limit_cpu_threads({THREADS_ENV: "many"})


def test_duration_reads_as_a_clock():
    assert duration(75) == "0:01:15" and duration(None) == "?"


def test_the_thread_count_set_in_the_worker_reaches_torch():
    code = ("from kimi_tui.workers.cpu_threads import limit_cpu_threads; limit_cpu_threads(); "
            "import torch; print(torch.get_num_threads())")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", code], env={**env, THREADS_ENV: "1"},
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"


def test_a_bad_thread_setting_is_a_one_line_error_of_the_train_stage(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "kimi_tui.workers.whisper_worker", "train", "--model", str(tmp_path / "m"),
         "--features", str(tmp_path / "f"), "--output", str(tmp_path / "o")],
        env={**os.environ, THREADS_ENV: "many"}, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: train: {THREADS_ENV}='many': give a number of threads (0 = torch's default)"
