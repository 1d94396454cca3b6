"""The docs keep up with the code: every setting is documented, and no link leads nowhere.

A new setting is easy to add to ``config.py`` and forget in the settings table or
``.env.example``; a section moved between pages silently breaks the links to it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_config import names_in_the_code

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATION = ROOT / "docs" / "configuration.md"
ENV_EXAMPLE = ROOT / ".env.example"
PAGES = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]
# Older names accepted for a setting: mentioned in .env.example, not given a line of their own.
ALIASES = {"CODEX_CODEX_BASE_URL"}

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)


def table_names(text: str) -> set[str]:
    """Every `NAME` in backticks on a table row of ``text``."""
    found: set[str] = set()
    for line in text.splitlines():
        if line.startswith("|"):
            found |= set(re.findall(r"`((?:CODEX|OPENAI)_[A-Z0-9_]+)`", line))
    return found


def env_example_names(text: str) -> set[str]:
    """Names with a line of their own in an env file: ``NAME=`` or commented, ``# NAME=``."""
    return set(re.findall(r"^#?\s*((?:CODEX|OPENAI)_[A-Z0-9_]+)=", text, re.M))


def test_the_settings_scan_finds_settings() -> None:
    names = names_in_the_code()
    assert {"CODEX_PORT", "OPENAI_API_KEY", "CODEX_IMAGE_SIZE"} <= names


def test_every_setting_is_in_the_settings_table() -> None:
    missing = names_in_the_code() - table_names(CONFIGURATION.read_text())
    assert not missing, f"add a row to the table of docs/configuration.md for {sorted(missing)}"


def test_every_setting_is_in_env_example() -> None:
    text = ENV_EXAMPLE.read_text()
    missing = names_in_the_code() - ALIASES - env_example_names(text)
    assert not missing, f"add a (commented) line to .env.example for {sorted(missing)}"
    for alias in ALIASES:
        assert re.search(rf"\b{alias}\b", text), f".env.example should mention {alias}"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of every heading of ``page`` (outside code blocks)."""
    text = FENCE.sub("", page.read_text())
    return {slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, re.M)}


def relative_links(page: Path) -> list[str]:
    """The targets of the links of ``page`` that point inside the repository."""
    text = FENCE.sub("", page.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)
    return [
        target
        for target in LINK.findall(text)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I)  # http:, mailto:, data:
    ]


def test_links_and_anchors_are_read_as_github_does() -> None:
    assert "docs/configuration.md" in relative_links(ROOT / "README.md")
    assert slug("Check on it: doctor, status, config, logs") == (
        "check-on-it-doctor-status-config-logs"
    )
    assert slug("Keep it running: launchd (macOS) and systemd (Linux)") == (
        "keep-it-running-launchd-macos-and-systemd-linux"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_leads_somewhere(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target} (no file {file.relative_to(ROOT)})")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target} (no heading #{anchor} in {file.relative_to(ROOT)})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"
