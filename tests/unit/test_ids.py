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


def _digits(value: int, length: int) -> str:
    """Crockford base32, one digit at a time: the definition ``ids.encode`` must meet."""
    out = []
    for _ in range(length):
        out.append(ids._ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


@pytest.mark.parametrize("value", [0, 1, 31, 32, 2**48 - 1, 2**80 - 1, 2**128 - 1, 2**130 - 1])
def test_encode_is_crockford_base32_most_significant_first(value: int) -> None:
    assert ids.encode(value) == _digits(value, 26)


def test_encode_matches_the_definition_on_random_ids() -> None:
    import random

    rng = random.Random(7)
    for _ in range(2_000):
        millis, rand = rng.getrandbits(48), rng.getrandbits(80)
        assert ids.encode(millis << 80 | rand) == _digits(millis, 10) + _digits(rand, 16)
