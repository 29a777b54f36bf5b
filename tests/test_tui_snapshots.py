"""Snapshot tests: what the screen looks like at 80x24, with scripted key presses.

Projects live at fixed paths (paths are shown on screen) and are rebuilt for each
test from the bundled sample, so the pictures depend on nothing but the code.
Update after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update`
and look at the new pictures before committing them.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tui_helpers import wait_for_all_panels

from kimi_tui.project import init_project
from kimi_tui.tui.app import KimiTuiApp, WorkbenchScreen

BASE = Path("/tmp/kimi-tui-snapshots")


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
