"""``kefu ab report``: per-arm numbers of an experiment, a significance test against the control, and
the sample still needed — a winner is named only when the data supports it.

Per arm, from the stored answers (``messages.experiment`` / ``experiment_arm``) and the ratings of
those conversations: turns, conversations, star mean and distribution (1-5), thumbs-up rate, CSAT (mean
and share of 4-5), resolution without a human (a conversation answered from the KB or a flow with no
handoff and no agent message), KB hit rate (answers of kind faq / grounded / policy), handoff rate (of
conversations), cost (sum of messages.cost) and latency p50.

Tests, each treatment arm against the control: a two-proportion z-test on a rate (thumbs-up, resolution,
CSAT 4-5), Mann-Whitney U on star ratings (scipy.stats). The sample still needed is the normal
approximation for 80 % power at α = 0.05 at the observed effect: for rates
n = (z₀.₉₇₅·√(2p̄(1−p̄)) + z₀.₈·√(p₁(1−p₁)+p₂(1−p₂)))² / (p₁−p₂)², for stars n = 2(z₀.₉₇₅+z₀.₈)²σ²/δ².
The winner: the experiment's metric (``metric:``) with p < 0.05 and both arms at that sample or more.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from scipy import stats
from sqlalchemy import select
from sqlalchemy.engine import Engine

from kefu.experiments.spec import METRICS, Experiment
from kefu.storage.models import MessageRow, RatingRow

ALPHA = 0.05
POWER = 0.8
KB_KINDS = frozenset({"faq", "grounded", "policy"})
RESOLVED_KINDS = frozenset({"faq", "grounded", "policy", "flow"})


@dataclass
class ArmNumbers:
    arm: str
    turns: int = 0
    conversations: int = 0
    stars: list[int] = field(default_factory=list)
    thumbs: list[int] = field(default_factory=list)
    csat: list[int] = field(default_factory=list)
    resolved: int = 0
    handed_off: int = 0
    kb_hits: int = 0
    cost: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def samples(self, metric: str) -> list[int]:
        """The per-unit outcomes of ``metric``: 0/1 for rates, 1-5 for stars."""
        if metric == "stars":
            return self.stars
        if metric == "thumbs_up":
            return self.thumbs
        if metric == "csat":
            return [int(s >= 4) for s in self.csat]
        return [1] * self.resolved + [0] * (self.conversations - self.resolved)

    def as_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "turns": self.turns,
            "conversations": self.conversations,
            "stars_n": len(self.stars),
            "stars_mean": _mean(self.stars),
            "stars_distribution": {str(s): self.stars.count(s) for s in range(1, 6)},
            "thumbs_n": len(self.thumbs),
            "thumbs_up_rate": _mean(self.thumbs),
            "csat_n": len(self.csat),
            "csat_mean": _mean(self.csat),
            "csat_satisfied_rate": _mean([int(s >= 4) for s in self.csat]),
            "resolution_rate": _rate(self.resolved, self.conversations),
            "handoff_rate": _rate(self.handed_off, self.conversations),
            "kb_hit_rate": _rate(self.kb_hits, self.turns),
            "cost": round(self.cost, 6),
            "latency_p50_ms": round(median(self.latencies), 1) if self.latencies else None,
        }


def arm_numbers(engine: Engine, experiment: Experiment) -> dict[str, ArmNumbers]:
    m, r = MessageRow, RatingRow
    numbers = {arm.name: ArmNumbers(arm.name) for arm in experiment.arms}
    conv_arm: dict[str, str] = {}
    kinds: dict[str, set[str]] = defaultdict(set)
    query = select(m.conversation_id, m.experiment_arm, m.answer_kind, m.cost, m.latency_ms).where(
        m.experiment == experiment.id, m.role == "assistant"
    )
    with engine.connect() as conn:
        for conversation_id, stored_arm, kind, cost, latency in conn.execute(query):
            arm = str(stored_arm or "")
            n = numbers.setdefault(arm, ArmNumbers(arm))  # an arm since removed from the file still counts
            conv_arm.setdefault(conversation_id, arm)
            n.turns += 1
            n.kb_hits += int(kind in KB_KINDS)
            n.cost += cost or 0.0
            if latency is not None:
                n.latencies.append(float(latency))
            kinds[conversation_id].add(kind or "")
        agents = (
            set(
                conn.execute(
                    select(m.conversation_id).where(m.role == "agent", m.conversation_id.in_(list(conv_arm)))
                ).scalars()
            )
            if conv_arm
            else set()
        )
        ratings = (
            conn.execute(
                select(r.conversation_id, r.kind, r.score).where(r.conversation_id.in_(list(conv_arm)))
            ).all()
            if conv_arm
            else []
        )
    for conversation_id, arm in conv_arm.items():
        n, seen = numbers[arm], kinds[conversation_id]
        n.conversations += 1
        handed = "handoff" in seen or conversation_id in agents
        n.handed_off += int(handed)
        n.resolved += int(not handed and bool(seen & RESOLVED_KINDS))
    for conversation_id, kind, score in ratings:
        n = numbers[conv_arm[conversation_id]]
        {"stars": n.stars, "thumbs": n.thumbs, "csat": n.csat}.get(kind, []).append(int(score))
    return numbers


def compare(control: list[int], treatment: list[int], metric: str) -> dict[str, Any]:
    """The test of ``treatment`` against ``control`` on ``metric`` and the sample each arm needs."""
    out: dict[str, Any] = {"metric": metric, "n_control": len(control), "n_treatment": len(treatment)}
    if len(control) < 2 or len(treatment) < 2:
        return {**out, "test": None, "p_value": None, "effect": None, "needed_per_arm": None}
    z_a, z_b = stats.norm.ppf(1 - ALPHA / 2), stats.norm.ppf(POWER)
    if metric == "stars":
        test = stats.mannwhitneyu(treatment, control, alternative="two-sided")
        p_value = float(test.pvalue)
        effect = _mean(treatment) - _mean(control)  # type: ignore[operator]
        sd = math.sqrt((_var(control) + _var(treatment)) / 2)
        needed = math.ceil(2 * (z_a + z_b) ** 2 * sd**2 / effect**2) if effect else None
        name = "Mann-Whitney U"
    else:
        p1, p2 = sum(control) / len(control), sum(treatment) / len(treatment)
        pooled = (sum(control) + sum(treatment)) / (len(control) + len(treatment))
        se = math.sqrt(pooled * (1 - pooled) * (1 / len(control) + 1 / len(treatment)))
        p_value = float(2 * stats.norm.sf(abs(p2 - p1) / se)) if se > 0 else 1.0
        effect = p2 - p1
        spread = z_a * math.sqrt(2 * pooled * (1 - pooled)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
        needed = math.ceil(spread**2 / effect**2) if effect else None
        name = "two-proportion z-test"
    return {**out, "test": name, "p_value": p_value, "effect": round(effect, 4), "needed_per_arm": needed}


def report(engine: Engine, experiment: Experiment, stopped: str | None = None) -> dict[str, Any]:
    """The experiment's report (see the module docstring); ``verdict`` names the winner or what is missing."""
    numbers = arm_numbers(engine, experiment)
    control = experiment.control.name
    comparisons = []
    for arm in experiment.arms[1:]:
        result = compare(
            numbers[control].samples(experiment.metric),
            numbers[arm.name].samples(experiment.metric),
            experiment.metric,
        )
        comparisons.append({"arm": arm.name, "against": control, **result})
    winner, verdict = decide_winner(control, comparisons)
    secondary = [  # the other metrics, for reading only: the winner is decided on ``metric`` alone
        {
            "arm": arm.name,
            "against": control,
            **compare(numbers[control].samples(m), numbers[arm.name].samples(m), m),
        }
        for arm in experiment.arms[1:]
        for m in METRICS
        if m != experiment.metric
    ]
    return {
        "experiment": experiment.id,
        "metric": experiment.metric,
        "status": f"stopped {stopped}" if stopped else "running",
        "split": {a.name: round(share, 4) for a, share in experiment.split()},
        "arms": [numbers[a].as_dict() for a in numbers],
        "comparisons": comparisons,
        "other_metrics": [c for c in secondary if c["p_value"] is not None],
        "winner": winner,
        "verdict": verdict,
    }


def decide_winner(control: str, comparisons: list[dict[str, Any]]) -> tuple[str | None, str]:
    """A winner only at p < 0.05 with the needed sample reached in both arms; else how many more."""
    better: list[dict[str, Any]] = []
    worse: list[dict[str, Any]] = []
    more, flat = 0, False
    for c in comparisons:
        p, needed, effect = c["p_value"], c["needed_per_arm"], c["effect"]
        have = min(c["n_control"], c["n_treatment"])
        if p is None:  # fewer than two samples in an arm
            more = max(more, 2 - have)
        elif needed is None:  # no observed difference at all: no sample size makes one
            flat = True
        elif p < ALPHA and have >= needed:
            (better if effect > 0 else worse).append(c)
        else:
            more = max(more, needed - have, 1)
    if better:
        best = max(better, key=lambda c: c["effect"])
        return best["arm"], (
            f"winner: {best['arm']} ({best['test']}, p = {best['p_value']:.3g}, effect {best['effect']:+.3f} "
            f"on {best['metric']} against {control}, n = {best['n_treatment']} vs {best['n_control']})"
        )
    if worse and len(worse) == len(comparisons):
        return control, f"winner: {control} (every other arm is worse at p < {ALPHA})"
    if more:
        return None, f"no winner yet: need ~{more} more per arm"
    if flat:
        return None, "no winner yet: the arms show no difference on the metric so far"
    return None, "no winner: no arm is better than the control"


def render(result: dict[str, Any]) -> str:
    """The report as text for the terminal."""
    lines = [
        f"experiment {result['experiment']} ({result['status']}), metric {result['metric']}, "
        f"split {', '.join(f'{k} {v:.0%}' for k, v in result['split'].items())}",
        f"{'arm':<14} {'turns':>6} {'convs':>6} {'stars':>6} {'1-5 distribution':<20} {'👍 rate':>7} "
        f"{'CSAT':>5} {'resolved':>8} {'KB hit':>6} {'handoff':>7} {'cost':>8} {'p50 ms':>7}",
    ]
    for a in result["arms"]:
        dist = "/".join(str(a["stars_distribution"][str(s)]) for s in range(1, 6))
        lines.append(
            f"{a['arm']:<14} {a['turns']:>6} {a['conversations']:>6} {_fmt(a['stars_mean'], '.2f'):>6} "
            f"{dist:<20} {_pct(a['thumbs_up_rate']):>7} {_fmt(a['csat_mean'], '.2f'):>5} "
            f"{_pct(a['resolution_rate']):>8} {_pct(a['kb_hit_rate']):>6} {_pct(a['handoff_rate']):>7} "
            f"{a['cost']:>8.4f} {_fmt(a['latency_p50_ms'], '.0f'):>7}"
        )
    for c in result["comparisons"]:
        p = "—" if c["p_value"] is None else f"{c['p_value']:.3g}"
        lines.append(
            f"{c['arm']} vs {c['against']}: {c['test'] or 'too few samples'}, p = {p}, effect "
            f"{_fmt(c['effect'], '+.3f')}, needed per arm {c['needed_per_arm'] or '—'} "
            f"(have {c['n_treatment']} vs {c['n_control']})"
        )
    for c in result.get("other_metrics", []):
        lines.append(
            f"  also {c['metric']}: {c['arm']} vs {c['against']} {c['test']}, p = {c['p_value']:.3g}, "
            f"effect {_fmt(c['effect'], '+.3f')} (n = {c['n_treatment']} vs {c['n_control']})"
        )
    lines.append(result["verdict"])
    return "\n".join(lines)


def _mean(values: list[int]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _var(values: list[int]) -> float:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"
