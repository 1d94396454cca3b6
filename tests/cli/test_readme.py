"""The README's Python examples, pasted as they are against ``codex-proxy serve --mock``: every
block in order, in one namespace (the later ones use the ``client`` of the first), in a
scratch folder, with only the documented address swapped for the test's port."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from ..processes import clean_env, free_port, running

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
DOCUMENTED = "http://127.0.0.1:8000/v1"
PNG = b"\x89PNG\r\n\x1a\n"


def test_readme_python_examples_work_against_the_mock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = PYTHON_BLOCK.findall((ROOT / "README.md").read_text())
    assert DOCUMENTED in blocks[0]
    port = free_port()
    command = [str(BIN / "codex-proxy"), "serve", "--mock", "--port", str(port)]
    with running(command, port, clean_env(tmp_path), tmp_path) as url:
        monkeypatch.chdir(tmp_path)
        namespace: dict[str, object] = {}
        for block in blocks:
            code = compile(block.replace(DOCUMENTED, f"{url}/v1"), "README.md", "exec")
            exec(code, namespace)  # the README's own examples, nothing else
    printed = capsys.readouterr().out
    assert printed.count("Mock reply to:") == 2  # the answer, then the streamed one
    written = {"fox-preview-0.png", "fox-preview-1.png", "fox.png", "fox-kitchen.png"}
    assert {path.name for path in tmp_path.glob("*.png")} == written
    for name in written:
        assert (tmp_path / name).read_bytes().startswith(PNG), name
