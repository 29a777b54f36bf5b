"""Snapshot tests: what the screen looks like at 80x24, with scripted key presses.

Projects live at fixed paths (paths are shown on screen) and are rebuilt for each
test from the bundled sample, and the GPU readout is NVML's "no driver" answer everywhere, so the
pictures depend on nothing but the code. Every panel has a picture.
Update after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update`
and look at the new pictures before committing them.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tui_helpers import wait_for, wait_for_all_panels

from kimi_tui.project import init_project
from kimi_tui.tui.app import KimiTuiApp, WorkbenchScreen

BASE = Path("/tmp/kimi-tui-snapshots")


@pytest.fixture(autouse=True)
def no_gpu(monkeypatch) -> None:
    """The same GPU readout on every machine (a developer's GPU server too): NVML's answer where
    there is no driver, as CI has."""
    import kimi_tui.gpu
    import kimi_tui.tui.widgets.gpu_view

    def read_gpus():
        return kimi_tui.gpu.GpuSnapshot(available=False, reason="NVML: NVML Shared Library Not Found")

    monkeypatch.setattr(kimi_tui.gpu, "read_gpus", read_gpus)
    monkeypatch.setattr(kimi_tui.tui.widgets.gpu_view, "read_gpus", read_gpus)


@pytest.fixture
def fixed_dir() -> Path:
    shutil.rmtree(BASE, ignore_errors=True)
    BASE.mkdir(parents=True)
    yield BASE
    shutil.rmtree(BASE, ignore_errors=True)


async def wait_for_dataset(pilot) -> None:
    app = pilot.app
    deadline = time.monotonic() + 60  # generous: a slow CI machine, never a slower test when it is fast
    while True:
        if isinstance(app.screen, WorkbenchScreen):
            panel = app.screen.panel("dataset")
            if panel is not None and "train 9" in str(panel.border_title) and "test 10" in str(panel.border_title):
                break
        if time.monotonic() > deadline:
            raise AssertionError("the Dataset panel never showed train 9 / test 10")
        await pilot.pause(0.05)
    await wait_for_all_panels(pilot)
    await pilot.pause(0.3)


def test_start_screen(snap_compare, fixed_dir: Path) -> None:
    (fixed_dir / "empty").mkdir()
    assert snap_compare(KimiTuiApp(fixed_dir / "empty"), terminal_size=(80, 24))


def test_dataset_panel_on_the_sample(snap_compare, fixed_dir: Path) -> None:
    root = init_project(fixed_dir / "sample", sample=True).root
    assert snap_compare(KimiTuiApp(root), terminal_size=(80, 24), run_before=wait_for_dataset)


def test_dataset_search_filters_rows(snap_compare, fixed_dir: Path) -> None:
    root = init_project(fixed_dir / "sample", sample=True).root
    assert snap_compare(KimiTuiApp(root), terminal_size=(80, 24), run_before=wait_for_dataset,
                        press=["slash", "公", "园", "enter"])


def test_help_lists_the_keys(snap_compare, fixed_dir: Path) -> None:
    root = init_project(fixed_dir / "sample", sample=True).root
    assert snap_compare(KimiTuiApp(root), terminal_size=(80, 24), run_before=wait_for_dataset, press=["f1"])


def showing(key: str, panel_id: str):
    """After the Dataset panel: press the panel's key and wait until it is shown and settled (no
    worker of it running, the GPU view past its first reading), so the picture is of its content."""

    async def run_before(pilot) -> None:
        await wait_for_dataset(pilot)
        await pilot.press(key)
        app = pilot.app

        def settled() -> bool:
            screen = app.screen
            panel = screen.panel(panel_id) if isinstance(screen, WorkbenchScreen) else None
            if panel is None or screen.query_one("#panels").active != f"tab-{panel_id}":
                return False
            busy = [w for w in app.workers if not w.is_finished and w.node is not None
                    and panel in w.node.ancestors_with_self]
            gpu = panel.query("#gpu-state")
            return not busy and not (gpu and "reading" in str(gpu.first().render()))

        await wait_for(pilot, settled, timeout=60)
        await pilot.pause(0.3)
        await wait_for(pilot, settled, timeout=60)

    return run_before


@pytest.mark.parametrize("key, panel_id", [("2", "config"), ("3", "run"), ("4", "checkpoints"), ("5", "evaluation")])
def test_each_panel_on_the_sample_before_any_run(snap_compare, fixed_dir: Path, key: str, panel_id: str) -> None:
    root = init_project(fixed_dir / "sample", sample=True).root
    assert snap_compare(KimiTuiApp(root), terminal_size=(80, 24), run_before=showing(key, panel_id))
