"""The changelog's newest release must be the package's version (httpx/starlette habit)."""

import re
from pathlib import Path

import caisse


def test_newest_release_matches_version() -> None:
    text = (Path(__file__).parents[2] / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", text, re.M)
    assert releases, "CHANGELOG.md has no released version heading"
    assert releases[0] == caisse.__version__


def test_unreleased_section_exists() -> None:
    text = (Path(__file__).parents[2] / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in text


def test_public_surface_is_small_and_deliberate() -> None:
    assert caisse.__all__ == ["__version__"]
