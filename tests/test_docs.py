"""The README and docs code blocks run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOTEBOOK_MARK = "<!-- notebook:"  # a page run cell by cell on a Jupyter kernel instead
DOCS = [
    page
    for page in PAGES
    if BLOCK.search(page.read_text()) and NOTEBOOK_MARK not in page.read_text()
]  # prose pages have nothing to run


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_python_blocks_run(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every python block of a document runs, in order, in one namespace, in a clean folder."""
    blocks = BLOCK.findall(doc.read_text())
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


def test_docs_site_builds_strictly(tmp_path: Path) -> None:
    """`mkdocs build --strict` succeeds: every page, link and API reference resolves."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "reference" / "index.html").exists()


def test_every_page_is_in_the_site() -> None:
    """Each page in docs/ is reachable from the site's navigation."""
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert [p for p in pages if p not in nav] == []
