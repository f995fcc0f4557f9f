"""The demo city generator: a deterministic, seeded city at Tieling's real location, in two sizes."""

from demo.city import DemoCity, generate
from demo.load import load_demo
from demo.specs import SIZES, CitySpec

__all__ = ["SIZES", "CitySpec", "DemoCity", "generate", "load_demo"]
