"""``python tests/bench.py bench`` (``make bench``): our engine against rembg, same images, same model, one run.

Every measurement runs in a fresh child process (so peak RSS is per variant and one side's caches
never help the other), in rounds that alternate the variants (so machine drift cancels in the
ratios). Reported numbers are medians: per image over rounds, then over images.

Variants
  floor            ONNX Runtime alone on preprocessed tensors (the engine's session options)
  engine_batch     engine end to end, pipelined batch: bytes -> decode -> mask -> compose -> PNG bytes
  engine_bytes     the same, one image at a time (no overlap)
  engine_mem       engine in memory: decoded image in, composed RGBA image out (no codec)
  rembg_bytes      rembg remove(bytes) with its default session: what `rembg p` does per file
  rembg_mem        rembg remove(PIL image) -> PIL image, default session
  rembg_mem_omp    rembg remove(PIL image) with OMP_NUM_THREADS = cores (rembg's own tuning knob)
  rembg_bytes_omp  rembg remove(bytes) with OMP_NUM_THREADS = cores
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGINS_DIR = ROOT / "plugins"
SAMPLES_DIR = ROOT / "include" / "samples"

VARIANTS = (
    "floor",
    "engine_batch",
    "engine_bytes",
    "engine_mem",
    "rembg_bytes",
    "rembg_mem",
    "rembg_mem_omp",
    "rembg_bytes_omp",
)


# --- child process --------------------------------------------------------------------------------


def _images(folder: Path) -> list[Path]:
    from matting.images import looks_like_image

    return sorted(p for p in folder.iterdir() if p.is_file() and looks_like_image(p))


def _timed(fn) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def _engine(model: str):
    """The engine for a model name, or for ``auto`` (the default scenario: the model chosen per photo)."""
    from matting.engine import Engine

    return Engine(scenario="auto") if model == "auto" else Engine(model=model)


def worker(variant: str, folder: Path, model: str, png_level: int, repeat: int = 1) -> dict:
    """Measure one variant over every image in ``folder`` (each ``repeat`` times, median kept);
    returns per-image wall and CPU seconds."""
    files = _images(folder)
    blobs = [p.read_bytes() for p in files]
    wall: list[float] = []
    cpu: list[float] = []
    extra: dict = {}

    if variant.startswith("rembg"):
        from PIL import Image
        from rembg import new_session, remove

        session = new_session(model)
        if variant.startswith("rembg_bytes"):
            jobs = [lambda b=b: remove(b, session=session) for b in blobs]
        else:
            pil = [Image.open(io.BytesIO(b)) for b in blobs]
            for im in pil:
                im.load()
            jobs = [lambda im=im: remove(im, session=session) for im in pil]
    else:
        from matting.engine import OutputOptions
        from matting.images import decode, encode

        engine = _engine(model)
        out = OutputOptions.build("png", png_compress_level=png_level)
        if variant == "floor":
            tensors = [engine.preprocess(decode(b).rgb) for b in blobs]
            jobs = [lambda t=t: engine.infer(t) for t in tensors]
        elif variant == "engine_bytes":
            jobs = [lambda b=b, n=p.name: engine.process_bytes(b, n, out) for b, p in zip(blobs, files, strict=True)]
        elif variant == "engine_mem":
            decoded = [decode(b) for b in blobs]
            jobs = [lambda d=d: engine.compose(engine.matte(d), out) for d in decoded]
        elif variant == "engine_batch":
            jobs = []
        else:
            raise SystemExit(f"unknown variant {variant}")
        if variant in ("engine_bytes", "engine_batch"):
            # parts timed alone, for the overhead target: decode, inference, encode
            decode_cpu, encode_cpu, infer_cpu = [], [], []
            for b in blobs:
                d = decode(b)
                t = engine.preprocess(d.rgb)
                engine.infer(t)
                decode_cpu.append(_timed(lambda b=b: decode(b))[1])
                infer_cpu.append(_timed(lambda t=t: engine.infer(t))[1])
                img = engine.compose(engine.matte(d), out)
                encode_cpu.append(_timed(lambda img=img: encode(img, "png", png_compress_level=png_level))[1])
            extra["parts_cpu_s"] = {
                "decode": statistics.median(decode_cpu),
                "infer": statistics.median(infer_cpu),
                "encode": statistics.median(encode_cpu),
            }

    if variant == "engine_batch":
        sources = [(p.name, (lambda b=b: b)) for b, p in zip(blobs, files, strict=True)]
        list(engine.run_batch(sources[:1], out))  # warm-up
        w, c = _timed(lambda: [r for r in engine.run_batch(sources * repeat, out) if not r.ok and _fail(r)])
        n = len(files) * repeat
        wall = [w / n] * len(files)
        cpu = [c / n] * len(files)
    else:
        jobs[0]()  # warm-up: session initialisation, arenas, first-call costs
        for job in jobs:
            times = [_timed(job) for _ in range(repeat)]
            wall.append(statistics.median(t[0] for t in times))
            cpu.append(statistics.median(t[1] for t in times))
    return {
        "variant": variant,
        "images": [p.name for p in files],
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        **extra,
    }


def _fail(result) -> bool:
    raise RuntimeError(f"benchmark image failed: {result.error}")


def rss_worker(path: Path, model: str, png_level: int, count: int = 3) -> dict:
    """Peak RSS of the engine on a batch of ``count`` large images, end to end through the batch API."""
    from matting.engine import OutputOptions

    engine = _engine(model)
    out = OutputOptions.build("png", png_compress_level=png_level)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    data = path.read_bytes()
    t0 = time.perf_counter()
    results = list(engine.run_batch([(f"{i}-{path.name}", lambda: data) for i in range(count)], out))
    for r in results:
        if not r.ok:
            raise RuntimeError(r.error)
    return {
        "image": path.name,
        "count": count,
        "megapixels": results[0].width * results[0].height / 1e6,
        "seconds_per_image": (time.perf_counter() - t0) / count,
        "rss_after_import_mb": base,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


# --- parent -------------------------------------------------------------------------------------


def _child_env(variant: str, store_dir: Path, cores: int) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PLUGINS_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["U2NET_HOME"] = str(store_dir)  # rembg finds the very same model file
    env.pop("OMP_NUM_THREADS", None)
    if variant.endswith("_omp"):
        env["OMP_NUM_THREADS"] = str(cores)
    return env


def _run_child(args: list[str], env: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def make_large_set(src: list[Path], dest: Path, long_side: int, seed: int = 0) -> Path:
    """Upscale the sample photos to ``long_side`` px (with mild sensor-like noise), JPEG q90."""
    import cv2
    import numpy as np
    from matting.images import decode_file

    rng = np.random.default_rng(seed)
    dest.mkdir(parents=True, exist_ok=True)
    for p in src:
        rgb = decode_file(p).rgb
        h, w = rgb.shape[:2]
        scale = long_side / max(h, w)
        big = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
        noise = rng.normal(0, 2.0, big.shape).astype(np.float32)
        big = np.clip(big.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        cv2.imwrite(
            str(dest / f"{p.stem}_{long_side}.jpg"),
            cv2.cvtColor(big, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, 90],
        )
    return dest


def make_megapixel_image(src: Path, dest: Path, width: int, height: int) -> Path:
    import cv2
    from matting.images import decode_file

    rgb = decode_file(src).rgb
    big = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(dest), cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return dest


def _median_over_rounds(runs: list[dict], key: str) -> float:
    """Seconds per image over the whole set (its mean, as a throughput), median over rounds."""
    return statistics.median(statistics.fmean(r[key]) for r in runs)


def run_benchmark(args: argparse.Namespace) -> dict:
    from matting.engine import ModelStore
    from matting.engine.session import available_cores

    store = ModelStore()
    if args.model != "auto":
        store.verified_path(args.model)
    rembg_model = args.rembg_model or (args.model if args.model != "auto" else "u2net")
    store.verified_path(rembg_model)
    cores = available_cores()
    variants = [v for v in VARIANTS if v in args.variants] if args.variants else list(VARIANTS)
    from matting.images import _fpng

    report: dict = {
        "model": args.model,
        "rembg_model": rembg_model,
        "cores": cores,
        "rounds": args.rounds,
        "repeat": args.repeat,
        "png_level": args.png_level,
        "png_encoder": "fpng" if _fpng is not None else "pillow",
        "sets": {},
    }
    with tempfile.TemporaryDirectory(prefix="matting-bench-") as tmp:
        sets: dict[str, Path] = {}
        base = Path(args.images) if args.images else SAMPLES_DIR
        sets[f"{base.name} (as given)"] = base
        if not args.images or args.large:
            sets[f"{args.large_side} px"] = make_large_set(_images(base), Path(tmp) / "large", args.large_side)
        for label, folder in sets.items():
            _log(f"set '{label}': {len(_images(folder))} images; {args.rounds} rounds x {len(variants)} variants")
            runs: dict[str, list[dict]] = {v: [] for v in variants}
            for rnd in range(args.rounds):
                for v in variants:
                    model = rembg_model if v.startswith("rembg") else args.model
                    res = _run_child(
                        ["worker", v, str(folder), model, str(args.png_level), str(args.repeat)],
                        _child_env(v, store.model_dir, cores),
                    )
                    runs[v].append(res)
                    _log(f"  round {rnd + 1} {v:16} median {statistics.median(res['wall_s']):.3f} s/img")
            summary = {}
            for v, rs in runs.items():
                s_per_img = _median_over_rounds(rs, "wall_s")
                summary[v] = {
                    "s_per_img": s_per_img,
                    "img_per_s": 1.0 / s_per_img,
                    "cpu_s_per_img": _median_over_rounds(rs, "cpu_s"),
                    "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
                }
                if "parts_cpu_s" in rs[0]:
                    summary[v]["parts_cpu_s"] = {
                        k: statistics.median(r["parts_cpu_s"][k] for r in rs) for k in rs[0]["parts_cpu_s"]
                    }
            report["sets"][label] = {
                "images": runs[variants[0]][0]["images"],
                "variants": summary,
                "ratios": _ratios(summary),
            }
        if args.rss_mp:
            w = int((args.rss_mp * 1e6 * 1.5) ** 0.5)
            h = int(w / 1.5)
            big = make_megapixel_image(_images(base)[0], Path(tmp) / f"rss_{w}x{h}.jpg", w, h)
            _log(f"peak RSS on a {w}x{h} ({w * h / 1e6:.0f} MP) image")
            report["rss"] = _run_child(
                ["rss", str(big), args.model, str(args.png_level)], _child_env("engine", store.model_dir, cores)
            )
    return report


def _ratios(s: dict) -> dict:
    def ratio(a: str, b: str) -> float | None:
        return s[a]["img_per_s"] / s[b]["img_per_s"] if a in s and b in s else None

    out = {
        "engine_batch / rembg_bytes (target >= 2.2)": ratio("engine_batch", "rembg_bytes"),
        "engine_bytes / rembg_bytes": ratio("engine_bytes", "rembg_bytes"),
        "engine_batch / rembg_bytes_omp": ratio("engine_batch", "rembg_bytes_omp"),
        "engine_mem / rembg_mem_omp (target >= 1.3)": ratio("engine_mem", "rembg_mem_omp"),
        "engine_mem / rembg_mem": ratio("engine_mem", "rembg_mem"),
        "engine_batch / floor (target >= 0.85 at 512 px)": ratio("engine_batch", "floor"),
        "engine_mem / floor": ratio("engine_mem", "floor"),
    }
    eb = s.get("engine_bytes", {})
    parts = eb.get("parts_cpu_s")
    if parts:
        out["engine_bytes cpu / (decode+infer+encode cpu) (target <= 1.15 at 3000 px)"] = eb["cpu_s_per_img"] / sum(
            parts.values()
        )
    return {k: v for k, v in out.items() if v is not None}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def print_report(report: dict) -> None:
    print(
        f"\nmodel {report['model']}, {report['cores']} cores, {report['rounds']} rounds x {report['repeat']} passes, "
        f"engine PNG encoder {report['png_encoder']} (rembg: Pillow level 6)\n"
        "s/img: mean over the set (per-image medians of repeats), median over rounds"
    )
    for label, body in report["sets"].items():
        print(f"\n== {label}: {', '.join(body['images'])}")
        print(f"  {'variant':18} {'s/img':>8} {'img/s':>8} {'cpu s/img':>10} {'peak RSS':>10}")
        for v, m in body["variants"].items():
            print(
                f"  {v:18} {m['s_per_img']:8.3f} {m['img_per_s']:8.2f} {m['cpu_s_per_img']:10.3f} "
                f"{m['peak_rss_mb']:8.0f} MB"
            )
        print("  ratios (throughput):")
        for k, r in body["ratios"].items():
            print(f"    {k:72} {r:6.2f}x" if "cpu" not in k else f"    {k:72} {r:6.2f}")
    if "rss" in report:
        r = report["rss"]
        print(
            f"\n== peak RSS, engine batch of {r['count']} x {r['megapixels']:.1f} MP: {r['peak_rss_mb']:.0f} MB "
            f"(after imports {r['rss_after_import_mb']:.0f} MB; target <= 1500 MB), "
            f"{r['seconds_per_image']:.1f} s/img"
        )


def add_bench_parser(sub) -> None:
    b = sub.add_parser("bench", help="benchmark the engine against rembg (same images and model)")
    b.add_argument("--images", help="folder of images (default: the bundled samples, plus an upscaled set)")
    b.add_argument("--large", action="store_true", help="with --images: also build an upscaled set")
    b.add_argument("--large-side", type=int, default=3000, help="long side of the upscaled set (default 3000)")
    b.add_argument("--model", default="u2netp", help="the engine's model, or auto (the default scenario)")
    b.add_argument("--rembg-model", help="rembg's model (default: the same as --model; u2net with auto)")
    b.add_argument("--rounds", type=int, default=3, help="child runs per variant, alternating variants")
    b.add_argument("--repeat", type=int, default=3, help="passes over the images inside each child run")
    b.add_argument("--png-level", type=int, default=1, help="engine PNG level when Pillow encodes (rembg uses 6)")
    b.add_argument("--variants", nargs="*", choices=VARIANTS, help="subset of variants")
    b.add_argument("--rss-mp", type=float, default=24.0, help="megapixels for the peak-RSS run (0: skip)")
    b.add_argument("--json", action="store_true", help="print the report as JSON")
    b.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    report = run_benchmark(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("worker", "rss"):  # a measured child process
        mode, *rest = argv
        if mode == "worker":
            variant, folder, model, level, repeat = rest
            print(json.dumps(worker(variant, Path(folder), model, int(level), int(repeat))))
        else:
            path, model, level = rest
            print(json.dumps(rss_worker(Path(path), model, int(level))))
        return 0
    parser = argparse.ArgumentParser(prog="tests/bench.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_bench_parser(sub)
    add_models_bench_parser(sub)
    add_pipeline_bench_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


# --- models side by side: the same images through each model, one run -----------------------------

MODEL_VARIANTS = ("floor", "engine_mem", "engine_batch")


def run_models_benchmark(models: list[str], rounds: int, repeat: int, large_side: int) -> dict:
    """Each model's inference alone (floor), in memory (engine_mem) and end to end (engine_batch), on
    the samples as given (~512 px) and upscaled to ``large_side``; child processes alternate models."""
    from matting.engine import ModelStore
    from matting.engine.session import available_cores

    store = ModelStore()
    for m in models:
        store.verified_path(m)
    cores = available_cores()
    report: dict = {"models": models, "cores": cores, "rounds": rounds, "repeat": repeat, "sets": {}}
    with tempfile.TemporaryDirectory(prefix="matting-bench-models-") as tmp:
        sets = {
            f"{SAMPLES_DIR.name} (as given)": SAMPLES_DIR,
            f"{large_side} px": make_large_set(_images(SAMPLES_DIR), Path(tmp) / "large", large_side),
        }
        for label, folder in sets.items():
            runs: dict[tuple[str, str], list[dict]] = {(m, v): [] for m in models for v in MODEL_VARIANTS}
            for rnd in range(rounds):
                for v in MODEL_VARIANTS:
                    for m in models:
                        res = _run_child(
                            ["worker", v, str(folder), m, "1", str(repeat)], _child_env(v, store.model_dir, cores)
                        )
                        runs[(m, v)].append(res)
                        median = statistics.median(res["wall_s"])
                        _log(f"  {label} round {rnd + 1} {m:10} {v:13} median {median:.3f} s/img")
            table = {
                f"{m} {v}": {
                    "s_per_img": _median_over_rounds(rs, "wall_s"),
                    "range_s": [
                        min(statistics.fmean(r["wall_s"]) for r in rs),
                        max(statistics.fmean(r["wall_s"]) for r in rs),
                    ],
                    "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
                }
                for (m, v), rs in runs.items()
            }
            base = models[0]
            ratios = {
                f"{m} / {base} {v} (time)": table[f"{m} {v}"]["s_per_img"] / table[f"{base} {v}"]["s_per_img"]
                for m in models[1:]
                for v in MODEL_VARIANTS
            }
            report["sets"][label] = {"images": [p.name for p in _images(folder)], "variants": table, "ratios": ratios}
    return report


def add_models_bench_parser(sub) -> None:
    b = sub.add_parser("bench-models", help="models side by side on the same images (time per image)")
    b.add_argument("--models", default="u2netp,modnet")
    b.add_argument("--rounds", type=int, default=3)
    b.add_argument("--repeat", type=int, default=2)
    b.add_argument("--large-side", type=int, default=3000)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench_models)


def cmd_bench_models(args: argparse.Namespace) -> int:
    r = run_models_benchmark(args.models.split(","), args.rounds, args.repeat, args.large_side)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"\nmodels side by side, {r['cores']} cores, {r['rounds']} rounds x {r['repeat']} passes")
    for label, body in r["sets"].items():
        print(f"\n== {label}: {', '.join(body['images'])}")
        print(f"  {'model variant':26} {'s/img':>7} {'range':>15} {'peak RSS':>9}")
        for k, m in body["variants"].items():
            lo, hi = m["range_s"]
            print(f"  {k:26} {m['s_per_img']:7.3f} {lo:7.3f}-{hi:<7.3f} {m['peak_rss_mb']:6.0f} MB")
        for k, ratio in body["ratios"].items():
            print(f"    {k:40} {ratio:5.2f}x")
    return 0


# --- pipeline overhead: the batch runner + archive against the engine alone ---------------------


def run_pipeline_benchmark(count: int, model: str) -> dict:
    """The same ``count`` photos through (a) the engine alone, writing outputs to a folder, and
    (b) the pipeline an Airflow task runs: listing, batch runner (records, moves, quarantine), manifest,
    archive (zip, contact sheet), on local storage. Alternates a, b, a and uses the mean of the a's."""
    import shutil

    from matting.engine import Engine, OutputOptions, file_sources
    from matting.pipeline.archive import close_run
    from matting.pipeline.detection import ScanOptions, scan
    from matting.pipeline.jobs import MattingJob
    from matting.pipeline.manifest import RunManifest, utc_now
    from matting.pipeline.runner import BatchConfig, BatchRunner, write_manifest
    from matting.storage import LocalStorage
    from matting.storage.atomic import atomic_write_bytes

    engine = Engine(model=model)
    out = OutputOptions.build("png")
    samples = _images(SAMPLES_DIR)
    with tempfile.TemporaryDirectory(prefix="matting-pipebench-") as tmp:
        src = Path(tmp) / "photos"
        src.mkdir()
        for i in range(count):
            shutil.copyfile(samples[i % len(samples)], src / f"img_{i:04d}{samples[i % len(samples)].suffix}")
        paths = sorted(src.iterdir())
        list(engine.run_batch(file_sources(paths[:1]), out))  # warm-up

        def engine_alone(dest: Path) -> float:
            t0 = time.perf_counter()
            for r in engine.run_batch(
                file_sources(paths, [p.name for p in paths]),
                out,
                sink=lambda n, d, o, dest=dest: str(atomic_write_bytes(dest / n, d)),
            ):
                if not r.ok:
                    raise RuntimeError(r.error)
            return time.perf_counter() - t0

        def pipeline() -> float:
            incoming, archive = Path(tmp) / "incoming", Path(tmp) / "archive"
            shutil.copytree(src, incoming)
            t0 = time.perf_counter()
            source, dest = LocalStorage(incoming), LocalStorage(archive)
            files = scan(source, ScanOptions(settle_seconds=0, max_files=count)).new
            cfg = BatchConfig(run_prefix="2026/01/01/bench", chunk_size=16)
            records = BatchRunner(source, dest, MattingJob(engine, out), cfg).run(files)
            manifest = RunManifest(
                dag_id="bench",
                run_id="bench",
                params={},
                job={},
                started_at=utc_now(),
                run_prefix=cfg.run_prefix,
                files=records,
            )
            write_manifest(dest, cfg, manifest, name="parts/part-0000")
            close_run(dest.sub(cfg.run_prefix), source)
            return time.perf_counter() - t0

        _log(f"{count} images: engine alone ...")
        a1 = engine_alone(Path(tmp) / "e1")
        _log(f"  {a1:.1f} s; pipeline ...")
        p = pipeline()
        _log(f"  {p:.1f} s; engine alone again ...")
        a2 = engine_alone(Path(tmp) / "e2")
        _log(f"  {a2:.1f} s")
    engine_s = (a1 + a2) / 2
    return {
        "images": count,
        "engine_s": engine_s,
        "engine_runs_s": [a1, a2],
        "pipeline_s": p,
        "ratio": p / engine_s,
        "target": 1.15,
        # the process's peak over all three passes (zip included): flat if it does not grow with count
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0),
    }


def add_pipeline_bench_parser(sub) -> None:
    b = sub.add_parser("bench-pipeline", help="pipeline (records, moves, manifest, archive) vs the engine alone")
    b.add_argument("--count", type=int, default=200)
    b.add_argument("--model", default="u2netp")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench_pipeline)


def cmd_bench_pipeline(args: argparse.Namespace) -> int:
    r = run_pipeline_benchmark(args.count, args.model)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print(
            f"{r['images']} images: engine alone {r['engine_s']:.1f} s "
            f"(runs {r['engine_runs_s'][0]:.1f} / {r['engine_runs_s'][1]:.1f} s), "
            f"full pipeline {r['pipeline_s']:.1f} s "
            f"-> {r['ratio']:.3f}x the engine's time (target <= {r['target']}); peak RSS {r['peak_rss_mb']} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
