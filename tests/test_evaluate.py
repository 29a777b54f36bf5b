"""Scoring that Chinese ASR engineers can trust, checked by hand and against an independent edit distance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from kimi_tui.evaluate.align import columns, confusion_pairs, display_width, render_plain
from kimi_tui.evaluate.compare import compare
from kimi_tui.evaluate.metrics import score_pairs, score_utterance, summarise
from kimi_tui.evaluate.normalise import Normaliser
from kimi_tui.evaluate.report import build_report, load_evaluation, render_csv, render_markdown


def edit_distance(a: str, b: str) -> int:
    """Textbook dynamic programme, independent of rapidfuzz."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def test_punctuation_tokens_and_width_do_not_count_as_errors() -> None:
    s = score_utterance("u1", "今天，天气很好！", "<|zh|>今天天气很好。<|endoftext|>")
    assert (s.sub, s.dele, s.ins, s.cer) == (0, 0, 0, 0.0)
    s = score_utterance("u2", "ＡＢＣ１２３", "abc123")
    assert s.errors == 0


def test_substitution_deletion_insertion_are_counted_and_located() -> None:
    s = score_utterance("u", "今天天气很好", "今天天汽好啊")
    assert (s.sub, s.dele, s.ins) == (1, 1, 1) or s.errors == 3
    assert s.cer == 3 / 6
    ops = {c.op for c in s.columns()}
    assert "S" in ops
    assert ("气", "汽") in confusion_pairs([s.columns()])


def test_empty_reference_has_no_rate_but_its_insertions_count_in_the_pool() -> None:
    empty_ref = score_utterance("a", "", "你好")
    assert empty_ref.cer is None and empty_ref.ins == 2
    normal = score_utterance("b", "今天", "今天")
    summary = summarise([empty_ref, normal])
    assert summary["cer"] == 2 / 2 and summary["n_empty_ref"] == 1 and summary["macro_cer"] == 0.0


def test_empty_and_missing_hypotheses_are_all_deletions_never_dropped() -> None:
    scores = score_pairs([("a", "今天天气", ""), ("b", "很好", None), ("c", "好", "好")])
    summary = summarise(scores)
    assert summary["n_utts"] == 3 and summary["del"] == 6 and summary["cer"] == 6 / 7
    assert summary["n_empty_hyp"] == 1 and summary["n_missing_hyp"] == 1
    assert summary["exact_match"] == 1 / 3 and summary["ser"] == 2 / 3


def test_runaway_hypothesis_is_flagged() -> None:
    summary = summarise(score_pairs([("a", "好的", "好的好的好的好的")]))
    assert summary["n_hyp_over_2x_ref"] == 1 and summary["n_cer_over_100"] == 1 and summary["cer"] == 3.0


def test_similarity_is_one_minus_cer_clipped_at_zero() -> None:
    summary = summarise(score_pairs([("a", "今天天气", "今天天汽"), ("b", "好", "坏坏坏")]))
    assert summary["similarity"] == (0.75 + 0.0) / 2


def test_alignment_columns_line_up_in_a_terminal_for_cjk_and_latin() -> None:
    s = score_utterance("u", "我用iphone拍照", "我用iphone拍了照片")
    ref_line, hyp_line, marks = render_plain(s.columns())
    assert display_width(ref_line) == display_width(hyp_line)
    assert display_width("中a") == 3
    cols = columns("今天", "今天好")
    assert [c.op for c in cols] == ["=", "=", "I"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(alphabet="今天气很好的了a ,。", max_size=12), st.text(alphabet="今天气很好的了a ,。", max_size=12)), max_size=8))
def test_pooled_errors_equal_the_sum_of_independent_edit_distances(pairs) -> None:
    normaliser = Normaliser()
    scores = score_pairs([(str(i), r, h) for i, (r, h) in enumerate(pairs)])
    summary = summarise(scores)
    expected = sum(edit_distance(normaliser(r), normaliser(h)) for r, h in pairs)
    assert summary["sub"] + summary["del"] + summary["ins"] == expected
    assert summary["n_ref_chars"] == sum(len(normaliser(r)) for r, _ in pairs)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_cer_of_a_text_against_itself_is_zero(text) -> None:
    s = score_utterance("x", text, text)
    assert s.errors == 0 and s.cer in (0.0, None)


def test_paired_comparison_counts_and_interval_are_reproducible() -> None:
    refs = [f"今天天气很好{i}" for i in range(40)]
    a = score_pairs([(str(i), r, r[:-2]) for i, r in enumerate(refs)])  # two deletions each
    b = score_pairs([(str(i), r, r if i % 4 else r[:-1]) for i, r in enumerate(refs)])
    first = compare("A", a, "B", b, resamples=500, seed=7)
    again = compare("A", a, "B", b, resamples=500, seed=7)
    assert first == again
    assert (first.improved, first.regressed, first.unchanged) == (40, 0, 0)
    assert first.delta < 0 and first.ci_high < 0 and first.p_b_better == 1.0
    same = compare("A", a, "A2", a, resamples=200)
    assert same.delta == 0 and same.ci_low == 0 and same.ci_high == 0 and same.unchanged == 40


def _evaluation(tmp_path: Path) -> Path:
    folder = tmp_path / "eval"
    refs = {"test": {"t1": "今天天气很好", "t2": "我们去公园", "t3": "请把窗户打开"},
            "train": {"r1": "明天早上八点开会", "r2": "他喜欢喝绿茶"}}
    hyps = {
        "base": {"t1": "好好好好好好好好好好好好好", "t2": "", "r1": "好好好好好好好好好好好好好好好好好", "r2": "好"},
        "checkpoint-10": {"t1": "今天天汽很好", "t2": "我们去公元", "t3": "请把窗打开", "r1": "明天早上八点开会", "r2": "他喜欢喝茶"},
        "checkpoint-20": {"t1": "今天天气很好", "t2": "我们去公园", "t3": "请把窗打开", "r1": "明天早上八点开会", "r2": "他喜欢喝绿茶"},
        "export": {"t1": "今天天气很好", "t2": "我们去公园", "t3": "请把窗打开", "r1": "明天早上八点开会", "r2": "他喜欢喝绿茶"},
    }
    folder.mkdir()
    (folder / "evaluation.json").write_text(json.dumps({"models": list(hyps), "splits": ["test", "train"], "n_train_utterances": 2}))
    (folder / "references.jsonl").write_text("".join(
        json.dumps({"split": s, "id": i, "reference": r}, ensure_ascii=False) + "\n" for s, t in refs.items() for i, r in t.items()
    ), encoding="utf-8")
    for model, table in hyps.items():
        (folder / model).mkdir()
        lines = []
        for utt_id, text in table.items():
            split = "test" if utt_id.startswith("t") else "train"
            lines.append(json.dumps({"split": split, "id": utt_id, "hypothesis": text}, ensure_ascii=False) + "\n")
        (folder / model / "predictions.jsonl").write_text("".join(lines), encoding="utf-8")
    # A finished evaluation of the format before per-model states: its metrics.json marks the end, so base's
    # missing t3 is a clip it could not transcribe (all deletions), not a model left half-way.
    (folder / "metrics.json").write_text("{}")
    return folder


def test_report_shows_models_side_by_side_with_the_interval_for_the_last_two_checkpoints(tmp_path: Path) -> None:
    report = build_report(load_evaluation(_evaluation(tmp_path)))
    assert list(report["models"]) == ["base", "checkpoint-10", "checkpoint-20", "export"]
    test_base = report["models"]["base"]["test"]
    assert test_base["n_utts"] == 3 and test_base["n_missing_hyp"] == 1
    pairs = {(c["a"], c["b"], c["split"]) for c in report["comparisons"]}
    assert ("checkpoint-10", "checkpoint-20", "test") in pairs and ("base", "export", "train") in pairs
    markdown = render_markdown(report)
    assert "| checkpoint-10 -> checkpoint-20 |" in markdown and "95% CI" in markdown
    assert "zh-cer v2" in markdown and "N = 3 utterances" in markdown
    assert "checkpoint-20,test,3,17" in render_csv(report).replace("\r", "")
    confusions = report["confusions"]["checkpoint-10"]["test"]
    assert ["元", "园", 1] in confusions or ["园", "元", 1] in confusions or any(c[:2] == ["园", "元"] for c in confusions)


def kimi(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kimi_tui", *args], capture_output=True, text=True, timeout=60)


def test_score_command_agrees_with_an_independent_edit_distance_on_every_edge_case(tmp_path: Path) -> None:
    cases = {
        "zh": ("今天天气很好", "今天天汽很好"),
        "punct": ("你好，世界！", "你好世界"),
        "mixed": ("我用iPhone拍照", "我用 IPHONE 拍照片"),
        "fullwidth": ("ＡＢＣ１２３", "abc12"),
        "traditional": ("這個軟體很好用", "这个软体很好"),
        "empty_ref": ("", "多余"),
        "empty_hyp": ("没有输出", ""),
        "special": ("开会", "<|zh|>开会<|endoftext|>"),
        "missing": ("这条没有识别结果", None),
    }
    ref = tmp_path / "ref.csv"
    ref.write_text("id,text\n" + "".join(f'{k},"{r}"\n' for k, (r, _) in cases.items()), encoding="utf-8")
    hyp = tmp_path / "hyp.jsonl"
    hyp.write_text("".join(
        json.dumps({"id": k, "text": h}, ensure_ascii=False) + "\n" for k, (_, h) in cases.items() if h is not None
    ) + json.dumps({"id": "not_in_ref", "text": "x"}) + "\n", encoding="utf-8")
    out = kimi("score", str(ref), str(hyp), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    normaliser = Normaliser()
    expected_n = sum(len(normaliser(r)) for r, _ in cases.values())
    expected_errors = sum(edit_distance(normaliser(r), normaliser(h or "")) for r, h in cases.values())
    assert result["n_utts"] == len(cases)
    assert result["n_ref_chars"] == expected_n
    assert result["sub"] + result["del"] + result["ins"] == expected_errors
    assert result["cer"] == expected_errors / expected_n
    assert result["n_missing_hyp"] == 1 and result["n_empty_ref"] == 1 and result["ids_only_in_hyp"] == ["not_in_ref"]
    assert result["normaliser"].startswith("zh-cer v2")
    assert set(result) >= {"n_utts", "n_ref_chars", "sub", "del", "ins", "cer", "exact_match", "normaliser"}
    plain = kimi("score", str(ref), str(hyp))
    assert plain.returncode == 0 and "CER" in plain.stdout and "not_in_ref" in plain.stdout


def test_score_reports_bad_files_with_their_line(tmp_path: Path) -> None:
    ref = tmp_path / "ref.jsonl"
    ref.write_text('{"id": "a", "text": "好"}\n{"id": "b", "text": \n', encoding="utf-8")
    out = kimi("score", str(ref), str(ref))
    assert out.returncode == 2 and "ref.jsonl line 2" in out.stderr and "Traceback" not in out.stderr


def test_bootstrap_packing_gives_the_same_answer_as_plain_sums() -> None:
    import numpy as np

    from kimi_tui.evaluate.compare import paired_bootstrap

    rng = np.random.default_rng(1)
    a = rng.integers(0, 6, 500)
    b = rng.integers(0, 6, 500)
    n_ref = rng.integers(1, 30, 500)
    packed = paired_bootstrap(a, b, n_ref, 300, seed=3)
    huge = n_ref * 10**6  # forces the two-gather path
    plain = paired_bootstrap(a * 10**6, b * 10**6, huge, 300, seed=3)
    assert np.allclose(packed, plain)
