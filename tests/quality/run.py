"""``make quality``: matte quality against exact ground truth, per model x scenario x content type.

Composites of real photographic cut-outs over real photos (tests/quality/data.py), at the cut-out's own
size and enlarged to a 3000 px product shot. Each model's raw mask is computed once per image; every
scenario's mask operations (matting.engine.postprocess.refine_alpha) run on it; rembg's own
``remove(only_mask=True)`` with the same u2netp and u2net (rembg's default) weights runs on the same
images in the same process. ``auto`` (the content-aware default) is scored as what it does: per image,
the variant of the scenario it routes that image to.
Metrics: tests/quality/metrics.py (SAD, MSE x1e3, gradient, connectivity, IoU at 0.5), over the whole image.
Reported: mean, median and worst per group, and the median time per image (mask + scenario).

    python tests/quality/run.py [--models u2netp,u2net,isnet-medium,modnet] [--scenarios ...]
                                [--resolutions native,3000] [--rembg u2netp,u2net]
                                [--only squirrel,cello] [--json out/quality.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "tests")]

METRICS = ("mse", "sad", "grad", "conn", "iou")


def _rembg_mask(session, rgb):
    import numpy as np
    from PIL import Image
    from rembg import remove

    return np.asarray(remove(Image.fromarray(rgb), session=session, only_mask=True))


# one step at a time, on the model's raw mask: what each post-processing step does per content type
ABLATION = {
    "step: flip": {"flip": True},
    "step: levels 0.06-0.94": {"levels": [0.06, 0.94]},
    "step: levels 0.15-0.85": {"levels": [0.15, 0.85]},
    "step: keep_largest": {"keep_largest": True},
    "step: erode 1": {"erode": 1},
    "step: feather 0.8": {"feather": 0.8},
    "step: threshold 0.5": {"threshold": 0.5},
    "step: alpha_matting": {"alpha_matting": True},
}


def fill_holes(alpha, level: int = 128, margin: int = 6):
    """HivisionIDPhotos' ``hollow_out_fix`` (run after its own MODNet), rewritten to measure it: opaque
    inside the outline of the largest region, the outline taken after eroding ``margin`` px."""
    import cv2
    import numpy as np

    binary = cv2.erode((alpha >= level).astype(np.uint8), np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return alpha
    inside = np.zeros_like(alpha)
    cv2.drawContours(inside, [max(contours, key=cv2.contourArea)], -1, 255, thickness=cv2.FILLED)
    return np.maximum(alpha, inside)


# steps that are not scenario keys: measured here, not offered (see docs/quality.md for why)
EXTRA_STEPS = {"step: fill_holes (HivisionIDPhotos)": fill_holes}


def plans_for(scenarios: list[str], ablation: bool | list[str]) -> dict:
    """Named scenarios, plus the ablation steps (all, or those listed by name)."""
    from matting.engine.scenarios import Scenario, get_scenario

    plans = {s: get_scenario(s) for s in scenarios}
    if ablation:
        steps = ABLATION if ablation is True else {k: ABLATION[k] for k in ablation if k in ABLATION}
        plans.update({name: Scenario.from_dict(name, d) for name, d in steps.items()})
        extra = EXTRA_STEPS if ablation is True else {k: EXTRA_STEPS[k] for k in ablation if k in EXTRA_STEPS}
        plans.update({name: (Scenario(name=name), fn) for name, fn in extra.items()})
    return plans


def runs_on(model: str, scenario_name: str, sc, content: str, portrait_models=("modnet",)) -> bool:
    """A scenario that names its model runs with that model only; a portrait model runs every variant
    on people and only its raw mask elsewhere (it is not meant for objects)."""
    if sc.model and sc.model != model:
        return False
    return not (model in portrait_models and content != "people" and scenario_name != "default")


def measure(
    models: list[str],
    scenarios: list[str],
    resolutions: list[str],
    only: list[str] | None,
    rembg: list[str],
    ablation: bool | list[str] = False,
    portrait_models: tuple[str, ...] = ("modnet",),
):
    """One row per (resolution, image, variant): the scores and the seconds it took (which variants
    run where: ``runs_on``)."""
    from matting.engine import Engine
    from matting.engine.postprocess import refine_alpha
    from quality.data import composites
    from quality.metrics import score

    engines = {m: Engine(model=m) for m in models}
    plans = plans_for(scenarios, ablation)
    routed = {name: plan for name, plan in plans.items() if not isinstance(plan, tuple) and plan.route}
    plans = {name: plan for name, plan in plans.items() if name not in routed}
    routers = {name: Engine(scenario=name) for name in routed}
    sessions = {}
    if rembg:
        import os

        from matting.engine import ModelStore
        from rembg import new_session

        os.environ["U2NET_HOME"] = str(ModelStore().model_dir)  # the very same weights files
        sessions = {name: new_session(name) for name in rembg}
    rows = []
    for res in resolutions:
        long_side = None if res == "native" else int(res)
        for comp in composites(long_side, only):
            t_img = time.perf_counter()
            variants = []
            for name, engine in engines.items():
                raw: dict[bool, tuple] = {}
                for sname, plan in plans.items():
                    sc, extra = plan if isinstance(plan, tuple) else (plan, None)
                    if not runs_on(name, sname, sc, comp.content, portrait_models):
                        continue
                    if sc.flip not in raw:
                        t0 = time.perf_counter()
                        mask = engine.predict_mask(comp.rgb, flip=sc.flip)
                        raw[sc.flip] = (mask, time.perf_counter() - t0)
                    mask, t_mask = raw[sc.flip]
                    t0 = time.perf_counter()
                    alpha = refine_alpha(comp.rgb, mask, sc) if extra is None else extra(mask)
                    variants.append((name, sname, alpha, t_mask + time.perf_counter() - t0))
            for name, router in routers.items():  # the variant its route picks for this image
                t0 = time.perf_counter()
                picked = router.routes[router.route_of(comp.rgb)]
                found = [v for v in variants if v[0] == picked.spec.name and v[1] == picked.scenario.name]
                if not found:
                    raise SystemExit(
                        f"{name} routes {comp.name} to {picked.spec.name}/{picked.scenario.name}: add both"
                    )
                _, _, alpha, secs = found[0]
                variants.append((f"{name}: {picked.spec.name}", name, alpha, secs + time.perf_counter() - t0))
            for name, session in sessions.items():
                t0 = time.perf_counter()
                alpha = _rembg_mask(session, comp.rgb)
                variants.append((f"rembg {name}", "remove()", alpha, time.perf_counter() - t0))
            for model, sname, alpha, secs in variants:
                rows.append(
                    {
                        "resolution": comp.resolution,
                        "image": comp.name,
                        "content": comp.content,
                        "model": model,
                        "scenario": sname,
                        "seconds": secs,
                        **score(alpha, comp.alpha).to_dict(),
                    }
                )
            print(
                f"  {comp.resolution:7} {comp.content:8} {comp.name:22} {comp.rgb.shape[1]}x{comp.rgb.shape[0]} "
                f"{time.perf_counter() - t_img:5.1f}s",
                file=sys.stderr,
                flush=True,
            )
    return rows


def summarise(rows: list[dict]) -> dict:
    """(resolution, content, model, scenario) -> mean / median / worst of each metric, median seconds."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        for content in (r["content"], "all"):
            groups[(r["resolution"], content, r["model"], r["scenario"])].append(r)
    out = {}
    for key, rs in groups.items():
        stats = {"n": len(rs), "seconds": statistics.median(r["seconds"] for r in rs)}
        for m in METRICS:
            values = [r[m] for r in rs]
            worst = min(values) if m == "iou" else max(values)
            stats[m] = {"mean": statistics.fmean(values), "median": statistics.median(values), "worst": worst}
        stats["worst_image"] = min(rs, key=lambda r: r["iou"])["image"]
        out[key] = stats
    return out


def tables(summary: dict) -> str:
    lines = []
    resolutions = sorted({k[0] for k in summary}, key=lambda r: (r != "native", r))
    contents = ["all", "objects", "animals", "people"]
    for res in resolutions:
        for content in contents:
            keys = [k for k in summary if k[0] == res and k[1] == content]
            if not keys:
                continue
            n = summary[keys[0]]["n"]
            lines += [
                "",
                f"**{content}, {res}** ({n} images)",
                "",
                "| model | scenario | MSE x1e3 mean / median / worst | SAD mean | Grad mean | Conn mean "
                "| IoU mean / worst | s/image |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for k in sorted(keys, key=lambda k: summary[k]["mse"]["mean"]):
                s = summary[k]
                mse = s["mse"]
                lines.append(
                    f"| {k[2]} | {k[3]} "
                    f"| {mse['mean'] * 1e3:.2f} / {mse['median'] * 1e3:.2f} / {mse['worst'] * 1e3:.1f} "
                    f"| {s['sad']['mean']:.2f} | {s['grad']['mean']:.2f} | {s['conn']['mean']:.2f} "
                    f"| {s['iou']['mean']:.3f} / {s['iou']['worst']:.3f} ({s['worst_image']}) | {s['seconds']:.2f} |"
                )
    return "\n".join(lines)


def compact_tables(summary: dict) -> str:
    """The tables of docs/quality.md: per resolution, each (model, scenario) x content type (MSE x1e3 mean /
    median / worst, gradient error mean, s/image), then each step's change of mean MSE and gradient
    error against the raw mask it was applied to (u2netp for objects and animals, MODNet for people)."""
    contents = ["objects", "animals", "people"]
    lines = []
    for res in sorted({k[0] for k in summary}, key=lambda r: (r != "native", r)):
        variants = sorted(
            {(k[2], k[3]) for k in summary if k[0] == res and not k[3].startswith("step: ")},
            key=lambda v: (v[0] != "rembg u2netp", v[0], v[1] != "default", v[1]),
        )
        n = {c: summary.get((res, c, "u2netp", "default"), {}).get("n", 0) for c in contents}
        head = " | ".join(f"{c} ({n[c]}): MSE mean / median / worst, Grad" for c in contents)
        lines += ["", f"**{res}**", "", f"| model | scenario | {head} | s/image |", "|---" * 6 + "|"]
        for model, scen in variants:
            cells, secs = [], []
            for c in contents:
                s = summary.get((res, c, model, scen))
                if s is None:
                    cells.append("-")
                    continue
                m = s["mse"]
                cells.append(
                    f"{m['mean'] * 1e3:.2f} / {m['median'] * 1e3:.2f} / {m['worst'] * 1e3:.1f}, {s['grad']['mean']:.3f}"
                )
                secs.append(s["seconds"])
            lines.append(f"| {model} | {scen} | {' | '.join(cells)} | {statistics.median(secs):.2f} |")
    steps = sorted({k[3] for k in summary if k[3].startswith("step: ")})
    if steps:
        lines += [
            "",
            "| step alone (change vs the raw mask) | resolution | objects (u2netp): MSE, Grad "
            "| animals (u2netp): MSE, Grad | people (MODNet): MSE, Grad |",
            "|---|---|---|---|---|",
        ]
        for step in steps:
            for res in sorted({k[0] for k in summary}, key=lambda r: (r != "native", r)):
                cells = []
                for c, model in (("objects", "u2netp"), ("animals", "u2netp"), ("people", "modnet")):
                    base, s = summary.get((res, c, model, "default")), summary.get((res, c, model, step))
                    if not base or not s:
                        cells.append("-")
                        continue
                    dm = s["mse"]["mean"] / base["mse"]["mean"] - 1
                    dg = s["grad"]["mean"] / base["grad"]["mean"] - 1
                    cells.append(f"{dm:+.0%}, {dg:+.0%}")
                lines.append(f"| {step[6:]} | {res} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from matting.engine.scenarios import load_scenarios

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="u2netp,u2net,isnet-medium,isnet-medium-1024,isnet-small,modnet")
    ap.add_argument("--scenarios", default=",".join(load_scenarios()))
    ap.add_argument("--resolutions", default="native,3000")
    ap.add_argument("--only", help="comma-separated cut-out names (a quick run)")
    ap.add_argument("--rembg", default="u2netp,u2net", help="rembg's own remove() with these (empty: none)")
    ap.add_argument("--ablation", action="store_true", help="also each post-processing step alone")
    ap.add_argument("--steps", help="with --ablation: only these steps (comma-separated, e.g. 'step: flip')")
    ap.add_argument("--json", type=Path, default=ROOT / "out" / "quality.json")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = measure(
        args.models.split(","),
        args.scenarios.split(","),
        args.resolutions.split(","),
        args.only.split(",") if args.only else None,
        [m for m in args.rembg.split(",") if m],
        args.steps.split(",") if args.ablation and args.steps else args.ablation,
    )
    summary = summarise(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "summary": [[*k, v] for k, v in summary.items()]}, indent=1))
    text = tables(summary)
    args.json.with_suffix(".md").write_text(compact_tables(summary) + "\n\n" + text + "\n")
    print(text)
    print("\n" + compact_tables(summary))
    print(f"\n{len(rows)} scores in {time.perf_counter() - t0:.0f} s; per-image rows in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
