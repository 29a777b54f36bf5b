"""An evaluation folder turned into the numbers people compare, in JSON, CSV or Markdown.

Scores are always recomputed from the raw predictions and references stored in
the evaluation folder, never read back from an earlier summary: changing the
normaliser options re-scores every model identically, and a report can never
disagree with the transcripts it shows.

Evaluation folder (written by the evaluate stage):
    evaluation.json            models (in order), splits, training-set size
    references.jsonl           {"split", "id", "reference"} for every utterance scored
    <model>/predictions.jsonl  {"split", "id", "hypothesis", ...} as the engine produced them
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kimi_tui.errors import KimiTuiError
from kimi_tui.evaluate.align import confusion_pairs
from kimi_tui.evaluate.compare import compare
from kimi_tui.evaluate.metrics import UtteranceScore, score_pairs, summarise
from kimi_tui.evaluate.normalise import Normaliser

SMALL_DATA = 100
CSV_METRICS = ("n_utts", "n_ref_chars", "sub", "del", "ins", "cer", "macro_cer", "ser", "exact_match",
               "exact_match_raw", "similarity", "n_empty_ref", "n_empty_hyp", "n_missing_hyp",
               "n_hyp_over_2x_ref", "n_cer_over_100")


@dataclass
class Evaluation:
    path: Path
    models: list[str]
    splits: list[str]
    references: dict[str, dict[str, str]]  # split -> id -> reference
    hypotheses: dict[str, dict[str, dict[str, str]]]  # model -> split -> id -> hypothesis
    n_train: int | None


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut short by a killed writer
            if isinstance(row, dict):
                rows.append(row)
    return rows


def load_evaluation(path: Path) -> Evaluation:
    meta_path = path / "evaluation.json"
    if not meta_path.exists():
        raise KimiTuiError(f"{path} is not an evaluation folder (no evaluation.json)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    references: dict[str, dict[str, str]] = {}
    for row in _read_jsonl(path / "references.jsonl"):
        references.setdefault(row["split"], {})[str(row["id"])] = row.get("reference") or ""
    hypotheses: dict[str, dict[str, dict[str, str]]] = {}
    for model in meta["models"]:
        table: dict[str, dict[str, str]] = {}
        pred_path = path / model / "predictions.jsonl"
        if pred_path.exists():
            for row in _read_jsonl(pred_path):
                table.setdefault(row.get("split", ""), {})[str(row.get("id"))] = row.get("hypothesis") or ""
        hypotheses[model] = table
    return Evaluation(path, list(meta["models"]), list(meta.get("splits") or references), references, hypotheses,
                      meta.get("n_train_utterances"))


def score_evaluation(ev: Evaluation, normaliser: Normaliser) -> dict[str, dict[str, list[UtteranceScore]]]:
    """model -> split -> per-utterance scores, in reference order; missing hypotheses scored, not dropped."""
    out: dict[str, dict[str, list[UtteranceScore]]] = {}
    for model in ev.models:
        out[model] = {}
        for split in ev.splits:
            refs = ev.references.get(split, {})
            hyps = ev.hypotheses.get(model, {}).get(split, {})
            out[model][split] = score_pairs(((i, r, hyps.get(i)) for i, r in refs.items()), normaliser)
    return out


def default_pairs(models: list[str]) -> list[tuple[str, str]]:
    """Did fine-tuning help (base -> the last model), and did the end of training still help
    (the last two checkpoints)?"""
    pairs: list[tuple[str, str]] = []
    checkpoints = [m for m in models if m.startswith("checkpoint-")]
    if "base" in models and len(models) > 1:
        pairs.append(("base", models[-1]))
    if len(checkpoints) >= 2:
        pairs.append((checkpoints[-2], checkpoints[-1]))
    return pairs


def build_report(
    ev: Evaluation,
    normaliser: Normaliser | None = None,
    pairs: list[tuple[str, str]] | None = None,
    resamples: int = 1000,
    seed: int = 0,
    top_confusions: int = 10,
) -> dict:
    normaliser = normaliser or Normaliser()
    scores = score_evaluation(ev, normaliser)
    for a, b in pairs or []:
        for name in (a, b):
            if name not in scores:
                raise KimiTuiError(f"no model {name!r} in {ev.path} (models: {', '.join(ev.models)})")
    report = {
        "evaluation": str(ev.path),
        "normaliser": normaliser.label,
        "n_train_utterances": ev.n_train,
        "models": {m: {s: summarise(scores[m][s], normaliser) for s in ev.splits} for m in ev.models},
        "comparisons": [],
        "confusions": {},
        "notes": [],
    }
    for a, b in default_pairs(ev.models) if pairs is None else pairs:
        for split in ev.splits:
            result = compare(a, scores[a][split], b, scores[b][split], resamples=resamples, seed=seed)
            report["comparisons"].append({"split": split, **result.to_dict()})
    for m in ev.models:
        report["confusions"][m] = {
            s: [[r, h, n] for (r, h), n in confusion_pairs(u.columns() for u in scores[m][s]).most_common(top_confusions)]
            for s in ev.splits
        }
    report["notes"] = _notes(report)
    return report


def _notes(report: dict) -> list[str]:
    notes = []
    n_train = report.get("n_train_utterances")
    if n_train is not None and n_train < SMALL_DATA:
        notes.append(
            f"Only {n_train} training utterances: too few to learn to transcribe new sentences. A model "
            "can memorise them (see the train CER), but expect the test CER to stay high. The seed report "
            "reached the same conclusion with nine clips: collect hundreds of utterances (better, hours) "
            "before reading the test CER as a measure of quality."
        )
    for model, per in report["models"].items():
        for split, m in per.items():
            if m.get("cer") is not None and m["cer"] > 1:
                notes.append(
                    f"{model} on {split}: CER above 100% means more errors than reference characters: "
                    f"{m['ins']} of the {m['sub'] + m['del'] + m['ins']} errors are insertions and "
                    f"{m['n_hyp_over_2x_ref']} of {m['n_utts']} hypotheses are over twice their reference's "
                    "length: the model does not stop (an untrained model never emits end-of-sentence and "
                    "runs to the max_new_tokens limit)."
                )
            if m.get("n_missing_hyp"):
                notes.append(f"{model} on {split}: {m['n_missing_hyp']} utterances have no hypothesis; "
                             "they are scored as all deletions.")
    for c in report["comparisons"]:
        if c["ci_low"] is None:
            continue
        verdict = (
            "B is better" if c["ci_high"] < 0 else "B is worse" if c["ci_low"] > 0 else "no significant difference"
        )
        notes.append(
            f"{c['split']}: {c['a']} -> {c['b']}: CER {pct(c['cer_a'])} -> {pct(c['cer_b'])}, "
            f"difference {signed_pct(c['delta'])} points (95% CI {signed_pct(c['ci_low'])} to {signed_pct(c['ci_high'])}, "
            f"P(B better) {c['p_b_better']:.2f}, {c['n_utts']} utterances): {verdict}."
        )
    return notes


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def signed_pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:+.1f}"


def render_markdown(report: dict) -> str:
    models = report["models"]
    splits = sorted({s for per in models.values() for s in per}, key=lambda s: (s != "test", s))
    lines = [
        "# Evaluation",
        "",
        f"{report['evaluation']}",
        "",
        f"Normaliser: {report['normaliser']}. CER is pooled: (S + D + I) / N over the split; macro = mean "
        "of per-utterance CER; SER = share of utterances with any error; similarity = mean of max(0, 1 - CER) "
        "per utterance; missing or empty hypotheses count as all deletions.",
    ]
    for split in splits:
        n = next((per[split]["n_utts"] for per in models.values() if split in per), 0)
        chars = next((per[split]["n_ref_chars"] for per in models.values() if split in per), 0)
        lines += ["", f"## {split} (N = {n} utterances, {chars} reference characters)", ""]
        lines += ["| model | CER | S | D | I | macro CER | SER | exact | exact raw | similarity |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for model, per in models.items():
            m = per.get(split)
            if not m:
                continue
            lines.append(
                f"| {model} | {pct(m['cer'])} | {m['sub']} | {m['del']} | {m['ins']} | {pct(m['macro_cer'])} | "
                f"{pct(m['ser'])} | {pct(m['exact_match'])} | {pct(m['exact_match_raw'])} | {pct(m['similarity'])} |"
            )
        comps = [c for c in report["comparisons"] if c["split"] == split]
        if comps:
            lines += ["", "| A -> B | CER A | CER B | B - A (points) | 95% CI | P(B better) | improved / regressed / unchanged |",
                      "|---|---|---|---|---|---|---|"]
            for c in comps:
                ci = "-" if c["ci_low"] is None else f"[{signed_pct(c['ci_low'])}, {signed_pct(c['ci_high'])}]"
                p = "-" if c["p_b_better"] is None else f"{c['p_b_better']:.2f}"
                lines.append(
                    f"| {c['a']} -> {c['b']} | {pct(c['cer_a'])} | {pct(c['cer_b'])} | {signed_pct(c['delta'])} | "
                    f"{ci} | {p} | {c['improved']} / {c['regressed']} / {c['unchanged']} |"
                )
    if report["notes"]:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report["notes"]]
    lines.append(f"\nBootstrap: paired, {report['comparisons'][0]['resamples'] if report['comparisons'] else 0} "
                 f"resamples of utterances, fixed seed {report['comparisons'][0]['seed'] if report['comparisons'] else 0}.")
    return "\n".join(lines) + "\n"


def render_csv(report: dict) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["model", "split", *CSV_METRICS, "normaliser"])
    for model, per in report["models"].items():
        for split, m in per.items():
            writer.writerow([model, split, *[m.get(k) for k in CSV_METRICS], m["normaliser"]])
    return buf.getvalue()


def top_confusions(scores: list[UtteranceScore], n: int = 10) -> list[tuple[str, str, int]]:
    counter: Counter = confusion_pairs(s.columns() for s in scores)
    return [(r, h, c) for (r, h), c in counter.most_common(n)]
