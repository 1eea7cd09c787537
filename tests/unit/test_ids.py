"""Public ids: readable prefix, time-sortable, unique."""

from __future__ import annotations

import re
import time

import pytest

from caisse import ids

ID_RE = re.compile(r"^[a-z]+_[0-9A-HJKMNP-TV-Z]{26}$")


@pytest.mark.parametrize("kind", sorted(ids.PREFIXES))
def test_every_kind_has_its_prefix_and_the_crockford_form(kind: str) -> None:
    value = ids.new_id(kind)
    assert value.startswith(ids.PREFIXES[kind] + "_")
    assert ID_RE.match(value), value
    assert ids.has_prefix(value, kind)


def test_prefixes_are_distinct_and_unknown_kinds_fail() -> None:
    assert len(set(ids.PREFIXES.values())) == len(ids.PREFIXES)
    with pytest.raises(KeyError):
        ids.new_id("nonsense")
    assert not ids.has_prefix(ids.new_id("order"), "tenant")


def test_ids_sort_by_creation_time() -> None:
    made = []
    for _ in range(5):
        made.append(ids.new_id("order"))
        time.sleep(0.002)  # the time part has millisecond resolution
    assert made == sorted(made)


def test_ids_are_unique() -> None:
    made = {ids.new_id("event") for _ in range(20_000)}
    assert len(made) == 20_000
