"""The workbench's stylesheets are found in a source checkout and in an installed wheel, and a
missing one stops start-up with a message instead of drawing an unstyled workbench."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kimi_tui.errors import KimiTuiError
from kimi_tui.tui.app import KimiTuiApp, stylesheets

CHECKOUT = Path(__file__).resolve().parents[1]
STYLES = CHECKOUT / "styles"


def test_every_stylesheet_in_the_checkout_is_loaded() -> None:
    found = stylesheets()
    assert sorted(STYLES.glob("*.tcss")), "styles/ holds no .tcss file"
    assert {p.resolve() for p in found} == {p.resolve() for p in STYLES.glob("*.tcss")}
    assert KimiTuiApp.CSS_PATH == found


def wheel_layout(root: Path) -> Path:
    """site-packages/kimi_tui with _bundled/styles, as the wheel installs it (no styles/ beside it)."""
    package = root / "site-packages" / "kimi_tui"
    shutil.copytree(STYLES, package / "_bundled" / "styles")
    return package


def test_an_installed_wheel_reads_its_bundled_copy(tmp_path: Path) -> None:
    package = wheel_layout(tmp_path)
    found = stylesheets(package)
    assert [p.name for p in found] == sorted(p.name for p in STYLES.glob("*.tcss"))
    assert all(p.parent == package / "_bundled" / "styles" for p in found)


def test_a_missing_stylesheet_is_named(tmp_path: Path) -> None:
    package = wheel_layout(tmp_path)
    (package / "_bundled" / "styles" / "run.tcss").unlink()
    with pytest.raises(KimiTuiError, match=r"run\.tcss missing from .*_bundled/styles"):
        stylesheets(package)


def test_no_styles_folder_names_both_places(tmp_path: Path) -> None:
    package = tmp_path / "kimi_tui"
    package.mkdir()
    with pytest.raises(KimiTuiError, match="no styles/ folder") as caught:
        stylesheets(package)
    assert str(package / "_bundled" / "styles") in str(caught.value)
    assert str(tmp_path / "styles") in str(caught.value)
