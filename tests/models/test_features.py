"""Feature views: what each side measures of a read, by name."""

from __future__ import annotations

import math

import pytest
from support.tinyorg import START

from reachwatch.models.features import DetectionConfig, FeatureBuilder, PeerProfiles, View
from reachwatch.models.records import AccessEvent
from reachwatch.models.sides import PRINCIPAL, RESOURCE, SIDES

HOUR = 3600.0


def _read(ts: float, principal: str = "ana", resource: str = "hr/ds0", **fields) -> AccessEvent:
    fields.setdefault("principal_group", "hr")
    fields.setdefault("resource_group", "hr")
    return AccessEvent(ts=START + ts, principal=principal, resource=resource, **fields)


def _views(builder: FeatureBuilder, side, events: list[AccessEvent]) -> list[View | None]:
    states: dict = {}
    out = []
    for event in events:
        key = side.entity(event)
        state = states.setdefault(key, builder.new_state(side))
        out.append(builder.view(event, state))
    return out


def _named(view: View) -> dict[str, float]:
    return dict(zip(view.side.features, view.vector, strict=True))


@pytest.fixture()
def builder() -> FeatureBuilder:
    return FeatureBuilder(DetectionConfig())


def test_every_side_builds_its_whole_feature_vector(builder):
    for side in SIDES:
        (view,) = _views(builder, side, [_read(10.0)])
        assert view is not None and view.side is side and view.kind == side.kind
        assert len(view.vector) == len(side.features)
        assert all(math.isfinite(v) for v in view.vector)


def test_a_principal_counts_distinct_datasets_and_their_owning_teams(builder):
    reads = [_read(60.0 * i, resource=f"hr/ds{i % 3}") for i in range(9)]  # 3 datasets x3
    reads.append(_read(600.0, resource="finance/ds1", resource_group="finance"))
    view = _views(builder, PRINCIPAL, reads)[-1]
    features = _named(view)
    assert view.metrics["distinct_1h"] == 4.0
    assert features["distinct_1h"] == pytest.approx(math.log1p(4))
    assert features["groups_1h"] == pytest.approx(math.log1p(2))  # hr and finance
    assert view.metrics["outside_1h"] == 1.0
    assert features["outside_share_1h"] == pytest.approx(1 / 4)
    assert view.metrics["outside_groups_1h"] == 1.0  # its own team does not count


def test_sensitivity_weights_add_up_per_distinct_dataset(builder):
    weights = DetectionConfig().sensitivity_weights
    reads = [
        _read(1.0, resource="hr/a", sensitivity="restricted"),
        _read(2.0, resource="hr/a", sensitivity="restricted"),  # the same dataset again
        _read(3.0, resource="hr/b", sensitivity="public"),
    ]
    view = _views(builder, PRINCIPAL, reads)[-1]
    assert view.metrics["weighted_1h"] == pytest.approx(weights["restricted"] + weights["public"])
    assert view.metrics["restricted_1h"] == 1.0 and view.metrics["sensitive_1h"] == 1.0


def test_records_bytes_and_denials_count_every_read_not_only_distinct_ones(builder):
    reads = [_read(float(i), records=10, bytes=1000) for i in range(3)]
    reads.append(_read(4.0, outcome="denied"))
    features = _named(_views(builder, PRINCIPAL, reads)[-1])
    assert features["records_1h"] == pytest.approx(math.log1p(30))
    assert features["bytes_1h"] == pytest.approx(math.log1p(3000))
    assert features["denied_ratio_1h"] == pytest.approx(1 / 4)


def test_datasets_leave_the_hour_window_but_stay_in_the_day(builder):
    reads = [_read(0.0, resource="hr/a"), _read(2 * HOUR, resource="hr/b")]
    view = _views(builder, PRINCIPAL, reads)[-1]
    assert view.metrics["distinct_1h"] == 1.0
    assert view.metrics["distinct_24h"] == 2.0


def test_a_read_later_than_allowed_is_refused_and_changes_nothing(builder):
    state = builder.new_state(PRINCIPAL)
    assert builder.view(_read(HOUR), state) is not None
    before = (state.events, state.watermark, state.windows[2].distinct)
    late = _read(HOUR - DetectionConfig().allowed_lateness - 1, resource="hr/other")
    assert builder.view(late, state) is None
    assert (state.events, state.watermark, state.windows[2].distinct) == before


def test_a_newcomer_is_judged_by_its_peers_only(builder):
    profiles = PeerProfiles(baselines={"hr/human": {"weighted_1h": 4.0,
                                                    "outside_weighted_1h": 0.0,
                                                    "outside_weighted_24h": 0.0}})
    peers = FeatureBuilder(DetectionConfig(), profiles)
    reads = [_read(float(i), resource=f"hr/ds{i}") for i in range(10)]  # 10 internal
    view = _views(peers, PRINCIPAL, reads)[-1]
    smoothing = DetectionConfig().principal_smoothing
    assert not view.own_mature
    assert math.isnan(view.own["weighted_1h"])
    assert view.peer["weighted_1h"] == 4.0
    expected = math.log((10.0 + smoothing) / (4.0 + smoothing))
    assert _named(view)["breadth_weighted_1h"] == pytest.approx(expected)
    assert view.breadth_metric == "weighted_1h" and view.breadth == pytest.approx(expected)


def test_until_it_matures_a_principal_inherits_its_peers_novelty():
    # Peers read hr/known in training; hr/unknown is new to all of them.
    known = FeatureBuilder(
        DetectionConfig(),
        PeerProfiles(resources={"hr/human": frozenset({_key("hr/known")})}),
    )
    first, second = _views(known, PRINCIPAL, [_read(1.0, resource="hr/known"),
                                              _read(2.0, resource="hr/unknown")])
    assert _named(first)["new_own_1h"] == 0.0  # new to it, but not to its peers
    assert _named(second)["new_own_1h"] == pytest.approx(math.log1p(1))
    assert _named(second)["new_peer_24h"] == pytest.approx(math.log1p(1))


def _key(resource: str) -> int:
    from reachwatch.models.features import resource_key

    return resource_key(resource)


def test_an_hour_never_seen_before_is_rare(builder):
    state = builder.new_state(PRINCIPAL)
    week = 7 * 86400.0
    for n in range(5):  # 25 reads on Mondays at 10:00, five weeks running
        for i in range(5):
            builder.view(_read(n * week + 10 * HOUR + i, resource=f"hr/d{i}"), state)
    usual = builder.view(_read(5 * week + 10 * HOUR), state)
    odd = builder.view(_read(5 * week + 23 * HOUR), state)
    assert _named(usual)["hour_rarity"] < 0.1 < 0.8 < _named(odd)["hour_rarity"]


def test_a_dataset_counts_distinct_readers_first_timers_and_service_accounts(builder):
    reads = [
        _read(1.0, principal="ana"),
        _read(2.0, principal="ana"),  # read again: one reader
        _read(3.0, principal="bo", principal_group="sales"),
        _read(4.0, principal="etl", principal_type="service", principal_group="it"),
    ]
    view = _views(builder, RESOURCE, reads)[-1]
    features = _named(view)
    assert view.entity == "hr/ds0"
    assert view.metrics["readers_1h"] == 3.0
    assert view.metrics["outside_readers_1h"] == 2.0  # sales and it are not hr
    assert view.metrics["reader_groups_1h"] == 3.0
    assert view.metrics["first_time_1h"] == 3.0
    assert features["service_share_1h"] == pytest.approx(1 / 3)
    assert features["outside_share_1h"] == pytest.approx(2 / 3)


def test_a_datasets_sensitivity_is_a_feature(builder):
    public, restricted = (
        _named(_views(builder, RESOURCE, [_read(1.0, sensitivity=s)])[0])["sensitivity"]
        for s in ("public", "restricted")
    )
    assert public < restricted


def test_the_side_peer_groups_are_team_and_type_for_principals_sensitivity_for_datasets():
    event = _read(1.0, principal_type="service", sensitivity="confidential")
    assert PRINCIPAL.peers(event) == ("hr/service", "~service")
    assert RESOURCE.peers(event) == ("sensitivity:confidential", "sensitivity:internal")
