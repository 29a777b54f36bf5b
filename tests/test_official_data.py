"""The official Kimi-Audio fine-tuning data, laid out as users have it, through the real CLI.

The official demo data.jsonl names its audio relative to the checkout root (its scripts run
there) and carries its own instruction; these tests build that layout in tmp_path (a fake
checkout: finetune_codes/demo_data/audio_understanding/{data.jsonl,audios/*.flac} + kimia_infer/)
with generated FLAC files, and run `kimi-tui init` and the prepare stage on it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_files import wav
from kimi_tui.cli import main
from kimi_tui.config import load_config, parse_config, save_config, set_field
from kimi_tui.errors import ConfigError
from kimi_tui.workers import prepare

DEMO = "finetune_codes/demo_data/audio_understanding"
INSTRUCTION = "Please transcribe the spoken content into written text."
CLIPS = {  # id -> (seconds, transcript)
    "librispeech_1263-139804-0001": (1.0, "they are nearly as large as we"),
    "librispeech_1263-139804-0002": (1.25, "and are capable of receiving regular instruction"),
    "librispeech_1263-139804-0004": (1.5, "on this world of brief all vegetables mature"),
    "librispeech_1263-139804-0005": (2.0, "the inhabitants of brief are"),
}


def flac(path: Path, seconds: float, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * 16000)) / 16000
    rng = np.random.default_rng(seed)
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * (seed + 1) * t) + 0.01 * rng.standard_normal(t.size), 16000,
             format="FLAC")
    return path


def row(audio: str, text: str, instruction: str | None = INSTRUCTION) -> str:
    conv = [{"role": "user", "message_type": "text", "content": instruction}] if instruction is not None else []
    conv += [{"role": "user", "message_type": "audio", "content": audio},
             {"role": "assistant", "message_type": "text", "content": text}]
    return json.dumps({"task_type": "understanding", "conversation": conv}, ensure_ascii=False)


def checkout(tmp_path: Path) -> Path:
    """A lookalike of the official checkout: the demo data with paths relative to its root."""
    ck = tmp_path / "Kimi-Audio"
    (ck / "kimia_infer").mkdir(parents=True)
    lines = []
    for seed, (uid, (seconds, text)) in enumerate(CLIPS.items()):
        flac(ck / DEMO / "audios" / f"{uid}.flac", seconds, seed)
        lines.append(row(f"{DEMO}/audios/{uid}.flac", text))
    (ck / DEMO / "data.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ck


def kimi(capsys, *args: str) -> tuple[int, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out + out.err


def run_prepare(capsys, project: Path) -> tuple[int, str, dict]:
    rc = prepare.main(["--project", str(project)])
    out = capsys.readouterr()
    findings = json.loads((project / "data" / "findings.json").read_text(encoding="utf-8"))
    return rc, out.out + out.err, findings


def samples(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def assert_official_rows_imported(project: Path, ck: Path, findings: dict) -> None:
    utts = findings["train"]["utterances"]
    assert [u["id"] for u in utts] == list(CLIPS)
    assert [round(u["duration_s"], 3) for u in utts] == [s for s, _ in CLIPS.values()]
    assert {u["instruction"] for u in utts} == {INSTRUCTION}
    written = samples(project / "data" / "train.jsonl")
    assert [s["conversation"][0]["content"] for s in written] == [INSTRUCTION] * 4  # the rows' own
    assert [s["conversation"][1]["content"] for s in written] == [
        str(ck / DEMO / "audios" / f"{uid}.flac") for uid in CLIPS]
    assert findings["train"]["counts"]["error"] == 0


def test_official_layout_whisper_project_finds_the_checkout_root_above_the_jsonl(tmp_path, capsys, monkeypatch):
    ck = checkout(tmp_path)
    monkeypatch.chdir(ck)  # as the official scripts are run; the walk up finds the root anyway
    rc, out = kimi(capsys, "init", str(tmp_path / "p"), "--train-jsonl", f"{DEMO}/data.jsonl")
    assert rc == 0, out
    assert "4 rows, every audio file found" in out
    assert f"the Kimi-Audio checkout root above the JSONL {ck}" in out
    assert "next:   kimi-tui run all" in out

    rc, out, findings = run_prepare(capsys, tmp_path / "p")
    assert rc == 0, out
    assert_official_rows_imported(tmp_path / "p", ck, findings)
    (note,) = [f for f in findings["train"]["findings"] if f["code"] == "audio_base"]
    assert note["level"] == "note" and f"checkout root above the JSONL {ck}" in note["message"]
    assert "4 relative audio paths" in note["message"]
    assert f"instruction (the row's own, 4 samples): {INSTRUCTION!r}" in out
    assert "audio_base" not in out or "note: data.jsonl: 4 relative audio paths" in out


def test_a_moved_official_jsonl_init_says_what_is_missing_then_kimi_audio_checkout_finds_it(
        tmp_path, capsys, monkeypatch):
    ck = checkout(tmp_path)
    elsewhere = tmp_path / "mine"
    elsewhere.mkdir()
    shutil.copy(ck / DEMO / "data.jsonl", elsewhere / "data.jsonl")  # no checkout above it now
    monkeypatch.chdir(tmp_path)
    project = tmp_path / "p"
    rc, out = kimi(capsys, "init", str(project), "--train-jsonl", str(elsewhere / "data.jsonl"))
    assert rc == 1, out  # created, but it would not run: no "run all" recommended
    assert (project / "kimi-tui.toml").is_file()
    assert "run all" not in out
    assert "the audio of 4 of 4 rows cannot be found" in out
    assert f"is not found in the JSONL's folder {elsewhere} or the project folder" in out
    assert out.count("(a relative path) is not found") == 3 and "and 1 more" in out  # the first few
    assert "[kimi_audio] checkout" in out and "kimi-tui run prepare" in out

    cfg = load_config(project)
    cfg = set_field(cfg, "engine.name", "kimi-audio")
    cfg = set_field(cfg, "kimi_audio.checkout", str(ck))
    save_config(project, cfg)
    rc, out, findings = run_prepare(capsys, project)
    assert rc == 0, out
    assert_official_rows_imported(project, ck, findings)
    (note,) = [f for f in findings["train"]["findings"] if f["code"] == "audio_base"]
    assert f"the Kimi-Audio checkout ([kimi_audio] checkout) {ck}" in note["message"]


def test_init_names_the_current_folder_that_would_have_found_the_audio(tmp_path, capsys, monkeypatch):
    ck = checkout(tmp_path)
    (tmp_path / "mine").mkdir()
    shutil.copy(ck / DEMO / "data.jsonl", tmp_path / "mine" / "data.jsonl")
    monkeypatch.chdir(ck)
    rc, out = kimi(capsys, "init", str(tmp_path / "p"), "--train-jsonl", str(tmp_path / "mine" / "data.jsonl"))
    assert rc == 1
    assert f"4 of them are found from the current folder {ck}, but the stages run in the project folder" in out


def test_some_missing_audio_is_said_and_run_all_is_qualified(tmp_path, capsys, monkeypatch):
    ck = checkout(tmp_path)
    (ck / DEMO / "audios" / "librispeech_1263-139804-0002.flac").unlink()
    monkeypatch.chdir(tmp_path)
    rc, out = kimi(capsys, "init", str(tmp_path / "p"), "--train-jsonl", str(ck / DEMO / "data.jsonl"))
    assert rc == 0, out
    assert "the audio of 1 of 4 rows cannot be found" in out and "line 2" in out
    assert "(the other rows: 3 relative audio paths" in out
    assert "(leaves out the 1 row above), or fix them first" in out


def test_csv_with_audio_missing_init_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    wav(tmp_path / "wavs" / "a.wav")
    (tmp_path / "t.csv").write_text("id,text\na,你好\nb,再见\n", encoding="utf-8")
    rc, out = kimi(capsys, "init", str(tmp_path / "p"), "--train-csv", str(tmp_path / "t.csv"),
                   "--train-audio", str(tmp_path / "wavs"))
    assert rc == 0, out
    assert "the audio of 1 of 2 rows cannot be found" in out and "t.csv line 3 (id b)" in out


def test_missing_absolute_audio_message_reads_once_fix(tmp_path, capsys):
    """prepare printed "does not exist Fix: Fix the audio path"."""
    p = tmp_path / "d.jsonl"
    wav(tmp_path / "a.wav")
    p.write_text(row(str(tmp_path / "a.wav"), "有") + "\n" + row(str(tmp_path / "gone.wav"), "无") + "\n",
                 encoding="utf-8")
    kimi(capsys, "init", str(tmp_path / "p"), "--train-jsonl", str(p))
    rc, out, _ = run_prepare(capsys, tmp_path / "p")
    assert rc == 0
    assert f"audio file {tmp_path / 'gone.wav'} does not exist Fix: Correct the audio path" in out
    assert "Fix: Fix" not in out and "Fix: Correct or delete" not in out


def test_instruction_for_jsonl_override_and_rows_without_one(tmp_path, capsys):
    wav(tmp_path / "a.wav")
    wav(tmp_path / "b.wav", seconds=0.5)
    p = tmp_path / "d.jsonl"
    p.write_text(row("a.wav", "一", instruction="Transcribe this.") + "\n" + row("b.wav", "二", instruction=None)
                 + "\n", encoding="utf-8")
    project = tmp_path / "p"
    assert kimi(capsys, "init", str(project), "--train-jsonl", str(p))[0] == 0
    rc, out, _ = run_prepare(capsys, project)
    assert [s["conversation"][0]["content"] for s in samples(project / "data" / "train.jsonl")] == [
        "Transcribe this.", "请将语音内容转录为文字。"]  # keep: the row's own; none: [data] instruction
    assert "instruction (the row's own, 1 sample): 'Transcribe this.'" in out
    assert "instruction ([data] instruction, 1 sample)" in out

    save_config(project, set_field(load_config(project), "data.instruction_for_jsonl", "override"))
    run_prepare(capsys, project)
    assert [s["conversation"][0]["content"] for s in samples(project / "data" / "train.jsonl")] == [
        "请将语音内容转录为文字。"] * 2


def test_instruction_for_jsonl_is_a_checked_setting():
    with pytest.raises(ConfigError, match=r"\[data\] unknown key 'instruction_for_json': did you mean "
                                          r"'instruction_for_jsonl'\?"):
        parse_config('[data]\ninstruction_for_json = "keep"\n')
    with pytest.raises(ConfigError, match=r'kimi-tui.toml:2: \[data\] instruction_for_jsonl = "replace"'):
        parse_config('[data]\ninstruction_for_jsonl = "replace"\n')
    assert parse_config("").data.instruction_for_jsonl == "keep"


def leaky_project(tmp_path: Path, capsys) -> Path:
    """train: a, b, c (+ d); test: a again (same file), a copy of b, an id "c" with other audio,
    a clean clip, and a clip of b's size but other samples (not leaked)."""
    d = tmp_path / "data"
    a, b, c = (flac(d / "train" / f"{n}.flac", 1.0 + i / 4, i) for i, n in enumerate("abc"))
    same_size_train = wav(d / "train" / "s.wav", seconds=1.0)
    copy_b = d / "test" / "b_copy.flac"
    copy_b.parent.mkdir(parents=True)
    shutil.copy(b, copy_b)
    other_c = flac(d / "test" / "c.flac", 1.5, 7)
    clean = flac(d / "test" / "clean.flac", 1.0, 8)
    same_size_test = d / "test" / "s2.wav"
    sf.write(same_size_test, np.full(16000, 100, dtype=np.int16), 16000, subtype="PCM_16")
    assert same_size_test.stat().st_size == same_size_train.stat().st_size
    train_rows = [row(str(a), "甲"), row(str(b), "乙"), row(str(c), "丙"), row(str(same_size_train), "静")]
    test_rows = [row(str(a), "甲"), row(str(copy_b), "乙"), row(str(other_c), "丙丙"), row(str(clean), "净"),
                 row(str(same_size_test), "嗡")]
    (d / "train.jsonl").write_text("\n".join(train_rows) + "\n", encoding="utf-8")
    (d / "test.jsonl").write_text("\n".join(test_rows) + "\n", encoding="utf-8")
    project = tmp_path / "p"
    rc, out = kimi(capsys, "init", str(project), "--train-jsonl", str(d / "train.jsonl"),
                   "--test-jsonl", str(d / "test.jsonl"))
    assert rc == 0, out
    return project


def test_train_test_leakage_findings(tmp_path, capsys):
    project = leaky_project(tmp_path, capsys)
    rc, out, findings = run_prepare(capsys, project)
    assert rc == 0, out
    test = findings["test"]
    got = [(f["level"], f["code"], f["line"], f["utt_id"]) for f in test["findings"] if f["code"].startswith("train_test")]
    assert got == [
        ("error", "train_test_audio", 1, "a"),    # the same file
        ("error", "train_test_audio", 2, "b_copy"),  # the same bytes under another name
        ("warning", "train_test_id", 3, "c"),     # the same id, other audio: kept
    ]
    msgs = [f["message"] for f in test["findings"] if f["code"].startswith("train_test")]
    assert "is also in the training set (train.jsonl line 1, id a)" in msgs[0]
    assert "has the same content as" in msgs[1] and "train.jsonl line 2, id b" in msgs[1]
    fixes = [f["fix"] for f in test["findings"] if f["code"].startswith("train_test")]
    assert "so this is an error" in fixes[0] and "A warning, not an error" in fixes[2]
    assert [s["id"] for s in samples(project / "data" / "test.jsonl")] == ["c", "clean", "s2"]
    assert [s["id"] for s in samples(project / "data" / "train.jsonl")] == ["a", "b", "c", "s"]  # untouched
    assert "error: test.jsonl line 1 (id a): audio file" in out


async def test_dataset_panel_shows_the_instruction_its_source_the_base_and_leakage(tmp_path, capsys, monkeypatch):
    from textual.widgets import Static

    from kimi_tui.tui.app import KimiTuiApp
    from kimi_tui.tui.dataset_panel import DatasetPanel

    ck = checkout(tmp_path)
    project = tmp_path / "p"
    # the official data as training set, and a test set sharing one of its clips
    test_rows = [row(str(ck / DEMO / "audios" / "librispeech_1263-139804-0001.flac"), "they are")]
    (tmp_path / "test.jsonl").write_text("\n".join(test_rows) + "\n", encoding="utf-8")
    assert kimi(capsys, "init", str(project), "--train-jsonl", str(ck / DEMO / "data.jsonl"),
                "--test-jsonl", str(tmp_path / "test.jsonl"))[0] == 0
    app = KimiTuiApp(project)
    async with app.run_test(size=(100, 30)) as pilot:
        panel = None
        deadline = time.monotonic() + 60  # a deadline, not a count of pauses: a loaded machine is slow
        while panel is None and time.monotonic() < deadline:
            await pilot.pause(0.02)
            panels = app.screen.query(DatasetPanel)
            if panels and "test" in panels.first()._data and "train" in panels.first()._data:
                panel = panels.first()
        assert panel is not None, "the Dataset panel did not load both splits"
        await pilot.pause()
        assert [u.id for u in panel.view] == list(CLIPS)
        await pilot.press("d")
        await pilot.pause()
        details = str(panel.query_one("#dataset-details-body", Static).render())
        assert f"instr {INSTRUCTION}  (the row's own)" in details
        codes = [(split, f.code) for split, f in panel._all_findings]
        assert ("test", "train_test_audio") in codes and ("train", "audio_base") in codes
        base = next(f for _, f in panel._all_findings if f.code == "audio_base")
        assert f"checkout root above the JSONL {ck}" in base.message
