"""Audio changed after prepare is caught before a stage reads it, and by the workers while they read it.

The sample is prepared once (a few seconds); each test changes its audio, checks what the next stage
says, and the fixture puts the original files back (same bytes, same mtime) afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from kimi_tui.data import fingerprints
from kimi_tui.data.fingerprints import AudioChangedError, Fingerprints, RecordedAudio, require_unchanged
from kimi_tui.errors import KimiTuiError
from kimi_tui.pipeline import plan_stage, start
from kimi_tui.project import Project, init_project
from kimi_tui.runs import wait_run


@pytest.fixture(scope="module")
def prepared_once(tmp_path_factory) -> tuple[Project, Path]:
    root = tmp_path_factory.mktemp("changed") / "p"
    project = init_project(root, sample=True)
    info = wait_run(start(project, "prepare"), poll_s=0.05)
    assert info.state == "succeeded"
    pristine = root.parent / "pristine"
    shutil.copytree(root / "sample", pristine)  # copy2: same bytes and mtimes
    return project, pristine


@pytest.fixture
def project(prepared_once) -> Project:
    project, pristine = prepared_once
    saved = project.data_dir / fingerprints.FILENAME
    record = saved.read_bytes()
    yield project
    shutil.rmtree(project.root / "sample")
    shutil.copytree(pristine, project.root / "sample")
    saved.write_bytes(record)
    require_unchanged(project.data_dir)  # back as prepare saw it


def train_audio(project: Project) -> list[str]:
    lines = project.train_jsonl.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["conversation"][1]["content"] for line in lines]


def refusal(project: Project, stage: str) -> str:
    with pytest.raises(KimiTuiError) as caught:
        plan_stage(project, stage)
    assert isinstance(caught.value, AudioChangedError)
    return str(caught.value)


def test_prepare_records_every_clip_beside_the_jsonl_and_leaves_the_official_lines_alone(project):
    fp = Fingerprints.load(project.data_dir / fingerprints.FILENAME)
    assert fp is not None
    test_lines = project.test_jsonl.read_text(encoding="utf-8").splitlines()
    test_audio = [json.loads(line)["conversation"][1]["content"] for line in test_lines]
    assert set(fp.files) == set(train_audio(project)) | set(test_audio)
    for path, rec in fp.files.items():
        st = os.stat(path)
        info = soundfile.info(path)
        assert (rec.size, rec.mtime_ns, rec.frames, rec.sample_rate, rec.channels) == (
            st.st_size, st.st_mtime_ns, info.frames, info.samplerate, info.channels)
    for line in project.train_jsonl.read_text(encoding="utf-8").splitlines():
        assert list(json.loads(line)) == ["task_type", "conversation", "id"]  # what the official loader reads
    plan_stage(project, "extract")  # nothing changed: planned


def test_a_wav_truncated_after_prepare_stops_extract_and_train_naming_the_file(project):
    clip = train_audio(project)[2]
    was = os.path.getsize(clip)
    with open(clip, "r+b") as fh:
        fh.truncate(100)
    message = refusal(project, "extract")
    assert f"{clip}: size 100 bytes, was {was:,}" in message
    assert "recorded by prepare at" in message and "kimi-tui run prepare" in message
    assert "0.00 s long" in message
    with pytest.raises(AudioChangedError, match="size 100 bytes"):
        start(project, "extract")  # what the CLI, the TUI and `run all` call: nothing is started
    assert not [r for r in project.runs_dir.iterdir() if r.name.endswith("-extract")]

    # train reaches the same check (past its own "run convert first")
    (project.base_model_dir).mkdir(parents=True, exist_ok=True)
    (project.base_model_dir / "config.json").write_text("{}", encoding="utf-8")
    try:
        assert clip in refusal(project, "train")
    finally:
        shutil.rmtree(project.root / "models")


def test_a_wav_replaced_by_another_clip_is_named_with_both_lengths(project):
    clip = train_audio(project)[0]
    soundfile.write(clip, np.zeros(8000, dtype=np.float32), 16000, subtype="PCM_16")  # 0.5 s, valid
    message = refusal(project, "extract")
    assert clip in message and "0.50 s long (8,000 frames), was 2.58 s (41,287 frames)" in message
    assert sum(1 for line in message.splitlines() if line.startswith("  /")) == 1  # only that file


def test_a_touched_wav_is_accepted_and_its_new_mtime_recorded(project, monkeypatch):
    clip = train_audio(project)[1]
    st = os.stat(clip)
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    plan_stage(project, "extract")  # same size, the header says the same frames: not refused
    fp = Fingerprints.load(project.data_dir / fingerprints.FILENAME)
    assert fp is not None and fp.files[clip].mtime_ns == st.st_mtime_ns + 5_000_000_000

    # the common path is stat only: no header is read now that the record is current
    def no_probe(path):
        raise AssertionError(f"read the header of {path}")

    monkeypatch.setattr("kimi_tui.data.audio.probe_audio", no_probe)
    plan_stage(project, "extract")


def test_same_size_with_other_content_is_caught_by_the_header(project):
    clip = train_audio(project)[3]
    size, st = os.path.getsize(clip), os.stat(clip)
    frames = soundfile.info(clip).frames
    # mono 16-bit -> stereo 16-bit at half the frames: the same number of bytes, another clip
    soundfile.write(clip, np.zeros((frames // 2, 2), dtype=np.float32), 16000, subtype="PCM_16")
    with open(clip, "r+b") as fh:
        fh.truncate(size)  # an odd frame count leaves it 2 bytes short: pad after the data chunk
    assert os.path.getsize(clip) == size and soundfile.info(clip).channels == 2
    message = refusal(project, "extract")
    assert "2 channel(s), was 1" in message and "size" not in message.split(clip)[1].split("\n")[0]
    assert st.st_mtime_ns != os.stat(clip).st_mtime_ns


def test_a_deleted_clip_and_a_damaged_record_are_named(project):
    clip = train_audio(project)[4]
    os.unlink(clip)
    assert f"{clip}: missing" in refusal(project, "extract")
    (project.data_dir / fingerprints.FILENAME).write_text("{not json", encoding="utf-8")
    message = refusal(project, "extract")
    assert fingerprints.FILENAME in message and "run prepare again" in message


def test_a_project_prepared_before_fingerprints_existed_is_not_refused(project):
    (project.data_dir / fingerprints.FILENAME).unlink()
    plan_stage(project, "extract")


def test_the_message_lists_ten_files_and_counts_the_rest(project):
    for clip in train_audio(project):
        with open(clip, "r+b") as fh:
            fh.truncate(100)
    fp = Fingerprints.load(project.data_dir / fingerprints.FILENAME)
    many = {f"{p}.{i}": r for i in range(2) for p, r in fp.files.items()}  # 38 records, all missing
    fingerprints.write_fingerprints(project.data_dir / fingerprints.FILENAME, many)
    message = refusal(project, "extract")
    assert message.startswith("38 audio files changed after prepare")
    assert "... and 28 more" in message


def test_workers_refuse_a_clip_that_decodes_empty_or_to_another_length(project):
    clip = train_audio(project)[0]
    frames = soundfile.info(clip).frames
    recorded = RecordedAudio.beside(project.train_jsonl)
    recorded.check_decoded(clip, frames, 16000)  # as prepared
    recorded.check_decoded(clip, frames + 3, 16000)  # resampling rounds by a sample or two
    with pytest.raises(AudioChangedError) as caught:
        recorded.check_decoded(clip, 0, 16000)
    assert clip in str(caught.value) and "0 samples" in str(caught.value) and "2.58 s" in str(caught.value)
    with pytest.raises(AudioChangedError, match=r"decoded to 1\.00 s but prepare recorded 2\.58 s"):
        recorded.check_decoded(clip, 16000, 16000)
    # a clip prepare never saw: only the empty check applies
    RecordedAudio.beside(project.train_jsonl).check_decoded("/elsewhere/x.wav", 100, 16000)
    with pytest.raises(AudioChangedError):
        RecordedAudio.beside(project.root / "nowhere" / "train.jsonl").check_decoded("/elsewhere/x.wav", 0, 16000)


def test_a_clip_truncated_after_the_stage_was_planned_stops_the_worker_naming_it(project) -> None:
    """The plan's check passed; the file changes before the worker reads it (a sync job, a user
    in another window): the worker names it instead of extracting features of silence."""
    import subprocess
    import sys

    from kimi_tui.engines import get_engine

    plan = get_engine("whisper").plan("extract", project)
    victim = sorted((project.root / "sample" / "audio").glob("*.wav"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    done = subprocess.run(plan.argv, cwd=plan.cwd or None, env={**os.environ, **plan.env},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert str(victim) in done.stdout + done.stderr and "Traceback" not in done.stdout + done.stderr
