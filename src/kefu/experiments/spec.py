"""Experiments as data: a YAML file (``KEFU_EXPERIMENTS``) of A/B tests of dialog strategies.

    experiments:
      - id: answer-style                 # [a-z0-9._-], at most 64 characters; recorded on every answer
        metric: thumbs_up                # what names the winner: thumbs_up | stars | csat | resolution
        arms:                            # two or more; the first is the control
          - name: control
            weight: 50                   # the traffic split: weights, normalised (50/50, 1/1, 90/10 …)
          - name: generate
            weight: 50
            answer_mode: generate        # overrides of the knowledge stage only (ARM_SETTINGS)

An arm overrides only how the knowledge stage answers (``ARM_SETTINGS``): flows, guards, compliance
notices and handoffs never see an arm. A mistake names the file, the experiment, the field and the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import TypeAdapter, ValidationError

from kefu.config import Settings
from kefu.errors import ConfigError

# the knowledge stage's settings an arm may override (YAML key = the Settings field / KEFU_* name)
ARM_SETTINGS = (
    "answer_mode",  # the answer style: extractive / rephrase / generate / auto
    "retrieval_top_k",
    "faq_direct_threshold",  # stricter only: an FAQ answered verbatim below it becomes grounded
    "grounded_threshold",
    "llm_temperature",
    "llm_max_tokens",
    "system_prompt",  # a prompt version: the grounded answer's instructions ({shop}; sources appended)
)
ARM_KEYS = ("name", "weight", "route", *ARM_SETTINGS)  # "route": the model route every answer uses
METRICS = ("thumbs_up", "stars", "csat", "resolution")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class ExperimentError(ConfigError):
    """A wrong experiments file: the message names the file, the experiment, the field and the fix."""


@dataclass(frozen=True)
class Arm:
    name: str
    weight: float
    overrides: dict[str, Any] = field(default_factory=dict)  # Settings fields of the knowledge stage
    route: str = ""  # a model route (KEFU_MODELS) that answers every grounded question of this arm


@dataclass(frozen=True)
class Experiment:
    id: str
    arms: tuple[Arm, ...]
    metric: str = "thumbs_up"
    description: str = ""

    @property
    def control(self) -> Arm:
        return self.arms[0]

    def split(self) -> list[tuple[Arm, float]]:
        """Each arm with its share of the traffic (the weights normalised), in order."""
        total = sum(a.weight for a in self.arms)
        return [(a, a.weight / total) for a in self.arms]


def load_experiments(path: Path) -> list[Experiment]:
    """The experiments in ``path``; ``ExperimentError`` naming the file, field and fix when wrong."""
    where = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ExperimentError(
            f"{where}: cannot read the experiments file ({exc}); fix KEFU_EXPERIMENTS"
        ) from None
    except yaml.YAMLError as exc:
        raise ExperimentError(f"{where}: not valid YAML ({exc}); fix the syntax at the line named") from None
    return parse_experiments(data, where)


def parse_experiments(data: object, where: str = "experiments") -> list[Experiment]:
    if not isinstance(data, dict) or not isinstance(data.get("experiments"), list):
        raise ExperimentError(
            f"{where}: expected a mapping with a list `experiments:` (see docs/experiments.example.yaml)"
        )
    found: list[Experiment] = []
    for n, item in enumerate(data["experiments"], start=1):
        experiment = _experiment(item, f"{where}: experiments[{n}]")
        if any(e.id == experiment.id for e in found):
            raise ExperimentError(
                f"{where}: experiment id {experiment.id!r} appears twice; give each a new id"
            )
        found.append(experiment)
    return found


def _experiment(item: object, where: str) -> Experiment:
    if not isinstance(item, dict):
        raise ExperimentError(f"{where}: expected a mapping with id, arms (and metric, description)")
    unknown = sorted(set(item) - {"id", "arms", "metric", "description"})
    if unknown:
        raise ExperimentError(
            f"{where}: unknown field {unknown[0]!r}; allowed: id, arms, metric, description"
        )
    ident = item.get("id")
    if not isinstance(ident, str) or not _ID.match(ident):
        raise ExperimentError(
            f"{where}.id: {ident!r} is not a valid id; use lower-case letters, digits, '.', '_' or '-' "
            "(at most 64 characters), e.g. answer-style-2026-12"
        )
    where = f"{where} ({ident})"
    metric = item.get("metric", "thumbs_up")
    if metric not in METRICS:
        raise ExperimentError(f"{where}.metric: {metric!r} is not one of {', '.join(METRICS)}")
    arms = item.get("arms")
    if not isinstance(arms, list) or len(arms) < 2:
        raise ExperimentError(
            f"{where}.arms: an experiment needs a list of two or more arms (the first is the control)"
        )
    parsed = [_arm(arm, f"{where}.arms[{n}]") for n, arm in enumerate(arms, start=1)]
    names = [a.name for a in parsed]
    if len(set(names)) != len(names):
        raise ExperimentError(
            f"{where}.arms: two arms are named the same ({names}); name each arm differently"
        )
    return Experiment(ident, tuple(parsed), str(metric), str(item.get("description", "")))


def _arm(item: object, where: str) -> Arm:
    if not isinstance(item, dict):
        raise ExperimentError(f"{where}: expected a mapping with name, weight and the overrides")
    unknown = sorted(set(item) - set(ARM_KEYS))
    if unknown:
        raise ExperimentError(
            f"{where}: {unknown[0]!r} cannot be set by an arm; an arm may set {', '.join(ARM_KEYS)} "
            "(flows, guards and compliance are never part of an experiment)"
        )
    name = item.get("name")
    if not isinstance(name, str) or not _ID.match(name):
        raise ExperimentError(
            f"{where}.name: {name!r} is not a valid arm name; use e.g. control, generate, top-k-6"
        )
    weight = item.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        raise ExperimentError(
            f"{where}.weight: {weight!r} must be a positive number (its share of the traffic)"
        )
    route = item.get("route", "")
    if not isinstance(route, str):
        raise ExperimentError(f"{where}.route: {route!r} must be a route name of KEFU_MODELS, e.g. complex")
    overrides: dict[str, Any] = {}
    for key in ARM_SETTINGS:
        if key in item:
            overrides[key] = _setting(key, item[key], f"{where}.{key}")
    grounded = overrides.get("grounded_threshold")
    faq = overrides.get("faq_direct_threshold")
    if grounded is not None and faq is not None and grounded > faq:
        raise ExperimentError(
            f"{where}: grounded_threshold {grounded} exceeds faq_direct_threshold {faq}; lower it"
        )
    return Arm(name, float(weight), overrides, route)


def _setting(key: str, value: object, where: str) -> Any:
    """``value`` checked as Settings checks KEFU_<KEY> (type, range, choices)."""
    info = Settings.model_fields[key]
    kind: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    adapter: TypeAdapter[Any] = TypeAdapter(kind)
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        raise ExperimentError(
            f"{where}: {value!r} is not valid ({problem}); use a value KEFU_{key.upper()} accepts"
        ) from None
