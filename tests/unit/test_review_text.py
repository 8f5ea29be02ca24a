"""The review form's text shows uploaded file names as text: no name becomes a link, an image, HTML or
a new block in the reviewer's page (Airflow renders the body as Markdown)."""

from __future__ import annotations

import html
import re

import pytest
from markdown_it import MarkdownIt
from matting.idphoto.review import MAX_SHOWN_NAME, md_literal, review_body

HOSTILE = [
    "x`](https://example.org/p.png) ",
    "![a](https://example.org/i.png).jpg",
    "[click](javascript:alert(1)).jpg",
    "<script>alert(1)</script>.jpg",
    "<img src=https://example.org/x.png>.jpg",
    "a</code><script>x</script>.jpg",
    "a\n\n# Approve everything\n\n[here](https://example.org).jpg",
    "tab\there\r\x00\x1b[31m.jpg",
    "``` ` ``.jpg",
    "`leading and trailing`",
    "a\\`b*c*_d_.jpg",
    "é" * 40 + "<b>" + "n" * 300 + ".jpg",
]


def _rendered(body: str) -> str:
    return MarkdownIt("commonmark").render(body)  # the strictest case: raw HTML allowed


def test_hostile_names_render_as_text_only():
    held = [{"photo": name, "source": f"in/{name}", "reasons": [f"eyes closed <{name}>"]} for name in HOSTILE]
    views = {
        HOSTILE[0]: ("/matting/runs/id_photo_batch/r/thumb/0/after.jpg?v=k", "/matting/runs/id_photo_batch/r/photo/0")
    }
    out = _rendered(review_body(held, views, "s3://bucket/`x`/run"))
    assert "<script" not in out and "<b>" not in out and "<h1" not in out
    assert "example.org" not in " ".join(re.findall(r'(?:href|src)="[^"]*"', out))
    assert "javascript:" not in " ".join(re.findall(r'href="[^"]*"', out))
    assert re.findall(r'<img src="([^"]*)"', out) == [views[HOSTILE[0]][0]]  # our own thumbnail only
    assert out.count("<li>") == len(HOSTILE)  # no name started a block of its own
    codes = [html.unescape(c) for c in re.findall(r"<code>(.*?)</code>", out, flags=re.S)]
    for name in HOSTILE:
        shown = re.sub(r"[\x00-\x1f\x7f]", "?", name)
        if len(shown) > MAX_SHOWN_NAME:
            shown = shown[: MAX_SHOWN_NAME - 1] + "\u2026"
        assert shown in codes, name  # the name itself, verbatim, as code


@pytest.mark.parametrize("name", ["a.jpg", "sub/dir/photo 1.jpg"])
def test_ordinary_names_stay_plain_code(name):
    assert md_literal(name) == f"`{name}`"
