"""Policy is code: for every day 0–30 after sign-for × reason × what the customer says about photos, the
return flow's decision matches the demo policy (returns.md) written out by hand below — and only a
"created" decision ever reaches the order system's create_return. A typed claim of photos is never
evidence: on days 8–15 a person checks them."""

from __future__ import annotations

import pytest

from test_flows_fakes import PHONE, FakeOrders, engine, make_order

REASON_TEXT = {"quality": "质量问题，有瑕疵", "no_reason": "不想要了"}


def expected(days: int, reason: str, photos: bool) -> str:
    """returns.md: days 0–7 any reason; 8–15 quality with photos/video only (checked by a person); after
    15 none. ``photos``: the customer claims to have uploaded them, else says they have none."""
    if days <= 7:
        return "created"
    if days <= 15:
        if reason != "quality":
            return "refused_no_reason"
        return "evidence_needed" if photos else "photos_required"
    return "over_15_days"


def decision(days: int, reason: str, photos: bool) -> tuple[str, int]:
    erp = FakeOrders(make_order(delivered_days_ago=days))
    flows = engine(erp)
    turn = flows.start("return_exchange", f"c-{days}-{reason}-{photos}", "我要退货")
    said = "，照片已上传" if photos else "，没有照片"
    for text in ("XP10023", PHONE, REASON_TEXT[reason] + said):
        turn = flows.advance(turn.state, text)
    names = {
        "return_created": "created",
        "photos_required": "photos_required",
        "evidence_needed": "evidence_needed",
        "policy_no_reason_after_7_days": "refused_no_reason",
        "policy_over_15_days": "over_15_days",
    }
    label = turn.data.get("result") or turn.data.get("reason")
    return names[str(label)], len(erp.calls_to("create_return"))


@pytest.mark.parametrize("photos", [True, False])
@pytest.mark.parametrize("reason", ["quality", "no_reason"])
def test_every_day_matches_the_policy_table(reason: str, photos: bool) -> None:
    for days in range(31):
        got, creates = decision(days, reason, photos)
        want = expected(days, reason, photos)
        assert got == want, f"day {days}, {reason}, photos={photos}: flow said {got}, policy says {want}"
        assert creates == (1 if want == "created" else 0), f"day {days}: {creates} create_return calls"


def test_the_table_itself_covers_every_outcome() -> None:
    outcomes = {expected(d, r, p) for d in range(31) for r in REASON_TEXT for p in (True, False)}
    assert outcomes == {"created", "photos_required", "evidence_needed", "refused_no_reason", "over_15_days"}
