"""Figures for comparing evaluation runs: one row per run, differences against a baseline, per-class IoU, worst clips.

Reads the run folders that ``jobs.evaluate`` writes (see ``schema``). A finished run's figures are its
``summary.parquet``; a folder with ``clips/`` but no summary (a run in progress, or one that was interrupted)
gets them recomputed from its clip rows, with FPS unknown, and is marked incomplete. Per-class IoU and per-clip
figures always come from the clip rows' confusion matrices. Runs that evaluated different clips are said to be
so, and can be compared on the clips they share, their figures recomputed from those clips' rows.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..constants import CLASS_NAMES, NUM_CLASSES
from ..metrics import ConfusionMatrix
from .reader import aggregate_audit, aggregate_clips, read_config, read_summary, read_table
from .schema import SUMMARY_FILE, summary_row

COMPLETE, PARTLY_FAILED, INCOMPLETE = "complete", "partly failed", "incomplete"
CLIP_ORDERS = ("iou", "exec")  # worst clips: lowest mIoU first, or highest execution fraction first
AUDIT_COLUMNS = ("dense_agreement", "dense_kl")
NAN = float("nan")
SHOWN_CLIPS = 5  # clip ids named in a note before "and N more"


class NotARunError(ValueError):
    """A folder that holds neither ``clips/`` nor ``summary.parquet`` of an evaluation run, or cannot be read."""


class NoCommonClipsError(ValueError):
    """Runs to be compared on their common clips share none."""


@dataclass
class Run:
    path: Path
    label: str  # short name shown in tables and plots
    status: str  # COMPLETE, PARTLY_FAILED or INCOMPLETE
    figures: dict  # the summary row (recomputed from clip rows when incomplete)
    clips: pa.Table  # evaluation-phase clip rows
    confusion: ConfusionMatrix  # summed over the evaluation clips that finished

    @property
    def audited(self) -> bool:
        return not math.isnan(_number(self.figures.get("dense_agreement")))

    @property
    def clip_ids(self) -> frozenset[str]:
        """The evaluation clips the run recorded, finished or failed."""
        return frozenset(self.clips["clip_id"].to_pylist())


def load_run(path: str | os.PathLike, label: str | None = None) -> Run:
    """Read one run folder; raises NotARunError naming the folder when it is not a run or is unreadable."""
    path = Path(path)
    has_summary = (path / SUMMARY_FILE).is_file()
    if not (has_summary or (path / "clips").is_dir()):
        reason = ("does not exist" if not path.exists() else "is a file" if not path.is_dir()
                  else f"has neither clips/ nor {SUMMARY_FILE}")
        raise NotARunError(f"{path} is not a run folder: it {reason}")
    try:
        clips = read_table(path, "clips")
        clips = clips.filter(pc.equal(clips["phase"], "eval"))
        num_classes = _num_classes(clips)
        recomputed, confusion = aggregate_clips(clips, num_classes)
        if has_summary:
            figures = read_summary(path)
            config = figures.pop("config")
        else:
            config = _config_of(path)
            figures = summary_row(config, {**recomputed, **_audit(path)}, fps=NAN)
            figures.pop("config")
    except (OSError, pa.ArrowException, ValueError, KeyError, IndexError) as exc:
        raise NotARunError(f"{path}: cannot read its report: {type(exc).__name__}: {exc}") from exc
    figures["config"] = config
    if not has_summary:
        status = INCOMPLETE
    else:
        status = PARTLY_FAILED if figures.get("num_clips_failed") else COMPLETE
    return Run(path, label or path.resolve().name, status, figures, clips, confusion)


def load_runs(paths: list[str | os.PathLike]) -> list[Run]:
    """Read run folders, labelled by folder name (by the path as given where two names collide)."""
    names = [Path(p).resolve().name for p in paths]
    return [load_run(p, name if names.count(name) == 1 else str(p)) for p, name in zip(paths, names)]


def clip_set_notes(runs: list[Run], common_only: bool = False) -> list[str]:
    """A warning when the runs evaluated different clips (matched by clip id): how many each has and how many all
    share; with ``common_only``, that the figures cover the shared clips only. No lines when the sets agree."""
    sets = [run.clip_ids for run in runs]
    if len(set(sets)) <= 1:
        return []
    common, every = frozenset.intersection(*sets), frozenset.union(*sets)
    counts = _listing([f"{run.label} ({len(ids)} clip{'s' if len(ids) != 1 else ''})" for run, ids in zip(runs, sets)])
    line = (f"warning: runs {counts} evaluated different clips and share {len(common)} of {len(every)} "
            f"(not in every run: {_names(sorted(every - common))}): ")
    if not common_only:
        return [line + "their figures cover different clips; --common-clips compares the shared clips only"]
    cut = [run.label for run, ids in zip(runs, sets) if ids != common]
    return [line + f"figures recomputed from the {len(common)} shared clips only (--common-clips); FPS unknown for "
            f"{_listing(cut)} (measured over all of a run's clips)"]


def on_common_clips(runs: list[Run]) -> list[Run]:
    """The runs restricted to the evaluation clips they all recorded; raises NoCommonClipsError when none."""
    common = frozenset.intersection(*(run.clip_ids for run in runs))
    if not common:
        raise NoCommonClipsError(f"runs {_listing([run.label for run in runs])} share no evaluation clip: "
                                 "--common-clips leaves nothing to compare")
    return [run if run.clip_ids == common else restrict(run, common) for run in runs]


def restrict(run: Run, clip_ids: frozenset[str]) -> Run:
    """The run with only the given evaluation clips: counts, mIoU, GMACs, execution fraction, FPS per actor and the
    audit recomputed from their rows; FPS and wall time unknown (recorded for the whole run only)."""
    wanted = pa.array(sorted(clip_ids), pa.string())
    clips = run.clips.filter(pc.is_in(run.clips["clip_id"], value_set=wanted))
    figures, confusion = aggregate_clips(clips, run.confusion.num_classes)
    if run.audited:
        frames = read_table(run.path, "frames")
        figures.update(aggregate_audit(frames.filter(pc.is_in(frames["clip_id"], value_set=wanted))))
    return replace(run, figures={**run.figures, **figures, "fps": NAN, "wall_s": NAN}, clips=clips,
                   confusion=confusion)


def run_rows(runs: list[Run], baseline: Run | None = None) -> list[dict]:
    """One row per run: settings, counts and figures; with a baseline, also the differences against it."""
    show_audit = any(run.audited for run in runs)
    rows = []
    for run in runs:
        f = run.figures
        policy = f.get("policy", "")
        num_clips, failed = int(f.get("num_clips", 0)), int(f.get("num_clips_failed", 0))
        row = {
            "run": run.label, "status": run.status, "policy": policy,
            # The dense model has no blocks, and only the learned policy aims at a target.
            "block_target": _number(f.get("block_target")) if policy == "rl_semseg" else None,
            "backbone": f.get("backbone", ""),
            "block_size": f.get("block_size") if policy != "static" else None,
            "resolution": f"{f['height']}x{f['width']}" if f.get("height") else None,
            "clips_ok": num_clips - failed, "clips_failed": failed, "frames": int(f.get("num_frames", 0)),
            "mean_iou": _number(f.get("mean_iou")), "gmacs_per_frame": _number(f.get("gmacs_per_frame")),
            "fps": _number(f.get("fps")), "fps_per_actor": _number(f.get("fps_per_actor")),
            "exec_fraction": _number(f.get("exec_fraction")),
        }
        if show_audit:
            row.update({key: _number(f.get(key)) for key in AUDIT_COLUMNS})
        if baseline is not None:
            base = baseline.figures
            row["delta_miou"] = row["mean_iou"] - _number(base.get("mean_iou"))
            row["gmacs_ratio"] = _ratio(row["gmacs_per_frame"], _number(base.get("gmacs_per_frame")))
            row["fps_ratio"] = _ratio(row["fps"], _number(base.get("fps")))
        rows.append(row)
    return rows


def per_class_rows(runs: list[Run]) -> list[dict]:
    """One row per class with each run's IoU (percent) side by side, then the mIoU row."""
    ious = [run.confusion.iou() for run in runs]
    names = CLASS_NAMES if all(len(iou) == len(CLASS_NAMES) for iou in ious) else None
    num_classes = max((len(iou) for iou in ious), default=NUM_CLASSES)
    rows = []
    for c in range(num_classes):
        row = {"class": names[c] if names else str(c)}
        row.update({run.label: float(iou[c]) if c < len(iou) else NAN for run, iou in zip(runs, ious)})
        rows.append(row)
    rows.append({"class": "mIoU", **{run.label: run.confusion.mean_iou() for run in runs}})
    return rows


def clip_rows(run: Run) -> list[dict]:
    """One row per evaluation clip of a run, with the clip's own mIoU (NaN for unlabelled or failed clips)."""
    num_classes = run.confusion.num_classes
    rows = []
    for r in run.clips.to_pylist():
        confusion = r["confusion"]
        miou = ConfusionMatrix.from_flat(confusion, num_classes).mean_iou() if confusion else NAN
        rows.append({"run": run.label, "clip_id": r["clip_id"], "status": r["status"], "frames": r["num_frames"],
                     "mean_iou": miou, "exec_fraction": _number(r["exec_fraction"]),
                     "gmacs_per_frame": _number(r["gmacs_per_frame"]), "actor": r["actor"]})
    return rows


def video_rows(runs: list[Run]) -> list[dict]:
    """One row per video of each video run, from its segments' clip rows: segments ok and failed, frames,
    frame-weighted execution fraction and GMACs, decode milliseconds per frame, the actors' peak memory. A file
    that could not be read at all is a row of its own (named by the file, no frames)."""
    rows = []
    for run in runs:
        if run.figures.get("data") != "video":
            continue
        segments: dict[str, list[dict]] = {}
        for r in run.clips.to_pylist():
            segments.setdefault(r["video"] or r["clip_id"], []).append(r)
        for video, parts in segments.items():
            ok = [r for r in parts if r["num_frames"]]
            frames = sum(r["num_frames"] for r in ok)
            rows.append({
                "run": run.label, "video": video, "segments_ok": sum(r["status"] == "ok" for r in parts),
                "segments_failed": sum(r["status"] != "ok" for r in parts), "frames": frames,
                "source_fps": _number(ok[0]["source_fps"]) if ok else NAN,
                "exec_fraction": _weighted(ok, "exec_fraction"), "gmacs_per_frame": _weighted(ok, "gmacs_per_frame"),
                "decode_ms": 1000 * sum(_number(r["decode_s"]) for r in ok) / frames if frames else NAN,
                "peak_rss_mb": max((_number(r["peak_rss_mb"]) for r in ok), default=NAN),
            })
    return rows


def _weighted(rows: list[dict], key: str) -> float:
    """The frame-weighted mean of ``key`` over clip rows (NaN without frames)."""
    frames = sum(r["num_frames"] for r in rows)
    return sum(_number(r[key]) * r["num_frames"] for r in rows) / frames if frames else NAN


def worst_clips(runs: list[Run], order: str, limit: int) -> list[dict]:
    """Each run's ``limit`` worst finished clips: by lowest mIoU (``iou``) or highest execution fraction
    (``exec``, the clips that cost most); clips without the figure are left out."""
    if order not in CLIP_ORDERS:
        raise ValueError(f"clip order must be one of {CLIP_ORDERS}, got {order!r}")
    key, sign = ("mean_iou", 1.0) if order == "iou" else ("exec_fraction", -1.0)
    selected = []
    for run in runs:
        rows = [r for r in clip_rows(run) if r["status"] == "ok" and not math.isnan(r[key])]
        selected += sorted(rows, key=lambda r: (sign * r[key], r["clip_id"]))[:limit]
    return selected


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, quality) points no other point beats (cost no higher and quality no lower, one of
    them strictly), sorted by cost; points with a NaN are left out."""
    valid = sorted((i for i, (x, y) in enumerate(points) if not (math.isnan(x) or math.isnan(y))),
                   key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in valid:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def notes(runs: list[Run], failures_per_run: int = 5) -> list[str]:
    """Lines saying which runs are incomplete and which clips failed (the first few with their errors)."""
    lines = []
    for run in runs:
        if run.status == INCOMPLETE:
            lines.append(f"{run.label}: in progress or interrupted (no {SUMMARY_FILE} in {run.path}): figures "
                         f"recomputed from its {run.clips.num_rows} recorded clips; FPS unknown")
        failed = [r for r in run.clips.to_pylist() if r["status"] != "ok"]
        lines += [f"{run.label}: clip {r['clip_id']} {r['status']}: {r['error']}" for r in failed[:failures_per_run]]
        if len(failed) > failures_per_run:
            lines.append(f"{run.label}: and {len(failed) - failures_per_run} more failed clips "
                         f"(status and error columns of {run.path / 'clips'})")
    return lines


def _listing(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _names(ids: list[str]) -> str:
    shown = ", ".join(ids[:SHOWN_CLIPS])
    return shown + (f" and {len(ids) - SHOWN_CLIPS} more" if len(ids) > SHOWN_CLIPS else "")


def _config_of(path: Path) -> dict:
    return read_config(path)


def _audit(path: Path) -> dict:
    """Audit means from the frame rows (runs written before the audit existed read as never audited)."""
    return aggregate_audit(read_table(path, "frames"))


def _num_classes(clips: pa.Table) -> int:
    lengths = {n for n in pc.list_value_length(clips["confusion"]).to_pylist() if n}
    if len(lengths) > 1:
        raise ValueError(f"clips disagree on the confusion matrix size: {sorted(lengths)} counts")
    return round(math.sqrt(lengths.pop())) if lengths else NUM_CLASSES


def _number(value: object) -> float:
    return NAN if value is None else float(value)


def _ratio(value: float, reference: float) -> float:
    return value / reference if reference and not (math.isnan(value) or math.isnan(reference)) else NAN

