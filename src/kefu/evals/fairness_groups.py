"""Group metrics for ``kefu report fairness``: one Fairlearn ``MetricFrame`` per measure.

``compare_groups`` takes per-row outcomes and the group of each row, and returns a
``GroupTable``: each measure's value per group (``MetricFrame.by_group``), its largest gap
between two groups (``.difference()``) and smallest ratio (``.ratio()``), and ``n`` per group.
A measure undefined for a group (no rows of the kind it counts) is NaN and printed as ``-``;
a gap is never turned into a failure: the report states figures, it does not judge them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kefu.errors import ConfigError

Metric = Callable[[Any, Any], float]


def mean_of_pred(y_true: Any, y_pred: Any) -> float:
    """Mean of ``y_pred`` (a rate when it is 0/1, a mean score otherwise); NaN when empty."""
    values = np.asarray(y_pred, dtype=float)
    return float(values.mean()) if values.size else math.nan


def rate_where(truth: bool) -> Metric:
    """Share of rows with ``y_pred`` true among rows whose ``y_true`` is ``truth``.

    ``rate_where(False)`` on (should refuse, refused) is the false refusal rate,
    ``rate_where(True)`` the refusal recall.
    """

    def metric(y_true: Any, y_pred: Any) -> float:
        mask = np.asarray(y_true, dtype=bool) == truth
        chosen = np.asarray(y_pred, dtype=float)[mask]
        return float(chosen.mean()) if chosen.size else math.nan

    return metric


def count_where(truth: bool | None) -> Metric:
    """Rows counted by ``rate_where(truth)`` (all rows for None)."""

    def metric(y_true: Any, y_pred: Any) -> float:
        labels = np.asarray(y_true, dtype=bool)
        return float(labels.size if truth is None else int((labels == truth).sum()))

    return metric


@dataclass(frozen=True)
class Measure:
    """One figure to compare: ``metric(y_true, y_pred)`` over each group's rows.

    ``groups``, ``y_true`` and ``y_pred`` are parallel, one item per row (each measure has its own rows).
    ``counted`` selects the rows that ``n`` reports (None: all rows of the group).
    ``percent`` prints the figure as a percentage (rates), else with three decimals (means).
    """

    name: str
    groups: Sequence[str]
    y_true: Sequence[Any]
    y_pred: Sequence[Any]
    metric: Metric = mean_of_pred
    counted: bool | None = None
    percent: bool = True


@dataclass
class MeasureResult:
    name: str
    by_group: dict[str, float]
    n: dict[str, int]
    difference: float
    ratio: float
    percent: bool = True

    def cell(self, group: str) -> str:
        """``value n=…`` for one group (``- n=0`` when the measure has no rows there)."""
        return f"{self.format_value(self.by_group.get(group, math.nan))} n={self.n.get(group, 0)}"

    def format_value(self, value: float) -> str:
        if math.isnan(value):
            return "-"
        return f"{value:.1%}" if self.percent else f"{value:+.3f}"


@dataclass
class GroupTable:
    title: str
    groups: list[str]
    measures: list[MeasureResult] = field(default_factory=list)
    note: str = ""

    def result(self, name: str) -> MeasureResult:
        return next(m for m in self.measures if m.name == name)

    def format_lines(self) -> list[str]:
        lines = [self.title] + ([f"  ({self.note})"] if self.note else [])
        width = max([len(g) for g in self.groups] + [10])
        head = f"  {'measure':<26}" + "".join(f"{g:>{width + 9}}" for g in self.groups)
        if len(self.groups) <= 3:
            return [*lines, head + f"{'max diff':>10}{'ratio':>7}", *map(self._wide_line, self.measures)]
        for m in self.measures:
            cells = [f"{g} {m.cell(g)}" for g in self.groups]
            if len({m.cell(g) for g in self.groups}) == 1:  # identical everywhere: one line says it
                lines.append(f"  {m.name}: all {len(self.groups)} groups {m.cell(self.groups[0])}")
                continue
            lines.append(f"  {m.name}: max diff {_diff(m)}, ratio {_ratio(m)}")
            lines += ["    " + "  ".join(cells[i : i + 4]) for i in range(0, len(cells), 4)]
        return lines

    def _wide_line(self, m: MeasureResult) -> str:
        width = max([len(g) for g in self.groups] + [10])
        cells = "".join(f"{m.cell(g):>{width + 9}}" for g in self.groups)
        return f"  {m.name:<26}{cells}{_diff(m):>10}{_ratio(m):>7}"


def _diff(m: MeasureResult) -> str:
    if math.isnan(m.difference):
        return "-"
    return f"{m.difference * 100:.1f}pt" if m.percent else f"{m.difference:.3f}"


def _ratio(m: MeasureResult) -> str:
    return "-" if math.isnan(m.ratio) else f"{m.ratio:.2f}"


def compare_groups(title: str, measures: list[Measure], note: str = "") -> GroupTable:
    """Each measure per group, with Fairlearn's between-group difference and ratio."""
    try:
        from fairlearn.metrics import MetricFrame
    except ImportError as exc:
        raise ConfigError(
            f"`kefu report fairness` needs Fairlearn ({exc}); install it with `pip install fairlearn==0.15.0`."
        ) from exc

    groups = sorted({str(g) for m in measures for g in m.groups})
    table = GroupTable(title, groups, note=note)
    for measure in measures:
        features = np.asarray([str(g) for g in measure.groups], dtype=object)
        with warnings.catch_warnings():  # 0/0 ratios and empty groups are NaN, not errors
            warnings.simplefilter("ignore", RuntimeWarning)
            frame = MetricFrame(
                metrics={"value": measure.metric, "n": count_where(measure.counted)},
                y_true=np.asarray(measure.y_true),
                y_pred=np.asarray(measure.y_pred),
                sensitive_features=features,
            )
            by_group = frame.by_group
            difference, ratio = frame.difference()["value"], frame.ratio()["value"]
        if by_group["value"].notna().sum() < 2:  # nothing to compare: say so rather than "0 gap"
            difference = ratio = math.nan
        table.measures.append(
            MeasureResult(
                measure.name,
                {str(g): float(v) for g, v in by_group["value"].items()},
                {str(g): int(v) for g, v in by_group["n"].items()},
                float(difference),
                float(ratio) if measure.percent else math.nan,  # a ratio of signed means says nothing
                measure.percent,
            )
        )
    return table
