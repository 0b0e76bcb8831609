"""The loss curves of a training run: a CSV of every logged step and a plot with the schedule's switches marked."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

from omnimatte.io import atomic_path
from omnimatte.train.objective import LOSS_NAMES

# The loss weights that switch, logged beside the losses, and how the loss plot names them.
SCHEDULE_LABELS = {"lambda_mask": "mask term", "lambda_alpha_l1": "alpha L1"}


def write_loss_curves(history: list[dict], csv_path: Path, png_path: Path) -> None:
    """The loss terms per logged step, as CSV and as a log-scale plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with atomic_path(csv_path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["step", "seconds", *LOSS_NAMES, *SCHEDULE_LABELS, "learning_rate"])
            writer.writeheader()
            writer.writerows(history)
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
    ax.set_xlabel("step")
    ax.set_ylabel("weighted loss")
    ax.set_title("Omnimatte training losses")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
