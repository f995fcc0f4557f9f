"""purge(): the administrative wipe that regenerating the demo needs — on both stores."""

from __future__ import annotations

import pytest

from store import StoreError
from tests.store.sample import samples


def test_purge_empties_tables_including_append_only_history(store) -> None:  # type: ignore[no-untyped-def]
    data = samples()
    for name in ("grids", "cases", "case_events"):
        store.write(name, data[name])
    assert store.count("case_events") > 0
    # ordinary code still cannot delete history
    with pytest.raises(StoreError):
        store.delete("case_events", {"case_id": int(data["case_events"]["case_id"].iloc[0])})
    store.purge(["grids", "cases", "case_events"])
    assert [store.count(n) for n in ("grids", "cases", "case_events")] == [0, 0, 0]
    # the bbox index is empty too, and the table is append-only again afterwards
    assert store.count("grids", bbox=(-180, -90, 180, 90)) == 0
    store.write("case_events", data["case_events"])
    with pytest.raises(StoreError):
        store.delete("case_events", {"case_id": int(data["case_events"]["case_id"].iloc[0])})
    with pytest.raises(StoreError):
        store.update("case_events", {"id": int(store.read("case_events")["id"].iloc[0])}, {"note": "x"})


def test_purge_rolls_back_with_its_transaction(store) -> None:  # type: ignore[no-untyped-def]
    data = samples()
    store.write("case_events", data["case_events"])
    n = store.count("case_events")
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.purge(["case_events"])
            raise RuntimeError("boom")
    assert store.count("case_events") == n


def test_purge_refuses_unknown_tables(store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises((KeyError, StoreError)):
        store.purge(["no_such_table"])
