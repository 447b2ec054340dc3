"""`kefu eval cache`: the sweep, the choice of a threshold (none when a set never reaches the target), and
an end-to-end run on a small sample of the shared BQ and AFQMC pairs."""

from __future__ import annotations

from pathlib import Path

import pytest

from kefu.errors import InvalidInput
from kefu.evals.cache import CacheReport, Scored, Sizes, run_cache_eval, sweep

SHARED = Path(__file__).resolve().parents[2] / "shared" / "eval"


def pairs(*rows: tuple[bool, float]) -> list[Scored]:
    return [Scored(same, False, cosine, True, dev=True) for same, cosine in rows]


def test_precision_and_hit_rate_at_a_threshold() -> None:
    scored = [*pairs((True, 0.99), (False, 0.97), (True, 0.95), (True, 0.90))]
    scored.append(Scored(True, False, 0.99, numbers_agree=False, dev=True))  # other numbers: never a hit
    (point,) = sweep(scored, (0.96,))
    assert (point.hits, point.true_hits, point.positives) == (2, 1, 4)
    assert point.precision == 0.5 and point.hit_rate == 0.25


def test_the_threshold_must_be_safe_on_every_set() -> None:
    report = CacheReport("e5", target=0.95)
    report.dev = {
        "clean": pairs((True, 0.99), (True, 0.975), (False, 0.93)),
        "hard": pairs((True, 0.99), (False, 0.985), (False, 0.95)),
    }
    report.test = {"clean": pairs((True, 0.98)), "hard": pairs((False, 0.99))}
    report.sets = {"BQ (bank)": 3, "AFQMC (Alipay)": 3}
    assert report.chosen(["clean"]) == 0.94
    assert report.chosen(["hard"]) == 0.99
    assert report.chosen() == 0.99
    report.dev["hard"].append(Scored(False, False, 0.995, True, dev=True))
    assert report.chosen() is None
    assert "keep KEFU_ANSWER_CACHE_THRESHOLD=1" in report.format_table()


def test_a_missing_data_folder_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="--data"):
        run_cache_eval(tmp_path / "nope", cache_dir=tmp_path)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared evaluation data not found at {SHARED}")
def test_end_to_end_on_shared_data(shared_cache_dir: Path) -> None:
    report = run_cache_eval(SHARED, sizes=Sizes(bq_pairs=40, afqmc_pairs=40), cache_dir=shared_cache_dir)
    assert report.sets == {"BQ (bank)": 40, "AFQMC (Alipay)": 40}
    assert all(report.dev[name] and report.test[name] for name in report.sets)
    assert all(-1.0 <= p.cosine <= 1.0001 for part in report.dev.values() for p in part)
    table = report.format_table()
    assert "Chriszhangmw/LCQMC@2fa3ebd" in table and "bigjeager/afqmc@e30c4f7" in table
    print(table)
