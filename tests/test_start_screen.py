"""The start screen as a newcomer meets it: the first thing typed is a path, and a path is text.

Typing `/srv/coqx` (s, c, o and q are all shortcuts somewhere) into the folder box must leave it
there, create nothing and quit nothing; Enter only moves on; the letters act outside the fields.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from textual.widgets import Button, Input
from tui_helpers import wait_for_all_panels

from kimi_tui.tui.app import KimiTuiApp, WorkbenchScreen
from kimi_tui.tui.start_screen import StartScreen


async def _start(pilot) -> StartScreen:
    app = pilot.app
    deadline = time.monotonic() + 30
    while not (isinstance(app.screen, StartScreen) and isinstance(app.focused, Input)):
        assert time.monotonic() < deadline, f"the start screen never took focus (screen {app.screen!r})"
        await pilot.pause(0.05)
    return app.screen


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def test_a_path_typed_into_the_folder_box_stays_text_and_creates_nothing(tmp_path: Path) -> None:
    app = KimiTuiApp(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _start(pilot)
        folder = screen.query_one("#start-dir", Input)
        assert app.focused is folder, "focus must start in the project folder box"
        for path in ("/srv/coqx", str(tmp_path / "sqoc-cosq")):
            folder.value = ""
            await pilot.press(*path)
            await pilot.pause()
            assert folder.value == path
        assert app.is_running and isinstance(app.screen, StartScreen)
        assert _entries(tmp_path) == [], "typing a path created something"
        assert not Path("/srv/coqx").exists()


async def test_enter_in_a_field_moves_on_and_never_creates(tmp_path: Path) -> None:
    app = KimiTuiApp(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _start(pilot)
        folder = screen.query_one("#start-dir", Input)
        folder.value = str(tmp_path / "mine")
        await pilot.press("enter")
        await pilot.pause()
        assert app.focused is screen.query_one("#start-sample", Button)
        assert _entries(tmp_path) == [] and isinstance(app.screen, StartScreen)
        # In the CSV fields, Enter walks on to the next field, then to the CSV button.
        screen.query_one("#start-csv", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.focused is screen.query_one("#start-audio", Input)
        await pilot.press("enter")
        await pilot.pause()
        assert app.focused is screen.query_one("#start-from-csv", Button)
        assert _entries(tmp_path) == []


async def test_the_letters_act_outside_the_fields_and_say_so_in_the_footer(tmp_path: Path) -> None:
    app = KimiTuiApp(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _start(pilot)
        # In the field the footer offers no letter (they are text there), and says how to leave it.
        bindings = {b.binding.id: b for b in screen.active_bindings.values() if b.enabled and b.binding.show}
        assert "start.sample" not in bindings and "app.quit" not in bindings
        assert bindings["start.leave_field"].binding.tooltip
        await pilot.press("escape")  # leave the field: the letters are shortcuts again
        await pilot.pause()
        assert isinstance(app.focused, Button)
        bindings = {b.binding.id: b for b in screen.active_bindings.values() if b.enabled and b.binding.show}
        assert {"start.sample", "start.csv", "start.open", "app.quit"} <= set(bindings)
        assert all(bindings[i].binding.tooltip for i in ("start.sample", "start.csv", "start.open"))
        assert "start.leave_field" not in bindings
        await pilot.press("s")
        deadline = time.monotonic() + 30
        while not isinstance(app.screen, WorkbenchScreen):
            assert time.monotonic() < deadline, "s outside the fields did not create the sample"
            await pilot.pause(0.05)
        await wait_for_all_panels(pilot)
        assert (tmp_path / "sample-project" / "kimi-tui.toml").exists()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_in_tmux_at_80x24_a_typed_path_stays_in_the_folder_box(tmp_path: Path) -> None:
    from test_tui_tmux import Tmux

    empty = tmp_path / "empty"
    empty.mkdir()
    tmux = Tmux(f"kimi-tui-start-{os.getpid()}", f"cd {empty} && {sys.executable} -m kimi_tui; sleep 60")
    try:
        tmux.wait_for("No kimi-tui project in")
        tmux.wait_for("Leave field")  # the footer of a focused text field
        tmux.keys("/srv/coqx")
        screen = tmux.wait_for("/srv/coqx")
        assert "No kimi-tui project in" in screen, "the start screen went away"
        assert all(len(line) <= 80 for line in screen.splitlines())
        assert _entries(empty) == [] and not Path("/srv/coqx").exists()
        tmux.keys("BSpace")  # the app still answers, in the same field
        deadline = time.monotonic() + 30
        while "/srv/coqx" in tmux.screen() and time.monotonic() < deadline:
            time.sleep(0.2)
        screen = tmux.screen()
        assert "/srv/coq" in screen and "/srv/coqx" not in screen and "No kimi-tui project in" in screen, screen
        assert _entries(empty) == []
    finally:
        tmux.kill()
