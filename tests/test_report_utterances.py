"""`kimi-tui report` shows the utterances behind the numbers, in every format, through the real CLI.

The evaluation folder is hand-built the way the evaluate stage writes it (format 2, per-model
status files), with pairs small enough to score by hand (normalised text, characters):

    u1 今天天气很好       checkpoint-2 今天天汽很好         S:气->汽        1/6
    u2 请把窗户打开       checkpoint-2 请把窗打开           D:户            1/6
    u3 我们去公园         checkpoint-2 我们去公园啊         I:啊            1/5
    u4 你|好 (a newline)  checkpoint-2 "你|好\\n吗"        I:吗            1/2   (| and newline survive md and csv)
    u5 我用iPhone拍照     checkpoint-2 我用iphone拍了照     I:了            1/10  MER 1/5 (了 among 5 tokens)

base transcribed every clip exactly but u5 (我用iPhone拍 照 -> 我用iphone拍照, exact after normalising);
cut stopped after u1 (partial); checkpoint-4 failed with two predictions on disk, which must
never become numbers.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import time
from pathlib import Path

import pytest

from kimi_tui.cli import main as cli_main
from kimi_tui.config import save_config, set_field
from kimi_tui.evaluate.metrics import score_utterance
from kimi_tui.evaluate.report import edit_runs, format_edits, md_cell
from kimi_tui.evaluate.state import FORMAT
from kimi_tui.project import Project, init_project

NAME = "20261201-120000"
REFS = {"u1": "今天天气很好", "u2": "请把窗户打开", "u3": "我们去公园", "u4": "你|好\n", "u5": "我用iPhone拍照"}
HYPS = {
    "base": dict(REFS, u5="我用iPhone拍 照"),
    "checkpoint-2": {"u1": "今天天汽很好", "u2": "请把窗打开", "u3": "我们去公园啊", "u4": "你|好\n吗", "u5": "我用iphone拍了照"},
    "cut": {"u1": "今天天气很好"},
    "checkpoint-4": {"u1": "今天", "u2": "请"},
}
STATUS = {"base": {"state": "complete"}, "checkpoint-2": {"state": "complete"}, "cut": {"state": "running"},
          "checkpoint-4": {"state": "failed", "error": "CUDA error: out of memory"}}
# (model, id) -> (CER, sub/del/ins, edits), as worked out in the docstring
EXPECTED = {
    ("checkpoint-2", "u1"): (1 / 6, (1, 0, 0), "S:气->汽"),
    ("checkpoint-2", "u2"): (1 / 6, (0, 1, 0), "D:户"),
    ("checkpoint-2", "u3"): (1 / 5, (0, 0, 1), "I:啊"),
    ("checkpoint-2", "u4"): (1 / 2, (0, 0, 1), "I:吗"),
    ("checkpoint-2", "u5"): (1 / 10, (0, 0, 1), "I:了"),
    ("base", "u1"): (0.0, (0, 0, 0), ""),
    ("base", "u5"): (0.0, (0, 0, 0), ""),
    ("cut", "u1"): (0.0, (0, 0, 0), ""),
}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = init_project(tmp_path / "p", sample=True)
    folder = project.evaluations_dir / NAME
    folder.mkdir(parents=True)
    models = list(HYPS)
    (folder / "evaluation.json").write_text(json.dumps({
        "format": FORMAT, "models": models, "splits": ["test"], "clips": {"test": len(REFS)},
        "model_paths": {m: str(project.training_dir / m) for m in models},
        "model_present": {m: True for m in models}, "n_train_utterances": 9,
        "finished": time.time(), "transcriber_exit": 0}))
    (folder / "references.jsonl").write_text("".join(
        json.dumps({"split": "test", "id": i, "reference": r}, ensure_ascii=False) + "\n" for i, r in REFS.items()),
        encoding="utf-8")
    for model, table in HYPS.items():
        (folder / model).mkdir()
        (folder / model / "predictions.jsonl").write_text("".join(
            json.dumps({"split": "test", "id": i, "hypothesis": h}, ensure_ascii=False) + "\n" for i, h in table.items()),
            encoding="utf-8")
        (folder / model / "status.json").write_text(json.dumps(STATUS[model]))
    return project


def report(project: Project, *args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(["report", "--project", str(project.root), "--evaluation", NAME, *args])
    assert code == 0, err.getvalue()
    return out.getvalue()


def md_rows(markdown: str, heading: str) -> list[list[str]]:
    """The table under `heading`, each row split at the unescaped pipes; asserts it is a valid table:
    every row has the header's number of cells."""
    lines = markdown.split(heading + "\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    header, rule, body = table[0], table[1], table[2:]
    assert all(c == "---" for c in rule) and len(rule) == len(header)
    assert all(len(r) == len(header) for r in body), [r for r in body if len(r) != len(header)]
    return [header] + body


def by_model_and_id(rows: list[list[str]]) -> dict[tuple[str, str], dict[str, str]]:
    """Continuation rows leave id and reference blank: carry the id down."""
    header, out, current = rows[0], {}, ""
    for row in rows[1:]:
        cells = dict(zip(header, row))
        current = cells["id"] or current
        out[(cells["model"], current)] = cells
    return out


def test_markdown_lists_every_utterance_with_each_models_hypothesis_cer_and_edits(project: Project) -> None:
    markdown = report(project)
    summary_end = markdown.index("## test: per utterance")
    assert "| checkpoint-2 | complete |" in markdown[:summary_end]  # the summary first, then the utterances
    rows = md_rows(markdown, "## test: per utterance")
    assert rows[0] == ["id", "reference", "model", "hypothesis", "CER", "S/D/I", "edits"]
    table = by_model_and_id(rows)
    for (model, utt), (cer, sdi, edits) in EXPECTED.items():
        name = model + (" (partial)" if model == "cut" else "")
        row = table[(name, utt)]
        assert row["CER"] == f"{cer * 100:.1f}%" and row["S/D/I"] == "/".join(map(str, sdi)), (model, utt, row)
        assert row["edits"] == edits
    assert [r[0] for r in rows[1:] if r[0]] == list(REFS)  # all utterances, in reference order, each once
    # | and newlines stay inside their cell: escaped and <br>, and the row stays one line.
    assert table[("checkpoint-2", "u4")]["hypothesis"] == "你\\|好<br>吗"
    assert rows[1 + [r[0] for r in rows[1:]].index("u4")][1] == "你\\|好"
    assert table[("checkpoint-2", "u1")]["hypothesis"] == "今天天汽很好"
    # A partial model only on the clips it has, marked; its missing clips are not deletions.
    assert [k for k in table if k[0].startswith("cut")] == [("cut (partial)", "u1")]


def test_a_failed_model_has_no_per_utterance_numbers_in_any_format(project: Project) -> None:
    markdown = report(project)
    rows = md_rows(markdown, "## test: per utterance")
    assert not [r for r in rows if r[2].startswith("checkpoint-4")]
    assert "No per-utterance numbers for checkpoint-4 (failed)." in markdown
    assert "| checkpoint-4 | failed | - |" in markdown  # the summary says why, as before
    table = list(csv.DictReader(io.StringIO(report(project, "--format", "csv", "--utterances"))))
    assert {r["model"] for r in table} == {"base", "checkpoint-2", "cut"}
    data = json.loads(report(project, "--format", "json"))
    assert all("checkpoint-4" not in u["models"] for u in data["utterances"])
    assert data["model_states"]["checkpoint-4"]["state"] == "failed"


def test_utterance_csv_is_one_row_per_utterance_and_model_and_reads_back_exactly(project: Project) -> None:
    text = report(project, "--format", "csv", "--utterances")
    table = list(csv.DictReader(io.StringIO(text)))
    assert list(table[0])[:6] == ["split", "id", "model", "state", "reference", "hypothesis"]
    assert "mer" not in table[0]
    rows = {(r["model"], r["id"]): r for r in table}
    assert len(table) == len(rows) == 5 + 5 + 1  # base, checkpoint-2 on every clip; cut on the one it has
    for (model, utt), (cer, sdi, edits) in EXPECTED.items():
        row = rows[(model, utt)]
        assert float(row["cer"]) == pytest.approx(cer) and (row["sub"], row["del"], row["ins"]) == tuple(map(str, sdi))
        assert row["edits"] == edits and row["split"] == "test"
    assert rows[("checkpoint-2", "u4")]["hypothesis"] == "你|好\n吗"  # quoted, not split into rows or columns
    assert rows[("base", "u4")]["reference"] == "你|好\n"
    assert rows[("cut", "u1")]["state"] == "partial" and rows[("base", "u1")]["state"] == "complete"
    # Without --utterances the summary CSV is as it was: one row per model and split, its header unchanged.
    summary = list(csv.reader(io.StringIO(report(project, "--format", "csv"))))
    assert summary[0][:4] == ["model", "split", "n_utts", "n_ref_chars"] and summary[0][-1] == "error"
    assert [r[0] for r in summary[1:]] == ["base", "checkpoint-2", "cut", "checkpoint-4"]


def test_json_has_an_utterances_list_with_structured_edits(project: Project) -> None:
    data = json.loads(report(project, "--format", "json"))
    assert [u["id"] for u in data["utterances"]] == list(REFS)
    u1 = data["utterances"][0]
    assert u1["reference"] == "今天天气很好" and u1["split"] == "test" and u1["n_ref"] == 6
    assert list(u1["models"]) == ["base", "checkpoint-2", "cut"]
    entry = u1["models"]["checkpoint-2"]
    assert entry["hypothesis"] == "今天天汽很好" and entry["cer"] == pytest.approx(1 / 6)
    assert entry["ops"] == [{"op": "S", "ref": "气", "hyp": "汽", "at": 3}] and entry["edits"] == "S:气->汽"
    assert "mer" not in entry
    assert list(data["utterances"][1]["models"]) == ["base", "checkpoint-2"]  # cut lacks u2
    for u in data["utterances"]:  # the edits shown are the ones counted, for every row
        for e in u["models"].values():
            counted = {op: sum(len(r["hyp"] if op == "I" else r["ref"]) for r in e["ops"] if r["op"] == op)
                       for op in "SDI"}
            assert (counted["S"], counted["D"], counted["I"]) == (e["sub"], e["del"], e["ins"]), (u["id"], e)


def test_mer_is_reported_with_mixed_and_absent_without(project: Project) -> None:
    plain = report(project)
    assert "MER" not in plain
    markdown = report(project, "--mixed")
    assert "zh-cer v2 +mixed" in markdown
    summary = md_rows(markdown, "## test (N = 5 utterances, 29 reference characters, 24 mixed tokens)")
    assert summary[0][:7] == ["model", "state", "CER", "S", "D", "I", "MER"]
    c2 = next(r for r in summary if r[0] == "checkpoint-2")
    assert c2[2] == "17.2%" and c2[6] == "20.8%"  # 5 errors / 29 characters; 5 / 24 tokens
    rows = md_rows(markdown, "## test: per utterance")
    assert rows[0] == ["id", "reference", "model", "hypothesis", "CER", "S/D/I", "MER", "edits"]
    u5 = by_model_and_id(rows)[("checkpoint-2", "u5")]
    assert (u5["CER"], u5["MER"]) == ("10.0%", "20.0%")

    head = next(csv.reader(io.StringIO(report(project, "--format", "csv"))))
    assert "mer" not in head
    summary_csv = list(csv.DictReader(io.StringIO(report(project, "--format", "csv", "--mixed"))))
    row = next(r for r in summary_csv if r["model"] == "checkpoint-2")
    assert float(row["mer"]) == pytest.approx(5 / 24) and row["n_ref_tokens"] == "24"
    assert list(summary_csv[0])[:len(head)] == head  # the new columns come last
    assert next(r for r in summary_csv if r["model"] == "checkpoint-4")["mer"] == ""  # failed: no number
    per = {(r["model"], r["id"]): r for r in csv.DictReader(io.StringIO(
        report(project, "--format", "csv", "--utterances", "--mixed")))}
    assert float(per[("checkpoint-2", "u5")]["mer"]) == pytest.approx(1 / 5)

    data = json.loads(report(project, "--format", "json", "--mixed"))
    assert data["models"]["checkpoint-2"]["test"]["mer"] == pytest.approx(5 / 24)
    assert data["utterances"][4]["models"]["checkpoint-2"]["mer"] == pytest.approx(1 / 5)
    # [eval] mixed_tokens in the project's config does the same without the flag.
    save_config(project.config_path, set_field(project.config, "eval.mixed_tokens", True))
    data = json.loads(report(project, "--format", "json"))
    assert data["utterances"][4]["models"]["checkpoint-2"]["n_ref_tokens"] == 5


def test_edit_runs_join_adjacent_edits_of_one_kind_and_say_where() -> None:
    s = score_utterance("x", "今天天气很好", "好好好好好好好好好好好好好")  # 5 S + 7 I, as the untrained base does
    runs = edit_runs(s)
    assert sum(len(r["ref"]) if r["op"] != "I" else len(r["hyp"]) for r in runs) == s.errors == 12
    assert {r["op"] for r in runs} == {"S", "I"} and len(runs) == 2
    s = score_utterance("y", "请把窗户打开吧", "请把窗打开啦")
    assert format_edits(edit_runs(s)) == "D:户 S:吧->啦"
    assert [r["at"] for r in edit_runs(s)] == [3, 6]
    assert format_edits(edit_runs(score_utterance("z", "好", "好"))) == ""
    assert md_cell("a|b\r\nc <b>`*` \\") == "a\\|b<br>c &lt;b>\\`\\*\\` \\\\"
