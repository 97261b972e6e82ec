"""The README and docs code blocks run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_python_blocks_run(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every python block of a document runs, in order, in one namespace, in a clean folder."""
    blocks = BLOCK.findall(doc.read_text())
    if not blocks:
        pytest.skip(f"{doc.name} has no python blocks")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"doc_{doc.stem}"}
    for number, block in enumerate(blocks, start=1):
        code = compile(block, f"{doc.name}[block {number}]", "exec")
        exec(code, namespace)  # our own documentation, not data


def test_readme_has_exactly_two_setup_commands() -> None:
    """The README gives two shell commands: install-and-demo, and the tests."""
    shell_blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(shell_blocks) == 2
    assert "eventsourcing_fn demo" in shell_blocks[0]
    assert "pytest" in shell_blocks[1]
