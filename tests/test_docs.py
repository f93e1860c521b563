"""Every Python example in README.md and docs/ runs, one file per process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_every_doc_has_examples_or_none_is_expected() -> None:
    assert (ROOT / "docs" / "index.md") in DOCS


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_doc_examples_run(path: Path, tmp_path: Path) -> None:
    blocks = BLOCK.findall(path.read_text())
    if not blocks:
        pytest.skip("no Python examples")
    script = tmp_path / f"doc_{path.stem}.py"
    script.write_text("\n".join(blocks))
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^```bash\n(.*?)\n```", readme, re.MULTILINE | re.DOTALL)
    assert len(commands) == 2
    assert commands[0] == "python -m atasker"
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
