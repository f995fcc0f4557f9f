"""Write a generated demo city into a store, replacing what was there, in one transaction."""

from __future__ import annotations

from collections.abc import Callable

from demo.city import DemoCity
from store.base import Store

DEPENDENT_TABLES = ("case_summons", "hotline_queue")


def load_demo(store: Store, city: DemoCity, *, progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Replace every demo table's rows with the city's; all or nothing. Returns rows per table.

    The old rows, case history included, are purged first: a demo database's history is synthetic.
    """
    written: dict[str, int] = {}
    names = [name for name, _ in city.tables()]
    with store.transaction():
        # rows that point at the old cases go with them
        store.purge([*names, *(t for t in DEPENDENT_TABLES if t not in names)])
        for name, frame in city.tables():
            written[name] = store.write(name, frame, mode="append")
            if progress:
                progress(name, written[name])
        store.set_setting("demo.size", city.spec.name)
        store.set_setting("demo.seed", str(city.seed))
        store.set_setting("demo.generated_for", city.now.isoformat())
    return written
