"""The two import boundaries the design stands on.

The headless core never imports textual (so it runs in workers and scripts
without a terminal); the UI side (CLI + TUI) never imports torch, transformers
or deepspeed (so the workbench starts instantly and a CUDA problem can never
take the UI down). Checked both in the source text and at run time.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "kimi_tui"
HEAVY = ("torch", "transformers", "deepspeed", "torchaudio")


def _imports(path: Path) -> set[str]:
    names = set()
    for match in re.finditer(r"^\s*(?:from|import)\s+([A-Za-z_][\w]*)", path.read_text(encoding="utf-8"), re.M):
        names.add(match.group(1))
    return names


def test_headless_core_source_never_imports_textual() -> None:
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.relative_to(PACKAGE).parts[0] != "tui" and "textual" in _imports(p)
    ]
    assert offenders == []


def test_only_workers_import_heavy_libraries() -> None:
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.relative_to(PACKAGE).parts[0] != "workers" and set(HEAVY) & _imports(p)
    ]
    assert offenders == []


def _modules_after_import(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True, text=True, check=True,
    ).stdout
    return {m.split(".")[0] for m in out.split()}


def test_cli_and_ui_side_load_no_heavy_library_at_run_time() -> None:
    loaded = _modules_after_import(
        "import kimi_tui.cli, kimi_tui.tui.app, kimi_tui.runs, kimi_tui.pipeline, kimi_tui.project, "
        "kimi_tui.engines.whisper, kimi_tui.evaluate, kimi_tui.gpu, kimi_tui.checkpoints, kimi_tui.data"
    )
    assert not set(HEAVY) & loaded


def test_the_running_tui_with_every_panel_loads_no_heavy_library(tmp_path) -> None:
    code = f"""
import asyncio, sys
from pathlib import Path
from kimi_tui.project import init_project
from kimi_tui.tui.app import KimiTuiApp
root = init_project(Path({str(tmp_path / 'p')!r}), sample=True).root
async def main():
    app = KimiTuiApp(root)
    async with app.run_test(size=(80, 24)) as pilot:
        for key in "12345":
            await pilot.press(key)
            await pilot.pause()
asyncio.run(main())
"""
    loaded = _modules_after_import(code)
    assert "textual" in loaded and not set(HEAVY) & loaded


def test_headless_core_loads_no_textual_at_run_time() -> None:
    loaded = _modules_after_import(
        "import kimi_tui.cli, kimi_tui.runs, kimi_tui.pipeline, kimi_tui.project, kimi_tui.engines.whisper, "
        "kimi_tui.evaluate, kimi_tui.gpu, kimi_tui.checkpoints, kimi_tui.data, kimi_tui.workers.prepare, "
        "kimi_tui.workers.evaluate"
    )
    assert "textual" not in loaded


def test_supervisor_and_events_are_standard_library_only() -> None:
    loaded = _modules_after_import("import kimi_tui.supervisor, kimi_tui.events")
    assert not {"pandas", "numpy", "pydantic", "textual", *HEAVY} & loaded
