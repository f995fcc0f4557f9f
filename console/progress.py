"""Progress bars for the long CLI verbs (tqdm on stderr)."""

from __future__ import annotations

from types import TracebackType

from tqdm import tqdm

from demo.specs import CitySpec


class Bar:
    """Counts generation stages: counties, village/community partitions, then loading tables."""

    def __init__(self, spec: CitySpec, *, disable: bool = False) -> None:
        villages = sum(c.townships for c in spec.counties) * sum(spec.villages_per_township) // 2
        communities = sum(c.communities for c in spec.counties)
        self.total = len(spec.counties) + villages + communities + 4 + 13
        self.bar = tqdm(total=self.total, desc="demo", unit="step", disable=disable, dynamic_ncols=True)

    def update(self, stage: str, n: int) -> None:
        self.bar.set_description(stage)
        if n:
            self.bar.update(n)

    def loading(self, tables: int) -> None:
        """Generation is done: what is left is writing ``tables`` tables."""
        self.total = self.bar.n + tables
        self.bar.total = self.total
        self.bar.refresh()

    def loaded(self, table: str, rows: int) -> None:
        self.bar.set_description(f"load {table}")
        self.bar.update(1)

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.bar.n = self.total
        self.bar.close()
