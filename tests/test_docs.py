"""The documentation site builds with MkDocs in strict mode: every page in the navigation, every
link and anchor between pages resolves, every image is there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_strictly(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    built = {p.name for p in (tmp_path / "site").glob("*.html")}
    pages = {p.with_suffix(".html").name for p in (ROOT / "docs").glob("*.md")}
    assert pages <= built, pages - built


def test_readme_links_to_every_docs_page_and_every_link_resolves():
    import re

    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\((docs/[^)#]+)", readme)
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert pages <= set(targets), pages - set(targets)  # the README is the map
    for target in targets:
        assert (ROOT / target).exists(), target
