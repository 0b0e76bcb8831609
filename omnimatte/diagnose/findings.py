"""What a check reports: findings, each a measured figure against its thresholds, with a verdict and a message.

A check (one module per family in this package) measures one or more figures of the clip and
grades each against two thresholds from the config's `diagnose:` section: at or past `warn`
the verdict is warn, at or past `fail` it is fail. A figure that is better when larger
(an agreement, say) grades downwards (`higher_is_better`). The message says what the figure
means for the layers and what to do; the check's verdict is its worst finding's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

OK, WARN, FAIL = "ok", "warn", "fail"
VERDICTS = (OK, WARN, FAIL)


def worst(verdicts: list[str]) -> str:
    """The worst of some verdicts (ok when there are none)."""
    return max(verdicts, key=VERDICTS.index, default=OK)


def grade(figure: float, warn: float, fail: float, higher_is_better: bool = False) -> str:
    """ok, warn or fail for `figure` against its thresholds (a figure that is not a number grades ok)."""
    if figure is None or not np.isfinite(figure):
        return OK
    if higher_is_better:
        return FAIL if figure <= fail else WARN if figure <= warn else OK
    return FAIL if figure >= fail else WARN if figure >= warn else OK


@dataclass
class Finding:
    """One measured figure of a check: its name, value and unit, the thresholds, the verdict and what it means.

    `message` is said whatever the verdict (what was measured); `advice` only when it is not ok (what it does
    to the layers and what to do). `frames` lists the frames where it shows most, `subject` the object or
    layer it concerns (None: the clip).
    """

    check: str
    name: str
    figure: float
    unit: str
    warn: float
    fail: float
    message: str
    advice: str
    higher_is_better: bool = False
    frames: list[int] = field(default_factory=list)
    subject: str | None = None

    @property
    def verdict(self) -> str:
        return grade(self.figure, self.warn, self.fail, self.higher_is_better)

    @property
    def text(self) -> str:
        """The message, and the advice when the verdict is not ok."""
        return self.message if self.verdict == OK else f"{self.message} {self.advice}"

    def as_dict(self) -> dict:
        figure = None if self.figure is None or not np.isfinite(self.figure) else round(float(self.figure), 5)
        return {"name": self.name, "subject": self.subject, "figure": figure, "unit": self.unit,
                "warn": self.warn, "fail": self.fail, "higher_is_better": self.higher_is_better,
                "verdict": self.verdict, "message": self.text, "frames": [int(t) for t in self.frames]}


@dataclass
class CheckResult:
    """A check's findings, its per-frame series (name -> one value per frame) for the plots, and its map:
    per frame where it flags the clip, (T, H, W) bool, or None for checks without one."""

    check: str
    title: str
    findings: list[Finding]
    series: dict[str, np.ndarray] = field(default_factory=dict)
    flagged: np.ndarray | None = None

    @property
    def verdict(self) -> str:
        return worst([finding.verdict for finding in self.findings])

    @property
    def worst_finding(self) -> Finding | None:
        graded = [f for f in self.findings if f.verdict != OK]
        return max(graded, key=lambda f: VERDICTS.index(f.verdict)) if graded else None

    def as_dict(self) -> dict:
        result = {"title": self.title, "verdict": self.verdict,
                  "findings": [finding.as_dict() for finding in self.findings],
                  "per_frame": {name: [round(float(v), 5) for v in values] for name, values in self.series.items()}}
        return result


def worst_frames(values: np.ndarray, count: int = 3) -> list[int]:
    """The frames where a per-frame figure is largest (at most `count`, only those above zero)."""
    order = np.argsort(-np.nan_to_num(np.asarray(values, float), nan=-np.inf), kind="stable")
    return [int(t) for t in order[:count] if np.isfinite(values[t]) and values[t] > 0]


def percent(share: float) -> str:
    return f"{100 * share:.1f}%"
