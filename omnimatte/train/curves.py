"""The loss curves of a training run: a CSV of every logged step, and a plot with the schedule's switches marked and,
below it, what each of the stopping rule's checks measured against its tolerances."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

from omnimatte.io import atomic_path
from omnimatte.train.objective import LOSS_NAMES

# The loss weights that switch, logged beside the losses, and how the loss plot names them.
SCHEDULE_LABELS = {"lambda_mask": "mask term", "lambda_alpha_l1": "alpha L1"}


def write_loss_curves(history: list[dict], csv_path: Path, png_path: Path, checks: list[dict] | None = None,
                      alpha_tolerance: float | None = None, reconstruction_tolerance: float | None = None) -> None:
    """The loss terms per logged step, as CSV and as a log-scale plot; with `checks` (the stopping rule's, each with
    step, alpha_change, reconstruction_change and within, and layer_alpha_change by layer name), a second panel of
    their changes (with several layers, each layer's alpha change too), the tolerances dashed, and the checks and the
    last step marked on both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with atomic_path(csv_path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["step", "seconds", *LOSS_NAMES, *SCHEDULE_LABELS, "learning_rate"])
            writer.writeheader()
            writer.writerows(history)
    checks = checks or []
    if checks:
        fig, (ax, check_ax) = plt.subplots(2, 1, figsize=(8, 7), dpi=100, sharex=True,
                                           gridspec_kw={"height_ratios": [3, 2]})
    else:
        fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    steps = [row["step"] for row in history]
    for name in LOSS_NAMES:
        values = [max(row[name], 1e-8) for row in history]
        ax.plot(steps, values, label=name, linewidth=2.0 if name == "total" else 1.2)
    for name, text in SCHEDULE_LABELS.items():
        for before, after in itertools.pairwise(history):
            if after[name] != before[name]:
                change = "off" if after[name] == 0 else f"x{after[name] / before[name]:.2g}"
                ax.axvline(after["step"], color="grey", linestyle=":", linewidth=1)
                ax.annotate(f"{text} {change}", (after["step"], 1), xycoords=("data", "axes fraction"),
                            rotation=90, va="top", ha="right", fontsize=7, color="grey")
    rates = ax.twinx()
    rates.plot(steps, [row["learning_rate"] for row in history], color="black", linestyle="--", linewidth=0.8)
    rates.set_ylabel("learning rate (dashed)")
    rates.set_ylim(bottom=0)
    ax.set_yscale("log")
    ax.set_ylabel("weighted loss")
    ax.set_title("Omnimatte training losses")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    if checks:
        _draw_checks(ax, check_ax, checks, alpha_tolerance, reconstruction_tolerance)
        check_ax.set_xlabel("step")
    else:
        ax.set_xlabel("step")
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _draw_checks(loss_ax, ax, checks: list[dict], alpha_tolerance: float | None,
                 reconstruction_tolerance: float | None) -> None:
    """The checks as ticks under the losses, and their changes (filled: within both tolerances) in their own panel."""
    steps = [check["step"] for check in checks]
    loss_ax.plot(steps, [0.0] * len(steps), linestyle="none", marker="|", markersize=8, color="tab:purple",
                 transform=loss_ax.get_xaxis_transform(), clip_on=False)
    for key, label, colour, tolerance in (("alpha_change", "alpha changed (share of the layer's)", "tab:purple",
                                           alpha_tolerance),
                                          ("reconstruction_change", "reconstruction changed (0..1)", "tab:olive",
                                           reconstruction_tolerance)):
        values = [max(check[key], 1e-8) for check in checks]
        ax.plot(steps, values, color=colour, linewidth=1, label=label)
        ax.scatter(steps, values, s=14, color=colour, zorder=3,
                   facecolors=[colour if check["within"] else "white" for check in checks])
        if tolerance is not None:
            ax.axhline(max(tolerance, 1e-8), color=colour, linestyle="--", linewidth=0.8)
    layers = list(checks[-1].get("layer_alpha_change", {}))
    if len(layers) > 1:  # which layer is still moving: each one's change, thin, under the largest
        for name, style in zip(layers, itertools.cycle((":", "-.", (0, (1, 3)), (0, (5, 2, 1, 2))))):
            values = [(check["step"], max(check["layer_alpha_change"][name], 1e-8)) for check in checks
                      if name in check.get("layer_alpha_change", {})]
            ax.plot(*zip(*values), color="tab:purple", linestyle=style, linewidth=0.8, alpha=0.8,
                    label=f"  {name}'s layer")
    for axis in (loss_ax, ax):
        axis.axvline(steps[-1], color="tab:purple", linewidth=1)
    ax.annotate("stopped", (steps[-1], 0.02), xycoords=("data", "axes fraction"), rotation=90, va="bottom",
                ha="right", fontsize=7, color="tab:purple")
    ax.set_yscale("log")
    ax.set_ylabel("change since the last check")
    ax.set_title("stopping rule: checks (filled: within the tolerances, dashed)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
