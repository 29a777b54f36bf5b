"""The Evaluation panel as a user sees it at 80x24: the numbers of every model, the A/B verdict with
its interval, the utterances sorted by what changed, each aligned against its reference, and the export.

The evaluation is fabricated like the evaluate stage writes it (tests/test_evaluate.py), with texts
small enough to score by hand:

    test refs  t1 今天天气很好 (6)   t2 我们去公园 (5)   t3 请把窗户打开 (6)   -> 17 characters
    base           13 x 好: 5 S + 7 I = 12   ""        : 5 D          (missing): 6 D      -> 23/17 = 135.3%
    checkpoint-10  天汽: 1 S                  公元: 1 S                 窗打开: 1 D          ->  3/17 =  17.6%
    checkpoint-20  exact                      exact                     窗打开: 1 D          ->  1/17 =   5.9%
    export         as checkpoint-20                                                      ->  1/17 =   5.9%
"""

from __future__ import annotations

import json
from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Footer, Static, TabbedContent
from textual.worker import WorkerCancelled, WorkerFailed

from tui_helpers import wait_for_panel
from kimi_tui.evaluate.align import display_width
from kimi_tui.evaluate.compare import compare
from kimi_tui.evaluate.metrics import score_pairs, score_utterance
from kimi_tui.config import save_config, set_field
from kimi_tui.project import Project, init_project
from kimi_tui.tui.app import KimiTuiApp, WorkbenchScreen, stylesheets
from kimi_tui.tui.evaluation_panel import NO_EVALUATION, EvaluationPanel, points
from kimi_tui.tui.project_watcher import ProjectWatcher
from kimi_tui.tui.widgets.alignment_view import (
    STYLE_DEL,
    STYLE_SUB,
    AlignedModel,
    AlignmentView,
    UtteranceAlignment,
    render_alignment,
)

REFS = {"test": {"t1": "今天天气很好", "t2": "我们去公园", "t3": "请把窗户打开"},
        "train": {"r1": "明天早上八点开会", "r2": "他喜欢喝绿茶"}}
HYPS = {
    "base": {"t1": "好" * 13, "t2": "", "r1": "好" * 17, "r2": "好"},
    "checkpoint-10": {"t1": "今天天汽很好", "t2": "我们去公元", "t3": "请把窗打开", "r1": "明天早上八点开会", "r2": "他喜欢喝茶"},
    "checkpoint-20": {"t1": "今天天气很好", "t2": "我们去公园", "t3": "请把窗打开", "r1": "明天早上八点开会", "r2": "他喜欢喝绿茶"},
    "export": {"t1": "今天天气很好", "t2": "我们去公园", "t3": "请把窗打开", "r1": "明天早上八点开会", "r2": "他喜欢喝绿茶"},
}
EVAL_NAME = "20261128-005431"


def write_evaluation(folder: Path) -> Path:
    (folder).mkdir(parents=True)
    (folder / "evaluation.json").write_text(json.dumps({"models": list(HYPS), "splits": ["test", "train"],
                                                        "n_train_utterances": 2}))
    (folder / "references.jsonl").write_text("".join(
        json.dumps({"split": s, "id": i, "reference": r}, ensure_ascii=False) + "\n"
        for s, t in REFS.items() for i, r in t.items()
    ), encoding="utf-8")
    for model, table in HYPS.items():
        (folder / model).mkdir()
        (folder / model / "predictions.jsonl").write_text("".join(
            json.dumps({"split": "test" if i.startswith("t") else "train", "id": i, "hypothesis": h},
                       ensure_ascii=False) + "\n" for i, h in table.items()
        ), encoding="utf-8")
    (folder / "metrics.json").write_text("{}")
    return folder


def make_project(tmp_path: Path, evaluation: bool = True) -> Path:
    project = init_project(tmp_path / "p", sample=True)
    if evaluation:
        write_evaluation(project.evaluations_dir / EVAL_NAME)
    return project.root


class Harness(App):
    """The panel alone, with the app's stylesheets, at 80x24: other panels stay out of these tests."""

    CSS_PATH = stylesheets()

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.project = Project.load(root)

    def compose(self) -> ComposeResult:
        yield EvaluationPanel(self.project)
        yield ProjectWatcher(self.project)  # what the workbench screen has: it tells the panel of changes
        yield Footer()


async def settle(pilot, panel: EvaluationPanel) -> None:
    """Wait for the panel's workers (load, bootstrap, export) and the messages they post."""
    for _ in range(4):
        await pilot.pause()
        for worker in [w for w in pilot.app.workers if w.node is panel]:
            try:
                await worker.wait()
            except (WorkerCancelled, WorkerFailed):
                pass  # superseded by a newer load, or a failure the test asserts on
    await pilot.pause()


def rows(table: DataTable) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def comparison(panel: EvaluationPanel) -> str:
    return str(panel.query_one("#ev-comparison", Static).content)


async def test_metrics_table_and_ab_comparison_in_the_workbench(tmp_path: Path) -> None:
    app = KimiTuiApp(make_project(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        while not isinstance(app.screen, WorkbenchScreen):  # the project opens on the first frames
            await pilot.pause()
        await pilot.press("5")
        panel = await wait_for_panel(pilot, EvaluationPanel)
        assert app.screen.query_one(TabbedContent).active == "tab-evaluation"
        await settle(pilot, panel)
        table = rows(panel.query_one("#ev-metrics", DataTable))
        by_model = {r[0][2:]: r for r in table}
        assert list(by_model) == ["base", "checkpoint-10", "checkpoint-20", "export"]
        assert by_model["base"][1] == "135.3%"  # 23 errors / 17 characters
        assert by_model["checkpoint-10"][1:3] == ["17.6%", "2/1/0"]  # 2 S + 1 D over 17
        assert by_model["checkpoint-20"][1] == "5.9%" and by_model["export"][7] == "3"
        assert "test N=3" in panel.border_title and "zh-cer v2" in panel.border_title
        assert EVAL_NAME in panel.border_title
        # The last two checkpoints are compared by default, with the paired bootstrap's interval.
        a = score_pairs([(i, r, HYPS["checkpoint-10"].get(i)) for i, r in REFS["test"].items()])
        b = score_pairs([(i, r, HYPS["checkpoint-20"].get(i)) for i, r in REFS["test"].items()])
        expected = compare("checkpoint-10", a, "checkpoint-20", b, resamples=1000, seed=0)
        text = comparison(panel)
        assert "A checkpoint-10 -> B checkpoint-20" in text
        assert f"95% CI [{points(expected.ci_low)}, {points(expected.ci_high)}]" in text
        assert "B-A -11.8 pts" in text  # -2/17
        assert "improved 2, regressed 0, unchanged 1 of 3" in text
        assert "no significant difference" in text  # three utterances cannot show more
        assert by_model["checkpoint-10"][0].startswith("A ") and by_model["checkpoint-20"][0].startswith("B ")
        assert app.focused is panel.query_one("#ev-utterances", DataTable)


async def test_pick_models_and_keys_choose_a_and_b(tmp_path: Path) -> None:
    app = Harness(make_project(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await wait_for_panel(pilot, EvaluationPanel)
        await settle(pilot, panel)
        panel.pick_models(["base", "export"])
        await settle(pilot, panel)
        assert (panel.model_a, panel.model_b) == ("base", "export")
        text = comparison(panel)
        assert "A base -> B export" in text and "B better" in text
        assert "improved 3, regressed 0, unchanged 0" in text
        names = [r[0] for r in rows(panel.query_one("#ev-metrics", DataTable))]
        assert names[0] == "A base" and names[3] == "B export"
        panel.focus_default()
        await pilot.press("b")  # next model as B, skipping A
        await settle(pilot, panel)
        assert panel.model_b == "checkpoint-10" and "A base -> B checkpoint-10" in comparison(panel)
        panel.pick_models(["training/checkpoint-20", "checkpoint-99"])  # one known mark: it becomes B
        await settle(pilot, panel)
        assert (panel.model_a, panel.model_b) == ("base", "checkpoint-20")
        assert any("checkpoint-99" in n.message for n in app._notifications)  # not scored: said so
        panel.pick_models(["checkpoint-10", "checkpoint-20", "export"])  # several: the first and the last
        await settle(pilot, panel)
        assert (panel.model_a, panel.model_b) == ("checkpoint-10", "export")


async def test_sorting_by_difference_and_the_alignment_of_the_selected_utterance(tmp_path: Path) -> None:
    app = Harness(make_project(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await wait_for_panel(pilot, EvaluationPanel)
        await settle(pilot, panel)
        panel.focus_default()
        table = panel.query_one("#ev-utterances", DataTable)
        assert [r[0] for r in rows(table)] == ["t1", "t2", "t3"]
        # t1 has one substitution for A (checkpoint-10): 气 -> 汽, reversed on both lines.
        view = panel.query_one(AlignmentView)
        text = view.text(40)
        assert "R 今 天 天 气 很 好\nH 今 天 天 汽 很 好" in text.plain
        block = text.plain.index("A checkpoint-10"), text.plain.index("B checkpoint-20")
        subs = {text.plain[s.start:s.end] for s in text.spans if s.style == STYLE_SUB and block[0] < s.start < block[1]}
        assert subs == {"气", "汽"}
        await pilot.press("o")  # id -> largest regression first, as the README says
        assert [r[0] for r in rows(table)] == ["t3", "t1", "t2"]
        assert any(str(c.label) == "B-A ▼" for c in table.columns.values())
        await pilot.press("o")  # -> largest improvement
        assert [r[0] for r in rows(table)] == ["t2", "t1", "t3"]  # -1/5 beats -1/6
        assert table.cursor_row == 0 and panel.selected_id == "t2"
        assert "t2  我们去公园" in view.text(40).plain
        await pilot.press("down", "down")  # t3: checkpoint-10 dropped 户, shown as a red `*` gap
        text = view.text(40)
        assert panel.selected_id == "t3" and "H 请 把 窗 ** 打 开" in text.plain
        assert any(text.plain[s.start:s.end] == "**" and s.style == STYLE_DEL for s in text.spans)
        await pilot.press("o")  # -> worst B
        assert [r[0] for r in rows(table)] == ["t3", "t1", "t2"]
        await pilot.press("o")  # -> back to id
        assert [r[0] for r in rows(table)] == ["t1", "t2", "t3"]
        panel.sort_by_difference()  # the palette's "sort by CER difference": largest regression first
        assert [r[0] for r in rows(table)] == ["t3", "t1", "t2"]


async def test_split_switch_export_and_palette(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    app = Harness(root)
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await wait_for_panel(pilot, EvaluationPanel)
        await settle(pilot, panel)
        panel.focus_default()
        await pilot.press("t")
        await settle(pilot, panel)
        assert "train N=2" in panel.border_title
        assert [r[1] for r in rows(panel.query_one("#ev-metrics", DataTable))][1] == "7.1%"  # 1 D / 14
        commands = {title: callback for title, _, callback in panel.palette_commands()}
        assert set(commands) == {"Evaluation: export report", "Evaluation: compare A/B", "Evaluation: show train",
                                 "Evaluation: show test", "Evaluation: sort by CER difference"}
        commands["Evaluation: show test"]()
        await settle(pilot, panel)
        assert "test N=3" in panel.border_title
        await pilot.press("e")
        await settle(pilot, panel)
        folder = root / "evaluations" / EVAL_NAME
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        assert {(c["a"], c["b"], c["split"]) for c in report["comparisons"]} >= {("checkpoint-10", "checkpoint-20", "test")}
        assert "| checkpoint-10 -> checkpoint-20 |" in (folder / "report.md").read_text(encoding="utf-8")
        assert "checkpoint-10,test,3,17,2,1,0" in (folder / "report.csv").read_text(encoding="utf-8")
        assert "## test: per utterance" in (folder / "report.md").read_text(encoding="utf-8")
        utterances = (folder / "report-utterances.csv").read_text(encoding="utf-8").splitlines()
        assert utterances[0].startswith("split,id,model,state,reference,hypothesis")
        assert any(line.startswith("test,t2,checkpoint-10,complete,我们去公园,我们去公元,False,5,1,0,0,0.2,S:园->元,")
                   for line in utterances)
        assert any("report.md" in n.message for n in app._notifications)


async def test_no_evaluation_message_until_one_appears(tmp_path: Path) -> None:
    root = make_project(tmp_path, evaluation=False)
    app = Harness(root)
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await wait_for_panel(pilot, EvaluationPanel)
        await settle(pilot, panel)
        message = panel.query_one("#ev-empty", Static)
        assert message.display and str(message.content) == NO_EVALUATION
        assert not panel.query_one("#ev-body").display
        assert "no evaluation" in panel.border_title
        write_evaluation(root / "evaluations" / EVAL_NAME)
        panel.poll()  # what the two-second timer does
        await settle(pilot, panel)
        assert not message.display and panel.query_one("#ev-metrics", DataTable).row_count == 4
        assert EVAL_NAME in panel.border_title


def test_alignment_wraps_in_aligned_pairs_of_lines_at_the_width_given() -> None:
    score = score_utterance("u", "我用iPhone拍照今天天气很好明天早上八点开会", "我用iphone拍了照片今天天汽很好明天早上开会啊")
    text = render_alignment(UtteranceAlignment("u", score.reference, [AlignedModel("m", score, "A")]), 24)
    lines = text.plain.split("\n")[2:]
    assert len(lines) >= 4 and len(lines) % 2 == 0
    for ref, hyp in zip(lines[::2], lines[1::2]):
        assert ref.startswith("R ") and hyp.startswith("H ")
        assert display_width(ref) <= 24 and display_width(ref) == display_width(hyp)
    assert "iphone" in text.plain  # Latin letters are not spaced apart


async def test_a_broken_evaluation_opens_the_error_modal_and_says_so_in_the_panel(tmp_path: Path) -> None:
    from kimi_tui.tui.error_modal import ErrorModal

    root = make_project(tmp_path, evaluation=False)
    folder = root / "evaluations" / EVAL_NAME
    folder.mkdir(parents=True)
    (folder / "evaluation.json").write_text("{not json")
    app = KimiTuiApp(root)
    async with app.run_test(size=(80, 24)) as pilot:
        while not isinstance(app.screen, (WorkbenchScreen, ErrorModal)):
            await pilot.pause()
        panel = await wait_for_panel(pilot, EvaluationPanel)
        await settle(pilot, panel)
        assert isinstance(app.screen, ErrorModal) and app.screen.title_text == "evaluation: load failed"
        assert "Could not load" in str(panel.query_one("#ev-empty", Static).content)
        assert "failed to load" in panel.border_title


async def test_a_failed_model_has_no_numbers_and_a_partial_one_is_marked(tmp_path: Path) -> None:
    root = make_project(tmp_path, evaluation=False)
    folder = write_evaluation(Project.load(root).evaluations_dir / EVAL_NAME)
    (folder / "metrics.json").unlink()
    meta = json.loads((folder / "evaluation.json").read_text())
    meta.update(format=2, clips={"test": 3, "train": 2},  # no "finished": the run was stopped
                model_paths={"export": str(tmp_path / "gone")}, model_present={"export": True})
    (folder / "evaluation.json").write_text(json.dumps(meta))
    for model in ("base", "checkpoint-10", "checkpoint-20"):
        (folder / model / "status.json").write_text(json.dumps({"state": "complete"}))
    (folder / "checkpoint-20" / "status.json").write_text(json.dumps({"state": "running"}))  # stopped half-way
    lines = (folder / "checkpoint-20" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    (folder / "checkpoint-20" / "predictions.jsonl").write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    (folder / "export" / "status.json").write_text(json.dumps({"state": "failed", "error": "gone does not exist"}))
    app = Harness(root)
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(EvaluationPanel)
        await settle(pilot, panel)
        table = {r[0][2:]: r for r in rows(panel.query_one("#ev-metrics", DataTable))}
        assert table["export"][1:7] == ["failed", "-", "-", "-", "-", "-"], table  # no score at all, never 100 %
        assert "checkpoint-20 partial" in table, table
        assert table["checkpoint-20 partial"][1] == "0.0%" and table["checkpoint-20 partial"][7] == "2/3"
        assert "failed: export" in panel.border_title and "partial: checkpoint-20 2/5" in panel.border_title
        assert "export" not in (panel.model_a, panel.model_b)
        assert "over the clips both have" in comparison(panel)  # checkpoint-10 -> checkpoint-20 (partial)


async def test_mer_column_beside_cer_when_mixed_tokens_are_scored(tmp_path: Path) -> None:
    """[eval] mixed_tokens on: an MER column (CJK characters + Latin words) beside CER; off: gone."""
    root = make_project(tmp_path, evaluation=False)
    project = Project.load(root)
    folder = project.evaluations_dir / EVAL_NAME
    folder.mkdir(parents=True)
    ref = "我用iPhone拍照"  # 10 characters, 5 tokens: 我 用 iphone 拍 照
    hyps = {"m1": "我用iPhone拍照啊啊",  # 2 I: CER 2/10, MER 2/5
            "m2": "我用ipone拍照",  # CER 1 D / 10, MER 1 S (the word) / 5
            "m3": None}  # failed: no numbers, MER neither
    (folder / "evaluation.json").write_text(json.dumps({"models": list(hyps), "splits": ["test"]}))
    (folder / "references.jsonl").write_text(json.dumps({"split": "test", "id": "t1", "reference": ref},
                                                        ensure_ascii=False) + "\n", encoding="utf-8")
    for model, hyp in hyps.items():
        (folder / model).mkdir()
        rows_ = [] if hyp is None else [json.dumps({"split": "test", "id": "t1", "hypothesis": hyp}, ensure_ascii=False)]
        (folder / model / "predictions.jsonl").write_text("".join(r + "\n" for r in rows_), encoding="utf-8")
    (folder / "m3" / "status.json").write_text(json.dumps({"state": "failed", "error": "out of memory"}))
    (folder / "metrics.json").write_text("{}")
    save_config(project.config_path, set_field(project.config, "eval.mixed_tokens", True))
    app = Harness(root)
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(EvaluationPanel)
        await settle(pilot, panel)
        table = panel.query_one("#ev-metrics", DataTable)
        assert [str(c.label) for c in table.columns.values()] == [
            "model", "CER", "S/D/I", "MER", "macro", "SER", "exact", "sim", "N"]
        by_model = {r[0][2:]: r for r in rows(table)}
        assert by_model["m1"][1:4] == ["20.0%", "0/0/2", "40.0%"]
        assert by_model["m2"][1:4] == ["10.0%", "0/1/0", "20.0%"]
        assert by_model["m3"][1:] == ["failed", "-", "-", "-", "-", "-", "-", "0/1"]  # no MER either
        assert table.virtual_size.width <= table.size.width  # still fits 80 columns
        # The option off (the Config panel saves and reloads the project): re-scored, the column goes.
        save_config(project.config_path, set_field(Project.load(root).config, "eval.mixed_tokens", False))
        panel.reload_project(Project.load(root))
        await settle(pilot, panel)
        assert "MER" not in [str(c.label) for c in table.columns.values()]
        assert rows(table)[1][1:3] == ["10.0%", "0/1/0"] and len(rows(table)[1]) == 8


async def test_at_60x20_the_alignment_goes_under_the_utterances_and_stays_readable(tmp_path: Path) -> None:
    app = Harness(make_project(tmp_path))
    async with app.run_test(size=(60, 20)) as pilot:
        panel = await wait_for_panel(pilot, EvaluationPanel)
        await settle(pilot, panel)
        panel.focus_default()
        await pilot.pause()
        table, view = panel.query_one("#ev-utterances", DataTable), panel.query_one(AlignmentView)
        assert panel.has_class("-narrow")
        assert view.region.y >= table.region.bottom  # stacked, not side by side
        assert view.region.width >= 50 and view.region.height >= 4
        lines = _screen_lines(app)
        assert any("R 今 天 天 气 很 好" in line for line in lines)
        assert any("H 今 天 天 汽 很 好" in line for line in lines)


def _screen_lines(app) -> list[str]:
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text().splitlines()


async def test_the_ab_pair_is_kept_across_a_restart(tmp_path: Path) -> None:
    from kimi_tui.tui.ui_state import state_path

    root = make_project(tmp_path)
    app = Harness(root)
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await wait_for_panel(pilot, EvaluationPanel)
        await settle(pilot, panel)
        assert (panel.model_a, panel.model_b) == ("checkpoint-10", "checkpoint-20")  # the default
        panel.focus_default()
        await pilot.press("a")  # the next model as A, skipping B
        await settle(pilot, panel)
        assert (panel.model_a, panel.model_b) == ("export", "checkpoint-20")
        assert json.loads(state_path(root).read_text(encoding="utf-8"))["evaluation"] == \
            {"a": "export", "b": "checkpoint-20"}
    app = Harness(root)  # the TUI started again
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await wait_for_panel(pilot, EvaluationPanel)
        await settle(pilot, panel)
        assert (panel.model_a, panel.model_b) == ("export", "checkpoint-20")
        assert "A export -> B checkpoint-20" in comparison(panel)
