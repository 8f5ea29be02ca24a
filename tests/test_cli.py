"""The command line as a user runs it: real processes, real files, exit codes, logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, SAMPLES
from matting.cli import collect_inputs
from PIL import Image


def run_cli(*args, cwd=None, env=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "matting", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


def run_bench(*args):
    """The benchmark script (a development tool: it imports rembg, so it is not in the package)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    return subprocess.run(
        [sys.executable, str(ROOT / "tests" / "bench.py"), *args], capture_output=True, text=True, env=env, timeout=600
    )


AIRFLOW_FACING = (
    "operators",
    "sensors",
    "triggers",
    "notifiers",
    "flows",
    "plugin",
    "results.app",  # the results pages' web app and the operators' link; the rest of results/ is core
    "results.links",
    "get_provider_info",
    "airflow_conf",
)


def test_core_imports_nothing_from_airflow():
    """Every module of the package outside the Airflow-facing ones (walked, so a new core module is
    covered without editing this list) imports without pulling in Airflow."""
    code = (
        "import importlib, pkgutil, sys, matting\n"
        f"facing = {AIRFLOW_FACING!r}\n"
        "core, todo = [], [(matting.__path__, 'matting.')]\n"
        "while todo:\n"  # walk_packages would import the Airflow-facing packages to walk into them
        "    path, prefix = todo.pop()\n"
        "    for m in pkgutil.iter_modules(path, prefix):\n"
        "        if m.name.split('.', 1)[1] in facing or m.name.split('.')[1] in facing: continue\n"
        "        core.append(importlib.import_module(m.name).__name__)\n"
        "        if m.ispkg: todo.append((sys.modules[m.name].__path__, m.name + '.'))\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'airflow']\n"
        "print(len(core), 'core modules', bad); assert len(core) > 30 and not bad\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_remove_folder_with_good_and_bad_files(tmp_path, model_store):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "a.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    (src / "sub" / "coffee.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (src / "empty.png").write_bytes(b"")
    (src / "notes.txt").write_text("not an image, skipped in folder walks")
    (src / "upload.jpg.part").write_bytes(b"in flight")
    out = src / "out"  # output inside the input: must not be re-read
    proc = run_cli("remove", str(src), "-o", str(out))
    assert proc.returncode == 1, proc.stderr
    made = ["a.png", "manifest.json", "sub", "sub/coffee.png"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == made
    assert Image.open(out / "a.png").mode == "RGBA"
    # the same manifest a DAG's run writes (the batch runner's records), with each failure's reason
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"files": 4, "ok": 2, "failed": 2} and manifest["job"]["kind"] == "matting"
    failed = {f["source"]: f["error_type"] for f in manifest["files"] if f["status"] == "failed"}
    assert failed == {"broken.jpg": "corrupt_image", "empty.png": "empty_file"}, failed
    assert {f["source"]: f["outputs"] for f in manifest["files"] if f["status"] == "ok"} == {
        "a.jpg": ["a.png"],
        "sub/coffee.jpg": ["sub/coffee.png"],
    }
    assert "FAILED broken.jpg" in proc.stderr and "FAILED empty.png" in proc.stderr
    assert "empty_file=1" in proc.stderr and "summary: 4 images" in proc.stderr
    assert "ok     a.jpg 512x512" in proc.stderr and "infer=" in proc.stderr
    assert "2 ok, 2 failed" in proc.stdout
    assert not [p for p in out.rglob(".*")]  # no temp files left
    # a rerun overwrites in place: same files, no duplicates
    run_cli("remove", str(src), "-o", str(out))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == made
    assert {p.name for p in src.iterdir()} >= {"a.jpg", "broken.jpg", "empty.png"}  # inputs never moved


def test_remove_all_good_exits_zero_with_background(tmp_path, model_store):
    proc = run_cli("remove", str(SAMPLES / "rocket.jpg"), "-o", str(tmp_path), "--bg", "white", "--format", "jpeg")
    assert proc.returncode == 0, proc.stderr
    assert Image.open(tmp_path / "rocket.jpg").mode == "RGB"


def test_bad_options_exit_2(tmp_path, model_store):
    proc = run_cli("remove", str(SAMPLES), "-o", str(tmp_path), "--bg", "blurple")
    assert proc.returncode == 2 and "unknown colour" in proc.stderr
    proc = run_cli("remove", str(SAMPLES), "-o", str(tmp_path), "--model", "nope")
    assert proc.returncode == 2 and "unknown model" in proc.stderr


def test_models_list(model_store):
    proc = run_cli("models", "list")
    assert proc.returncode == 0
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("u2netp "))
    assert "ready" in line and "(default)" in line
    assert "birefnet-general" in proc.stdout
    # the licence to honour is shown where the model is listed (IMG.LY's ISNet comes in an AGPL package)
    assert "AGPL-3.0" in next(ln for ln in proc.stdout.splitlines() if ln.startswith("isnet-medium "))


def test_collect_inputs_explicit_files_always_taken(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    assert [n for _, n in collect_inputs([str(tmp_path / "x.txt")])] == ["x.txt"]
    assert collect_inputs([str(tmp_path)]) == []


def test_bench_smoke(tmp_path, model_store):
    """The benchmark command runs and reports ratios (numbers themselves are not asserted: not a timed test)."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    (imgs / "r.jpg").write_bytes((SAMPLES / "rocket.jpg").read_bytes())
    proc = run_bench(
        "bench",
        "--images",
        str(imgs),
        "--rounds",
        "1",
        "--repeat",
        "1",
        "--rss-mp",
        "2",
        "--variants",
        "floor",
        "engine_batch",
        "engine_bytes",
        "rembg_bytes",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    body = next(iter(report["sets"].values()))
    assert set(body["variants"]) == {"floor", "engine_batch", "engine_bytes", "rembg_bytes"}
    assert body["ratios"]["engine_batch / rembg_bytes (target >= 2.2)"] > 0
    assert report["rss"]["peak_rss_mb"] > 0


def test_idphoto_cli_strict_lenient_and_sheet(tmp_path, model_store):
    src = tmp_path / "in"
    src.mkdir()
    (src / "astronaut.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    (src / "cup.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    out = tmp_path / "out"
    proc = run_cli("idphoto", str(src), "-o", str(out), "--spec", "cn-1inch", "--bg", "blue", "--sheet", "4x6")
    assert proc.returncode == 1, proc.stderr  # the cup has no face
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*")) == [
        "astronaut.jpg",
        "astronaut.report.json",
        "astronaut.sheet-4x6.jpg",
        "manifest.json",
        "review/cup.report.json",
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [p["source"] for p in manifest["photos"]] == ["astronaut.jpg", "cup.jpg"] and not manifest["files"]
    assert manifest["counts"] == {"files": 2, "ok": 1, "failed": 1} and manifest["job"]["spec"] == "cn-1inch"
    report = json.loads((out / "astronaut.report.json").read_text())
    assert report["passed"] and report["spec"] == "cn-1inch" and report["sheet"]["copies"] >= 8
    img = Image.open(out / "astronaut.jpg")
    assert img.size == (295, 413) and tuple(round(v) for v in img.info["dpi"]) == (300, 300)
    assert Image.open(out / "astronaut.sheet-4x6.jpg").size in {(1800, 1200), (1200, 1800)}
    rejected = json.loads((out / "review" / "cup.report.json").read_text())
    assert rejected["rejected"] == "no_face" and rejected["reasons"] == ["no face found"]
    assert "FAILED cup.jpg: no face found" in proc.stderr

    # a rule failure (the astronaut smiles with her teeth showing; Schengen asks for a neutral expression):
    # strict sends it to review, lenient emits it
    strict = tmp_path / "strict"
    proc = run_cli("idphoto", str(src / "astronaut.jpg"), "-o", str(strict), "--spec", "schengen")
    assert proc.returncode == 1 and (strict / "review" / "astronaut.jpg").exists()
    assert not (strict / "astronaut.jpg").exists()
    lenient = tmp_path / "lenient"
    proc = run_cli("idphoto", str(src / "astronaut.jpg"), "-o", str(lenient), "--spec", "schengen", "--lenient")
    assert proc.returncode == 0 and (lenient / "astronaut.jpg").exists()
    assert "emitted with a failed rule (lenient): mouth open" in proc.stderr
    assert not json.loads((lenient / "astronaut.report.json").read_text())["passed"]


def test_idphoto_off_white_is_a_us_background(tmp_path, model_store):
    """The US accepts "white or off-white": #F0F0F0 gives a passing photo, not a trip to review."""
    out = tmp_path / "out"
    proc = run_cli(
        "idphoto", str(SAMPLES / "astronaut.jpg"), "-o", str(out), "--spec", "us-passport", "--bg", "#F0F0F0"
    )
    assert proc.returncode == 0, proc.stderr
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*"))
    assert made == ["astronaut.jpg", "astronaut.report.json", "manifest.json"]
    report = json.loads((out / "astronaut.report.json").read_text())
    assert report["passed"] and report["background"] == "#F0F0F0", report["reasons"]
    rule = next(r for r in report["rules"] if r["rule"] == "background_colour")
    assert rule["passed"] and "off-white" in rule["source"]
    corner = Image.open(out / "astronaut.jpg").convert("RGB").getpixel((3, 3))
    assert all(abs(c - 240) <= 3 for c in corner), corner


def test_idphoto_options_the_preset_refuses_exit_2_before_any_photo(tmp_path, model_store):
    """A background, format or KB limit the standard does not allow is one configuration error (exit 2,
    one line naming what is accepted), found before any photo is read: nothing is written."""
    cases = [
        (["--spec", "us-passport", "--bg", "#D6E4F0"], "accepted: white, off-white (L* 90-100, C* <= 5)"),
        (["--spec", "us-passport", "--bg", "#BFBFBF"], "does not accept the background #BFBFBF"),
        (["--spec", "uk-passport", "--bg", "white"], "accepted: light-grey (L* 75-95, C* <= 5), cream"),
        (["--spec", "cn-1inch", "--bg", "off-white"], "accepted: white, blue, red"),
        (["--spec", "us-passport", "--format", "png"], "us-passport accepts jpeg files only"),
        (["--spec", "us-passport", "--kb-max", "300"], "kb_max 300 is above us-passport's limit of 240 KB"),
        (["--spec", "cn-id-card", "--kb-min", "10"], "kb_min 10 is below cn-id-card's minimum of 14 KB"),
        (["--spec", "cn-id-card", "--kb-max", "12"], "at least 14 KB and at most 12 KB"),
        (["--spec", "cn-1inch", "--kb-min", "50", "--kb-max", "40"], "at least 50 KB and at most 40 KB"),
    ]
    for args, message in cases:
        out = tmp_path / "out"
        proc = run_cli("idphoto", str(SAMPLES / "astronaut.jpg"), "-o", str(out), *args)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr  # one clear line
        assert not out.exists(), args
    # tightening inside the preset's limits is fine
    proc = run_cli(
        "idphoto", str(SAMPLES / "astronaut.jpg"), "-o", str(tmp_path / "ok"), "--spec", "us-passport", "--kb-max", "60"
    )
    assert proc.returncode == 0, proc.stderr


def test_bench_pipeline_smoke(model_store):
    """The pipeline-overhead benchmark runs end to end (its figure is a benchmark, not asserted)."""
    proc = run_bench("bench-pipeline", "--count", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["images"] == 3 and report["pipeline_s"] > 0 and report["engine_s"] > 0


def test_output_folder_equal_to_the_input_folder_is_refused(tmp_path, model_store):
    """-o pointing at the input folder would write cut-outs over input PNGs: refused, nothing touched."""
    src = tmp_path / "in"
    src.mkdir()
    png = tmp_path / "orig.png"
    Image.open(SAMPLES / "coffee.jpg").save(png)
    (src / "coffee.png").write_bytes(png.read_bytes())
    (src / "astronaut.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    proc = run_cli("remove", str(src), "-o", str(src))
    assert proc.returncode == 2, proc.stderr
    assert "would overwrite an input" in proc.stderr and "coffee.png" in proc.stderr
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before


def test_two_inputs_with_the_same_name_get_two_outputs(tmp_path, model_store):
    for folder, sample in (("x", "astronaut.jpg"), ("y", "coffee.jpg")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "photo.jpg").write_bytes((SAMPLES / sample).read_bytes())
    out = tmp_path / "out"
    proc = run_cli("remove", str(tmp_path / "x" / "photo.jpg"), str(tmp_path / "y" / "photo.jpg"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "2 ok, 0 failed" in proc.stdout
    made = sorted(p.name for p in out.iterdir() if p.name != "manifest.json")
    assert made == ["photo.png", "photo_jpg.png"]
    sizes = {Image.open(out / name).size for name in made}
    assert sizes == {Image.open(SAMPLES / "astronaut.jpg").size, Image.open(SAMPLES / "coffee.jpg").size}


def test_the_checkout_finds_the_weights_make_fetched_without_any_variable(tmp_path, model_store):
    """After `make demo`/`make models`, the venv's `matting` finds the checkout's models/ on its own
    (the models/ folder beside plugins/), from any folder, and `models list` says where it looked."""
    assert model_store.model_dir.resolve() == (ROOT / "models").resolve()  # what make put there
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__MATTING__MODEL_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # an empty user cache: it must not be needed
    matting = str(Path(sys.executable).with_name("matting"))
    listed = subprocess.run([matting, "models", "list"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert f"model folder: {ROOT / 'models'}" in listed.stdout
    assert f"looked in {ROOT / 'models'} (models/ beside the plugins/ folder of this package): used" in listed.stdout
    assert f"looked in {tmp_path / 'cache' / 'matting' / 'models'} (the user's cache): absent" in listed.stdout
    out = tmp_path / "out"
    made = subprocess.run(
        [matting, "remove", str(SAMPLES / "astronaut.jpg"), "-o", str(out)], capture_output=True, text=True, env=env
    )
    assert made.returncode == 0, made.stderr[-2000:]
    assert (out / "astronaut.png").stat().st_size > 10_000


def test_the_cli_refuses_what_a_dag_refuses_with_the_same_reasons(tmp_path, model_store):
    """The CLI runs the DAGs' batch runner: a file over ``[matting] max_bytes`` is refused unread (a
    FAILED line, exit 1, in the manifest), an unreadable one is named, and the rest are made."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "small.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    (src / "big.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    limit = (src / "big.jpg").stat().st_size - 1
    assert (src / "small.jpg").stat().st_size < limit
    out = tmp_path / "out"
    proc = run_cli(
        "remove", str(src), str(tmp_path / "gone.jpg"), "-o", str(out), env={"AIRFLOW__MATTING__MAX_BYTES": str(limit)}
    )
    assert proc.returncode == 1, proc.stderr
    assert "FAILED big.jpg: big.jpg:" in proc.stderr and "exceeds the limit" in proc.stderr
    assert "FAILED gone.jpg:" in proc.stderr and "1 ok, 2 failed" in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert {f["source"]: f["error_type"] for f in manifest["files"] if f["status"] == "failed"} == {
        "big.jpg": "file_too_large",
        "gone.jpg": "vanished",
    }
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "small.png"]


def test_models_fetch_defaults_names_what_the_default_scenario_loads(model_store, tmp_path):
    """`models fetch defaults` (the image's build step) makes present exactly what the DAGs' default
    scenario loads: its routes' models and the face detector that routes (here all present, verified)."""
    proc = run_cli("models", "fetch", "defaults")
    assert proc.returncode == 0, proc.stderr[-2000:]
    ready = sorted(line.split(":", 1)[0] for line in proc.stdout.splitlines() if ": ready at " in line)
    assert ready == ["face_detection_full_range", "face_detection_short_range", "isnet-medium", "modnet"], proc.stdout
    # and that is enough: the default scenario's engine builds from a folder holding only those
    from matting.engine import Engine, ModelStore

    only = tmp_path / "models"
    only.mkdir()
    for name in ready:
        (only / model_store.spec(name).file).symlink_to(model_store.verified_path(name))
    from matting.images import decode_file

    engine = Engine(scenario="auto", store=ModelStore(model_dir=only))
    # a photo with a face goes to the portrait model, one without to the general one: both load
    models = {engine.matte(decode_file(SAMPLES / name), {}).model for name in ("astronaut.jpg", "coffee.jpg")}
    assert models == {"modnet", "isnet-medium"}
