"""The Config panel as a user drives it at 80x24: type, see errors and findings, preview, save."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Footer, Input, OptionList, Static
from textual.worker import Worker, WorkerState

from tui_helpers import wait_for, wait_for_panel
from kimi_tui.config import load_config
from kimi_tui.engines.whisper import WhisperEngine
from kimi_tui.project import Project, init_project
from kimi_tui.tui import messages
from kimi_tui.tui.app import KimiTuiApp, stylesheets
from kimi_tui.tui.config_panel import ConfigPanel, PresetModal
from kimi_tui.tui.error_modal import ErrorModal

SIZE = (80, 24)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """The sample project with prepared data (9 samples) and a base model, so the train stage can be planned."""
    project = init_project(tmp_path / "p", sample=True)
    project.data_dir.mkdir()
    project.train_jsonl.write_text("{}\n" * 9, encoding="utf-8")
    project.base_model_dir.mkdir(parents=True)
    (project.base_model_dir / "config.json").write_text("{}", encoding="utf-8")
    return project


class Harness(App):
    CSS_PATH = stylesheets()

    def __init__(self, project: Project) -> None:
        super().__init__()
        self.project = project
        self.saved_messages = 0
        self.worker_errors: list[BaseException | None] = []

    def compose(self) -> ComposeResult:
        yield ConfigPanel(self.project)
        yield Footer()

    def on_config_saved(self, _message: messages.ConfigSaved) -> None:
        self.saved_messages += 1
        self.project = Project.load(self.project.root)
        self.query_one(ConfigPanel).reload_project(self.project)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.report_worker_failure(event.worker)

    def report_worker_failure(self, worker: Worker) -> None:
        """What KimiTuiApp turns into a modal (panels forward their failed workers here)."""
        self.worker_errors.append(worker.error)


def text_of(widget: Static) -> str:
    return str(widget.content)


def findings_text(panel: ConfigPanel) -> str:
    option_list = panel.query_one("#config-findings", OptionList)
    return "\n".join(str(option_list.get_option_at_index(i).prompt) for i in range(option_list.option_count))


async def type_into(pilot, panel: ConfigPanel, dotted: str, text: str) -> None:
    """Focus the field, clear it with backspaces and type ``text`` key by key, as a user would."""
    field = panel.query_one(f"#cfg-{dotted.replace('.', '-')}", Input)
    field.focus()
    await pilot.pause()
    await pilot.press("end", *["backspace"] * len(field.value))
    await pilot.press(*text)
    await pilot.pause()


async def settle(pilot, panel: ConfigPanel) -> None:
    """Let the debounced lint + plan worker catch up with the form."""
    await pilot.pause(0.05)

    def idle() -> bool:
        busy = [w for w in pilot.app.workers if w.group == "config-preview" and not w.is_finished]
        return panel._preview_timer is None and not busy

    await wait_for(pilot, idle)
    await pilot.pause(0.05)


async def open_config_panel(pilot) -> ConfigPanel:
    """The workbench's key 2, as a user opens the panel; it is built on first show."""
    await wait_for(pilot, lambda: bool(pilot.app.screen.query("TabbedContent")))
    await pilot.press("2")
    return await wait_for_panel(pilot, ConfigPanel)


async def test_epochs_and_save_steps_show_the_lint_error_and_change_the_train_command(project: Project) -> None:
    app = KimiTuiApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_config_panel(pilot)
        await settle(pilot, panel)
        command = panel.query_one("#config-command-text", Static)
        assert "--epochs 200" in text_of(command)

        await type_into(pilot, panel, "train.epochs", "10")
        await settle(pilot, panel)
        assert "--epochs 10" in text_of(command)
        assert "train.save_steps" not in findings_text(panel)

        await type_into(pilot, panel, "train.save_steps", "1000")
        await settle(pilot, panel)
        shown = findings_text(panel)
        assert "train.save_steps" in shown and "only 10 optimizer steps" in shown
        assert "--epochs" not in text_of(command)
        assert "No train command yet" in text_of(command) and "save_steps = 1000" in text_of(command)
        assert "modified" in str(panel.border_title) and "preflight: 1 error" in str(panel.border_title)
        assert panel.query_one("#cfg-train-save_steps-key").has_class("-lint-error")
        assert load_config(project.config_path).train.epochs == 200  # nothing saved yet


async def test_typing_abc_in_epochs_shows_the_error_and_never_reaches_the_file(project: Project) -> None:
    before = project.config_path.read_bytes()
    app = Harness(project)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(ConfigPanel)
        await type_into(pilot, panel, "train.epochs", "abc")
        error = panel.query_one("#cfg-train-epochs-error", Static)
        assert error.display and "expected a whole number" in text_of(error)
        # the working copy keeps the last valid value typed (clearing "200" went through "2")
        assert panel.working.train.epochs == 2 and "last valid value, 2, is kept" in text_of(error)
        assert "1 error" in str(panel.border_title)

        await pilot.press("ctrl+s")
        await settle(pilot, panel)
        assert project.config_path.read_bytes() == before
        assert app.saved_messages == 0

        await type_into(pilot, panel, "train.epochs", "12")
        assert not error.display
        assert "error" not in str(panel.border_title).replace("preflight", "")
    assert app.worker_errors == []


async def test_save_writes_the_change_and_keeps_a_user_comment(project: Project) -> None:
    text = project.config_path.read_text(encoding="utf-8")
    text = text.replace("[train]\n", "[train]\n# my note: 200 epochs memorise the sample\n", 1)
    text = text.replace("epochs = 200", "epochs = 200  # keep in sync with the report")
    project.config_path.write_text(text, encoding="utf-8")
    project = Project.load(project.root)
    app = Harness(project)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(ConfigPanel)
        await type_into(pilot, panel, "train.epochs", "42")
        assert "modified" in str(panel.border_title)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.saved_messages == 1)
        saved = project.config_path.read_text(encoding="utf-8")
        assert "# my note: 200 epochs memorise the sample" in saved
        assert "epochs = 42  # keep in sync with the report" in saved
        assert load_config(project.config_path).train.epochs == 42
        await pilot.pause()
        assert "modified" not in str(panel.border_title)
    assert app.worker_errors == []


async def test_a_preset_fills_the_form_without_saving(project: Project) -> None:
    before = project.config_path.read_bytes()
    app = Harness(project)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(ConfigPanel)
        panel.focus_default()
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, PresetModal))
        await pilot.press("down", "enter")  # the second preset: seed-small-data
        await wait_for(pilot, lambda: not isinstance(app.screen, PresetModal))
        await pilot.pause()
        value = lambda dotted: panel.query_one(f"#cfg-{dotted.replace('.', '-')}", Input).value  # noqa: E731
        assert value("train.epochs") == "10"
        assert value("train.save_steps") == "5"
        assert value("train.learning_rate") == "3e-6"
        assert value("train.gradient_accumulation_steps") == "4"
        assert "modified" in str(panel.border_title)
        assert project.config_path.read_bytes() == before
        await settle(pilot, panel)
        assert "train.save_steps" not in findings_text(panel)


async def test_y_copies_the_previewed_command(project: Project) -> None:
    app = Harness(project)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(ConfigPanel)
        await settle(pilot, panel)
        panel.focus_default()
        await pilot.press("f", "y")
        assert app.clipboard == WhisperEngine().plan("train", project).shell_script()  # the exact script
        assert "--epochs \\\n  200" in app.clipboard
        await pilot.press("s")  # next stage: export, which cannot be planned before training
        await settle(pilot, panel)
        assert "run the train stage first" in text_of(panel.query_one("#config-command-text", Static))


async def test_an_editor_that_breaks_the_file_shows_the_located_error_and_loses_nothing(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import sys, pathlib\n"
        "p = pathlib.Path(sys.argv[1])\n"
        "p.write_text(p.read_text().replace('epochs = 200', 'epochs = \"many\"'))\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("VISUAL", f"{sys.executable} {editor}")
    app = Harness(project)
    async with app.run_test(size=SIZE) as pilot:
        monkeypatch.setattr(app, "suspend", contextlib.nullcontext)  # the headless test driver cannot suspend
        panel = app.query_one(ConfigPanel)
        panel.focus_default()
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal))
        broken = project.config_path.read_text(encoding="utf-8")
        assert 'epochs = "many"' in broken
        banner = panel.query_one("#config-disk-error", Static)
        assert banner.display and "[train] epochs" in text_of(banner) and "kimi-tui.toml:" in text_of(banner)
        await pilot.press("escape")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert project.config_path.read_text(encoding="utf-8") == broken  # never overwritten

        project.config_path.write_text(broken.replace('epochs = "many"', "epochs = 30"), encoding="utf-8")
        assert panel.reload_from_disk()
        await pilot.pause()
        assert not banner.display
        assert panel.query_one("#cfg-train-epochs", Input).value == "30"
        assert app.saved_messages == 1


async def test_saving_keeps_a_change_made_on_disk_meanwhile_and_reload_keeps_unsaved_edits(project: Project) -> None:
    from kimi_tui.config import save_config, set_field

    app = Harness(project)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(ConfigPanel)
        await type_into(pilot, panel, "train.epochs", "12")
        # another panel (Checkpoints) writes [eval] checkpoints and announces it
        on_disk = set_field(load_config(project.config_path), "eval.checkpoints", ["checkpoint-5"])
        save_config(project.config_path, on_disk)
        panel.post_message(messages.ConfigSaved())
        await wait_for(pilot, lambda: app.saved_messages == 1)
        await pilot.pause()
        assert panel.query_one("#cfg-eval-checkpoints", Input).value == "checkpoint-5"
        assert panel.query_one("#cfg-train-epochs", Input).value == "12"
        assert panel.modified == ["train.epochs"]

        # a hand edit in another pane, not announced: saving the form must not revert it
        text = project.config_path.read_text(encoding="utf-8").replace("seed = 42", "seed = 7")
        project.config_path.write_text(text, encoding="utf-8")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.saved_messages == 2)
        saved = load_config(project.config_path)
        assert (saved.train.epochs, saved.train.seed, saved.eval.checkpoints) == (12, 7, ["checkpoint-5"])
        await pilot.pause()
        assert panel.query_one("#cfg-train-seed", Input).value == "7"
    assert app.worker_errors == []


def test_palette_commands_and_keys_are_named(project: Project) -> None:
    panel = ConfigPanel(project)
    titles = [title for title, _help, _callback in panel.palette_commands()]
    assert titles[:4] == ["Config: save", "Config: apply preset", "Config: edit in $EDITOR", "Config: copy command"]
    keys = {binding.key: binding for binding in ConfigPanel.BINDINGS}
    assert {"ctrl+s", "p", "e", "y"} <= set(keys)
    assert all(binding.id and binding.tooltip for binding in keys.values())


async def test_a_kimi_audio_project_shows_its_fields_the_preflight_and_the_command_in_the_checkout(tmp_path: Path) -> None:
    from kimi_double import kimi_project

    project = kimi_project(tmp_path, **{"train.save_steps": 1000})
    app = KimiTuiApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        panel = await open_config_panel(pilot)
        # The first preflight probes the interpreter in a subprocess (it imports torch): seconds, off the UI thread.
        await wait_for(pilot, lambda: "kimi_audio.python" in findings_text(panel), timeout=90)
        shown = findings_text(panel)
        # kimi-tui's own interpreter stands in for the Kimi-Audio environment: the preflight says why it cannot be.
        assert "transformers 5" in shown and "flash-attn" in shown
        assert panel.query_one("#cfg-kimi_audio-checkout", Input).value == project.config.kimi_audio.checkout
        assert panel.query_one("#cfg-kimi_audio-method").value == "lora"
        assert "train.save_steps" in shown  # 1000 on a 27-step run: the seed's second failure, before any run
        assert not app.screen.query(ErrorModal)


async def test_the_palette_goes_to_a_config_field_by_name(project: Project) -> None:
    app = KimiTuiApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: bool(pilot.app.screen.query("TabbedContent")))
        panel = await wait_for_panel(pilot, ConfigPanel)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: pilot.app.screen.query("CommandInput"))
        await pilot.press(*"go to field train.warmup_ratio")
        await wait_for(pilot, lambda: "Config: go to field train.warmup_ratio" in "".join(
            str(o.prompt) for o in pilot.app.screen.query_one("CommandList").options))
        await pilot.press("enter")
        field = panel.query_one("#cfg-train-warmup_ratio", Input)
        await wait_for(pilot, lambda: app.focused is field)
        assert app.screen.query_one("TabbedContent").active == "tab-config"
        form = panel.query_one("#config-form")
        await wait_for(pilot, lambda: field.region.height and form.region.contains_region(field.region))
        assert form.scroll_offset.y > 0  # [train] is far below the top: the form scrolled to it
