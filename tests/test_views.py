"""The panels' view-models without a terminal: checkpoint rows, dataset rows and statistics,
and a followed run's events read from an offset."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from kimi_tui.events import EventWriter, read_events_after
from kimi_tui.progress import RunProgress, read_new_events
from kimi_tui.project import Project, init_project
from kimi_tui.views import checkpoints as ck
from kimi_tui.views import dataset as ds


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return init_project(tmp_path / "p", sample=True)


def make_checkpoint(training: Path, step: int, *, complete: bool = True) -> Path:
    folder = training / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"\0" * 4096)
    if complete:
        history = [{"step": s, "loss": round(3.0 / s, 4)} for s in range(1, step + 1)]
        (folder / "trainer_state.json").write_text(json.dumps({"log_history": history}), encoding="utf-8")
    return folder


# -- checkpoints ------------------------------------------------------------------


def test_scan_lists_checkpoints_in_step_order_then_final_and_export(project: Project) -> None:
    training = project.training_dir
    make_checkpoint(training, 20)
    make_checkpoint(training, 10)
    make_checkpoint(training, 30, complete=False)
    final = training / "final"
    final.mkdir()
    (final / "config.json").write_text("{}", encoding="utf-8")
    (final / "model.safetensors").write_bytes(b"\0" * 10)
    (final / ck.META_FILE).write_text(json.dumps({"step": 20}), encoding="utf-8")

    entries = ck.scan(project)

    assert [e.key for e in entries] == ["checkpoint-10", "checkpoint-20", "checkpoint-30", "final"]
    by_key = {e.key: e for e in entries}
    assert by_key["checkpoint-10"].complete and by_key["checkpoint-10"].loss == pytest.approx(0.3)
    assert not by_key["checkpoint-30"].complete and by_key["checkpoint-30"].state_text == "incomplete"
    assert by_key["final"].step == 20 and by_key["final"].loss == by_key["checkpoint-20"].loss
    assert by_key["final"].kind == "final" and by_key["final"].label == "training/final"


def test_scan_of_a_project_that_never_trained_is_empty(project: Project) -> None:
    assert ck.scan(project) == []
    assert ck.previous_outputs(project) == []
    assert ck.training_id(project) is None


def test_signature_changes_when_a_save_completes_and_not_otherwise(project: Project) -> None:
    folder = make_checkpoint(project.training_dir, 10, complete=False)
    before = ck.signature(project)
    assert ck.signature(project) == before
    (folder / "trainer_state.json").write_text("{}", encoding="utf-8")
    assert ck.signature(project) != before


def test_previous_outputs_newest_first_with_their_checkpoint_counts(project: Project) -> None:
    for name, steps in (("training.20250101-100000", (10, 20)), ("training.20250102-100000", ())):
        (project.root / name).mkdir()
        for step in steps:
            make_checkpoint(project.root / name, step)
    (project.root / "training.notatime").mkdir()  # not a name keep_previous_outputs writes

    previous = ck.previous_outputs(project)

    assert previous == [("training.20250102-100000/", 0), ("training.20250101-100000/", 2)]
    assert ck.previous_text(previous) == (
        "Earlier runs, moved aside: training.20250102-100000/, training.20250101-100000/ (2 checkpoints)")
    assert ck.previous_text(previous * 2).endswith(" and 2 more")


def test_training_id_names_this_training_folder(project: Project) -> None:
    project.training_dir.mkdir(parents=True)
    first = ck.training_id(project)
    assert first is not None and ck.training_id(project) == first
    project.training_dir.rename(project.root / "training.20250101-100000")
    project.training_dir.mkdir()
    assert ck.training_id(project) not in (None, first)


def test_human_size_and_age() -> None:
    assert ck.human_size(999) == "999 B"
    assert ck.human_size(1_500_000) == "1.5 MB"
    assert ck.human_age(59) == "59s ago" and ck.human_age(7200) == "2h ago" and ck.human_age(-3) == "0s ago"


# -- dataset ------------------------------------------------------------------------


def test_histogram_has_round_edges_and_counts_every_duration() -> None:
    durations = [0.4, 1.2, 2.5, 2.6, 7.9]
    bins = ds.histogram(durations)
    assert 1 <= len(bins) <= ds.HIST_BINS
    assert sum(n for _, _, n in bins) == len(durations)
    assert bins[0][0] <= min(durations) and bins[-1][1] >= max(durations)
    assert ds.histogram([]) == []


def test_sample_split_loads_with_statistics(project: Project) -> None:
    data = ds.load_split_data(project, "train", measure=lambda values, low, high: high)
    assert not data.error and not data.missing
    assert data.stats.clips == data.n_utterances > 0
    assert data.stats.total_s > 0 and data.stats.min_s <= data.stats.mean_s <= data.stats.max_s
    assert sum(n for _, _, n in data.stats.bins) == data.stats.clips
    assert (data.id_width, data.findings_width) == (28, 22)  # the measure given decides the widths
    first = data.rows[0]
    assert data.find(first.id, first.line) is first


def test_rows_left_out_by_an_error_are_rows_with_their_reason(project: Project) -> None:
    csv = project.root / "data" / "bad.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    audio = project.root / "data" / "audio"
    audio.mkdir(exist_ok=True)
    csv.write_text("id,audio,text\nu1,missing.wav,你好\n", encoding="utf-8")
    config = project.config_path.read_text(encoding="utf-8")
    assert "train_csv" in config
    lines = [f'train_csv = "{csv}"' if line.startswith("train_csv") else
             f'train_audio = "{audio}"' if line.startswith("train_audio") else line
             for line in config.splitlines()]
    project.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    data = ds.load_split_data(Project.load(project.root), "train")

    assert data.stats.clips == 0 and data.stats.excluded == 1
    row = data.rows[0]
    assert isinstance(row, ds.ExcludedRow) and row.id == "u1" and row.reason
    assert not row.reason.startswith(csv.name)  # the prefix the table already shows is cut
    mark, level = ds.finding_cell(data.by_line[row.line])
    assert level == "error" and mark.startswith(ds.LEVEL_MARK["error"])


def test_hms() -> None:
    assert ds.hms(3725.4) == "1:02:05"


# -- a followed run's events ---------------------------------------------------------------


def test_read_events_after_leaves_a_line_being_written_for_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    EventWriter(path).progress(1, 10)
    with open(path, "ab") as fh:
        fh.write(b'{"type": "progress", "step": 2')  # a writer mid-line
    events, offset = read_events_after(path, 0)
    assert [e["step"] for e in events] == [1] and offset == len(path.read_bytes().split(b"\n")[0]) + 1
    with open(path, "ab") as fh:
        fh.write(b', "total": 10, "t": 1}\nnot json\n')
    events, end = read_events_after(path, offset)
    assert [e["step"] for e in events] == [2] and end == path.stat().st_size
    assert read_events_after(path, end) == ([], end)
    assert read_events_after(tmp_path / "none.jsonl", 0) == ([], 0)


def test_read_new_events_boils_down_progress_losses_and_the_last_error(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    writer.progress(1, 4)
    writer.metric(1, loss=2.5)
    writer.progress(2, 4)
    writer.metric(2, loss=1.5, learning_rate=1e-4)
    writer.error("CUDA out of memory")
    read = read_new_events(path, 0)
    assert [(s, t) for _, s, t in read.progress] == [(1, 4), (2, 4)]
    assert read.losses == [(1.0, 2.5), (2.0, 1.5)] and read.last_error == "CUDA out of memory"

    progress = RunProgress()
    progress.merge(read)
    assert (progress.step, progress.total, progress.loss, progress.offset) == (2, 4, 1.5, path.stat().st_size)
    writer.progress(3, 4)
    progress.merge(read_new_events(path, progress.offset))
    assert progress.step == 3 and progress.loss == 1.5 and progress.last_error == "CUDA out of memory"


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_checkpoint_is_a_row_that_says_why(project: Project) -> None:
    folder = make_checkpoint(project.training_dir, 10)
    (folder / "trainer_state.json").chmod(0)
    try:
        entry = ck.scan(project)[0]
    finally:
        (folder / "trainer_state.json").chmod(0o644)
    assert entry.state == "unreadable" and "trainer_state.json" in entry.state_text
