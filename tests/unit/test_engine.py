"""The engine on the real u2netp model: mask parity with rembg, scenarios, composition, batches."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from conftest import SAMPLES
from matting.engine import Engine, OutputOptions, Scenario, file_sources, get_scenario, load_scenarios
from matting.engine import postprocess as pp
from matting.errors import ConfigError
from matting.images import decode
from PIL import Image

SAMPLE_FILES = sorted(SAMPLES.glob("*.jpg"))


@pytest.fixture(scope="module")
def rembg_session(model_store):
    import os

    os.environ["U2NET_HOME"] = str(model_store.model_dir)  # rembg loads the very same file
    from rembg import new_session

    return new_session("u2netp")


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.stem)
def test_mask_matches_rembg(path, engine, rembg_session):
    from rembg import remove

    pil = Image.open(path).convert("RGB")
    theirs = np.asarray(remove(pil, session=rembg_session, only_mask=True))
    ours = engine.predict_mask(np.asarray(pil))
    assert ours.shape == theirs.shape
    a, b = ours >= 128, theirs >= 128
    iou = (a & b).sum() / max((a | b).sum(), 1)
    assert iou >= 0.98, f"IoU {iou:.4f}"
    assert np.abs(ours.astype(int) - theirs.astype(int)).mean() < 4  # soft values agree too


def test_mask_finds_the_person(engine, astronaut_rgb):
    mask = engine.predict_mask(astronaut_rgb)
    assert mask[150, 230] > 200  # face
    assert mask[30, 470] < 30  # studio background, top right
    assert 0.25 < (mask >= 128).mean() < 0.75


def test_scenarios_load_and_validate(tmp_path, monkeypatch):
    scenarios = load_scenarios()
    assert {"default", "id_photo", "ecom_product"} <= set(scenarios)
    assert scenarios["id_photo"].foreground == "blur_fusion"  # no JIT on a cold worker
    extra = tmp_path / "mine.yaml"
    extra.write_text("scenarios:\n  mine:\n    threshold: 0.4\n    erode: 2\n")
    monkeypatch.setenv("AIRFLOW__MATTING__SCENARIOS", str(extra))
    assert get_scenario("mine") == Scenario(name="mine", threshold=0.4, erode=2)
    with pytest.raises(ConfigError, match="unknown keys"):
        Scenario.from_dict("bad", {"erdoe": 1})
    with pytest.raises(ConfigError, match="threshold"):
        Scenario.from_dict("bad", {"threshold": 3})
    with pytest.raises(ConfigError, match="unknown scenario"):
        get_scenario("nope")


def _soft_disc(size=200, radius=60, soft=10):
    yy, xx = np.mgrid[:size, :size]
    d = np.hypot(yy - size / 2, xx - size / 2)
    return np.clip((radius + soft / 2 - d) / soft * 255, 0, 255).astype(np.uint8)


def test_refine_operations():
    alpha = _soft_disc()
    alpha[5:15, 5:15] = 255  # a stray blob
    rgb = np.zeros((*alpha.shape, 3), np.uint8)
    hard = pp.refine_alpha(rgb, alpha, Scenario(threshold=0.5))
    assert set(np.unique(hard)) == {0, 255}
    largest = pp.refine_alpha(rgb, alpha, Scenario(keep_largest=True))
    assert largest[10, 10] == 0 and largest[100, 100] == 255
    eroded = pp.refine_alpha(rgb, alpha, Scenario(erode=5))
    assert (eroded >= 128).sum() < (alpha >= 128).sum()
    feathered = pp.refine_alpha(rgb, hard, Scenario(feather=3))
    assert ((feathered > 0) & (feathered < 255)).sum() > ((hard > 0) & (hard < 255)).sum()
    levels = pp.refine_alpha(rgb, alpha, Scenario(levels=(0.2, 0.8)))
    assert ((levels > 0) & (levels < 255)).sum() < ((alpha > 0) & (alpha < 255)).sum()


def test_alpha_matting_refinement_runs_on_bounded_size():
    alpha = _soft_disc(160, 50, 16)
    rgb = np.dstack([alpha, alpha // 2, 255 - alpha])
    out = pp.refine_alpha(rgb, alpha, Scenario(alpha_matting=True, am_max_pixels=10_000, am_erode=3))
    assert out.shape == alpha.shape and out[80, 80] == 255 and out[0, 0] == 0


@pytest.mark.parametrize("method", ["ml", "blur_fusion"])
def test_foreground_estimation_removes_halo(method):
    """Red disc photographed on green: edge pixels are red+green mixes; estimation makes them red."""
    alpha = _soft_disc()
    a = alpha.astype(np.float32)[:, :, None] / 255
    rgb = (a * np.array([220, 30, 30]) + (1 - a) * np.array([30, 200, 30])).astype(np.uint8)
    edge = (alpha > 40) & (alpha < 215)
    fg = pp.estimate_foreground(rgb, alpha, max_pixels=1_000_000, method=method)
    before = np.abs(rgb[edge].astype(int) - [220, 30, 30]).mean()
    after = np.abs(fg[edge].astype(int) - [220, 30, 30]).mean()
    assert after < before / 3, (before, after)
    assert np.array_equal(fg[alpha == 255], rgb[alpha == 255])  # opaque pixels untouched


def test_over_background_is_exact_away_from_edges(engine, astronaut_bytes):
    out = OutputOptions.build("png", "#438EDB")
    matte = engine.matte(decode(astronaut_bytes))
    img = np.asarray(engine.compose(matte, out))
    bg = matte.alpha == 0
    assert bg.sum() > 10_000
    assert (img[bg] == [0x43, 0x8E, 0xDB]).all()
    fg = matte.alpha == 255
    assert np.array_equal(img[fg], matte.rgb[fg])


def test_parse_colour():
    from matting.engine import colours
    from PIL import ImageColor

    assert colours.parse_colour("white") == (255, 255, 255)
    assert colours.parse_colour("#fff") == (255, 255, 255)
    assert colours.parse_colour("light-blue") == colours.NAMED_COLOURS["light-blue"]
    assert colours.parse_colour("none") is None and colours.parse_colour((1, 2, 3)) == (1, 2, 3)
    with pytest.raises(ConfigError, match="unknown colour"):
        colours.parse_colour("blurple")
    # the hex fast path (no Pillow at a DAG's parse) reads hex as Pillow does, any case
    for text in ("#438EDB", "#f0f0f0", "#000000", "#FfFfFf", "rgb(1,2,3)", "aliceblue"):
        assert colours.parse_colour(text) == ImageColor.getrgb(text.lower())[:3], text


@pytest.mark.parametrize(
    "fmt,bg,mode",
    [("png", None, "RGBA"), ("webp", None, "RGBA"), ("jpeg", None, "RGB"), ("png", "red", "RGB"), ("mask", None, "L")],
)
def test_output_formats(engine, astronaut_bytes, fmt, bg, mode):
    result, data = engine.process_bytes(astronaut_bytes, "astronaut.jpg", OutputOptions.build(fmt, bg))
    assert result.ok, result.error
    img = Image.open(io.BytesIO(data))
    assert img.size == (512, 512) and img.mode == mode
    assert {"decode", "infer", "refine", "compose", "encode"} <= set(result.timings_ms)
    if mode == "RGBA":
        arr = np.asarray(img)
        assert arr[30, 470, 3] < 30 and arr[150, 230, 3] > 200
        if fmt == "png":  # lossless: no colour is kept under fully transparent pixels
            assert not arr[arr[:, :, 3] == 0][:, :3].any()


def test_source_alpha_is_respected(engine, astronaut_rgb):
    rgba = np.dstack([astronaut_rgb, np.full(astronaut_rgb.shape[:2], 255, np.uint8)])
    rgba[:, :256, 3] = 0  # left half already transparent
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    result, data = engine.process_bytes(buf.getvalue(), "half.png", OutputOptions.build("png"))
    assert result.ok
    out = np.asarray(Image.open(io.BytesIO(data)))
    assert out[:, :256, 3].max() == 0  # transparent in the source: transparent in the output
    # elsewhere the alpha is the model's, computed on the image as it looks (over white)
    seen = pp.over_background(astronaut_rgb, rgba[:, :, 3], (255, 255, 255))
    assert np.array_equal(out[:, 256:, 3], engine.predict_mask(seen)[:, 256:])
    assert out[400, 300, 3] > 200  # the suit


def test_id_photo_scenario_end_to_end(model_store, astronaut_bytes):
    eng = Engine(scenario="id_photo", store=model_store)
    result, data = eng.process_bytes(astronaut_bytes, "a.jpg", OutputOptions.build("jpeg", "blue"))
    assert result.ok and Image.open(io.BytesIO(data)).mode == "RGB"


def test_batch_goes_on_past_bad_files(engine, tmp_path, astronaut_bytes):
    files = {
        "a.jpg": astronaut_bytes,
        "empty.jpg": b"",
        "notes.png": b"just text",
        "half.jpg": astronaut_bytes[: len(astronaut_bytes) // 3],
        "b.jpg": astronaut_bytes,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    written = {}

    def sink(name, data, out):
        if name.endswith("b.jpg"):
            raise OSError("disk full")  # a failing write fails that file only
        written[name] = data
        return f"mem://{name}"

    paths = [tmp_path / n for n in files] + [tmp_path / "missing.jpg"]
    results = list(engine.run_batch(file_sources(paths), OutputOptions.build("png"), sink=sink, prefetch=2))
    by_name = {r.source.split("/")[-1]: r for r in results}
    assert [r.source for r in results] == [str(p) for p in paths]  # input order kept
    assert by_name["a.jpg"].ok and by_name["a.jpg"].output.startswith("mem://")
    assert by_name["empty.jpg"].error_type == "empty_file"
    assert by_name["notes.png"].error_type == "not_an_image"
    assert by_name["half.jpg"].error_type == "truncated_image"
    # a failing write is not the file's fault: retryable, never a content error
    b = by_name["b.jpg"]
    assert not b.ok and "disk full" in b.error and b.retryable and b.error_type == "infrastructure_error"
    missing = by_name["missing.jpg"]
    assert missing.error_type == "vanished" and "cannot read" in missing.error and not missing.retryable
    assert not any(r.retryable for r in results if r.source.split("/")[-1] != "b.jpg")
    assert len(written) == 1


@pytest.mark.parametrize("overlap_cpu", [True, False])
def test_batch_results_match_single_image_path(engine, astronaut_bytes, overlap_cpu):
    out = OutputOptions.build("png")
    single = engine.process_bytes(astronaut_bytes, "a", out)[1]
    got = []

    def sink(name, data, _out):
        got.append(data)
        return name

    sources = [("a", lambda: astronaut_bytes)] * 3
    results = list(engine.run_batch(sources, out, sink=sink, overlap_cpu=overlap_cpu, prefetch=2))
    assert [r.ok for r in results] == [True] * 3
    assert len(got) == 3 and all(d == single for d in got)


def test_large_image_keeps_memory_bounded(engine):
    """A 12 MP image goes through with the mask computed at model size and upscaled in uint8. What
    NumPy and Pillow allocate (tracemalloc sees both; ONNX Runtime's arena, at model size, it does
    not), in bytes per pixel: the matte stage holds the decoded RGB (3) and the uint8 alpha (1) and
    peaks under 5 (a float32 full-size alpha would take it to 8); the whole photo peaks at 12 with
    the RGBA result and its encoder copy (under 13 here; a float32 RGB copy anywhere adds 12)."""
    import tracemalloc

    from matting.images import decode

    rgb = cv2.resize(np.asarray(Image.open(SAMPLES / "astronaut.jpg")), (4200, 2800))
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=85)
    data, pixels = buf.getvalue(), 4200 * 2800
    del rgb
    engine.process_bytes(data, "warm.jpg", OutputOptions.build("webp"))  # sessions and caches first
    tracemalloc.start()
    try:
        result, out = engine.process_bytes(data, "big.jpg", OutputOptions.build("webp"))
        whole = tracemalloc.get_traced_memory()[1] / pixels
        image = decode(data, name="big.jpg")
        tracemalloc.reset_peak()
        engine.matte(image, {})
        matte = tracemalloc.get_traced_memory()[1] / pixels
    finally:
        tracemalloc.stop()
    assert result.ok and (result.width, result.height) == (4200, 2800)
    assert matte < 5, f"matte stage: {matte:.1f} bytes per pixel"
    assert whole < 13, f"whole photo: {whole:.1f} bytes per pixel"


def test_missing_model_names_the_fetch_command(tmp_path):
    from matting.engine import ModelStore
    from matting.errors import ModelMissing

    with pytest.raises(ModelMissing, match="python -m matting models fetch u2netp"):
        Engine(model="u2netp", store=ModelStore(model_dir=tmp_path))
