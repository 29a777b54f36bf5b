"""`kimi-tui score` on transcript files as ASR toolkits write them, through the real CLI.

Kaldi `text`, sclite trn and decode outputs rarely have an extension that says what they
are, and Chinese transcripts hold ASCII commas: each case here once scored a correct
hypothesis as 100 % CER, lost text, or scored files whose ids never met.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kimi_tui.cli import main
from kimi_tui.errors import DataError
from kimi_tui.evaluate.textfile import detect_format, read_id_text

REF = {"u1": "你好,世界", "u2": "今天 天气 很好", "u3": "我用iPhone拍照"}


def score(capsys, ref: Path, hyp: Path, code: int = 0) -> tuple[dict | None, str]:
    rc = main(["score", str(ref), str(hyp), "--json"])
    out = capsys.readouterr()
    assert rc == code, out.err
    assert "Traceback" not in out.err
    return (json.loads(out.out) if code == 0 else None), out.err


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def kaldi(table: dict[str, str], sep: str = " ") -> str:
    return "".join(f"{k}{sep}{v}\n" for k, v in table.items())


def test_kaldi_text_with_commas_is_not_csv_and_a_correct_hypothesis_scores_zero(tmp_path, capsys):
    ref = write(tmp_path / "ref.txt", kaldi(REF))
    for name in ("hyp.txt", "hyp.trn.txt", "hyp.scp", "hyp.text", "hyp.ref", "hyp.hyp", "hyp", "text"):
        hyp = write(tmp_path / name, kaldi(REF))
        result, _ = score(capsys, ref, hyp)
        assert result["cer"] == 0 and result["n_utts"] == 3 and result["n_missing_hyp"] == 0, name
    table, _ = read_id_text(ref)
    assert table == REF


def test_kaldi_tab_after_the_id_on_some_lines_and_a_space_on_others_keeps_all_text(tmp_path, capsys):
    mixed = "u1\t你好,世界\nu2 今天 天气 很好\nu3\t  我用iPhone拍照\n"
    for name in ("text", "hyp.tsv.txt", "hyp.tsv"):
        hyp = write(tmp_path / name, mixed)
        table, _ = read_id_text(hyp)
        assert table == REF, name
    result, _ = score(capsys, write(tmp_path / "ref", kaldi(REF)), tmp_path / "text")
    assert result["cer"] == 0 and result["n_utts"] == 3
    dup = write(tmp_path / "dup", "u1 旧\n\n u2\t今天 天气 很好\nu1\t你好,世界\n")
    result, err = score(capsys, write(tmp_path / "ref", kaldi({"u1": "你好,世界", "u2": "今天天气很好"})), dup)
    assert result["cer"] == 0 and "dup line 4: id 'u1' appears again; the later text is used" in err


def test_one_wrong_character_scores_its_cer_not_100_percent(tmp_path, capsys):
    ref = write(tmp_path / "text", "u1 今天天气很好,我们去公园\n")
    hyp = write(tmp_path / "hyp.txt", "u1 今天天汽很好,我们去公园\n")
    result, _ = score(capsys, ref, hyp)
    assert result["sub"] == 1 and result["del"] == result["ins"] == 0 and result["n_ref_chars"] == 11


@pytest.mark.parametrize("name", ["hyp.trn", "hyp.txt", "hyp"])
def test_sclite_trn_lines_are_read_whatever_the_extension(tmp_path, capsys, name):
    ref = write(tmp_path / "ref.txt", kaldi(REF))
    hyp = write(tmp_path / name, "你好,世界 (u1)\n今天 天气 很好\t(u2)\n我用iPhone拍照 (u3)\n")
    result, _ = score(capsys, ref, hyp)
    assert result["cer"] == 0 and result["n_utts"] == 3 and result["n_missing_hyp"] == 0
    spk = write(tmp_path / "spk.trn", "你好 世界 (spk1-u1)\n (spk1-u2)\n")
    assert read_id_text(spk)[0] == {"spk1-u1": "你好 世界", "spk1-u2": ""}


def test_a_trn_file_with_a_line_without_its_id_names_the_line(tmp_path, capsys):
    ref = write(tmp_path / "ref.txt", kaldi(REF))
    hyp = write(tmp_path / "hyp.trn", "你好 (u1)\n" * 3 + "今天天气\n")
    main(["score", str(ref), str(hyp)])
    # the sample of lines is all trn, so line 4 is an error of the file, not a change of format
    hyp = write(tmp_path / "hyp.trn", "".join(f"你好 (u{i})\n" for i in range(60)) + "今天天气\n")
    assert main(["score", str(ref), str(hyp)]) == 2
    err = capsys.readouterr().err
    assert "hyp.trn line 61" in err and "(id)" in err and "Traceback" not in err


def test_content_decides_the_format_of_files_without_a_telling_extension(tmp_path, capsys):
    ref = write(tmp_path / "ref.txt", "id,text\n" + "".join(f'{k},"{v}"\n' for k, v in REF.items()))
    tsv = write(tmp_path / "hyp.scp", "utt_id\thypothesis\n" + kaldi(REF, "\t"))
    jsonl = write(tmp_path / "hyp.out", "".join(json.dumps({"key": k, "text": v}, ensure_ascii=False) + "\n"
                                                for k, v in REF.items()))
    for hyp in (tsv, jsonl):
        result, _ = score(capsys, ref, hyp)
        assert result["cer"] == 0 and result["n_utts"] == 3, hyp.name
    assert read_id_text(ref)[0] == REF
    assert detect_format("sep=;\nid;text\nu1;好\n") == "csv"
    assert detect_format("u1,好\nu2,坏\n") == "csv"  # a header-less `id,text` file
    assert read_id_text(write(tmp_path / "plain.txt", "u1,好\nu2,坏 了\n"))[0] == {"u1": "好", "u2": "坏 了"}
    assert detect_format("id text\nu1 好\n") == "kaldi"
    assert read_id_text(write(tmp_path / "k.txt", "id text\nu1 好\n"))[0] == {"u1": "好"}


def test_an_explicit_csv_that_is_not_a_table_of_ids_and_texts_says_so(tmp_path, capsys):
    ref = write(tmp_path / "ref.txt", kaldi(REF))
    for text in ("u1 你好世界\nu2 今天\n", "u1 你好,世界\nu2 今天 天气,很好\n"):
        hyp = write(tmp_path / "hyp.csv", text)
        assert main(["score", str(ref), str(hyp)]) == 2
        err = capsys.readouterr().err
        assert "hyp.csv line 1" in err and "does not read as a CSV table" in err and ".txt" in err, err
        assert "Traceback" not in err
    # with a header, an unquoted comma in the last (text) column is put back, with a warning
    hyp = write(tmp_path / "hyp.csv", "id,text\n" + kaldi(REF, ","))
    result, err = score(capsys, ref, hyp)
    assert result["cer"] == 0 and "hyp.csv line 2" in err and "more fields" in err


def test_the_csv_reader_still_reads_quoted_headerless_and_spreadsheet_files(tmp_path, capsys):
    ref = write(tmp_path / "ref.csv", "\ufeffID,Text,,\n" + "".join(f'{k},"{v}",,\n' for k, v in REF.items()))
    assert read_id_text(ref)[0] == REF
    assert read_id_text(write(tmp_path / "h.csv", "u1,你好\n\nu2,\nu3\n"))[0] == {"u1": "你好", "u2": "", "u3": ""}
    table, warnings = read_id_text(write(tmp_path / "bad.csv", 'id,text\nu1,"你好\nu2,世界\n'))
    assert table == {"u1": "你好\nu2,世界"}  # what CSV says, but not kept quiet:
    assert warnings and "bad.csv line 2: a quoted text runs on to line 3" in warnings[0]
    with pytest.raises(DataError, match="bad.csv line 2"):
        read_id_text(write(tmp_path / "bad.csv", 'id,text\nu1 你好\n'))


@pytest.mark.parametrize("hyp_ids, expected", [
    (["u1.wav", "u2.wav", "u3.wav"], "the extension"),
    (["wav/u1", "wav/u2", "wav/u3"], "the folder"),
    (["U1", "U2", "U3"], "letter case"),
    (["spk1-u1", "spk1-u2", "spk2-u3"], "speaker prefix"),
    (["x1", "x2", "x3"], "same ids"),
])
def test_no_id_in_common_is_an_error_with_a_hint_and_examples(tmp_path, capsys, hyp_ids, expected):
    ref = write(tmp_path / "ref.txt", kaldi(REF))
    hyp = write(tmp_path / "hyp.txt", "".join(f"{i} {v}\n" for i, v in zip(hyp_ids, REF.values())))
    _, err = score(capsys, ref, hyp, code=2)
    assert "no utterance id in common" in err and expected in err, err
    assert "'u1'" in err and repr(hyp_ids[0]) in err and err.count("kimi-tui: error") == 1


def test_partial_overlap_scores_with_warnings_that_count(tmp_path, capsys):
    ref = write(tmp_path / "ref.txt", kaldi(REF))
    hyp = write(tmp_path / "hyp.txt", "u1 你好,世界\nu2.wav 今天 天气 很好\nextra 多余\n")
    result, err = score(capsys, ref, hyp)
    assert result["n_utts"] == 3 and result["n_missing_hyp"] == 2
    assert result["ids_only_in_hyp"] == ["extra", "u2.wav"]
    assert "2 of 3 references have no hypothesis" in err and "2 of 3 hypotheses have an id that is not in" in err
    assert "the extension" in err  # u2 vs u2.wav
    assert any("2 of 3 references" in w for w in result["warnings"])


def test_the_module_runs_as_a_subprocess_too(tmp_path):
    ref = write(tmp_path / "ref", kaldi(REF))
    hyp = write(tmp_path / "hyp", "你好,世界 (u1)\n今天天气很好 (u2)\n我用iPhone拍照 (u3)\n")
    out = subprocess.run([sys.executable, "-m", "kimi_tui", "score", str(ref), str(hyp), "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert json.loads(out.stdout)["cer"] == 0


@pytest.mark.parametrize("fmt", ["kaldi", "trn", "tsv", "jsonl"])
def test_readers_read_every_line_of_a_large_file(tmp_path, fmt):
    """Every line, none merged or lost (reading speed is measured in benchmarks/scoring.py)."""
    n = 20_000
    lines = {
        "kaldi": lambda i: f"BAC009S{i // 400:04d}W{i:06d} 今天天气很好,我们去公园玩{i}\n",
        "trn": lambda i: f"今天天气很好,我们去公园玩{i} (BAC009S{i // 400:04d}W{i:06d})\n",
        "tsv": lambda i: f"BAC009S{i // 400:04d}W{i:06d}\t今天天气很好,我们去公园玩{i}\n",
        "jsonl": lambda i: f"{{\"id\": \"u{i}\", \"text\": \"今天天气很好{i}\"}}\n",
    }[fmt]
    path = write(tmp_path / "hyp", "".join(lines(i) for i in range(n)))
    table, warnings = read_id_text(path)
    assert len(table) == n and not warnings
    assert table[next(iter(table))].startswith("今天天气很好")
