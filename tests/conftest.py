import sys
from pathlib import Path

# Test helper modules (audio_files.py) import as top-level modules.
sys.path.insert(0, str(Path(__file__).resolve().parent))


import os  # noqa: E402
import shutil  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# The suite is the gate every change passes: the same examples on every run, so a red run is a
# change's doing and reruns agree. New inputs are found on purpose: KIMI_TUI_HYPOTHESIS=random
# (with KIMI_TUI_PROPERTY_EXAMPLES=5000 for a longer hunt); add what it finds as an @example.
settings.register_profile("gate", derandomize=True, database=None)
settings.register_profile("random")
settings.load_profile(os.environ.get("KIMI_TUI_HYPOTHESIS", "gate"))


def pytest_terminal_summary(terminalreporter) -> None:
    """Figures a test reports for people (the fault-injection trials), printed even under -q: a
    test records them as the property "terminal_summary", which reaches here from xdist workers."""
    for report in terminalreporter.getreports("passed") + terminalreporter.getreports("failed"):
        for name, value in getattr(report, "user_properties", ()):
            if name == "terminal_summary":
                terminalreporter.write_line(str(value))


@pytest.fixture(scope="session")
def converted_sample(tmp_path_factory) -> Path:
    """The sample project on the tiny engine after prepare, extract and convert, made once a session.

    Those three stages cost ~25 s on a 2-core machine and read none of the train/eval settings the
    slow tests change (the seed aside), so the tests that train copy this folder (`copy_converted`)
    instead of running them again; data/*.jsonl keep naming this folder's audio."""
    from kimi_tui.pipeline import start
    from kimi_tui.project import init_project
    from kimi_tui.runs import wait_run

    root = tmp_path_factory.mktemp("converted") / "sample"
    project = init_project(root, sample=True)
    for stage in ("prepare", "extract", "convert"):
        info = wait_run(start(project, stage), poll_s=0.05)
        assert info.state == "succeeded", (info.path / "stdout.log").read_text(errors="replace")[-2000:]
    return root


@pytest.fixture(scope="session")
def converted_kimi(tmp_path_factory) -> Path:
    """A kimi-audio project on the checkout double after prepare, extract and convert, made once a
    session (~9 s of stages on 2 cores). Its kimi-tui.toml names this session's checkout and model
    folders; tests that train copy it (`copy_converted`) and never change those folders."""
    from kimi_double import kimi_project
    from kimi_tui.pipeline import start
    from kimi_tui.runs import wait_run

    project = kimi_project(tmp_path_factory.mktemp("converted-kimi"))
    for stage in ("prepare", "extract", "convert"):
        info = wait_run(start(project, stage), poll_s=0.05)
        assert info.state == "succeeded", (info.path / "stdout.log").read_text(errors="replace")[-2000:]
    return project.root


def copy_converted(template: Path, where: Path, **settings):
    """A project of its own from `converted_sample`, with these settings ("train.epochs": 3, ...)."""
    from kimi_tui.config import save_config, set_field
    from kimi_tui.project import Project

    shutil.copytree(template, where, ignore=shutil.ignore_patterns("runs", "training*", "exports", "evaluations"))
    project = Project.load(where)
    config = project.config
    for key, value in settings.items():
        config = set_field(config, key, value)
    save_config(project.config_path, config)
    return Project.load(where)


def configure(project, **settings):
    """The project with these settings saved (``train__epochs=3`` for train.epochs), reloaded."""
    from kimi_tui.config import save_config, set_field
    from kimi_tui.project import Project

    config = project.config
    for key, value in settings.items():
        config = set_field(config, key.replace("__", "."), value)
    save_config(project.config_path, config)
    return Project.load(project.root)


def assert_resumed_to_the_end(project, log: str, resumed_from: str = "checkpoint-1", steps: int = 3) -> None:
    """A train run resumed after a failure finished: from ``resumed_from``, every planned step, each
    checkpoint complete."""
    import json

    from kimi_tui.checkpoints import list_checkpoints

    assert f"resuming from {resumed_from}" in log, log[-3000:]
    state = json.loads((project.training_dir / f"checkpoint-{steps}" / "trainer_state.json").read_text())
    assert state["global_step"] == steps
    assert [c.name for c in list_checkpoints(project.training_dir) if c.complete] == [
        f"checkpoint-{n}" for n in range(1, steps + 1)]


def read_until(proc, prefix: str) -> list[str]:
    """Lines of a running command's stdout up to the first that starts with ``prefix`` (the command
    must still be running then: it prints as it goes)."""
    lines: list[str] = []
    while not (lines and lines[-1].startswith(prefix)):
        line = proc.stdout.readline()
        assert line, f"the command ended before {prefix!r}: " + "".join(lines) + proc.stderr.read()
        lines.append(line)
    return lines


def read_then_release(proc, prefix: str, release, timeout: float = 60.0):
    """For a command that waits on ``release`` (a file) mid-way: its stdout lines up to the one that
    starts with ``prefix``, whether it was still running then, and once ``release`` exists, the rest
    of stdout and stderr. Never leaves the process behind."""
    try:
        before = read_until(proc, prefix)
        running = proc.poll() is None
        release.touch()
        rest, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return before, running, rest, err
