"""A/B tests of dialog strategies (issue #13 part 2).

    experiments = Experiments.load(settings)         # KEFU_EXPERIMENTS (a YAML file), or None
    arm = experiments.assign(conversation_id)        # sticky: hash(experiment id, conversation id)
    knowledge, answers = experiments.stages(arm, base_knowledge, base_cache)

One experiment runs at a time: the first in the file that was not stopped (``kefu ab stop ID``, kept in
``<data_dir>/experiments-state.json``). A conversation's arm is the first whose cumulative share of the
split passes a uniform number drawn from sha256(experiment id + conversation id) — the same on every
replica and every turn. A stopped experiment sends everyone to its control arm, unrecorded.

An arm changes the knowledge stage only: ``Assistant`` asks it for a ``KnowledgeStage`` (and an answer
cache keyed by the arm) built on ``Settings.model_copy(update=overrides)``; flows, the guards, the
compliance notices and the handoff desk run before or after that stage and never see the arm.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kefu.config import Settings
from kefu.experiments.spec import Arm, Experiment, ExperimentError, load_experiments
from kefu.experiments.stage import ArmKnowledgeStage, ThresholdRetriever

if TYPE_CHECKING:
    from kefu.dialog.cache import CacheStage
    from kefu.dialog.knowledge import KnowledgeStage

__all__ = ["Arm", "Assignment", "Experiment", "ExperimentError", "Experiments", "bucket", "state_path"]

log = logging.getLogger("kefu.experiments")


@dataclass(frozen=True)
class Assignment:
    experiment: str
    arm: Arm
    recorded: bool = True  # False once the experiment is stopped: the control arm, not counted

    @property
    def key(self) -> str:
        return f"{self.experiment}/{self.arm.name}"


def bucket(experiment_id: str, conversation_id: str) -> float:
    """A uniform number in [0, 1) fixed by the experiment and the conversation."""
    digest = hashlib.sha256(f"{experiment_id}\0{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose_arm(experiment: Experiment, conversation_id: str) -> Arm:
    u, total = bucket(experiment.id, conversation_id), 0.0
    for arm, share in experiment.split():
        total += share
        if u < total:
            return arm
    return experiment.arms[-1]  # rounding: the last share ends at 1.0


def state_path(settings: Settings) -> Path:
    return settings.data_dir / "experiments-state.json"


def read_stopped(path: Path) -> dict[str, str]:
    """Stopped experiment ids → when (ISO time); {} without a state file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning(
            "cannot read %s (%s); treating every experiment as running — fix or delete the file", path, exc
        )
        return {}
    stopped = data.get("stopped", {}) if isinstance(data, dict) else {}
    return {str(k): str(v) for k, v in stopped.items()} if isinstance(stopped, dict) else {}


def stop_experiment(path: Path, experiment_id: str) -> str:
    """Mark ``experiment_id`` stopped (idempotent); returns when it was stopped."""
    stopped = read_stopped(path)
    when = stopped.setdefault(experiment_id, datetime.now(UTC).isoformat(timespec="seconds"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"stopped": stopped}, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return when


@dataclass
class Experiments:
    experiments: list[Experiment]
    state: Path  # the stopped experiments (``kefu ab stop``), re-read when it changes
    _stopped: dict[str, str] = field(default_factory=dict, repr=False)
    _seen: float | None = field(default=None, repr=False)
    _stages: dict[str, tuple[KnowledgeStage, CacheStage | None]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, settings: Settings) -> Experiments | None:
        """The experiments of KEFU_EXPERIMENTS, or None when unset."""
        if settings.experiments is None:
            return None
        return cls(load_experiments(settings.experiments), state_path(settings))

    def stopped(self) -> dict[str, str]:
        try:
            mtime: float | None = self.state.stat().st_mtime
        except OSError:
            mtime = None
        if mtime != self._seen:
            self._stopped, self._seen = read_stopped(self.state), mtime
        return self._stopped

    def running(self) -> Experiment | None:
        """The experiment that assigns arms: the first one not stopped."""
        stopped = self.stopped()
        return next((e for e in self.experiments if e.id not in stopped), None)

    def assign(self, conversation_id: str) -> Assignment | None:
        """This conversation's arm of the running experiment (a stopped one: its control, unrecorded)."""
        running = self.running()
        if running is not None:
            return Assignment(running.id, choose_arm(running, conversation_id))
        last = self.experiments[-1] if self.experiments else None
        return Assignment(last.id, last.control, recorded=False) if last is not None else None

    def stages(
        self, assignment: Assignment, knowledge: KnowledgeStage, answers: CacheStage | None
    ) -> tuple[KnowledgeStage, CacheStage | None]:
        """The knowledge stage and answer cache of this arm, made once from the base ones."""
        found = self._stages.get(assignment.key)
        if found is not None:
            return found
        arm = assignment.arm
        settings = knowledge.settings.model_copy(update=arm.overrides)
        kb = knowledge.kb
        if kb is not None and {"faq_direct_threshold", "grounded_threshold"} & set(arm.overrides):
            kb = ThresholdRetriever(kb, settings.faq_direct_threshold, settings.grounded_threshold)
        stage = ArmKnowledgeStage(settings, kb, knowledge.model, knowledge.embedder, knowledge.flows)
        stage.forced_route = arm.route
        router = stage.router()
        if arm.route and router is not None and arm.route not in router.matrix.routes:
            log.warning(
                "experiment %s arm %s names route %r, which KEFU_MODELS does not define (routes: %s); "
                "its answers take the faq route's model — fix the arm's route or the model matrix",
                assignment.experiment,
                arm.name,
                arm.route,
                ", ".join(router.matrix.routes) or "none",
            )
        cache = None
        if answers is not None:  # the same store; the key carries the arm, so arms never share answers
            cache = replace(answers, settings=settings, kb=kb, arm=assignment.key, _model="")
        self._stages[assignment.key] = (stage, cache)
        return stage, cache
