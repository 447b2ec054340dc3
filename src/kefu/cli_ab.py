"""``kefu ab list | report [ID] [--json] | stop ID``: the A/B tests of KEFU_EXPERIMENTS (issue #13 part 2)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from kefu.cli_support import friendly_errors, say_database
from kefu.config import Settings, load_settings
from kefu.errors import ConfigError, InvalidInput
from kefu.experiments import Experiments, stop_experiment
from kefu.experiments.spec import Experiment

ab_app = typer.Typer(help="A/B tests of dialog strategies (KEFU_EXPERIMENTS).", no_args_is_help=True)


def _experiments(settings: Settings) -> Experiments:
    found = Experiments.load(settings)
    if found is None:
        raise ConfigError(
            "no experiments: set KEFU_EXPERIMENTS to a YAML file of experiments "
            "(copy docs/experiments.example.yaml)"
        )
    return found


def _find(experiments: Experiments, experiment_id: str | None) -> Experiment:
    if experiment_id is None:
        running = experiments.running()
        chosen = running or (experiments.experiments[-1] if experiments.experiments else None)
        if chosen is None:
            raise InvalidInput(
                "the experiments file lists no experiment; add one or name it: kefu ab report ID"
            )
        return chosen
    for experiment in experiments.experiments:
        if experiment.id == experiment_id:
            return experiment
    known = ", ".join(e.id for e in experiments.experiments) or "none"
    raise InvalidInput(f"no experiment {experiment_id!r} in KEFU_EXPERIMENTS (known: {known}); check the id")


@ab_app.command("list")
@friendly_errors
def ab_list() -> None:
    """The experiments, their arms and split, and which one assigns arms now."""
    experiments = _experiments(load_settings())
    running, stopped = experiments.running(), experiments.stopped()
    for e in experiments.experiments:
        status = f"stopped {stopped[e.id]}" if e.id in stopped else "running" if e is running else "waiting"
        arms = ", ".join(
            f"{a.name} {share:.0%}"
            + (f" {a.overrides | ({'route': a.route} if a.route else {})}" if a.overrides or a.route else "")
            for a, share in e.split()
        )
        typer.echo(f"{e.id}  [{status}]  metric {e.metric}  arms: {arms}")


@ab_app.command("report")
@friendly_errors
def ab_report(
    experiment_id: Annotated[
        str | None, typer.Argument(help="The experiment (default: the running one).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Per-arm numbers, the significance test against the control and the verdict."""
    from kefu.experiments.report import render, report
    from kefu.storage.engine import make_engine
    from kefu.storage.factory import settings_keyring
    from kefu.storage.migrate import migrate

    settings = load_settings()
    experiments = _experiments(settings)
    experiment = _find(experiments, experiment_id)
    say_database(settings.effective_database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    try:
        migrate(engine, keyring=settings_keyring(settings))
        result = report(engine, experiment, experiments.stopped().get(experiment.id))
    finally:
        engine.dispose()
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2) if as_json else render(result))


@ab_app.command("stop")
@friendly_errors
def ab_stop(experiment_id: Annotated[str, typer.Argument(help="The experiment to stop.")]) -> None:
    """Stop an experiment: every conversation gets its control arm from now on (unrecorded)."""
    settings = load_settings()
    experiments = _experiments(settings)
    experiment = _find(experiments, experiment_id)
    when = stop_experiment(experiments.state, experiment.id)
    typer.echo(f"stopped {experiment.id} at {when}: every conversation gets arm {experiment.control.name}")
