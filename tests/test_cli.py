"""The headless CLI as a user types it: init, prepare on their own data, errors without tracebacks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from audio_files import wav
from kimi_tui.config import load_config


def kimi(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kimi_tui", *args], capture_output=True, text=True, timeout=120)


def test_gbk_csv_with_a_missing_clip_imports_the_rest_and_names_the_row(tmp_path: Path) -> None:
    audio = tmp_path / "wavs"
    for i in (1, 2, 4):
        wav(audio / "nested" / f"utt{i:03d}.wav")
    csv_path = tmp_path / "标注.csv"
    rows = ["音频ID,转录文本", "utt001,今天天气很好", "utt002,我们去公园", "utt003,这条没有音频", "utt004,请把窗户打开"]
    csv_path.write_bytes(("\r\n".join(rows) + "\r\n").encode("gbk"))
    project = tmp_path / "proj"
    init = kimi("init", str(project), "--train-csv", str(csv_path), "--train-audio", str(audio))
    assert init.returncode == 0, init.stderr
    run = kimi("run", "prepare", "--project", str(project), "--wait")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "标注.csv line 4 (id utt003)" in run.stdout
    lines = (project / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["conversation"][2]["content"] for line in lines]
    assert texts == ["今天天气很好", "我们去公园", "请把窗户打开"]
    findings = json.loads((project / "data" / "findings.json").read_text(encoding="utf-8"))
    (error,) = [f for f in findings["train"]["findings"] if f["level"] == "error"]
    assert (error["code"], error["line"], error["utt_id"]) == ("missing_audio", 4, "utt003")


def test_init_never_overwrites_a_project_and_never_writes_into_the_package(tmp_path: Path) -> None:
    project = tmp_path / "p"
    assert kimi("init", str(project), "--sample").returncode == 0
    config = project / "kimi-tui.toml"
    config.write_text(config.read_text(encoding="utf-8") + "\n# my note\n", encoding="utf-8")
    again = kimi("init", str(project), "--sample")
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr
    assert config.read_text(encoding="utf-8").endswith("# my note\n")
    assert kimi("init", str(project), "--sample", "--exist-ok").returncode == 0
    assert (project / "sample" / "audio").is_dir()
    assert load_config(config).data.train_audio == "sample/audio"


def test_bad_config_is_reported_with_line_and_suggestion(tmp_path: Path) -> None:
    project = tmp_path / "p"
    assert kimi("init", str(project), "--sample").returncode == 0
    config = project / "kimi-tui.toml"
    config.write_text(config.read_text(encoding="utf-8").replace("epochs = ", "epoch = "), encoding="utf-8")
    out = kimi("status", "--project", str(project))
    assert out.returncode == 2
    assert "unknown key 'epoch': did you mean 'epochs'?" in out.stderr and "Traceback" not in out.stderr


def test_save_steps_larger_than_the_run_is_refused_before_training(tmp_path: Path) -> None:
    project = tmp_path / "p"
    assert kimi("init", str(project), "--sample").returncode == 0
    config = project / "kimi-tui.toml"
    # The seed report's run: 9 clips, batch 1, accumulation 4, 10 epochs, save_steps 1000.
    text = config.read_text(encoding="utf-8").replace('save_steps = "auto"', "save_steps = 1000")
    for key, value in (("epochs", 10), ("batch_size", 1), ("gradient_accumulation_steps", 4)):
        text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M)
    config.write_text(text, encoding="utf-8")
    assert kimi("run", "prepare", "--project", str(project), "--wait").returncode == 0
    # Pretend extract/convert ran: the save policy check needs only the data size.
    (project / "models" / "base").mkdir(parents=True)
    (project / "models" / "base" / "config.json").write_text("{}")
    out = kimi("run", "train", "--project", str(project))
    assert out.returncode == 2
    assert "save_steps = 1000" in out.stderr and "30 optimizer steps" in out.stderr and "auto" in out.stderr
    assert not list((project / "runs").glob("*-train"))


def test_unknown_run_and_missing_project_are_clear(tmp_path: Path) -> None:
    out = kimi("status", "--project", str(tmp_path))
    assert out.returncode == 2 and "not a kimi-tui project" in out.stderr
    project = tmp_path / "p"
    assert kimi("init", str(project), "--sample").returncode == 0
    out = kimi("stop", "nope", "--project", str(project))
    assert out.returncode == 2 and "no run 'nope'" in out.stderr


def test_a_new_train_run_moves_the_previous_checkpoints_aside_never_over_them(tmp_path: Path) -> None:
    project = tmp_path / "p"
    assert kimi("init", str(project), "--sample").returncode == 0
    assert kimi("run", "prepare", "--project", str(project), "--wait").returncode == 0
    (project / "models" / "base").mkdir(parents=True)
    (project / "models" / "base" / "config.json").write_text("{}")
    old = project / "training" / "checkpoint-3"
    old.mkdir(parents=True)
    (old / "trainer_state.json").write_text('{"log_history": []}')
    out = kimi("run", "train", "--project", str(project), "--wait")
    assert "kept the previous train output as" in out.stdout
    (kept,) = list(project.glob("training.*"))
    assert (kept / "checkpoint-3" / "trainer_state.json").exists()
    # --resume keeps training/ where it is
    (project / "training").mkdir(exist_ok=True)
    (project / "training" / "marker").write_text("x")
    kimi("run", "train", "--project", str(project), "--resume", "--wait")
    assert (project / "training" / "marker").exists() and len(list(project.glob("training.*"))) == 1


def test_run_all_over_an_earlier_runs_outputs_asks_and_refuses_without_a_terminal(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    assert kimi("init", str(project), "--sample").returncode == 0
    (project / "data").mkdir(exist_ok=True)
    (project / "data" / "train.jsonl").write_text('{"id": "a"}\n', encoding="utf-8")  # as prepare leaves it
    out = subprocess.run([sys.executable, "-m", "kimi_tui", "run", "all", "--project", str(project)],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode == 2
    assert "data/train.jsonl" in out.stderr and "pass --yes" in out.stderr
    assert not list((project / "runs").glob("*-all"))
    started = kimi("run", "all", "--project", str(project), "--yes")
    assert started.returncode == 0, started.stderr
    assert "started" in started.stdout and list((project / "runs").glob("*-all"))
    assert kimi("stop", "all", "--project", str(project)).returncode == 0


def _open_calls(monkeypatch) -> list:
    import kimi_tui.cli as cli

    calls: list = []
    monkeypatch.setattr(cli, "cmd_open", lambda args: calls.append(args.dir) or 0)
    return calls


def test_a_mistyped_command_says_did_you_mean_and_opens_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    from kimi_tui.cli import main

    monkeypatch.chdir(tmp_path)
    calls = _open_calls(monkeypatch)
    for argv, word, meant in ((["stauts"], "stauts", "status"), (["rn", "all"], "rn", "run"),
                              (["repot", "--project", "p"], "repot", "report")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"kimi-tui: error: unknown command '{word}'; did you mean '{meant}'?"), err
    assert calls == [] and list(tmp_path.iterdir()) == []


def test_folders_and_new_project_names_open_the_workbench(tmp_path: Path, monkeypatch) -> None:
    from kimi_tui.cli import main

    monkeypatch.chdir(tmp_path)
    calls = _open_calls(monkeypatch)
    (tmp_path / "stauts").mkdir()  # an existing folder named like a typo is that folder
    for argv in ([], ["stauts"], ["./statu"], ["~"], [str(tmp_path)], ["myproject"]):
        assert main(argv) == 0, argv
    assert calls == [None, "stauts", "./statu", "~", str(tmp_path), "myproject"]


def test_help_shows_the_workbench_usage_and_every_option_has_a_help_text(capsys) -> None:
    import argparse

    import pytest

    from kimi_tui.cli import build_parser, main

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: kimi-tui [DIR]") and "COMMAND" in out and "status" in out
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {'/'.join(a.option_strings) or a.dest}"
               for name, command in [("kimi-tui", parser), *sub.choices.items()]
               for a in command._actions
               if not isinstance(a, argparse._SubParsersAction) and not a.help]
    assert missing == []
