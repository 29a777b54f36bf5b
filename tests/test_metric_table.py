"""The metric table (kimi_tui.evaluate.metric_table) against every surface that shows the metrics.

A metric summarise() starts computing must be in the table; a metric in the table must reach the
report's CSV, `kimi-tui score` (--json and text) and, for the rates, the report's Markdown and the
Evaluation panel, under the table's label and in its format. A surface that lists its columns on
its own again, or a new key nobody added to the table, fails here.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from textual.widgets import DataTable

from kimi_tui.cli import main
from kimi_tui.config import save_config, set_field
from kimi_tui.evaluate import metric_table, report as report_module
from kimi_tui.evaluate.metric_table import (
    BY_KEY,
    DESCRIPTIONS,
    MARKDOWN_COLUMNS,
    METRICS,
    MIXED,
    PANEL_COLUMNS,
    PERCENT,
    SCORE_TEXT,
    SDI,
    csv_metrics,
    metrics,
    pct,
    score_keys,
)
from kimi_tui.evaluate.metrics import score_pairs, summarise, summarise_texts
from kimi_tui.evaluate.normalise import Normaliser, NormaliserOptions
from kimi_tui.evaluate.report import build_report, load_evaluation, render_csv, render_markdown
from kimi_tui.project import Project
from kimi_tui.tui import evaluation_panel
from kimi_tui.tui.evaluation_panel import EvaluationPanel
from kimi_tui.tui.widgets import alignment_view
from test_tui_evaluation_panel import EVAL_NAME, Harness, make_project, rows, settle

PAIRS = [("a", "我用iPhone拍照", "我用 IPHONE 拍照片"), ("b", "今天天气很好", "今天天汽很好"), ("c", "", "啊"),
         ("d", "请把窗户打开", None)]
#: Rates the panel leaves out to fit 80 columns (the report and `kimi-tui score` show them).
PANEL_OMITS = {"exact_match_raw"}
#: `kimi-tui score --json`'s keys, in order: a stable interface (scripts read them).
SCORE_JSON_KEYS = ["n_utts", "n_ref_chars", "sub", "del", "ins", "cer", "macro_cer", "ser", "exact_match",
                   "exact_match_raw", "similarity", "similarity_formula", "n_empty_ref", "n_empty_hyp",
                   "n_missing_hyp", "n_hyp_over_2x_ref", "n_cer_over_100", "normaliser"]
SCORE_JSON_MIXED = ["n_ref_tokens", "mer", "mer_note"]
SCORE_JSON_END = ["ids_only_in_hyp", "warnings"]
#: In `kimi-tui score`'s text this one reads "exact 50.0% (raw 50.0%)", not under its own label.
SCORE_PHRASED = {"exact_match_raw"}


def summary_of(mixed: bool) -> dict:
    normaliser = Normaliser(NormaliserOptions(mixed=mixed))
    return summarise(score_pairs(PAIRS, normaliser), normaliser)


def value_metrics(mixed: bool = True) -> list:
    """The table's metrics that are summarise() keys (S/D/I is three of them in one cell)."""
    return [m for m in METRICS if m.kind != SDI and m.applies_to(mixed)]


@pytest.mark.parametrize("mixed", [False, True])
def test_every_summarise_key_is_a_metric_of_the_table_or_a_description(mixed: bool) -> None:
    for summary in (summary_of(mixed), summarise_texts([r for _, r, _ in PAIRS], [h for *_, h in PAIRS],
                                                        Normaliser(NormaliserOptions(mixed=mixed)))):
        keys = [k for k in summary if k not in DESCRIPTIONS]
        assert sorted(keys) == sorted(m.key for m in value_metrics(mixed))
    assert [m.key for m in METRICS if m.applies == MIXED] == ["n_ref_tokens", "mer"]
    for m in METRICS:
        assert all(part in BY_KEY for part in m.parts)


def test_one_pct_formats_every_rate_everywhere() -> None:
    assert report_module.pct is pct and evaluation_panel.pct is pct and alignment_view.pct is pct
    assert evaluation_panel.points is metric_table.points
    assert (pct(None), pct(0.1234), pct(0.1234, 2), pct(8.79)) == ("-", "12.3%", "12.34%", "879.0%")


def _evaluation(tmp_path: Path) -> Path:
    root = make_project(tmp_path)
    return Project.load(root).evaluations_dir / EVAL_NAME


@pytest.mark.parametrize("mixed", [False, True])
def test_report_csv_header_and_cells_are_the_tables(tmp_path: Path, mixed: bool) -> None:
    report = build_report(load_evaluation(_evaluation(tmp_path)), Normaliser(NormaliserOptions(mixed=mixed)),
                          resamples=20)
    table = list(csv.reader(io.StringIO(render_csv(report))))
    header = table[0]
    first, last = csv_metrics(mixed)
    assert header == ["model", "split", *(m.key for m in first), "normaliser", "state", "clips", "of", "error",
                      *(m.key for m in last)]
    assert {m.key for m in first + last} == {m.key for m in value_metrics(mixed)}  # every value, nothing else
    assert [m.key for m in last] == (["n_ref_tokens", "mer"] if mixed else [])  # last: the columns before stay put
    row = dict(zip(header, table[1]))
    summary = report["models"][row["model"]][row["split"]]
    for m in first + last:
        assert row[m.key] == ("" if summary[m.key] is None else str(summary[m.key]))


@pytest.mark.parametrize("mixed", [False, True])
def test_report_markdown_table_has_the_tables_labels_and_formats(tmp_path: Path, mixed: bool) -> None:
    report = build_report(load_evaluation(_evaluation(tmp_path)), Normaliser(NormaliserOptions(mixed=mixed)),
                          resamples=20)
    lines = render_markdown(report).splitlines()
    shown = metrics(MARKDOWN_COLUMNS, mixed)
    header = "| " + " | ".join(["model", "state", *(m.label for m in shown)]) + " |"
    assert header in lines
    rates = [m.key for m in value_metrics(mixed) if m.kind == PERCENT]
    assert [m.key for m in shown if m.kind == PERCENT] == [k for k in MARKDOWN_COLUMNS if k in rates]
    assert set(rates) <= set(MARKDOWN_COLUMNS)  # every rate is in the report's table
    summary = report["models"]["checkpoint-10"]["test"]
    row = "| " + " | ".join(["checkpoint-10", "complete", *(m.format(summary) for m in shown)]) + " |"
    assert row in lines


def _score(tmp_path: Path, capsys, *flags: str) -> str:
    ref, hyp = tmp_path / "ref.txt", tmp_path / "hyp.txt"
    ref.write_text("".join(f"{i} {r}\n" for i, r, _ in PAIRS), encoding="utf-8")
    hyp.write_text("".join(f"{i} {h}\n" for i, _, h in PAIRS if h is not None), encoding="utf-8")
    capsys.readouterr()
    assert main(["score", str(ref), str(hyp), *flags]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("mixed", [False, True])
def test_score_json_keys_and_text_come_from_the_table(tmp_path: Path, capsys, mixed: bool) -> None:
    flags = ["--mixed"] if mixed else []
    summary = json.loads(_score(tmp_path, capsys, "--json", *flags))
    values = value_metrics(mixed)
    assert list(summary) == SCORE_JSON_KEYS + (SCORE_JSON_MIXED if mixed else []) + SCORE_JSON_END
    assert {m.key for m in values} <= set(summary)  # every metric that applies
    placeholders = [k for line in SCORE_TEXT for k in score_keys(line)]
    assert sorted(placeholders) == sorted(m.key for m in value_metrics())  # the text shows every metric once
    text = _score(tmp_path, capsys, *flags)
    for m in values:
        if m.kind == PERCENT and m.key not in SCORE_PHRASED:
            digits = 2 if f"{{{m.key}:2}}" in "".join(SCORE_TEXT) else 1
            assert f"{m.label} {m.format(summary, digits)}" in text, m.key
    assert ("MER " in text) == mixed
    assert text.splitlines()[-1] == f"normaliser: {summary['normaliser']}"


@pytest.mark.parametrize("mixed", [False, True])
async def test_panel_columns_are_the_tables_labels_and_cells_its_formats(tmp_path: Path, mixed: bool) -> None:
    root = make_project(tmp_path)
    project = Project.load(root)
    save_config(project.config_path, set_field(project.config, "eval.mixed_tokens", mixed))
    app = Harness(root)
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(EvaluationPanel)
        await settle(pilot, panel)
        table = panel.query_one("#ev-metrics", DataTable)
        shown = metrics(PANEL_COLUMNS, mixed)
        assert [str(c.label) for c in table.columns.values()] == ["model", *(m.column for m in shown)]
        rates = {m.key for m in value_metrics(mixed) if m.kind == PERCENT}
        assert rates - {m.key for m in shown} == PANEL_OMITS
        assert all(m.column == m.label for m in shown if not m.short)
        for cells in rows(table):
            summary = panel.data.metrics[cells[0][2:]][panel.split]
            assert cells[1:] == [m.format(summary) for m in shown]
