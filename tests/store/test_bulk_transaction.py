"""SQLite: a failed bulk write inside a transaction spoils the whole transaction (nothing partial)."""

from __future__ import annotations

import pandas as pd
import pytest

from store import ConflictError, StoreError
from store.sqlite import BULK_MIN_ROWS


def test_failed_bulk_write_rolls_back_the_whole_transaction(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    n = BULK_MIN_ROWS + 10
    rows = pd.DataFrame({"id": list(range(n)) + [0], "name": ["x"] * (n + 1), "role": ["volunteer"] * (n + 1)})
    with pytest.raises(StoreError, match="nothing was written"):
        with sqlite_store.transaction():
            sqlite_store.set_setting("before", "1")
            with pytest.raises(ConflictError):
                sqlite_store.write("staff", rows)
    assert sqlite_store.count("staff") == 0
    assert sqlite_store.get_setting("before") is None
    # the store is usable afterwards
    sqlite_store.write("staff", rows.iloc[:n])
    assert sqlite_store.count("staff") == n
