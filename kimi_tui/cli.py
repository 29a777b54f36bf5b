"""`kimi-tui`: the workbench and its headless twin.

Every command works on the same project folder and run directories as the TUI,
so anything done in the UI can be scripted and the other way round; `--json`
where the output is data. User errors print one located message, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from kimi_tui import __version__
from kimi_tui.errors import KimiTuiError

COMMANDS = ("init", "run", "status", "stop", "report")
STAGE_CHOICES = ("prepare", "extract", "convert", "train", "export", "evaluate", "all")


def _project_root(value: str | None) -> Path:
    from kimi_tui.config import CONFIG_FILENAME

    root = Path(value or ".").expanduser().resolve()
    if not (root / CONFIG_FILENAME).exists():
        hint = "pass --project DIR" if value is None else "create one with `kimi-tui init DIR --sample`"
        raise KimiTuiError(f"{root} is not a kimi-tui project (no {CONFIG_FILENAME}); {hint}")
    return root


def cmd_init(args: argparse.Namespace) -> int:
    from kimi_tui.project import init_project

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
    print(f"project ready: {project.root}")
    print(f"  config: {project.config_path}")
    print(f"  next:   kimi-tui run all --project {project.root} --wait")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from kimi_tui.pipeline import start
    from kimi_tui.project import Project
    from kimi_tui.runs import wait_run

    project = Project.load(_project_root(args.project))
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


def _fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def cmd_status(args: argparse.Namespace) -> int:
    from kimi_tui.checkpoints import list_checkpoints
    from kimi_tui.project import Project
    from kimi_tui.runs import list_runs

    project = Project.load(_project_root(args.project))
    runs = list_runs(project.runs_dir)
    checkpoints = list_checkpoints(project.training_dir)
    if args.json:
        json.dump(
            {
                "project": str(project.root),
                "runs": [r.to_dict() for r in runs],
                "checkpoints": [c.to_dict() for c in checkpoints],
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
    if checkpoints:
        print("checkpoints:")
        for c in checkpoints:
            loss = "-" if c.loss is None else f"{c.loss:.4f}"
            flag = "" if c.complete else "  (incomplete: ignored)"
            print(f"  {c.name:20} step {c.step:6} loss {loss:>8} {c.size_bytes / 1e6:8.1f} MB{flag}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from kimi_tui.project import Project
    from kimi_tui.runs import find_run, stop_run

    project = Project.load(_project_root(args.project))
    run_dir = find_run(project.runs_dir, args.run)
    info = stop_run(run_dir)
    print(f"{run_dir.name}: {info.state}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from kimi_tui.project import Project

    project = Project.load(_project_root(args.project))
    evaluations = sorted(p for p in project.evaluations_dir.glob("*/metrics.json"))
    if not evaluations:
        raise KimiTuiError(f"no evaluation in {project.evaluations_dir} yet: run `kimi-tui run evaluate`")
    latest = evaluations[-1]
    if args.json:
        print(latest.read_text(encoding="utf-8"), end="")
    else:
        print(f"{latest.parent}")
        print((latest.parent / "report.md").read_text(encoding="utf-8"), end="")
    return 0


def cmd_open(args: argparse.Namespace) -> int:
    root = Path(args.dir or ".").resolve()
    print(
        f"kimi-tui {__version__}: the interactive workbench is not in this build yet.\n"
        "Headless commands:\n"
        "  kimi-tui init DIR --sample                 a project from the bundled sample\n"
        "  kimi-tui run STAGE|all --project DIR --wait\n"
        "  kimi-tui status --project DIR [--json]\n"
        "  kimi-tui stop RUN --project DIR\n"
        "  kimi-tui report --project DIR [--json]\n"
        f"(looked at {root})"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kimi-tui",
        description="A terminal workbench for fine-tuning speech models for Chinese ASR.",
    )
    parser.add_argument("--version", action="version", version=f"kimi-tui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("init", help="create a project folder")
    p.add_argument("dir")
    p.add_argument("--sample", action="store_true", help="copy the bundled nine-clip Mandarin sample")
    p.add_argument("--train-csv")
    p.add_argument("--train-audio")
    p.add_argument("--test-csv")
    p.add_argument("--test-audio")
    p.add_argument("--train-jsonl", help="an existing Kimi-format JSONL instead of a CSV")
    p.add_argument("--test-jsonl")
    p.add_argument("--exist-ok", action="store_true", help="keep an existing project instead of failing")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("run", help="start a stage, or all of them, detached")
    p.add_argument("stage", choices=STAGE_CHOICES)
    p.add_argument("--project")
    p.add_argument("--wait", action="store_true", help="follow the log until the run ends")
    p.add_argument("--resume", action="store_true", help="train: continue from the last complete checkpoint")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="list runs and checkpoints")
    p.add_argument("--project")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("stop", help="stop a run: SIGINT, then SIGTERM, then SIGKILL to its process group")
    p.add_argument("run", help="run id, id prefix, or stage name for the latest run of that stage")
    p.add_argument("--project")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("report", help="show the latest evaluation")
    p.add_argument("--project")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv or (argv[0] not in COMMANDS and not argv[0].startswith("-")):
        return cmd_open(argparse.Namespace(dir=argv[0] if argv else None))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KimiTuiError as exc:
        print(f"kimi-tui: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
