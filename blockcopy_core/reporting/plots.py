"""Plots comparing evaluation runs: accuracy against compute with the Pareto front, speed, per-clip spread.

matplotlib is an optional dependency (``pip install -e ".[plot]"``); without it the functions raise
``PlotLibraryMissing`` with that instruction. Figures are drawn without pyplot, so no display is needed.
"""

from __future__ import annotations

import math
import os

from .analysis import INCOMPLETE, Run, clip_rows, pareto_front

INSTALL_HINT = 'plots need matplotlib, the "plot" extra: pip install -e ".[plot]"'


class PlotLibraryMissing(ImportError):
    """matplotlib is not installed."""


def _figure(width: float, height: float):
    """A figure drawn by the Agg canvas (no display needed)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotLibraryMissing(INSTALL_HINT) from exc
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_runs(runs: list[Run], path: str | os.PathLike) -> None:
    """Left: mIoU against GMACs per frame, one labelled point per run, the Pareto front dashed (incomplete runs
    hollow). Right: FPS per run (whole job) and FPS per actor (model time only)."""
    fig = _figure(13, max(4.5, 0.45 * len(runs) + 2))
    tradeoff, speed = fig.subplots(1, 2, width_ratios=(3, 2))
    points = [(float(r.figures.get("gmacs_per_frame", math.nan)), float(r.figures.get("mean_iou", math.nan)))
              for r in runs]
    colors = [f"C{i % 10}" for i in range(len(runs))]
    for run, (x, y), color in zip(runs, points, colors):
        hollow = run.status == INCOMPLETE
        tradeoff.scatter([x], [y], s=70, color=color, facecolors="none" if hollow else color, linewidths=2, zorder=3)
    front = pareto_front(points)
    if front:
        # A run on the front is ringed; between them the front is the staircase of the best mIoU so far.
        xs, ys = [points[i][0] for i in front], [points[i][1] for i in front]
        tradeoff.step(xs, ys, "--", where="post", color="0.4", zorder=2)
        tradeoff.scatter(xs, ys, s=220, facecolors="none", edgecolors="0.2", linewidths=1, zorder=2,
                         label="Pareto front (no run cheaper and better)")
        tradeoff.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=9, frameon=False)
    tradeoff.set(xlabel="GMACs per frame (lower is cheaper)", ylabel="mIoU (%)",
                 title="Accuracy against compute")
    tradeoff.grid(alpha=0.3)
    tradeoff.margins(0.15)
    _label_points(fig, tradeoff, points, [run.label + (" (incomplete)" if run.status == INCOMPLETE else "")
                                          for run in runs])

    labels = [run.label for run in runs]
    rows = range(len(runs))
    fps = [float(r.figures.get("fps", math.nan)) for r in runs]
    per_actor = [float(r.figures.get("fps_per_actor", math.nan)) for r in runs]
    speed.barh([i - 0.2 for i in rows], [0 if math.isnan(v) else v for v in fps], height=0.4, color=colors,
               label="FPS (job: frames / wall time)")
    speed.barh([i + 0.2 for i in rows], [0 if math.isnan(v) else v for v in per_actor], height=0.4,
               color=colors, alpha=0.4, label="FPS per actor (model time)")
    for i, (value, actor_value) in enumerate(zip(fps, per_actor)):
        speed.annotate("unknown" if math.isnan(value) else f"{value:.2f}", (0 if math.isnan(value) else value,
                       i - 0.2), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        if not math.isnan(actor_value):
            speed.annotate(f"{actor_value:.2f}", (actor_value, i + 0.2), xytext=(3, 0), textcoords="offset points",
                           va="center", fontsize=8)
    speed.set_yticks(list(rows), labels)
    speed.invert_yaxis()
    speed.set(xlabel="frames per second", title="Speed")
    speed.margins(x=0.2)
    speed.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2, fontsize=8, frameon=False)
    speed.grid(axis="x", alpha=0.3)
    fig.savefig(path, dpi=120)


def _label_points(fig, ax, points: list[tuple[float, float]], labels: list[str]) -> None:
    """Write each point's label beside it, at the first of a few offsets where it overlaps no label placed yet."""
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()  # settles the layout, so label boxes are measured where they will be drawn
    offsets = [(6, 6, "left", "bottom"), (6, -6, "left", "top"), (-6, 6, "right", "bottom"),
               (-6, -6, "right", "top"), (6, 20, "left", "bottom"), (6, -20, "left", "top")]
    placed = []
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    for i in order:
        if math.isnan(points[i][0]) or math.isnan(points[i][1]):
            continue
        for dx, dy, ha, va in offsets:
            text = ax.annotate(labels[i], points[i], xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                               fontsize=9)
            box = text.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            text.remove()
        else:  # every place is taken: keep the first one
            text = ax.annotate(labels[i], points[i], xytext=offsets[0][:2], textcoords="offset points", fontsize=9)
            box = text.get_window_extent(renderer)
        placed.append(box)


def plot_clips(runs: list[Run], path: str | os.PathLike) -> None:
    """Per-clip execution fraction and per-clip mIoU of every run: a box per run with the clips as points."""
    fig = _figure(12, max(3.5, 0.5 * len(runs) + 2))
    axes = fig.subplots(1, 2, sharey=True)
    clips = [[r for r in clip_rows(run) if r["status"] == "ok"] for run in runs]
    for ax, key, title, xlabel in ((axes[0], "exec_fraction", "Execution fraction per clip",
                                    "fraction of blocks executed (frame mean)"),
                                   (axes[1], "mean_iou", "mIoU per clip", "mIoU (%)")):
        values = [[r[key] for r in rows if not math.isnan(r[key])] for rows in clips]
        positions = [i for i, v in enumerate(values) if v]
        if positions:
            ax.boxplot([values[i] for i in positions], positions=positions, orientation="horizontal",
                       widths=0.5, showfliers=False, medianprops={"color": "black"})
        for i, run_values in enumerate(values):
            # Points spread vertically within the box so that equal values stay visible.
            offsets = [0.25 * ((k * 0.618) % 1 - 0.5) for k in range(len(run_values))]
            ax.scatter(run_values, [i + o for o in offsets], s=14, color=f"C{i % 10}", alpha=0.7, zorder=3)
            if not run_values:
                ax.annotate("no clips with this figure", (0.5, i), xycoords=("axes fraction", "data"),
                            ha="center", va="center", fontsize=8, color="0.4")
        ax.set(title=title, xlabel=xlabel)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_xlim(-0.05, 1.05)
    axes[0].set_yticks(range(len(runs)), [f"{run.label} ({len(rows)} clips)" for run, rows in zip(runs, clips)])
    axes[0].set_ylim(len(runs) - 0.5, -0.5)
    fig.savefig(path, dpi=120)
