"""``bench/RESULTS.md``: each tool owns one ``## `` section and rewrites only that one."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(heading: str, section: str) -> None:
    """Replace the section under ``heading`` (or append it), keeping every other section."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Results\n\n"
    start = text.find(heading + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section + ("\n" + text[end + 1 :] if end >= 0 else "")
    RESULTS.write_text(text.rstrip("\n") + "\n")


def publish(heading: str, section: str, write: bool) -> None:
    """Print ``section`` and, when ``write``, put it under ``heading`` in RESULTS.md."""
    print()
    print(section)
    if write:
        write_section(heading, section)
        print(f"written to {RESULTS.relative_to(RESULTS.parents[1])}")
