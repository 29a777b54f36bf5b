"""kimi-tui.toml as a user meets it: hand-edited, saved from the TUI, typo'd."""

from __future__ import annotations

from pathlib import Path

import pytest

from kimi_tui.config import (
    CONFIG_FILENAME,
    ProjectConfig,
    load_config,
    parse_config,
    render_default_config,
    resolve_path,
    save_config,
    set_field,
)
from kimi_tui.errors import ConfigError, KimiTuiError


def error_lines(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return str(info.value).splitlines()


# --- defaults and render -------------------------------------------------------------


def test_empty_file_gives_defaults():
    cfg = parse_config("")
    assert cfg == ProjectConfig()
    assert cfg.train.epochs == 10
    assert cfg.train.learning_rate == 3e-6
    assert cfg.train.save_steps == "auto"
    assert cfg.eval.splits == ["test", "train"]
    assert cfg.eval.checkpoints == "all"
    assert cfg.data.instruction == "请将语音内容转录为文字。"
    assert CONFIG_FILENAME == "kimi-tui.toml"


def test_render_default_round_trips():
    text = render_default_config()
    assert parse_config(text) == ProjectConfig()
    # every key has a comment right above it, every table a header
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if " = " in line and not line.startswith("#"):
            assert lines[i - 1].startswith("# "), line
    for table in ("project", "data", "engine", "train", "deepspeed", "eval"):
        assert f"[{table}]" in lines
    assert "learning_rate = 3e-6" in lines
    assert '# Where to run: "auto" (GPU if available), "cpu" or "cuda".' in lines


def test_render_round_trips_non_default_values():
    cfg = ProjectConfig()
    for dotted, raw in [
        ("project.name", 'my "quoted" 项目'),
        ("data.train_csv", r"C:\data\train.csv"),
        ("data.test_jsonl", "a'b\\c"),
        ("data.max_duration_s", "12.5"),
        ("engine.name", "kimi-audio"),
        ("train.save_steps", "250"),
        ("train.learning_rate", "1e-5"),
        ("train.bf16", "true"),
        ("deepspeed.stage", "2"),
        ("eval.splits", "test"),
        ("eval.checkpoints", "checkpoint-100, checkpoint-200"),
    ]:
        cfg = set_field(cfg, dotted, raw)
    text = render_default_config(cfg)
    assert parse_config(text) == cfg
    assert r"train_csv = 'C:\data\train.csv'" in text.splitlines()
    assert "learning_rate = 1e-5" in text.splitlines()


# --- error messages ------------------------------------------------------------------


def test_unknown_key_suggests_and_gives_line():
    text = "[project]\nname = 'x'\n\n[train]\nepoch = 20\n"
    assert error_lines(text) == [
        "kimi-tui.toml:5: [train] unknown key 'epoch': did you mean 'epochs'?"
    ]


def test_unknown_key_without_close_match_lists_valid_keys():
    (line,) = error_lines("[deepspeed]\nzzz = 1\n")
    assert line == (
        "kimi-tui.toml:2: [deepspeed] unknown key 'zzz'; "
        "valid keys are enabled, stage, offload_optimizer, offload_param"
    )


def test_unknown_table():
    assert error_lines("[trian]\nepochs = 3\n") == [
        "kimi-tui.toml:1: unknown table [trian]: did you mean [train]?"
    ]
    (line,) = error_lines("[train]\nepochs = 3\n[wandb]\nproject = 'x'\n")
    assert line.startswith("kimi-tui.toml:3: unknown table [wandb]; valid tables are [project], [data]")


def test_top_level_key_points_to_its_table():
    assert error_lines('epochs = 3\n') == [
        "kimi-tui.toml:1: unknown top-level key 'epochs': did you mean to put it under [train]?"
    ]


def test_source_name_starts_every_line():
    with pytest.raises(ConfigError) as info:
        parse_config("[train]\nepochs = 0\nseed = 'x'\n", source="proj/kimi-tui.toml")
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert all(line.startswith("proj/kimi-tui.toml:") for line in lines)


def test_wrong_types_are_all_reported_in_file_order():
    text = """\
[train]
epochs = true
learning_rate = "fast"
bf16 = 1
save_steps = "often"

[data]
train_csv = 5
max_duration_s = "long"
"""
    assert error_lines(text) == [
        "kimi-tui.toml:2: [train] epochs = true: expected a whole number (e.g. 10)",
        'kimi-tui.toml:3: [train] learning_rate = "fast": expected a number (e.g. 3e-6)',
        "kimi-tui.toml:4: [train] bf16 = 1: expected true or false",
        'kimi-tui.toml:5: [train] save_steps = "often": expected a whole number of steps (e.g. 500) or "auto"',
        'kimi-tui.toml:8: [data] train_csv = 5: expected a string in quotes (e.g. "data/train.csv")',
        'kimi-tui.toml:9: [data] max_duration_s = "long": expected a number (e.g. 30.0)',
    ]


def test_int_is_fine_for_a_float_but_float_is_not_an_int():
    cfg = parse_config("[train]\nlearning_rate = 1\nweight_decay = 0\n")
    assert cfg.train.learning_rate == 1
    assert error_lines("[train]\nepochs = 2.5\n") == [
        "kimi-tui.toml:2: [train] epochs = 2.5: expected a whole number (e.g. 10)"
    ]


def test_literal_choices():
    text = '[engine]\nname = "whisper"\ndevice = "gpu"\n[deepspeed]\nstage = 1\n[eval]\nsplits = ["test", "dev"]\ncheckpoints = "first"\n'
    assert error_lines(text) == [
        'kimi-tui.toml:3: [engine] device = "gpu": allowed values are "auto", "cpu", "cuda"',
        "kimi-tui.toml:5: [deepspeed] stage = 1: allowed values are 2, 3",
        'kimi-tui.toml:7: [eval] splits[1] = "dev": allowed values are "test", "train"',
        'kimi-tui.toml:8: [eval] checkpoints = "first": allowed values are "all", "last" '
        'or a list of checkpoint names (e.g. ["checkpoint-500"])',
    ]


def test_ranges():
    text = "[train]\nepochs = 0\nlearning_rate = 0\nwarmup_ratio = 1.5\neval_ratio = 1.0\nsave_steps = 0\nmax_grad_norm = nan\n"
    assert error_lines(text) == [
        "kimi-tui.toml:2: [train] epochs = 0: must be at least 1",
        "kimi-tui.toml:3: [train] learning_rate = 0: must be greater than 0",
        "kimi-tui.toml:4: [train] warmup_ratio = 1.5: must be at most 1",
        "kimi-tui.toml:5: [train] eval_ratio = 1.0: must be less than 1",
        'kimi-tui.toml:6: [train] save_steps = 0: must be at least 1 (or "auto")',
        "kimi-tui.toml:7: [train] max_grad_norm = nan: must be a finite number",
    ]


def test_a_nul_character_in_any_string_names_its_field():
    # TOML's \u0000 escape is valid TOML; left in, it surfaced as a ValueError from the first os call on it.
    text = '[data]\ntrain_jsonl = "a\\u0000b.jsonl"\n[eval]\ncheckpoints = ["checkpoint-1\\u0000"]\n'
    lines = error_lines(text)
    assert [line.split(": ")[0] for line in lines] == ["kimi-tui.toml:2", "kimi-tui.toml:4"]
    assert all(line.endswith("contains a NUL character (\\u0000); delete it") for line in lines), lines


def test_table_that_is_not_a_table():
    (line,) = error_lines("train = 5\n")
    assert line.startswith("kimi-tui.toml:1: [train] = 5: expected a table of settings")


def test_dotted_keys_and_inline_tables_get_line_numbers():
    text = "train.epochs = 0\n\neval = { batch_size = 0 }\n"
    assert error_lines(text) == [
        "kimi-tui.toml:1: [train] epochs = 0: must be at least 1",
        "kimi-tui.toml:3: [eval] batch_size = 0: must be at least 1",
    ]


def test_multiline_string_does_not_confuse_line_numbers():
    text = '[data]\ninstruction = """\nepochs = 3\n"""\n[train]\nepochs = 0\n'
    assert error_lines(text) == ["kimi-tui.toml:6: [train] epochs = 0: must be at least 1"]


def test_no_pydantic_text_reaches_the_user():
    with pytest.raises(ConfigError) as info:
        parse_config("[train]\nepochs = 'x'\n[engine]\ndevice = 3\n[eval]\nsplits = 'test'\n")
    message = str(info.value)
    assert "pydantic" not in message and "Input should" not in message
    assert "errors.pydantic.dev" not in message
    assert info.value.__cause__ is None


def test_invalid_toml_reports_line_and_column():
    with pytest.raises(ConfigError) as info:
        parse_config("[train]\nepochs = \n")
    assert str(info.value).startswith("kimi-tui.toml:2:9: invalid TOML:")
    assert isinstance(info.value, KimiTuiError)


def test_duplicate_key_is_invalid_toml_with_line():
    with pytest.raises(ConfigError, match=r"^kimi-tui\.toml:3: invalid TOML: .*epochs"):
        parse_config("[train]\nepochs = 1\nepochs = 2\n")


# --- load / save ---------------------------------------------------------------------


def test_missing_file_says_to_run_init(tmp_path: Path):
    path = tmp_path / "kimi-tui.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "kimi-tui init" in message


def test_load_reports_the_path(tmp_path: Path):
    path = tmp_path / "kimi-tui.toml"
    path.write_text("[train]\nepoch = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}:2: [train] unknown key 'epoch': did you mean 'epochs'?"


def test_load_accepts_project_folder(tmp_path: Path):
    (tmp_path / CONFIG_FILENAME).write_text("[train]\nepochs = 3\n", encoding="utf-8")
    assert load_config(tmp_path).train.epochs == 3


def test_save_to_new_file_writes_commented_defaults(tmp_path: Path):
    path = tmp_path / "sub" / "kimi-tui.toml"
    cfg = set_field(ProjectConfig(), "train.epochs", "3")
    save_config(path, cfg)
    text = path.read_text(encoding="utf-8")
    assert text == render_default_config(cfg)
    assert "epochs = 3" in text.splitlines()
    assert load_config(path) == cfg


USER_FILE = """\
# My experiment. Do not touch these notes!
[project]
name   =   "dialect test"     # aligned by hand

[train]
# 5 epochs overfit last time; try fewer
epochs = 5   # was 10
learning_rate=1e-5
save_steps = 100

# eval notes: test only, train is huge
[eval]
splits = [ "test" ]   # spaces kept
"""


def test_save_keeps_comments_order_and_formatting(tmp_path: Path):
    path = tmp_path / "kimi-tui.toml"
    path.write_text(USER_FILE, encoding="utf-8")
    cfg = set_field(load_config(path), "train.epochs", "3")
    save_config(path, cfg)
    text = path.read_text(encoding="utf-8")
    assert text == USER_FILE.replace("epochs = 5   # was 10", "epochs = 3   # was 10")
    assert load_config(path).train.epochs == 3


def test_save_appends_new_keys_and_tables_without_touching_the_rest(tmp_path: Path):
    path = tmp_path / "kimi-tui.toml"
    path.write_text(USER_FILE, encoding="utf-8")
    cfg = load_config(path)
    cfg = set_field(cfg, "train.seed", "7")
    cfg = set_field(cfg, "deepspeed.enabled", "true")
    save_config(path, cfg)
    lines = path.read_text(encoding="utf-8").splitlines()
    for line in USER_FILE.splitlines():
        assert line in lines
    # the new key sits with its table's keys, before the blank line + comment of [eval]
    assert lines[lines.index("save_steps = 100") + 1] == "seed = 7"
    assert lines[-2:] == ["[deepspeed]", "enabled = true"]
    assert load_config(path) == cfg


def test_save_unchanged_config_leaves_file_byte_identical(tmp_path: Path):
    path = tmp_path / "kimi-tui.toml"
    path.write_bytes(USER_FILE.replace("\n", "\r\n").encode())
    before = path.read_bytes()
    save_config(path, load_config(path))
    assert path.read_bytes() == before
    # and a change keeps the file's CRLF line endings
    save_config(path, set_field(load_config(path), "train.num_gpus", "2"))
    after = path.read_bytes()
    assert b"num_gpus = 2\r\n" in after
    assert b"\n" not in after.replace(b"\r\n", b"")


def test_save_does_not_bloat_a_minimal_file(tmp_path: Path):
    path = tmp_path / "kimi-tui.toml"
    path.write_text("[train]\nepochs = 5\n", encoding="utf-8")
    save_config(path, set_field(load_config(path), "train.epochs", 6))
    assert path.read_text(encoding="utf-8") == "[train]\nepochs = 6\n"


def test_save_refuses_to_overwrite_invalid_toml(tmp_path: Path):
    path = tmp_path / "kimi-tui.toml"
    broken = "[train\nepochs = 5\n# my notes\n"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid TOML"):
        save_config(path, ProjectConfig())
    assert path.read_text(encoding="utf-8") == broken


def test_save_rejects_a_config_mutated_into_an_invalid_state(tmp_path: Path):
    path = tmp_path / "kimi-tui.toml"
    cfg = ProjectConfig()
    cfg.train.epochs = 0  # bypasses validation
    with pytest.raises(ConfigError, match=r"\[train\] epochs = 0: must be at least 1"):
        save_config(path, cfg)
    assert not path.exists()


# --- set_field -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dotted", "raw", "expected"),
    [
        ("train.epochs", "20", 20),
        ("train.epochs", " 20 ", 20),
        ("train.learning_rate", "3e-6", 3e-6),
        ("train.learning_rate", "0.001", 0.001),
        ("train.bf16", "true", True),
        ("train.bf16", "False", False),
        ("train.save_steps", "auto", "auto"),
        ("train.save_steps", "500", 500),
        ("deepspeed.stage", "2", 2),
        ("engine.device", "cuda", "cuda"),
        ("eval.splits", "test", ["test"]),
        ("eval.splits", '["train", "test"]', ["train", "test"]),
        ("eval.checkpoints", "last", "last"),
        ("eval.checkpoints", "checkpoint-1, checkpoint-2", ["checkpoint-1", "checkpoint-2"]),
        ("engine.model", "/models/whisper-small", "/models/whisper-small"),
        ("project.name", "42", "42"),
        ("train.epochs", 7, 7),
    ],
)
def test_set_field_coerces_form_text(dotted: str, raw, expected):
    before = ProjectConfig()
    after = set_field(before, dotted, raw)
    table, key = dotted.split(".")
    value = getattr(getattr(after, table), key)
    assert value == expected and type(value) is type(expected)
    assert before == ProjectConfig()  # the original is not modified


@pytest.mark.parametrize(
    ("dotted", "raw", "message"),
    [
        ("train.epochs", "abc", 'kimi-tui.toml: [train] epochs = "abc": expected a whole number (e.g. 10)'),
        ("train.epochs", "0", "kimi-tui.toml: [train] epochs = 0: must be at least 1"),
        ("train.epochs", True, "kimi-tui.toml: [train] epochs = true: expected a whole number (e.g. 10)"),
        ("train.bf16", "maybe", 'kimi-tui.toml: [train] bf16 = "maybe": expected true or false'),
        ("engine.device", "gpu", 'kimi-tui.toml: [engine] device = "gpu": allowed values are "auto", "cpu", "cuda"'),
        ("train.epoch", "3", "kimi-tui.toml: [train] unknown key 'epoch': did you mean 'epochs'?"),
        ("trian.epochs", "3", "kimi-tui.toml: unknown table [trian]: did you mean [train]?"),
        ("epochs", "3", "kimi-tui.toml: 'epochs' is not a setting name of the form table.key: did you mean 'train.epochs'?"),
    ],
)
def test_set_field_errors(dotted: str, raw, message: str):
    with pytest.raises(ConfigError) as info:
        set_field(ProjectConfig(), dotted, raw)
    assert str(info.value) == message


# --- paths ---------------------------------------------------------------------------


def test_resolve_paths(tmp_path: Path):
    assert resolve_path(tmp_path, "") is None
    assert resolve_path(tmp_path, "data/train.csv") == tmp_path / "data" / "train.csv"
    absolute = tmp_path / "elsewhere" / "a.csv"
    assert resolve_path("/ignored", str(absolute)) == absolute
    assert resolve_path(tmp_path, "~/audio") == Path.home() / "audio"
    assert ProjectConfig.resolve(tmp_path, "x.jsonl") == tmp_path / "x.jsonl"
    cfg = ProjectConfig()
    assert cfg.resolve(tmp_path, cfg.data.train_csv) is None
