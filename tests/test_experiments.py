"""Experiments as data (kefu.experiments): the file's mistakes name the field and the fix; the arm of a
conversation is sticky and follows the split; the verdict names a winner only when the data supports it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from kefu.config import Settings
from kefu.dialog.knowledge import KnowledgeStage
from kefu.experiments import Assignment, Experiments, choose_arm, stop_experiment
from kefu.experiments.report import compare, decide_winner
from kefu.experiments.spec import ExperimentError, load_experiments, parse_experiments
from kefu.llm.testing import ScriptedModel


def spec(*arms: dict[str, object], **extra: object) -> dict[str, object]:
    return {"experiments": [{"id": "style", "arms": list(arms), **extra}]}


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({"experiment": []}, ["list `experiments:`"]),
        (spec({"name": "control"}), ["arms", "two or more arms"]),
        (spec({"name": "a"}, {"name": "a"}), ["arms", "named the same"]),
        (
            spec({"name": "a"}, {"name": "b", "retrieval_top_k": 99}),
            ["arms[2].retrieval_top_k", "KEFU_RETRIEVAL_TOP_K"],
        ),
        (spec({"name": "a"}, {"name": "b", "answer_mode": "poem"}), ["arms[2].answer_mode", "'generate'"]),
        (
            spec({"name": "a"}, {"name": "b", "compliance_rules": "x"}),
            ["'compliance_rules' cannot be set by an arm"],
        ),
        (spec({"name": "a"}, {"name": "b", "weight": 0}), ["arms[2].weight", "positive number"]),
        (spec({"name": "a"}, {"name": "b"}, metric="clicks"), ["metric", "thumbs_up"]),
        (
            spec({"name": "a"}, {"name": "b", "grounded_threshold": 0.95, "faq_direct_threshold": 0.9}),
            ["grounded_threshold 0.95 exceeds faq_direct_threshold 0.9"],
        ),
        ({"experiments": [{"id": "Bad Id", "arms": []}]}, ["experiments[1].id", "lower-case"]),
    ],
)
def test_a_wrong_experiment_names_the_field_and_the_fix(data: dict[str, object], names: list[str]) -> None:
    with pytest.raises(ExperimentError) as raised:
        parse_experiments(data, "ab.yaml")
    message = str(raised.value)
    assert message.startswith("ab.yaml")
    for name in names:
        assert name in message, message


def test_a_bad_yaml_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ab.yaml"
    path.write_text("experiments: [\n", encoding="utf-8")
    with pytest.raises(ExperimentError, match=r"ab\.yaml: not valid YAML"):
        load_experiments(path)


def test_assignment_is_sticky_and_follows_the_split_over_2000_conversations(tmp_path: Path) -> None:
    (experiment,) = parse_experiments(
        spec({"name": "control", "weight": 70}, {"name": "b", "weight": 20}, {"name": "c", "weight": 10})
    )
    ids = [f"conv{n:05d}" for n in range(2000)]
    arms = [choose_arm(experiment, i).name for i in ids]
    assert arms == [choose_arm(experiment, i).name for i in ids], "the same conversation, the same arm"
    shares = {name: arms.count(name) / len(ids) for name in ("control", "b", "c")}
    assert (
        abs(shares["control"] - 0.7) < 0.03
        and abs(shares["b"] - 0.2) < 0.03
        and abs(shares["c"] - 0.1) < 0.02
    )
    # another experiment id draws independently: not the same conversations in its second arm
    (other,) = parse_experiments(
        {
            "experiments": [
                {"id": "other", "arms": [{"name": "control", "weight": 70}, {"name": "b", "weight": 30}]}
            ]
        }
    )
    assert {i for i in ids if choose_arm(other, i).name == "b"} != {
        i for i, a in zip(ids, arms, strict=True) if a != "control"
    }


def test_a_stopped_experiment_sends_everyone_to_its_control_unrecorded(tmp_path: Path) -> None:
    (experiment,) = parse_experiments(spec({"name": "control"}, {"name": "b", "retrieval_top_k": 2}))
    experiments = Experiments([experiment], tmp_path / "state.json")
    ids = [f"c{n}" for n in range(50)]
    assert {experiments.assign(i).arm.name for i in ids} == {"control", "b"}  # type: ignore[union-attr]
    stop_experiment(experiments.state, "style")
    after = [experiments.assign(i) for i in ids]
    assert all(a is not None and a.arm.name == "control" and not a.recorded for a in after)


def test_the_verdict_names_a_winner_only_with_significance_and_the_sample() -> None:
    a, b = [1, 0] * 100, [1, 1, 1, 1, 0] * 40  # 50 % vs 80 % thumbs-up, 200 and 200
    result = compare(a, b, "thumbs_up")
    assert result["p_value"] < 0.001 and result["needed_per_arm"] < 200
    winner, verdict = decide_winner("control", [{"arm": "b", **result}])
    assert winner == "b" and verdict.startswith("winner: b"), verdict

    few = compare(a[:10], b[:10], "thumbs_up")  # the same rates, 10 each: not enough
    winner, verdict = decide_winner("control", [{"arm": "b", **few}])
    assert winner is None and verdict.startswith("no winner yet: need ~"), verdict
    assert int(verdict.split("~")[1].split()[0]) == few["needed_per_arm"] - 10

    same = compare(a, a[::-1], "thumbs_up")
    assert same["p_value"] == 1.0
    assert decide_winner("control", [{"arm": "b", **same}])[0] is None

    stars_a, stars_b = [3, 4, 3, 2, 4] * 30, [4, 5, 4, 5, 3] * 30
    stars = compare(stars_a, stars_b, "stars")
    assert stars["test"] == "Mann-Whitney U" and stars["p_value"] < 0.001
    assert decide_winner("control", [{"arm": "b", **stars}])[0] == "b"
    worse = compare(stars_b, stars_a, "stars")
    assert decide_winner("control", [{"arm": "b", **worse}])[0] == "control"


def test_an_arm_route_the_model_matrix_lacks_is_named_once_with_the_fix(
    make_settings: Callable[..., Settings], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (experiment,) = parse_experiments(
        spec({"name": "control"}, {"name": "b", "route": "nope", "retrieval_top_k": 2})
    )
    experiments = Experiments([experiment], tmp_path / "state.json")
    base = KnowledgeStage(make_settings(), None, ScriptedModel())
    arm = Assignment("style", experiment.arms[1])
    with caplog.at_level(logging.WARNING, logger="kefu.experiments"):
        stage, cache = experiments.stages(arm, base, None)
        assert experiments.stages(arm, base, None)[0] is stage  # one stage per arm, made once
    (record,) = caplog.records
    assert "route 'nope'" in record.getMessage() and "fix the arm's route" in record.getMessage()
    assert stage.settings.retrieval_top_k == 2 and base.settings.retrieval_top_k == 4 and cache is None
    control, _ = experiments.stages(Assignment("style", experiment.arms[0]), base, None)
    assert control.settings.retrieval_top_k == 4
