"""The Dataset panel as a user sees it at 80x24: rows, search, findings that jump, status, details."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from textual.widgets import Input, Static

from kimi_tui.project import init_project
from kimi_tui.tui import messages
from kimi_tui.tui.app import KimiTuiApp
from kimi_tui.tui.dataset_panel import DatasetPanel
from kimi_tui.tui.widgets.utterance_table import UtteranceTable
from tui_helpers import wait_for

TRAIN_CSV = "split_lingyin_audio_test.csv"


def sample_project(tmp_path: Path) -> Path:
    return init_project(tmp_path / "p", sample=True).root


def project_with_missing_audio(tmp_path: Path) -> Path:
    """The sample, with its training CSV copied and one row added whose id has no WAV file."""
    root = sample_project(tmp_path)
    original = root / "sample" / TRAIN_CSV
    copy = root / "sample" / "train_with_missing.csv"
    shutil.copy(original, copy)
    with copy.open("a", encoding="utf-8") as f:
        f.write("lingyin_train_404,这个录音不见了\n")
    config = root / "kimi-tui.toml"
    config.write_text(config.read_text(encoding="utf-8").replace(TRAIN_CSV, copy.name), encoding="utf-8")
    return root


async def loaded(pilot, app: KimiTuiApp, timeout: float = 60.0) -> DatasetPanel:
    """Until both splits are read and the statistics drawn (they follow the rows on a timer):
    a deadline in seconds, never a count of pauses, which a loaded machine runs through early."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause(0.02)
        panels = app.screen.query(DatasetPanel)
        if panels and "…" not in str(panels.first().border_title) and not panels.first()._stats_dirty:
            await pilot.pause()
            return panels.first()
    raise AssertionError("the Dataset panel did not finish loading")


def screen_lines(table: UtteranceTable) -> list[str]:
    """What the table shows: its lines as text (line 0 is the header)."""
    return ["".join(seg.text for seg in table.render_line(y)) for y in range(table.scrollable_content_region.height)]


def shown_ids(panel: DatasetPanel) -> list[str]:
    return [line.split()[0] for line in screen_lines(panel.table)[1:] if line.strip()]


def text_of(widget: Static) -> str:
    return str(widget.render())


async def test_sample_shows_nine_training_rows_then_ten_test_rows_after_t(tmp_path: Path) -> None:
    app = KimiTuiApp(sample_project(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await loaded(pilot, app)
        assert panel.split == "train"
        assert app.screen.focused is panel.table  # keys work from the start
        assert [r.id for r in panel.view] == [f"lingyin_train_{i:03d}" for i in range(1, 10)]
        assert shown_ids(panel)[:3] == ["lingyin_train_001", "lingyin_train_002", "lingyin_train_003"]
        assert "今天天气很好" in screen_lines(panel.table)[1]
        assert "9 rows" in text_of(panel.query_one("#dataset-count", Static))

        await pilot.press("t")
        await pilot.pause()
        assert panel.split == "test"
        assert len(panel.view) == 10 and panel.view[-1].id == "lingyin_test_010"
        assert shown_ids(panel)[0] == "lingyin_test_001"
        assert "10 rows" in text_of(panel.query_one("#dataset-count", Static))

        await pilot.press("end")
        await pilot.pause()
        assert "lingyin_test_010" in shown_ids(panel)  # scrolled to the last row
        assert panel.selected_row.id == "lingyin_test_010"

        await pilot.press("t")
        await pilot.pause()
        assert panel.split == "train" and len(panel.view) == 9


async def test_status_title_shows_counts_and_stats_show_the_hours(tmp_path: Path) -> None:
    app = KimiTuiApp(sample_project(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await loaded(pilot, app)
        assert str(panel.border_title) == "Dataset · train 9 · test 10 · 0 errors"
        summary = text_of(panel.query_one("#dataset-summary", Static))
        assert "9 clips" in summary and " h " in summary and "chars/s" in summary
        histogram = str(panel.query_one("#dataset-histogram").render())
        assert "█" in histogram and len(histogram.splitlines()) <= 8


async def test_search_filters_rows_by_id_or_transcript_as_you_type(tmp_path: Path) -> None:
    app = KimiTuiApp(sample_project(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await loaded(pilot, app)
        await pilot.press("slash")
        await pilot.pause()
        search = panel.query_one("#dataset-search", Input)
        assert app.screen.focused is search

        await pilot.press(*"train_00", "7")
        await pilot.pause()
        assert [r.id for r in panel.view] == ["lingyin_train_007"]
        assert shown_ids(panel) == ["lingyin_train_007"]
        assert "1/9" in text_of(panel.query_one("#dataset-count", Static))

        search.value = "天气"  # transcript search (typed through an input method in a real terminal)
        await pilot.pause()
        assert [r.text for r in panel.view] == ["今天天气很好"]

        await pilot.press("enter")  # back to the table, search kept
        await pilot.pause()
        assert app.screen.focused is panel.table and len(panel.view) == 1

        await pilot.press("escape")  # clears the search
        await pilot.pause()
        assert search.value == "" and len(panel.view) == 9

        search.value = "no such clip"
        await pilot.pause()
        assert panel.view == [] and "no row matches" in screen_lines(panel.table)[1]


async def test_missing_audio_shows_the_error_finding_and_enter_jumps_to_its_row(tmp_path: Path) -> None:
    app = KimiTuiApp(project_with_missing_audio(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await loaded(pilot, app)
        assert str(panel.border_title) == "Dataset · train 9 · test 10 · 1 error"
        # the left-out row is in the table, marked
        assert len(panel.view) == 10
        last = panel.view[-1]
        assert last.id == "lingyin_train_404"

        await pilot.press("t")  # look at the other split first: the jump must switch back
        await pilot.pause()
        assert panel.split == "test"

        await pilot.press("e")
        await pilot.pause()
        findings = panel.query_one("#dataset-findings", UtteranceTable)
        assert app.screen.focused is findings
        first = screen_lines(findings)[1]
        assert "✗" in first and "missing_audio" in first and "train" in first

        await pilot.press("enter")
        await pilot.pause()
        assert panel.split == "train"
        assert panel.selected_row is last
        row_line = next(line for line in screen_lines(panel.table) if "lingyin_train_404" in line)
        assert "✗ missing_audio" in row_line and "left out" in row_line

        await pilot.press("d")
        await pilot.pause()
        details = text_of(panel.query_one("#dataset-details-body", Static))
        assert "left out" in details and "missing_audio" in details and "fix:" in details
        assert app.screen.focused is panel.table  # the findings list was hidden: keys stay in the panel

        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("f", "f")  # all -> with findings -> errors only
        await pilot.pause()
        assert [r.id for r in panel.view] == ["lingyin_train_404"]
        assert "errors only" in text_of(panel.query_one("#dataset-filter", Static))


async def test_show_finding_message_and_next_finding_jump_through_filters(tmp_path: Path) -> None:
    app = KimiTuiApp(project_with_missing_audio(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await loaded(pilot, app)
        search = panel.query_one("#dataset-search", Input)
        search.value = "train_001"
        await pilot.pause()
        assert len(panel.view) == 1
        await pilot.press("3")  # another panel: the message brings the Dataset tab back
        app.screen.post_message(messages.ShowFinding("train", "lingyin_train_404", 11))
        # The screen hands the message on to the panel (two hops): wait for its effect, not a count of frames.
        await wait_for(pilot, lambda: panel.selected_row is not None and panel.selected_row.id == "lingyin_train_404")
        assert search.value == "" and len(panel.view) == 10  # the search was hiding it
        assert "lingyin_train_404" in shown_ids(panel)  # and the table scrolled to it

        panel.table.move_cursor(0)
        await pilot.press("n")
        await pilot.pause()
        assert panel.selected_row.id == "lingyin_train_404"


async def test_details_show_the_selected_clips_path_and_format(tmp_path: Path) -> None:
    root = sample_project(tmp_path)
    app = KimiTuiApp(root)
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await loaded(pilot, app)
        await pilot.press("down", "down")
        await pilot.press("enter")  # Enter on a row opens its details
        await pilot.pause()
        details = text_of(panel.query_one("#dataset-details-body", Static))
        wav = root / "sample" / "audio" / "lingyin_train_003.wav"
        assert str(wav) in details.replace("\n", "")
        assert "16,000 Hz" in details and "mono" in details and "请把窗户打开" in details
        await pilot.press("down")
        await pilot.pause()
        assert "lingyin_train_004.wav" in text_of(panel.query_one("#dataset-details-body", Static)).replace("\n", "")


async def test_an_unreadable_csv_is_shown_in_the_panel_not_a_crash(tmp_path: Path) -> None:
    root = sample_project(tmp_path)
    (root / "sample" / TRAIN_CSV).write_text("foo,bar\n1,2\n", encoding="utf-8")  # no id/transcript columns
    app = KimiTuiApp(root)
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await loaded(pilot, app)
        assert "train unreadable" in str(panel.border_title) and "test 10" in str(panel.border_title)
        message = text_of(panel.query_one("#dataset-message", Static))
        assert "Cannot read the training set" in message and TRAIN_CSV in message
        assert any("cannot read the training set" in n.title for n in app._notifications)
        await pilot.press("t")
        await pilot.pause()
        assert len(panel.view) == 10


async def test_palette_offers_the_dataset_commands(tmp_path: Path) -> None:
    app = KimiTuiApp(sample_project(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await loaded(pilot, app)
        commands = {title: callback for title, _help, callback in panel.palette_commands()}
        assert {"Dataset: show train", "Dataset: show test", "Dataset: search", "Dataset: next finding",
                "Dataset: reload"} <= set(commands)
        commands["Dataset: show test"]()
        await pilot.pause()
        assert panel.split == "test"
        commands["Dataset: search"]()
        await pilot.pause()
        await pilot.pause()
        assert app.screen.focused is panel.query_one("#dataset-search", Input)


async def test_a_large_data_set_scrolls_and_jumps_to_far_rows(tmp_path: Path) -> None:
    from textual.app import App, ComposeResult

    from kimi_tui.data import Finding, Manifest, Utterance
    from kimi_tui.project import Project
    from kimi_tui.tui.app import stylesheets

    src = str(tmp_path / "big.csv")
    utts = [Utterance(f"utt_{i:05d}", "你好世界" * (1 + i % 5), f"/a/utt_{i:05d}.wav", src, i + 2, 1 + i % 29,
                      16000, 1, 16000) for i in range(20000)]
    lost = Finding("error", "missing_audio", "big.csv line 20002 (id gone): no audio", src, 20002, "gone", None, "Fix")
    manifests = {"train": Manifest("train", utts, [lost], 20001), "test": None}
    project = Project.load(sample_project(tmp_path))

    class Harness(App):
        CSS_PATH = stylesheets()

        def compose(self) -> ComposeResult:
            yield DatasetPanel(project, manifests=manifests)

    app = Harness()
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await loaded(pilot, app)
        assert len(panel.view) == 20001 and str(panel.border_title) == "Dataset · train 20,000 · 1 error"
        await pilot.press("pagedown", "pagedown")
        assert panel.table.cursor_row == 2 * panel.table.data_height
        assert panel.selected_row.id in shown_ids(panel)
        await pilot.press("end")
        assert shown_ids(panel)[-1] == "gone"  # the left-out row, at its place in the file
        await pilot.press("home", "f", "f", "f")  # all -> with findings -> errors only -> over 20 s
        await pilot.pause()
        assert [r.id for r in panel.view] == [u.id for u in utts if u.duration_s > 20]
        await pilot.press("f", "f", "f")  # -> all -> with findings -> errors only
        await pilot.pause()
        assert [r.id for r in panel.view] == ["gone"]
        panel.jump_to("train", "utt_19999", 20001)  # hidden by the filter: cleared, scrolled to
        await pilot.pause()
        assert panel.selected_row.id == "utt_19999" and "utt_19999" in shown_ids(panel)
        assert "all rows" in text_of(panel.query_one("#dataset-filter", Static))


async def test_counts_of_one_read_as_one_row_and_one_clip(tmp_path: Path) -> None:
    app = KimiTuiApp(sample_project(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await loaded(pilot, app)
        await pilot.press("slash")
        await pilot.press(*"train_007")
        await pilot.press("enter")
        deadline = time.monotonic() + 30
        while "1 row shown" not in text_of(panel.query_one("#dataset-summary", Static)):
            assert time.monotonic() < deadline, text_of(panel.query_one("#dataset-summary", Static))
            await pilot.pause(0.05)
        summary = text_of(panel.query_one("#dataset-summary", Static))
        assert "1 clip ·" in summary and "1 clips" not in summary and "1 rows" not in summary


def test_plural_says_one_row_and_two_clips() -> None:
    from kimi_tui.words import plural

    assert [plural(1, "row"), plural(2, "clip"), plural(0, "error"), plural(12000, "row")] == \
        ["1 row", "2 clips", "0 errors", "12,000 rows"]
    assert plural(1, "process", "processes") == "1 process" and plural(3, "process", "processes") == "3 processes"
