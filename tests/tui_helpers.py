"""Waiting for the workbench in Pilot tests: panels other than Dataset are built after the
first frame (or when first shown), so tests wait for them instead of assuming them."""

from __future__ import annotations

import time


async def wait_for_panel(pilot, panel_class, timeout: float = 60.0):
    from kimi_tui.tui.app import WorkbenchScreen

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        screens = [s for s in pilot.app.screen_stack if isinstance(s, WorkbenchScreen)] or pilot.app.screen_stack
        for screen in screens:
            found = screen.query(panel_class)
            if found:
                await pilot.pause()
                return found.first()
        await pilot.pause(0.05)
    raise AssertionError(f"{panel_class.__name__} was never built")


async def wait_for_all_panels(pilot, timeout: float = 60.0) -> None:
    """Until the workbench has built every panel, so a test never ends mid-build."""
    from kimi_tui.tui.app import PANEL_ORDER
    from kimi_tui.tui.panel import Panel

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(pilot.app.query(Panel)) >= len(PANEL_ORDER) or any(
            len(s.query(Panel)) >= len(PANEL_ORDER) for s in pilot.app.screen_stack
        ):
            await pilot.pause()
            return
        await pilot.pause(0.05)


async def wait_for(pilot, condition, timeout: float = 30.0) -> None:
    """Until ``condition()`` holds, pausing the app between checks."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)
