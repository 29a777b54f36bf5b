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

Every format carries the utterances behind the numbers (each model's hypothesis, its CER and the
edits that make it up), because a pooled CER says nothing about *which* errors a checkpoint fixed or
made, and the report is what gets read by people without the TUI. Edits are on the normalised text
(what was scored), so they add up to S, D and I exactly.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kimi_tui.errors import KimiTuiError
from kimi_tui.evaluate.align import EQUAL, confusion_pairs
from kimi_tui.evaluate.compare import compare
from kimi_tui.evaluate.metric_table import (
    MARKDOWN_COLUMNS,
    UTTERANCE_MARKDOWN_COLUMNS,
    Metric,
    csv_metrics,
    metrics,
    pct,
    points,
)
from kimi_tui.evaluate.metrics import UtteranceScore, score_pairs, summarise
from kimi_tui.evaluate.normalise import Normaliser
from kimi_tui.evaluate.state import EvaluationState, evaluation_state, jsonl_rows, prediction_files

SMALL_DATA = 100
#: The per-utterance CSV (`kimi-tui report --format csv --utterances`) is long, one row per
#: (utterance, model), not one row per utterance with a block of columns per model: its header is
#: the same for every evaluation whatever models it has, so a spreadsheet's filters, sorts ("worst
#: CER first") and pivot tables (utterance x model) work on it as they are, a failed model simply
#: has no rows, and a partial model no rows for the clips it lacks.
UTTERANCE_CSV_COLUMNS = ("split", "id", "model", "state", "reference", "hypothesis", "missing", "n_ref", "sub",
                         "del", "ins", "cer", "edits", "ref_norm", "hyp_norm")
UTTERANCE_CSV_MIXED = ("n_ref_tokens", "mer")


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



def load_evaluation(path: Path, state: EvaluationState | None = None, runs_dir: Path | None = None) -> Evaluation:
    """The folder's references and predictions, with its state (looked up unless given)."""
    meta_path = path / "evaluation.json"
    if not meta_path.exists():
        raise KimiTuiError(f"{path} is not an evaluation folder (no evaluation.json)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    references: dict[str, dict[str, str]] = {}
    for row in jsonl_rows(path / "references.jsonl"):
        references.setdefault(row["split"], {})[str(row["id"])] = row.get("reference") or ""
    hypotheses: dict[str, dict[str, dict[str, str]]] = {}
    for model in meta["models"]:
        table: dict[str, dict[str, str]] = {}
        for pred_path in prediction_files(path / model):
            for row in jsonl_rows(pred_path):
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


def edit_runs(score: UtteranceScore) -> list[dict]:
    """The edits of one utterance, adjacent edits of one kind joined into a run:
    [{"op": "S", "ref": "气", "hyp": "汽", "at": 3}], `at` the run's place in the normalised reference
    (for an insertion, the reference character it comes before). A run of n characters is n edits."""
    runs: list[dict] = []
    at = 0
    previous = EQUAL
    for col in score.columns():
        if col.op != EQUAL:
            if col.op == previous and runs:
                runs[-1]["ref"] += col.ref
                runs[-1]["hyp"] += col.hyp
            else:
                runs.append({"op": col.op, "ref": col.ref, "hyp": col.hyp, "at": at})
        previous = col.op
        if col.ref:
            at += 1
    return runs


def format_edits(runs: list[dict]) -> str:
    """'S:气->汽 D:户 I:啊' ('' when there is none): one item per run, as edit_runs joins them."""
    items = []
    for run in runs:
        if run["op"] == "S":
            items.append(f"S:{run['ref']}->{run['hyp']}")
        elif run["op"] == "D":
            items.append(f"D:{run['ref']}")
        else:
            items.append(f"I:{run['hyp']}")
    return " ".join(items)


def _utterance_entry(score: UtteranceScore) -> dict:
    runs = edit_runs(score)
    entry = {
        "hypothesis": None if score.missing else score.hypothesis,
        "hyp_norm": score.hyp_norm,
        "missing": score.missing,
        "sub": score.sub,
        "del": score.dele,
        "ins": score.ins,
        "cer": score.cer,
        "edits": format_edits(runs),
        "ops": runs,
    }
    if score.mixed is not None:  # mixed-token mode: the same utterance over CJK characters + Latin words
        tokens, sub, dele, ins = score.mixed
        entry.update(n_ref_tokens=tokens, mer_sub=sub, mer_del=dele, mer_ins=ins,
                     mer=(sub + dele + ins) / tokens if tokens else None)
    return entry


def utterance_rows(ev: Evaluation, scores: dict[str, dict[str, list[UtteranceScore]]],
                   normaliser: Normaliser) -> list[dict]:
    """Every utterance of every split, in reference order, with each scored model's hypothesis, CER
    and edits. Only scored models appear (a failed or untranscribed one has no numbers here either),
    and a partial model only on the clips it has."""
    index = {m: {s: {u.id: u for u in per.get(s, [])} for s in ev.splits} for m, per in scores.items()}
    out = []
    for split in ev.splits:
        for utt_id, reference in ev.references.get(split, {}).items():
            found = {m: index[m][split][utt_id] for m in scores if utt_id in index[m][split]}
            first = next(iter(found.values()), None)
            ref_norm = first.ref_norm if first is not None else normaliser(reference)
            out.append({
                "split": split,
                "id": utt_id,
                "reference": reference,
                "ref_norm": ref_norm,
                "n_ref": len(ref_norm),
                "models": {m: _utterance_entry(u) for m, u in found.items()},
            })
    return out


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
        "utterances": utterance_rows(ev, scores, normaliser),
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
    for s in states.values():
        if s.get("moved"):
            notes.append(f"moved: {s['name']} in this evaluation is {s['moved']}: its numbers are that model's.")
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
    notes += _no_better_than_base(report)
    for c in report["comparisons"]:
        if c["ci_low"] is None:
            continue
        verdict = (
            "B is better" if c["ci_high"] < 0 else "B is worse" if c["ci_low"] > 0 else "no significant difference"
        )
        over = " both have (one model is partial)" if c.get("over_common_clips") else ""
        notes.append(
            f"{c['split']}: {c['a']} -> {c['b']}: CER {pct(c['cer_a'])} -> {pct(c['cer_b'])}, "
            f"difference {points(c['delta'])} points (95% CI {points(c['ci_low'])} to {points(c['ci_high'])}, "
            f"P(B better) {c['p_b_better']:.2f}, {c['n_utts']} utterances{over}): {verdict}."
        )
    return notes


def _no_better_than_base(report: dict) -> list[str]:
    """Per split, when no trained model (checkpoint or export) scores a lower CER than base: the
    run "succeeded" and learned nothing (the seed's lr 3e-6 on the tiny model left 879 % where it
    was), which the table alone leaves the reader to notice. Partial models are not counted."""
    models, states = report["models"], report.get("model_states") or {}
    if "base" not in models:
        return []
    notes = []
    for split, m in models["base"].items():
        base = m.get("cer")
        trained = {name: per[split]["cer"] for name, per in models.items()
                   if name != "base" and split in per and per[split].get("cer") is not None
                   and states.get(name, {}).get("state", "complete") == "complete"}
        if base is None or not trained or any(cer < base for cer in trained.values()):
            continue
        best = min(trained, key=trained.__getitem__)
        notes.append(
            f"{split}: no checkpoint is better than base (CER {pct(base)}; the best trained model, {best}, "
            f"{pct(trained[best])}): training did not learn. Check train.learning_rate and train.epochs (the "
            "Config panel's lint, or `python -m kimi_tui.lint`, says what this model learns at) and the train "
            "stage's last lines, which say whether the loss fell."
        )
    return notes


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
    mixed = _has_mer(report)
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
        "per utterance; missing or empty hypotheses count as all deletions."
        + (" MER (mixed error rate) is the same over CJK characters + Latin words as tokens (not jiwer's "
           "match error rate)." if mixed else ""),
    ]
    if not splits:
        splits = list(dict.fromkeys(s for per in models.values() for s in per)) or ["test"]
    states = report.get("model_states") or {}
    for split in splits:
        full = [per for m, per in models.items() if split in per and states.get(m, {}).get("state", "complete")
                == "complete"] or [per for per in models.values() if split in per]
        n = next((per[split]["n_utts"] for per in full), 0)
        chars = next((per[split]["n_ref_chars"] for per in full), 0)
        tokens = next((per[split].get("n_ref_tokens") for per in full), None)
        counted = f"{chars} reference characters" + (f", {tokens} mixed tokens" if mixed and tokens is not None else "")
        lines += ["", f"## {split} (N = {n} utterances, {counted})", ""]
        columns = metrics(MARKDOWN_COLUMNS, mixed)
        header = ["model", "state", *(m.label for m in columns)]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for model in list(states) or list(models):
            m = models.get(model, {}).get(split)
            if model not in models:
                lines.append(f"| {model} | {_state_label(report, model)} |" + " - |" * (len(header) - 2))
                continue
            if not m:
                continue
            lines.append(_summary_row(model, _state_label(report, model), m, columns))
        for model in models:  # a scored model the states do not list (a report built without them)
            if states and model not in states and split in models[model]:
                lines.append(_summary_row(model, "complete", models[model][split], columns))
        comps = [c for c in report["comparisons"] if c["split"] == split]
        if comps:
            lines += ["", "| A -> B | CER A | CER B | B - A (points) | 95% CI | P(B better) | improved / regressed / unchanged |",
                      "|---|---|---|---|---|---|---|"]
            for c in comps:
                ci = "-" if c["ci_low"] is None else f"[{points(c['ci_low'])}, {points(c['ci_high'])}]"
                p = "-" if c["p_b_better"] is None else f"{c['p_b_better']:.2f}"
                lines.append(
                    f"| {c['a']} -> {c['b']} | {pct(c['cer_a'])} | {pct(c['cer_b'])} | {points(c['delta'])} | "
                    f"{ci} | {p} | {c['improved']} / {c['regressed']} / {c['unchanged']} |"
                )
    if report["notes"]:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report["notes"]]
    lines.append(f"\nBootstrap: paired, {report['comparisons'][0]['resamples'] if report['comparisons'] else 0} "
                 f"resamples of utterances, fixed seed {report['comparisons'][0]['seed'] if report['comparisons'] else 0}.")
    lines += _utterance_markdown(report, splits, mixed)
    return "\n".join(lines) + "\n"


def _has_mer(report: dict) -> bool:
    """Was the mixed-token MER computed (the normaliser's `mixed` option)?"""
    return any("mer" in m for per in report["models"].values() for m in per.values())


def _summary_row(model: str, label: str, m: dict, columns: list[Metric]) -> str:
    return "| " + " | ".join([model, label, *(c.format(m) for c in columns)]) + " |"


_MD_ESCAPES = str.maketrans({"\\": "\\\\", "|": "\\|", "*": "\\*", "`": "\\`"})
_HTML_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_HTML_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")


def md_cell(text: str) -> str:
    """Text that stays inside one Markdown table cell and reads as it is, raw or rendered: `|`
    escaped (it would end the cell), newlines as <br> (a line break ends the row), emphasis and
    code characters escaped, and a `<` or `&` that could start an HTML tag or entity written as
    &lt; / &amp; (`<|zh|>` and `->` stay as they are)."""
    text = _HTML_TAG_START.sub("&lt;", _HTML_ENTITY.sub("&amp;", text.strip().translate(_MD_ESCAPES)))
    return "<br>".join(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def _md_hypothesis(entry: dict) -> str:
    if entry["missing"]:
        return "*(no hypothesis)*"
    return md_cell(entry["hypothesis"]) or "*(empty)*"


def _utterance_markdown(report: dict, splits: list[str], mixed: bool) -> list[str]:
    """Per split, every utterance: its reference, then one row per scored model."""
    utterances = report.get("utterances") or []
    if not utterances:
        return []
    states = report.get("model_states") or {}
    lines: list[str] = []
    unscored = [f"{m} ({_state_label(report, m)})" for m in _unscored(report)]
    numbers = metrics(UTTERANCE_MARKDOWN_COLUMNS, mixed)
    header = ["id", "reference", "model", "hypothesis", *(m.label for m in numbers), "edits"]
    for split in [s for s in splits if any(u["split"] == s for u in utterances)]:
        lines += ["", f"## {split}: per utterance", "",
                  "CER and edits are over the normalised text (what was scored): S:气->汽 a substitution, "
                  "D:户 a deletion, I:啊 an insertion; adjacent edits of one kind are joined (S:今天->好好 is "
                  "two substitutions)."]
        if unscored:
            lines += ["", "No per-utterance numbers for " + ", ".join(unscored) + "."]
        lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for u in (u for u in utterances if u["split"] == split):
            first = True
            shown = u["models"] or {None: None}
            for model, e in shown.items():
                lead = [md_cell(u["id"]), md_cell(u["reference"]) or "*(empty)*"] if first else ["", ""]
                first = False
                if e is None:
                    lines.append("| " + " | ".join(lead + ["*(no scored model)*"] + [""] * (len(header) - 3)) + " |")
                    continue
                state = (states.get(model) or {}).get("state", "complete")
                name = md_cell(model) + (f" ({state})" if state in ("partial", "running") else "")
                cells = [*lead, name, _md_hypothesis(e), *(m.format(e) for m in numbers), md_cell(e["edits"])]
                lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_csv(report: dict) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    # state and its details last: the metric columns keep their places for existing readers.
    columns, extra_metrics = csv_metrics(_has_mer(report))  # MIXED last: the columns before keep their places
    writer.writerow(["model", "split", *(c.key for c in columns), "normaliser", "state", "clips", "of", "error",
                     *(c.key for c in extra_metrics)])
    states = report.get("model_states") or {}
    splits = list(dict.fromkeys(s for per in report["models"].values() for s in per))
    for model in list(states) or list(report["models"]):
        s = states.get(model) or {}
        extra = [s.get("state", "complete"), s.get("clips"), s.get("of"), s.get("error") or ""]
        if model not in report["models"]:
            for split in splits or [""]:
                writer.writerow([model, split, *[None for _ in columns], report["normaliser"], *extra,
                                 *[None for _ in extra_metrics]])
            continue
        for split, m in report["models"][model].items():
            writer.writerow([model, split, *[c.value(m) for c in columns], m["normaliser"], *extra,
                             *[c.value(m) for c in extra_metrics]])
    return buf.getvalue()


def render_utterances_csv(report: dict) -> str:
    """One row per (utterance, model): see UTTERANCE_CSV_COLUMNS for why long, not wide. Fields with
    commas, quotes or newlines are quoted as RFC 4180 says, so every spreadsheet reads them back whole."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    mixed = _has_mer(report)
    extra = UTTERANCE_CSV_MIXED if mixed else ()
    writer.writerow([*UTTERANCE_CSV_COLUMNS, *extra])
    states = report.get("model_states") or {}
    for u in report.get("utterances") or []:
        for model, e in u["models"].items():
            state = (states.get(model) or {}).get("state", "complete")
            writer.writerow([u["split"], u["id"], model, state, u["reference"],
                             "" if e["hypothesis"] is None else e["hypothesis"], e["missing"], u["n_ref"],
                             e["sub"], e["del"], e["ins"], e["cer"], e["edits"], u["ref_norm"], e["hyp_norm"],
                             *[e.get(k) for k in extra]])
    return buf.getvalue()


def top_confusions(scores: list[UtteranceScore], n: int = 10) -> list[tuple[str, str, int]]:
    counter: Counter = confusion_pairs(s.columns() for s in scores)
    return [(r, h, c) for (r, h), c in counter.most_common(n)]
