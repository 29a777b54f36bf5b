"""An evaluation folder turned into the numbers people compare, in JSON, CSV or Markdown.

Scores are always recomputed from the raw predictions and references stored in
the evaluation folder, never read back from an earlier summary: changing the
normaliser options re-scores every model identically, and a report can never
disagree with the transcripts it shows.

Evaluation folder (written by the evaluate stage):
    evaluation.json            models (in order), splits, training-set size
    references.jsonl           {"split", "id", "reference"} for every utterance scored
    <model>/predictions.jsonl  {"split", "id", "hypothesis", ...} as the engine produced them

Only models the evaluation finished are scored as they are (kimi_tui.evaluate.state): a model
with some of its clips is scored over those clips and marked partial; a failed model, or one with
no predictions yet, is listed with its state and reason and never scored (missing predictions are
not a transcript of nothing, and must not read as CER 100 %).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kimi_tui.errors import KimiTuiError
from kimi_tui.evaluate.align import confusion_pairs
from kimi_tui.evaluate.compare import compare
from kimi_tui.evaluate.metrics import UtteranceScore, score_pairs, summarise
from kimi_tui.evaluate.normalise import Normaliser
from kimi_tui.evaluate.state import EvaluationState, evaluation_state, prediction_files

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
    state: EvaluationState | None = None
    #: The models with numbers: complete ones, and partial ones over the clips they have.
    scored: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.scored:
            self.scored = [m for m in self.models if self.model_state(m) in ("complete", "partial", "running")
                           and (self.model_state(m) == "complete" or self.hypotheses.get(m))]

    def model_state(self, model: str) -> str:
        found = self.state.model(model) if self.state is not None else None
        return found.state if found is not None else "complete"

    def is_partial(self, model: str) -> bool:
        return self.model_state(model) in ("partial", "running")


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


def load_evaluation(path: Path, state: EvaluationState | None = None, runs_dir: Path | None = None) -> Evaluation:
    """The folder's references and predictions, with its state (looked up unless given)."""
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
        for pred_path in prediction_files(path / model):
            for row in _read_jsonl(pred_path):
                table.setdefault(row.get("split", ""), {})[str(row.get("id"))] = row.get("hypothesis") or ""
        hypotheses[model] = table
    if state is None:
        state = evaluation_state(path, runs_dir)
    return Evaluation(path, list(meta["models"]), list(meta.get("splits") or references), references, hypotheses,
                      meta.get("n_train_utterances"), state)


def score_evaluation(ev: Evaluation, normaliser: Normaliser) -> dict[str, dict[str, list[UtteranceScore]]]:
    """scored model -> split -> per-utterance scores, in reference order.

    A complete model's missing hypotheses (a clip its transcriber could not decode) are scored
    as all deletions, never dropped; a partial model is scored over the clips it has only; failed
    and untranscribed models are not scored at all (ev.state says why)."""
    out: dict[str, dict[str, list[UtteranceScore]]] = {}
    for model in ev.scored:
        out[model] = {}
        partial = ev.is_partial(model)
        for split in ev.splits:
            refs = ev.references.get(split, {})
            hyps = ev.hypotheses.get(model, {}).get(split, {})
            items = ((i, r, hyps.get(i)) for i, r in refs.items() if not partial or i in hyps)
            out[model][split] = score_pairs(items, normaliser)
    return out


def common_clips(a: list[UtteranceScore], b: list[UtteranceScore]) -> tuple[list[UtteranceScore], list[UtteranceScore]]:
    """Both models' scores over the clips both have (a partial model lacks some), in A's order."""
    ids_a, ids_b = {s.id for s in a}, {s.id for s in b}
    return [s for s in a if s.id in ids_b], [s for s in b if s.id in ids_a]


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
            if name not in ev.models:
                raise KimiTuiError(f"no model {name!r} in {ev.path} (models: {', '.join(ev.models)})")
            if name not in scores:
                m = ev.state.model(name) if ev.state is not None else None
                raise KimiTuiError(f"{name} in {ev.path} cannot be compared: "
                                   f"{m.describe() if m is not None else 'it has no predictions'}; "
                                   f"compare two of: {', '.join(scores) or 'none'}")
    state = ev.state
    report = {
        "evaluation": str(ev.path),
        "state": state.state if state is not None else "complete",
        "missing": state.missing() if state is not None else "",
        "model_states": {m.name: m.to_dict() for m in state.models} if state is not None else {},
        "normaliser": normaliser.label,
        "n_train_utterances": ev.n_train,
        "models": {m: {s: summarise(scores[m][s], normaliser) for s in ev.splits} for m in scores},
        "comparisons": [],
        "confusions": {},
        "notes": [],
    }
    complete = [m for m in scores if not ev.is_partial(m)]
    for a, b in default_pairs(complete) if pairs is None else pairs:
        for split in ev.splits:
            sa, sb = scores[a][split], scores[b][split]
            if ev.is_partial(a) or ev.is_partial(b):
                sa, sb = common_clips(sa, sb)
            result = compare(a, sa, b, sb, resamples=resamples, seed=seed)
            entry = {"split": split, **result.to_dict()}
            if ev.is_partial(a) or ev.is_partial(b):
                entry["over_common_clips"] = True
            report["comparisons"].append(entry)
    for m in scores:
        report["confusions"][m] = {
            s: [[r, h, n] for (r, h), n in confusion_pairs(u.columns() for u in scores[m][s]).most_common(top_confusions)]
            for s in ev.splits
        }
    report["notes"] = _notes(report)
    return report


def state_notes(report: dict) -> list[str]:
    """The lines that say what is not complete: they come first in every format."""
    notes = []
    states = report.get("model_states") or {}
    if report.get("state", "complete") != "complete":
        notes.append(f"Evaluation {report['state']}: {report.get('missing') or 'see kimi-tui status'}.")
    partial = [s for s in states.values() if s["state"] in ("partial", "running") and s["name"] in report["models"]]
    for s in partial:
        notes.append(f"partial: {s['name']} has {s['clips']} of {s['of']} clips; its numbers are over those "
                     f"{s['clips']} clips only, not comparable with a complete model's.")
    for s in states.values():
        if s["state"] == "failed":
            notes.append(f"failed: {s['name']} ({s['error'] or 'no reason recorded'}): not scored.")
        elif s["name"] not in report["models"]:
            notes.append(f"not scored: {s['name']} has no predictions ({s['clips']} of {s['of']} clips).")
    return notes


def _notes(report: dict) -> list[str]:
    notes = state_notes(report)
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
            if m.get("n_missing_hyp") and (report.get("model_states") or {}).get(model, {}).get("state",
                                                                                           "complete") == "complete":
                notes.append(f"{model} on {split}: {m['n_missing_hyp']} utterances have no hypothesis; "
                             "they are scored as all deletions.")
    for c in report["comparisons"]:
        if c["ci_low"] is None:
            continue
        verdict = (
            "B is better" if c["ci_high"] < 0 else "B is worse" if c["ci_low"] > 0 else "no significant difference"
        )
        over = " both have (one model is partial)" if c.get("over_common_clips") else ""
        notes.append(
            f"{c['split']}: {c['a']} -> {c['b']}: CER {pct(c['cer_a'])} -> {pct(c['cer_b'])}, "
            f"difference {signed_pct(c['delta'])} points (95% CI {signed_pct(c['ci_low'])} to {signed_pct(c['ci_high'])}, "
            f"P(B better) {c['p_b_better']:.2f}, {c['n_utts']} utterances{over}): {verdict}."
        )
    return notes


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def signed_pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:+.1f}"


def _state_label(report: dict, model: str) -> str:
    s = (report.get("model_states") or {}).get(model)
    if s is None:
        return "complete"
    if s["state"] in ("partial", "running") and model in report["models"]:
        return f"{s['state']} ({s['clips']} of {s['of']} clips)"
    return s["state"] if s["state"] != "pending" else "not transcribed"


def _unscored(report: dict) -> list[str]:
    return [m for m in (report.get("model_states") or {}) if m not in report["models"]]


def render_markdown(report: dict) -> str:
    models = report["models"]
    splits = sorted({s for per in models.values() for s in per}, key=lambda s: (s != "test", s))
    state = report.get("state", "complete")
    lines = [
        "# Evaluation" + ("" if state == "complete" else f" ({state})"),
        "",
        f"{report['evaluation']}",
        "",
    ]
    for skipped in report.get("skipped") or []:
        lines += [f"Newer evaluation {skipped['evaluation']} not shown: {skipped['state']} ({skipped['missing']}).", ""]
    if state != "complete":
        lines += [f"**{state}**: {report.get('missing') or 'see kimi-tui status'}. Only complete models are "
                  "scored as they are; partial ones over the clips they have; failed ones not at all.", ""]
    lines += [
        f"Normaliser: {report['normaliser']}. CER is pooled: (S + D + I) / N over the split; macro = mean "
        "of per-utterance CER; SER = share of utterances with any error; similarity = mean of max(0, 1 - CER) "
        "per utterance; missing or empty hypotheses count as all deletions.",
    ]
    if not splits:
        splits = list(dict.fromkeys(s for per in models.values() for s in per)) or ["test"]
    states = report.get("model_states") or {}
    for split in splits:
        full = [per for m, per in models.items() if split in per and states.get(m, {}).get("state", "complete")
                == "complete"] or [per for per in models.values() if split in per]
        n = next((per[split]["n_utts"] for per in full), 0)
        chars = next((per[split]["n_ref_chars"] for per in full), 0)
        lines += ["", f"## {split} (N = {n} utterances, {chars} reference characters)", ""]
        lines += ["| model | state | CER | S | D | I | macro CER | SER | exact | exact raw | similarity |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for model in list(states) or list(models):
            m = models.get(model, {}).get(split)
            if model not in models:
                lines.append(f"| {model} | {_state_label(report, model)} | - | - | - | - | - | - | - | - | - |")
                continue
            if not m:
                continue
            lines.append(
                f"| {model} | {_state_label(report, model)} | {pct(m['cer'])} | {m['sub']} | {m['del']} | {m['ins']} | "
                f"{pct(m['macro_cer'])} | {pct(m['ser'])} | {pct(m['exact_match'])} | {pct(m['exact_match_raw'])} | "
                f"{pct(m['similarity'])} |"
            )
        for model in models:  # a scored model the states do not list (a report built without them)
            if states and model not in states and split in models[model]:
                m = models[model][split]
                lines.append(f"| {model} | complete | {pct(m['cer'])} | {m['sub']} | {m['del']} | {m['ins']} | "
                             f"{pct(m['macro_cer'])} | {pct(m['ser'])} | {pct(m['exact_match'])} | "
                             f"{pct(m['exact_match_raw'])} | {pct(m['similarity'])} |")
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
    # state and its details last: the metric columns keep their places for existing readers.
    writer.writerow(["model", "split", *CSV_METRICS, "normaliser", "state", "clips", "of", "error"])
    states = report.get("model_states") or {}
    splits = list(dict.fromkeys(s for per in report["models"].values() for s in per))
    for model in list(states) or list(report["models"]):
        s = states.get(model) or {}
        extra = [s.get("state", "complete"), s.get("clips"), s.get("of"), s.get("error") or ""]
        if model not in report["models"]:
            for split in splits or [""]:
                writer.writerow([model, split, *[None for _ in CSV_METRICS], report["normaliser"], *extra])
            continue
        for split, m in report["models"][model].items():
            writer.writerow([model, split, *[m.get(k) for k in CSV_METRICS], m["normaliser"], *extra])
    return buf.getvalue()


def top_confusions(scores: list[UtteranceScore], n: int = 10) -> list[tuple[str, str, int]]:
    counter: Counter = confusion_pairs(s.columns() for s in scores)
    return [(r, h, c) for (r, h), c in counter.most_common(n)]
