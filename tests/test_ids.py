"""Event ids made in batches are ordinary random UUIDs."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from eventsourcing_fn._ids import uuid4s


@given(st.integers(min_value=0, max_value=64))
def test_batched_ids_are_version_4_uuids_equal_to_their_text(count: int) -> None:
    """Each id of a batch is a version-4 RFC 4122 UUID that reads back equal from its text."""
    made = uuid4s(count)
    assert len(made) == count
    for made_id in made:
        again = uuid.UUID(str(made_id))
        assert (made_id.version, made_id.variant) == (4, uuid.RFC_4122)
        assert (again, hash(again), made_id.is_safe) == (made_id, hash(made_id), again.is_safe)


def test_batched_ids_are_distinct() -> None:
    """A thousand batches of ten never repeat an id."""
    made = [made_id for _ in range(1000) for made_id in uuid4s(10)]
    assert len(set(made)) == len(made)
