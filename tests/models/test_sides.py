"""The table of sides: each side's entries fit together."""

from __future__ import annotations

import pickle

import pytest

from reachwatch.models.records import AccessEvent
from reachwatch.models.sides import BY_KIND, BY_NAME, KINDS, PRINCIPAL, RESOURCE, SIDES

READ = AccessEvent(ts=0.0, principal="ana", resource="hr/salaries", principal_group="hr",
                   resource_group="hr", sensitivity="public")


@pytest.mark.parametrize("side", SIDES, ids=lambda s: s.name)
def test_every_breadth_metric_has_an_own_baseline(side):
    assert set(side.breadth_metrics) <= set(side.hourly_metrics) | set(side.daily_metrics)


@pytest.mark.parametrize("side", SIDES, ids=lambda s: s.name)
def test_a_side_counts_the_other_side_of_the_read(side):
    other = RESOURCE if side is PRINCIPAL else PRINCIPAL
    assert side.entity(READ) == other.counterpart(READ)
    assert side.counterpart(READ) == other.entity(READ)


def test_names_and_kinds_are_unique_and_map_back():
    assert len(set(KINDS)) == len(SIDES) == len({s.name for s in SIDES})
    assert all(BY_NAME[s.name] is s and BY_KIND[s.kind] is s for s in SIDES)


def test_only_the_principal_side_alerts_on_public_data():
    assert PRINCIPAL.may_alert(READ) and not RESOURCE.may_alert(READ)


@pytest.mark.parametrize("sensitivity", ["public", "internal", "confidential", "restricted"])
def test_only_need_to_know_data_raises_an_audience_alert(sensitivity):
    read = AccessEvent(ts=0.0, principal="ana", resource="hr/x", sensitivity=sensitivity)
    assert RESOURCE.may_alert(read) == (sensitivity in ("confidential", "restricted"))
    assert PRINCIPAL.may_alert(read)


def test_a_pickled_side_is_the_same_side():
    assert all(pickle.loads(pickle.dumps(side)) is side for side in SIDES)


def test_the_sample_keeps_the_counterparts_fields():
    assert PRINCIPAL.sample_of(READ) == ("hr/salaries", "public", "hr")
    assert RESOURCE.sample_of(READ) == ("ana", "hr", "human")
