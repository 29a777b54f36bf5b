"""The Dataset panel with 100,000 utterances: build, first paint, scrolling, search.

Usage: python benchmarks/dataset_panel.py [--n 100000] [--repeat 3] [--probe 5000] [--no-datatable]

Synthetic Utterance objects (no audio files: ids, 8-30 Chinese characters,
1-25 s, 1% at 8 kHz with a note, 0.2% left out by a missing_audio error), so
the UI's own cost is measured apart from the ingest's. Everything below is
measured in the same process, each figure next to its baseline:

  build      SplitData.build (rows + findings merged, column widths, whole-split
             statistics; runs in the load worker) for --n rows vs 1,000 rows
  first paint  a Pilot session (80x24) of an app holding only the DatasetPanel,
             from run_test() until the table has drawn its first data row:
             --n rows vs 1,000 rows vs an empty data set
  scrolling  50 cursor moves and 50 page-downs in the table, --n vs 1,000 rows,
             and how many lines were drawn for them (only visible lines are)
  search     one keystroke of a search typed into the panel, --n vs 1,000 rows
  DataTable  (reference, skip with --no-datatable) Textual's DataTable filled
             with the same rows via add_rows, until its first paint
  ingest     load_split over --probe real (tiny) WAV files and a CSV, per row and
             scaled to --n rows: the headless core's cost, paid in the worker
The targets: the panel opens --n rows in under 2 s and scrolls without lag.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kimi_tui.config import ProjectConfig  # noqa: E402
from kimi_tui.data import Finding, Manifest, Utterance, load_split  # noqa: E402
from kimi_tui.project import Project  # noqa: E402
from kimi_tui.tui.app import stylesheets  # noqa: E402
from kimi_tui.tui.dataset_panel import DatasetPanel, SplitData  # noqa: E402
from kimi_tui.tui.widgets.utterance_table import UtteranceTable  # noqa: E402

CHARS = [chr(c) for c in range(0x4E00, 0x4E00 + 2000)]


def make_manifest(n: int, split: str = "train", seed: int = 0) -> Manifest:
    rng = random.Random(seed)
    source = f"/data/{split}.csv"
    utts: list[Utterance] = []
    findings: list[Finding] = []
    for i in range(n):
        line = i + 2
        uid = f"spk{i % 500:04d}_utt_{i:06d}"
        audio = f"/data/{split}_audio/spk{i % 500:04d}/{uid}.wav"
        if i % 500 == 7:
            message = f"{split}.csv line {line} (id {uid}): no audio file found"
            findings.append(Finding("error", "missing_audio", message, source, line, uid, None, "Check the id."))
            continue
        rate = 8000 if i % 100 == 3 else 16000
        if rate != 16000:
            findings.append(Finding("note", "resampled", f"{split}.csv line {line} (id {uid}): audio is 8000 Hz",
                                    source, line, uid, audio, "Nothing to do."))
        duration = round(rng.uniform(1.0, 25.0), 3)
        text = "".join(rng.choices(CHARS, k=rng.randint(8, 30)))
        utts.append(Utterance(uid, text, audio, source, line, duration, rate, 1, int(duration * rate)))
    return Manifest(split, utts, findings, n)


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


class Harness:
    """An app holding only the DatasetPanel, fed synthetic manifests; records when data rows are first drawn."""

    def __init__(self, manifests: dict[str, Manifest | None]) -> None:
        from textual.app import App, ComposeResult

        project = Project(root=Path(tempfile.gettempdir()), config=ProjectConfig())

        class PanelApp(App):
            CSS_PATH = stylesheets()

            def compose(self) -> ComposeResult:
                yield DatasetPanel(project, manifests=manifests)

        self.app = PanelApp()
        self.first_paint: float | None = None
        self.lines_drawn = 0


async def paint_and_scroll(manifests: dict[str, Manifest | None], moves: int = 50) -> dict[str, float]:
    harness = Harness(manifests)
    original = UtteranceTable.render_line

    def render_line(table: UtteranceTable, y: int):
        strip = original(table, y)
        if table.id == "dataset-table":
            harness.lines_drawn += 1
            panel = table.parent
            if harness.first_paint is None and y >= 1 and "train" in panel._data:
                harness.first_paint = time.perf_counter()
        return strip

    UtteranceTable.render_line = render_line  # type: ignore[method-assign]
    out: dict[str, float] = {}
    try:
        start = time.perf_counter()
        async with harness.app.run_test(size=(80, 24)) as pilot:
            while harness.first_paint is None:
                await pilot.pause(0.001)
            out["first_paint"] = harness.first_paint - start
            panel = harness.app.query_one(DatasetPanel)
            panel.table.focus()
            await pilot.pause()
            for key, name in (("down", "down"), ("pagedown", "pagedown")):
                panel.table.move_cursor(0)
                await pilot.pause()
                harness.lines_drawn = 0
                t0, c0 = time.perf_counter(), time.process_time()
                for _ in range(moves):
                    await pilot.press(key)
                out[name] = time.perf_counter() - t0
                out[f"{name}_cpu"] = time.process_time() - c0
                out[f"{name}_lines"] = harness.lines_drawn
            # one frame of the table drawn from scratch (no line cache), mid-table
            table = panel.table
            table.move_cursor(table.row_count // 2, center=True)
            await pilot.pause()
            frames = []
            for _ in range(20):
                table.refresh_rows()
                t0 = time.perf_counter()
                for y in range(table.scrollable_content_region.height):
                    table.render_line(y)
                frames.append(time.perf_counter() - t0)
            out["frame"] = min(frames)
            search = panel.query_one("#dataset-search")
            search.focus()
            await pilot.pause()
            wall, cpu = [], []
            for ch in "utt_0":
                t0, c0 = time.perf_counter(), time.process_time()
                await pilot.press(ch)
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            out["search_key"] = statistics.median(wall)
            out["search_cpu"] = statistics.median(cpu)
            out["search_rows"] = len(panel.view)
    finally:
        UtteranceTable.render_line = original  # type: ignore[method-assign]
    return out


async def datatable_first_paint(manifest: Manifest) -> float:
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable

    painted: list[float] = []

    class TableApp(App):
        def compose(self) -> ComposeResult:
            yield DataTable()

    app = TableApp()
    start = time.perf_counter()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(DataTable)
        original = table.render_line

        def render_line(y: int):
            if not painted and table.row_count:
                painted.append(time.perf_counter())
            return original(y)

        table.render_line = render_line  # type: ignore[method-assign]
        table.add_columns("id", "dur s", "rate", "ch", "transcript", "findings")
        table.add_rows((u.id, f"{u.duration_s:.2f}", u.sample_rate, u.channels, u.text, "")
                       for u in manifest.utterances)
        while not painted:
            await pilot.pause(0.001)
    return painted[0] - start


def ingest(n: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        audio = root / "audio"
        audio.mkdir()
        silence = b"\0\0" * 3200  # 0.2 s at 16 kHz
        lines = ["id,text"]
        for i in range(n):
            uid = f"utt_{i:06d}"
            with wave.open(str(audio / f"{uid}.wav"), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(16000)
                w.writeframes(silence)
            lines.append(f"{uid},今天天气很好{i}")
        (root / "train.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        start = time.perf_counter()
        manifest = load_split("train", csv_path=root / "train.csv", audio_dir=audio)
        return time.perf_counter() - start, len(manifest.utterances)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--probe", type=int, default=5000, help="WAV files for the ingest measurement (0: skip)")
    parser.add_argument("--no-datatable", action="store_true")
    args = parser.parse_args()
    n = args.n

    big = {"train": make_manifest(n), "test": make_manifest(n // 10, "test", seed=1)}
    small = {"train": make_manifest(1000), "test": make_manifest(100, "test", seed=1)}
    empty = {"train": Manifest("train", [], [], 0), "test": None}
    print(f"{n:,} synthetic rows ({len(big['train'].utterances):,} clips, {len(big['train'].findings):,} findings); "
          f"test split {n // 10:,} rows; Textual Pilot at 80x24, best of {args.repeat}")

    build_big = best_of(args.repeat, lambda: SplitData.build("train", big["train"]))
    build_small = best_of(args.repeat, lambda: SplitData.build("train", small["train"]))
    print(f"build the table data   {n:>7,} rows {build_big * 1000:8.1f} ms   (1,000 rows {build_small * 1000:6.2f} ms)")

    def best_session(manifests):
        runs = [asyncio.run(paint_and_scroll(manifests)) for _ in range(args.repeat)]
        return {key: min(r[key] for r in runs) for key in runs[0]}

    r_empty = best_session(empty)
    r_small = best_session(small)
    r_big = best_session(big)
    print(f"first paint of panel   {n:>7,} rows {r_big['first_paint'] * 1000:8.1f} ms   "
          f"(1,000 rows {r_small['first_paint'] * 1000:6.1f} ms, empty {r_empty['first_paint'] * 1000:6.1f} ms)")
    for key, label in (("down", "50 cursor moves (down)"), ("pagedown", "50 page-downs         ")):
        print(f"{label} {n:>7,} rows {r_big[key] * 1000:8.1f} ms   (1,000 rows {r_small[key] * 1000:6.1f} ms)   "
              f"CPU {r_big[key + '_cpu'] * 1000:.0f} ms (1,000 rows {r_small[key + '_cpu'] * 1000:.0f} ms); "
              f"{r_big[key + '_lines']:,.0f} lines drawn")
    print(f"redraw the table once  {n:>7,} rows {r_big['frame'] * 1000:8.2f} ms   "
          f"(1,000 rows {r_small['frame'] * 1000:6.2f} ms)   every visible line, no cache")
    print(f"search, one keystroke  {n:>7,} rows {r_big['search_key'] * 1000:8.1f} ms   "
          f"(1,000 rows {r_small['search_key'] * 1000:6.1f} ms)   CPU {r_big['search_cpu'] * 1000:.0f} ms "
          f"(1,000 rows {r_small['search_cpu'] * 1000:.0f} ms); {r_big['search_rows']:,.0f} rows match 'utt_0'")
    print("(Pilot's key presses wait for the app to go idle: ~60 ms a key at any size; CPU time is the work done)")

    if not args.no_datatable:
        dt_big = asyncio.run(datatable_first_paint(big["train"]))
        dt_small = asyncio.run(datatable_first_paint(small["train"]))
        print(f"DataTable first paint  {n:>7,} rows {dt_big * 1000:8.1f} ms   (1,000 rows {dt_small * 1000:6.1f} ms)"
              "   reference: why the table is virtual")

    if args.probe:
        seconds, count = ingest(args.probe)
        print(f"ingest (load_split)    {args.probe:>7,} WAVs {seconds * 1000:8.1f} ms   "
              f"{seconds / count * 1e6:.0f} µs a row -> ~{seconds / count * n:.1f} s for {n:,} rows (in the worker)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
