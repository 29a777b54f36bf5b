"""The workbench as a whole: start screen, help, palette, and errors shown as a modal."""

from __future__ import annotations

import time

from pathlib import Path

from tui_helpers import wait_for_all_panels

from kimi_tui.project import init_project
from kimi_tui.tui.app import KimiTuiApp, WorkbenchScreen
from kimi_tui.tui.error_modal import ErrorModal
from kimi_tui.tui.help_screen import HelpScreen
from kimi_tui.tui.start_screen import StartScreen


async def test_an_empty_folder_opens_the_start_screen_and_s_creates_the_sample(tmp_path: Path) -> None:
    app = KimiTuiApp(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, StartScreen)
        await pilot.press("escape", "s")  # focus starts in the folder box: leave it, then the shortcut
        await pilot.pause()
        assert isinstance(app.screen, WorkbenchScreen)
        await wait_for_all_panels(pilot)
        assert (tmp_path / "sample-project" / "kimi-tui.toml").exists()
        assert (tmp_path / "sample-project" / "sample" / "audio").is_dir()


async def test_number_keys_switch_panels_and_f1_lists_the_keys(tmp_path: Path) -> None:
    root = init_project(tmp_path / "p", sample=True).root
    app = KimiTuiApp(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        from textual.widgets import TabbedContent

        for key, tab in (("3", "tab-run"), ("5", "tab-evaluation"), ("1", "tab-dataset")):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen.query_one(TabbedContent).active == tab
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        keys = {row[0] for row in app.screen.rows()}
        assert {"f1", "q", "1", "5"} <= {k.lower() for k in keys}
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, WorkbenchScreen)
        await wait_for_all_panels(pilot)


async def test_palette_offers_category_verb_commands(tmp_path: Path) -> None:
    root = init_project(tmp_path / "p", sample=True).root
    app = KimiTuiApp(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await wait_for_all_panels(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Panel: show run" in titles and "App: help" in titles
        assert all(":" in t for t in titles if t.startswith(("Panel", "App", "Run", "Dataset", "Config")))


async def test_a_failing_worker_opens_the_error_modal_not_a_traceback(tmp_path: Path) -> None:
    root = init_project(tmp_path / "p", sample=True).root
    app = KimiTuiApp(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()

        def boom() -> None:
            raise RuntimeError("disk on fire")

        app.run_worker(boom, name="test: boom", thread=True, exit_on_error=False)
        deadline = time.monotonic() + 30  # a deadline, not a count of pauses: a loaded machine is slow
        while time.monotonic() < deadline and not isinstance(app.screen, ErrorModal):
            await pilot.pause(0.05)
        assert isinstance(app.screen, ErrorModal)
        assert "disk on fire" in app.screen.message and "test: boom" in app.screen.title_text
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, WorkbenchScreen)


async def test_a_broken_config_opens_with_a_located_error(tmp_path: Path) -> None:
    root = init_project(tmp_path / "p", sample=True).root
    config = root / "kimi-tui.toml"
    config.write_text(config.read_text(encoding="utf-8").replace("epochs =", "epoch ="), encoding="utf-8")
    app = KimiTuiApp(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        modal = app.screen_stack[-1] if isinstance(app.screen_stack[-1], ErrorModal) else None
        errors = [s for s in app.screen_stack if isinstance(s, ErrorModal)]
        assert errors and "did you mean 'epochs'" in errors[0].message
        del modal


async def test_a_panel_key_pressed_before_the_tabs_exist_is_not_lost(tmp_path: Path) -> None:
    root = init_project(tmp_path / "p", sample=True).root
    app = KimiTuiApp(root)
    async with app.run_test(size=(80, 24)) as pilot:
        while not isinstance(app.screen, WorkbenchScreen):
            await pilot.pause(0.01)
        app.screen.action_show("run")  # at once, as an eager user's key would
        from textual.widgets import TabbedContent

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and app.screen.query_one(TabbedContent).active != "tab-run":
            await pilot.pause(0.05)
        assert app.screen.query_one(TabbedContent).active == "tab-run"
        await wait_for_all_panels(pilot)


async def test_a_worker_result_that_arrives_as_the_app_quits_is_dropped_not_raised(tmp_path: Path) -> None:
    """A panel still being built when the app quits has half its children: a result its worker sends
    then must not reach code that queries them (the Run panel's first reading of runs/ failed a CI run
    that way, under a test that had only looked at the Dataset panel)."""
    from tui_helpers import wait_for, wait_for_panel

    from kimi_tui.gpu import GpuSnapshot
    from kimi_tui.tui.messages import Deliver
    from kimi_tui.tui.run_panel import RunPanel
    from kimi_tui.tui.widgets.gpu_view import GpuView

    root = init_project(tmp_path / "p", sample=True).root
    app = KimiTuiApp(root)
    shown: list[str] = []
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await wait_for_panel(pilot, RunPanel)
        gpus = panel.query_one(GpuView)
        panel.deliver(shown.append, "while the app runs")
        await wait_for(pilot, lambda: shown)
        assert shown == ["while the app runs"]
    # The app has shut down and the panel's children are gone, as when a reading of runs/ is
    # still queued while the app quits: handled, the result is dropped, nothing raises.
    assert not panel.children
    await panel.on_deliver(Deliver(panel._runs_read, [], None, 0))
    await panel.on_deliver(Deliver(shown.append, "after the quit"))
    await gpus.on_deliver(Deliver(gpus._show_read, GpuSnapshot(False, "no driver"), {}))  # a widget's worker too
    assert shown == ["while the app runs"]


async def test_quitting_while_a_panel_is_being_built_raises_nothing(tmp_path: Path) -> None:
    """The app stops (q in the first second, or a test's end) while the Config panel is mounting:
    Textual's shutdown must not prune it mid-mount (its Select then found its own label gone)."""
    import asyncio

    root = init_project(tmp_path / "p", sample=True).root
    for _ in range(3):  # the mount is caught at a few different points
        app = KimiTuiApp(root)
        async with app.run_test(size=(80, 24)) as pilot:
            while not isinstance(app.screen, WorkbenchScreen):
                await pilot.pause(0.01)
            building = asyncio.create_task(app.screen.mount_panel("config"))
            await asyncio.sleep(0)
        assert building.done()  # shutdown waited for it; run_test re-raised nothing
