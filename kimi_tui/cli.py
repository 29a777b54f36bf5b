"""`kimi-tui`: the workbench and its headless twin.

Every command works on the same project folder and run directories as the TUI,
so anything done in the UI can be scripted and the other way round; `--json`
where the output is data. User errors print one located message, never a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import sys
import time
from pathlib import Path

from kimi_tui import __version__
from kimi_tui.errors import KimiTuiError, describe_os_error
from kimi_tui.words import plural

COMMANDS = ("init", "run", "status", "stop", "report", "score", "doctor")


def _project_root(value: str | None) -> Path:
    from kimi_tui.config import CONFIG_FILENAME

    root = Path(value or ".").expanduser().resolve()
    config = root / CONFIG_FILENAME
    try:  # stat raises, not False, when the folder may not be searched
        if root.exists() and not root.is_dir():
            raise KimiTuiError(f"{root} is a file, not a project folder: pass the folder holding {CONFIG_FILENAME}")
        if config.is_dir():
            raise KimiTuiError(f"{config} is a folder, where the project's settings file belongs: "
                               f"move it away, then `kimi-tui init {root}`")
        found = config.exists()
    except OSError as exc:
        raise KimiTuiError(f"cannot open the project {root}: {describe_os_error(exc)}") from None
    if not found:
        hint = "pass --project DIR" if value is None else "create one with `kimi-tui init DIR --sample`"
        raise KimiTuiError(f"{root} is not a kimi-tui project (no {CONFIG_FILENAME}); {hint}")
    return root


def cmd_init(args: argparse.Namespace) -> int:
    from kimi_tui.project import init_project

    if not args.dir.strip():  # `kimi-tui init "$DIR"` with DIR unset: never this folder by accident
        raise KimiTuiError("init needs the folder to create the project in, and DIR is empty: "
                           "pass a path (`kimi-tui init .` for this folder)")
    project = init_project(
        args.dir,
        sample=args.sample,
        train_csv=args.train_csv,
        train_audio=args.train_audio,
        test_csv=args.test_csv,
        test_audio=args.test_audio,
        train_jsonl=args.train_jsonl,
        test_jsonl=args.test_jsonl,
        exist_ok=args.exist_ok,
    )
    if args.sample:
        checks = []
    else:
        from kimi_tui.project import check_audio_paths

        checks = check_audio_paths(project)
    # The project is created even when audio is missing: its settings are right, and the fix is
    # in the data or in kimi-tui.toml ([kimi_audio] checkout), which needs the project. But init
    # never recommends a run that cannot work: a split none of whose audio is found (or whose file
    # cannot be read) exits 1 without the "next: run all" line, so `init && run all` stops here;
    # a few missing rows are said with what prepare will do (leave them out), and exit 0.
    unusable = [c for c in checks if c.error or (c.rows and len(c.missing) >= c.rows)]
    partial = [c for c in checks if c not in unusable and c.missing]
    print(f"project {'created' if unusable or partial else 'ready'}: {project.root}")
    print(f"  config: {project.config_path}")
    for c in checks:
        _print_audio_check(c)
    root = project.root
    if unusable:
        print(f"  next:   fix the above (the data, or [data] / [kimi_audio] checkout in {project.config_path}), "
              f"then check with `kimi-tui run prepare --project {root} --wait`")
        return 1
    if partial:
        left = sum(len(c.missing) for c in partial)
        print(f"  next:   kimi-tui run all --project {root} --wait  (leaves out the {plural(left, 'row')} above), "
              "or fix them first")
        return 0
    print(f"  next:   kimi-tui run all --project {root} --wait")
    return 0


def _print_audio_check(check) -> None:
    """One split of init's audio check: found everywhere, or how many rows miss, the first few, what to do."""
    label = f"  {check.split}:".ljust(10)
    if check.error:
        print(f"{label}cannot be read: {check.error}")
        return
    where = "; ".join(f.message.split(": ", 1)[-1] for f in check.bases)
    if not check.missing:
        print(f"{label}{check.rows:,} rows, every audio file found" + (f" ({where})" if where else ""))
        return
    n = len(check.missing)
    print(f"{label}the audio of {n:,} of {check.rows:,} rows cannot be found:")
    for f in check.missing[:3]:
        print(f"    {f.message}")
    if n > 3:
        print(f"    ... and {n - 3:,} more (`kimi-tui run prepare` lists every one in data/findings.json)")
    if where:
        print(f"    (the other rows: {where})")
    if check.found_from_cwd:
        print(f"    {check.found_from_cwd:,} of them are found from the current folder {check.cwd}, but the stages "
              "run in the project folder, not here: write those paths absolute in the JSONL, or, for data made "
              "for the official Kimi-Audio scripts, make it a kimi-audio project with [kimi_audio] checkout = "
              f"\"{check.cwd}\"")
    print(f"    what to do: {check.missing[0].fix}")


def _learning_confirmed(project, stage: str, yes: bool) -> bool:
    """Before a run the lint says will not learn: say why, then ask (a terminal), or refuse as a
    user error (no terminal: a script must not spend hours on it) unless --yes."""
    from kimi_tui.lint import will_not_learn, will_not_learn_text

    findings = will_not_learn(project, stage)
    if not findings or yes:
        return True
    text = will_not_learn_text(stage, findings)
    if not sys.stdin.isatty():
        raise KimiTuiError(f"{text}\nNothing was started: fix {project.config_path}, or pass --yes to start it anyway.")
    print(text, file=sys.stderr)
    return _ask_yes(f"Start the {stage} run anyway? [y/N] ")


def cmd_run(args: argparse.Namespace) -> int:
    from kimi_tui.pipeline import ensure_no_active, start
    from kimi_tui.project import Project
    from kimi_tui.runs import wait_run

    project = Project.load(_project_root(args.project))
    # A stage another run holds is refused before any question: asking first would have the user
    # answer (or pass --yes) only to be refused. start() checks again, under the project's lock.
    ensure_no_active(project, args.stage)
    if not _learning_confirmed(project, args.stage, args.yes):
        return 1
    if args.stage == "all" and not args.yes and not _confirm_run_all_again(project):
        return 1
    run_dir = start(project, args.stage, resume=args.resume)
    print(f"started {run_dir.name} (log: {run_dir / 'stdout.log'})", flush=True)
    if not args.wait:
        print(f"follow it with: kimi-tui status --project {project.root}")
        return 0
    out = sys.stdout.buffer
    try:
        info = wait_run(run_dir, on_output=lambda chunk: (out.write(chunk), out.flush()))
    except KeyboardInterrupt:
        print(
            f"\nno longer following {run_dir.name}; it goes on. Stop it with "
            f"`kimi-tui stop {run_dir.name} --project {project.root}`",
            file=sys.stderr,
        )
        return 130
    print(f"{run_dir.name}: {info.state} (exit code {info.exit_code})", flush=True)
    return 0 if info.state == "succeeded" else (info.exit_code or 1)


def _confirm_run_all_again(project) -> bool:
    """`run all` over an earlier run's outputs redoes hours of work: asked first (--yes skips it)."""
    from kimi_tui.pipeline import existing_outputs

    found = existing_outputs(project)
    if not found:
        return True
    what = ", ".join(found)
    if not sys.stdin.isatty():
        raise KimiTuiError(f"{project.root} already has outputs of an earlier run ({what}); `run all` would "
                           f"start every stage again: pass --yes to do so without being asked")
    return _ask_yes(f"{project.root} already has {what}.\nStart every stage again "
                    f"(training/ and exports/final/ are kept aside)? [y/N] ")


def _ask_yes(question: str) -> bool:
    """A y/N question at the terminal; anything but yes (or end of input) starts nothing."""
    try:
        answer = input(question)
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        print("not started", file=sys.stderr)
        return False
    return True


def _fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def cmd_status(args: argparse.Namespace) -> int:
    from kimi_tui.checkpoints import list_checkpoints
    from kimi_tui.evaluate.state import evaluation_states
    from kimi_tui.progress import run_progress
    from kimi_tui.project import Project
    from kimi_tui.runs import list_runs

    project = Project.load(_project_root(args.project))
    runs = list_runs(project.runs_dir)
    checkpoints = list_checkpoints(project.training_dir)
    evaluations = evaluation_states(project.evaluations_dir, project.runs_dir)
    # Step/total, the recent rate and the time left, for the stages still running.
    progress = {r.run_id: run_progress(r.path) for r in runs if r.active}
    if args.json:
        json.dump(
            {
                "project": str(project.root),
                "runs": [{**r.to_dict(), **({"progress": progress[r.run_id].to_dict()} if r.run_id in progress else {})}
                         for r in runs],
                "checkpoints": [c.to_dict() for c in checkpoints],
                "evaluations": [e.to_dict() for e in evaluations],
            },
            sys.stdout,
            ensure_ascii=False,
            indent=2,
        )
        print()
        return 0
    print(f"project {project.root}")
    if not runs:
        print("  no runs yet: kimi-tui run all --project " + str(project.root))
    for r in runs:
        took = ""
        if r.started:
            took = f"{(r.ended or time.time()) - r.started:7.1f}s"
        code = "" if r.exit_code is None else f"exit {r.exit_code}"
        print(f"  {r.run_id:40} {r.stage:9} {r.state:11} {code:8} {_fmt_time(r.created)} {took}")
        if r.note:  # a damaged status.json, a lost supervisor, processes left behind
            print(f"    {r.state}: {r.note}")
        if r.run_id in progress and (line := progress[r.run_id].summary()):
            print(f"    step {line}")
    if checkpoints:
        print("checkpoints:")
        for c in checkpoints:
            loss = "-" if c.loss is None else f"{c.loss:.4f}"
            flag = "" if c.complete else f"  ({c.problem}: ignored)"
            print(f"  {c.name:20} step {c.step:6} loss {loss:>8} {c.size_bytes / 1e6:8.1f} MB{flag}")
    if evaluations:
        print("evaluations:")
        for e in evaluations:
            print(f"  {e.summary()}")
            for note in e.notes():
                print(f"    note: {note}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from kimi_tui.project import Project
    from kimi_tui.runs import find_run, stop_run

    project = Project.load(_project_root(args.project))
    run_dir = find_run(project.runs_dir, args.run)
    info = stop_run(run_dir)
    print(f"{run_dir.name}: {info.state}")
    from kimi_tui.runs import gpu_memory_left, processes_left, run_processes

    stopped = set(info.raw.get("stopped_pids") or [])
    left = processes_left(stopped) | run_processes(info.pgid)
    if left:
        print(f"processes of the run are still alive: {sorted(left)}")
        return 1
    if info.pgid:
        print(f"no process of the run is left (process group {info.pgid} and its descendants"
              + (f", {len(stopped)} processes stopped)" if stopped else ")"))
    if stopped:
        message = gpu_memory_left(stopped)
        print(message)
        if message.startswith("GPU memory still held"):
            return 1
    return 0


def _normaliser(project=None, args=None):
    from kimi_tui.evaluate.normalise import Normaliser, NormaliserOptions

    ev = project.config.eval if project is not None else None
    return Normaliser(
        NormaliserOptions(
            numbers=bool(getattr(args, "numbers", False) or (ev and ev.normalise_numbers)),
            fillers=bool(getattr(args, "fillers", False) or (ev and ev.remove_fillers)),
            mixed=bool(getattr(args, "mixed", False) or (ev and ev.mixed_tokens)),
        )
    )


def cmd_report(args: argparse.Namespace) -> int:
    from kimi_tui.evaluate.report import (
        build_report,
        load_evaluation,
        render_csv,
        render_markdown,
        render_utterances_csv,
    )
    from kimi_tui.evaluate.state import evaluation_state, evaluation_states
    from kimi_tui.project import Project

    project = Project.load(_project_root(args.project))
    skipped = []
    if args.evaluation:
        folder = Path(args.evaluation)
        folder = folder if folder.is_absolute() else project.evaluations_dir / folder
        state = evaluation_state(folder, project.runs_dir)
    else:
        found = [e for e in evaluation_states(project.evaluations_dir, project.runs_dir)
                 if (e.path / "evaluation.json").exists()]
        if not found:
            raise KimiTuiError(f"no evaluation in {project.evaluations_dir} yet: run `kimi-tui run evaluate`")
        # "The latest" is the latest complete one: a newer evaluation that is running, was stopped
        # or lost a model would otherwise hide the last full set of numbers behind a partial one.
        # It is named on stderr (stdout stays the report, parseable as json/csv), and
        # `--evaluation NAME` reports it, marked.
        complete = [e for e in found if e.complete]
        state = complete[-1] if complete else found[-1]
        skipped = [e for e in found if e.path.name > state.path.name]
        folder = state.path
    for e in skipped:
        print(f"kimi-tui: note: skipped the newer evaluation {e.path.name} ({e.state}: {e.missing()}); "
              f"`kimi-tui report --evaluation {e.path.name}` reports it, marked", file=sys.stderr)
    if not state.complete:
        print(f"kimi-tui: note: {folder.name} is {state.state}: {state.missing()}", file=sys.stderr)
    pairs = [tuple(args.compare)] if args.compare else None
    report = build_report(
        load_evaluation(folder, state=state), _normaliser(project, args), pairs=pairs,
        resamples=project.config.eval.bootstrap_resamples,
    )
    report["skipped"] = [{"evaluation": e.path.name, "state": e.state, "missing": e.missing()} for e in skipped]
    if args.format == "json":
        json.dump(report, sys.stdout, ensure_ascii=False, indent=2)
        print()
    elif args.format == "csv":
        # Two tables, two CSVs: one file stays one header and its rows, as every reader expects.
        sys.stdout.write(render_utterances_csv(report) if args.utterances else render_csv(report))
    else:
        sys.stdout.write(render_markdown(report))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from kimi_tui.evaluate.metric_table import score_lines
    from kimi_tui.evaluate.metrics import summarise_texts
    from kimi_tui.evaluate.textfile import example_ids, explain_id_mismatch, read_id_text

    refs, ref_warnings = read_id_text(args.ref)
    if not refs:
        raise KimiTuiError(f"{args.ref}: no utterances (the file is empty or holds only a header); "
                           "REF must list the reference transcripts, one id and text per line")
    hyps, hyp_warnings = read_id_text(args.hyp)
    # Both files listing the same ids in the same order is the usual case, and comparing the id
    # lists costs a tenth of looking 10^5 ids up; otherwise set operations on the keys.
    same_ids = len(hyps) == len(refs) and list(hyps) == list(refs)
    extra = [] if same_ids else sorted(hyps.keys() - refs.keys())
    missing = [] if same_ids or len(hyps) - len(extra) == len(refs) else [i for i in refs if i not in hyps]
    if not hyps:
        hyp_warnings.append(f"{args.hyp} has no utterances: all {len(refs)} references are scored as missing (deletions)")
    elif len(missing) == len(refs):  # nothing in common: a CER of 100 % would be a wrong number, not a result
        hint = explain_id_mismatch(sorted(refs), extra, "REF", "HYP")
        raise KimiTuiError(
            f"{args.ref} and {args.hyp} have no utterance id in common, so nothing can be scored. "
            f"REF ids: {example_ids(sorted(refs))}; HYP ids: {example_ids(extra)}. "
            + (hint if hint else "Check that HYP was decoded from REF's test set and that both files name the "
               "utterances by the same ids (the first field of a line, or the id column)")
        )
    elif missing or extra:
        hint = explain_id_mismatch(sorted(missing), extra, "REF", "HYP")
        if missing:
            hyp_warnings.append(f"{len(missing)} of {len(refs)} references have no hypothesis in {args.hyp} "
                                f"(scored as deletions): {example_ids(sorted(missing))}")
        if extra:
            hyp_warnings.append(f"{len(extra)} of {len(hyps)} hypotheses have an id that is not in {args.ref} "
                                f"(not scored): {example_ids(extra)}")
        if hint:
            hyp_warnings.append(hint)
    normaliser = _normaliser(None, args)
    # The summary is all that is printed (--json too): columns, no record per utterance.
    summary = summarise_texts(list(refs.values()), list(hyps.values()) if same_ids else list(map(hyps.get, refs)),
                              normaliser)
    summary["ids_only_in_hyp"] = extra
    summary["warnings"] = ref_warnings + hyp_warnings
    for warning in summary["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=2)
        print()
        return 0
    for line in score_lines(summary):  # the metrics' labels and formats: kimi_tui.evaluate.metric_table
        print(line)
    if extra:
        print(f"{len(extra)} ids only in {args.hyp} (not scored): {', '.join(extra[:10])}{' ...' if len(extra) > 10 else ''}")
    print(f"normaliser: {summary['normaliser']}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Preflight of the engine that will train: the project's (``--engine`` picks another), and without
    a project the official Kimi-Audio fine-tuning. Each finding is printed, flushed, as soon as it is
    known (the environment probe takes seconds to a minute); ``--json`` prints one list at the end.
    Exit 1 on any error."""
    project = None
    if args.project:
        from kimi_tui.project import Project

        project = Project.load(_project_root(args.project))
    from kimi_tui.engines import DOCTOR_DEFAULT_ENGINE, get_engine

    engine = get_engine(args.engine or (project.config.engine.name if project is not None else DOCTOR_DEFAULT_ENGINE))
    text = not args.json

    def progress(line: str) -> None:
        if text:
            print(f"  ... {line}", flush=True)

    if text:
        print(engine.doctor_header(project, args.engine), flush=True)
    source = engine.preflight(args, project, progress)
    findings = []
    for f in source:
        findings.append(f)
        if text:
            print(f"{f.level:7} {f.field}: {f.message}" + (f"\n        fix: {f.fix}" if f.fix else ""), flush=True)
    errors = [f for f in findings if f.level == "error"]
    if args.json:
        from kimi_tui.levels import worst_first

        json.dump([dict(level=f.level, field=f.field, message=f.message, fix=f.fix) for f in worst_first(findings)],
                  sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        counts = {level: sum(f.level == level for f in findings) for level in ("error", "warning", "note")}
        print(", ".join(plural(n, level) for level, n in counts.items())
              + (f" ({', '.join(dict.fromkeys(f.field for f in errors))})" if errors else ""))
        if not errors:
            print("no errors: the setup looks runnable.")
    return 1 if errors else 0


def cmd_open(args: argparse.Namespace) -> int:
    from kimi_tui.tui.app import run

    return run(Path(args.dir) if args.dir else None)


def _whole_number(minimum: int, note: str = ""):
    """An argparse type: a whole number of at least ``minimum``; the message names the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number of at least {minimum}{note}, not {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}{note}, not {value}")
        return value

    return parse


positive_int = _whole_number(1)
non_negative_int = _whole_number(0, " (0 keeps all)")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number above 0, not {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, not {text}")
    return value


def save_steps_value(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (or 'auto')") from None


def _scoring_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--numbers", action="store_true", help="normalise numbers on both sides")
    p.add_argument("--fillers", action="store_true", help="drop fillers and erhua on both sides")
    p.add_argument("--mixed", action="store_true", help="also score CJK characters + Latin words (code-switching)")


# Options that several commands share, and mean the same in each: their help is said once.
_SHARED_HELP = {
    "--project": "the project folder, holding kimi-tui.toml (default: the current folder)",
    "--json": "print the result as JSON, for scripts",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kimi-tui",
        usage="kimi-tui [DIR]\n       kimi-tui COMMAND [OPTIONS]  (kimi-tui COMMAND --help for its options)",
        description="A terminal workbench for fine-tuning speech models for Chinese ASR. "
        "`kimi-tui [DIR]` opens the workbench on the project in DIR (default: the current folder), "
        "or a start screen that creates one there; the commands below do the same work headless.",
        epilog="A folder named like a command opens with a path: kimi-tui ./status",
    )
    parser.add_argument("--version", action="version", version=f"kimi-tui {__version__}",
                        help="print kimi-tui's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("init", help="create a project folder")
    p.add_argument("dir", help="the folder to create the project in (created if missing; . for this one)")
    p.add_argument("--sample", action="store_true", help="copy the bundled nine-clip Mandarin sample")
    p.add_argument("--train-csv", metavar="CSV", help="training transcripts: a CSV or TSV of audio id + text")
    p.add_argument("--train-audio", metavar="DIR", help="the folder holding the training CSV's audio")
    p.add_argument("--test-csv", metavar="CSV", help="test transcripts, scored by evaluate (optional)")
    p.add_argument("--test-audio", metavar="DIR", help="the folder holding the test CSV's audio")
    p.add_argument("--train-jsonl", metavar="JSONL", help="an existing Kimi-format JSONL instead of a CSV")
    p.add_argument("--test-jsonl", metavar="JSONL", help="a Kimi-format JSONL of test utterances instead of a CSV")
    p.add_argument("--exist-ok", action="store_true", help="keep an existing project instead of failing")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("run", help="start a stage, or all of them, detached")
    p.add_argument("stage", help="the stage to run (the project's engine's: prepare, extract, convert, train, export, "
                   "evaluate for both built-in engines); all: every stage in order, itself a run")
    p.add_argument("--project")
    p.add_argument("--wait", action="store_true", help="follow the log until the run ends")
    p.add_argument("--resume", action="store_true", help="train: continue from the last complete checkpoint; evaluate (kimi-audio): finish the last evaluation")
    p.add_argument("--yes", action="store_true", help="start without asking: all over an earlier run's outputs, or a config the lint says will not learn")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="list runs and checkpoints")
    p.add_argument("--project")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("stop", help="stop a run: SIGINT, then SIGTERM, then SIGKILL to its process group")
    p.add_argument("run", help="run id, id prefix, or stage name for the latest run of that stage")
    p.add_argument("--project")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("report", help="the project's latest evaluation: models x metrics, comparisons, "
                       "and every utterance with each model's hypothesis, CER and edits")
    p.add_argument("--project")
    p.add_argument("--format", choices=("md", "json", "csv"), default="md",
                   help="md: the summary, then a per-utterance table; json: the summary and an `utterances` "
                   "list; csv: the summary, one row per model and split (see --utterances)")
    p.add_argument("--utterances", action="store_true",
                   help="with --format csv: the per-utterance table instead of the summary, one row per "
                   "utterance and model (split, id, model, state, reference, hypothesis, S/D/I, cer, edits; "
                   "n_ref_tokens and mer with --mixed); md and json always include it")
    p.add_argument("--evaluation", help="an evaluation folder (default: the latest)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare these two models (default: base -> last, and the last two checkpoints)")
    _scoring_options(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("score", help="score any system's transcripts: REF and HYP are CSV, TSV, JSONL or Kaldi text of id + text")
    p.add_argument("ref", help="the reference transcripts")
    p.add_argument("hyp", help="the hypotheses to score (ids missing from it count as empty)")
    p.add_argument("--json", action="store_true")
    _scoring_options(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("doctor", help="preflight of the project's engine (without --project: the official Kimi-Audio "
                       "fine-tuning): environment, model, steps, GPUs, memory, disk")
    from kimi_tui.engines import engine_names

    p.add_argument("--engine", choices=engine_names(),
                   help="the engine to check (default: the project's; without --project, kimi-audio)")
    p.add_argument("--checkout", metavar="DIR", help="a clone of MoonshotAI/Kimi-Audio")
    p.add_argument("--python", metavar="PATH", help="the interpreter that will run it (default: this one)")
    p.add_argument("--base-model", metavar="DIR", help="local copy of moonshotai/Kimi-Audio-7B (tokenizer source)")
    p.add_argument("--samples", type=positive_int, metavar="N", help="training samples (default with --project: data/train.jsonl)")
    p.add_argument("--epochs", type=positive_int, metavar="N", help="training epochs (default 5)")
    p.add_argument("--batch-size", type=positive_int, metavar="N", help="micro-batch per GPU (the official code needs 1)")
    p.add_argument("--grad-accum", type=positive_int, metavar="N", help="gradient accumulation steps (default 1)")
    p.add_argument("--save-steps", type=save_steps_value, metavar="N|auto",
                   help="steps between checkpoints (official: 1000); auto: computed from the data size")
    p.add_argument("--save-total-limit", type=non_negative_int, metavar="N", help="checkpoints kept (official: 10; 0 keeps all)")
    p.add_argument("--gpus", type=positive_int, metavar="N", help="GPUs to train on (default 1)")
    p.add_argument("--method", choices=("full", "lora"), help="default: the project's, else full (the official code's)")
    p.add_argument("--zero-stage", type=int, choices=(2, 3), help="DeepSpeed ZeRO stage (default 3)")
    p.add_argument("--offload-optimizer", action="store_true", help="DeepSpeed: optimizer state in host RAM")
    p.add_argument("--offload-param", action="store_true", help="DeepSpeed (ZeRO-3): parameters in host RAM")
    p.add_argument("--tokens", type=positive_int, metavar="N", help="kimi-audio: longest sequence in tokens (default 500)")
    p.add_argument("--output", metavar="DIR", help="where checkpoints go (disk space is checked)")
    p.add_argument("--gpu-memory-gb", type=positive_float, help="GPU size to check against instead of this machine's")
    p.add_argument("--host-ram-gb", type=positive_float, help="host RAM to check against instead of this machine's")
    p.add_argument("--project")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)
    for command in sub.choices.values():
        for action in command._actions:
            if action.help is None:
                action.help = _SHARED_HELP.get(max(action.option_strings, default="", key=len))
    return parser


def _unknown_command(word: str, alone: bool) -> str:
    close = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"the commands are {', '.join(COMMANDS)}"
    return f"unknown command {word!r}; {hint}" + (f" (to open a folder of that name: kimi-tui ./{word})" if alone else "")


def _workbench_dir(argv: list[str]) -> tuple[bool, str | None]:
    """Whether argv opens the workbench (and on which folder) rather than naming a command.

    An existing folder, or a word that reads as a path (a separator, a leading . or ~), opens;
    a bare word close to a command and not a folder here is a typo (`kimi-tui stauts` once
    opened a start screen for a folder of that name); any other bare word is a folder to create.
    """
    if not argv:
        return True, None
    first = argv[0]
    if first in COMMANDS or first.startswith("-"):
        return False, None
    is_path = os.sep in first or "/" in first or first.startswith((".", "~"))
    try:
        is_folder = Path(first).expanduser().is_dir()
    except OSError:
        is_folder = False
    if len(argv) > 1:  # `kimi-tui rn all`: the workbench takes one folder, so this meant a command
        if is_path or is_folder:
            raise KimiTuiError(f"`kimi-tui DIR` opens one folder and takes nothing after it, not {argv[1]!r}; "
                               f"commands are {', '.join(COMMANDS)}")
        raise KimiTuiError(_unknown_command(first, alone=False))
    if is_path or is_folder or not difflib.get_close_matches(first, COMMANDS, n=1, cutoff=0.6):
        return True, first
    raise KimiTuiError(_unknown_command(first, alone=True))


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 1 the command's own failure (a run failed, doctor found errors),
    2 a user error (the message says what to fix), 130 interrupted (Ctrl-C)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        opens, folder = _workbench_dir(argv)
        if opens:
            return cmd_open(argparse.Namespace(dir=folder))
        args = build_parser().parse_args(argv)
        return args.func(args)
    except KimiTuiError as exc:
        print(f"kimi-tui: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # a file or folder the user can fix (permissions, read-only, full disk)
        print(f"kimi-tui: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nkimi-tui: interrupted (Ctrl-C); `kimi-tui status` lists any run it had started", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
