"""The two demo sizes: what the generator is asked to build."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CountySpec:
    code: str  # GB/T 2260 county code
    seat: tuple[float, float]  # lon, lat of the county seat (its urban core is centred here)
    communities: int  # urban residents' communities, grouped into streets
    townships: int  # rural towns/townships, each with villages


@dataclass(frozen=True)
class CitySpec:
    name: str
    code: str
    # The city's outline as lon/lat vertices (the counties are Voronoi cells of their seats inside it).
    outline: tuple[tuple[float, float], ...]
    counties: tuple[CountySpec, ...]
    villages_per_township: tuple[int, int]
    village_households: tuple[int, int]
    blocks_per_community: tuple[int, int]  # (columns, rows) of street blocks in one community
    communities_per_street: tuple[int, int]  # (columns, rows) of communities in one street
    cases_per_household_year: float
    case_years: float
    cameras_target: int
    risk_points: int
    staff_on_duty_share: float = 0.75


SMALL = CitySpec(
    name="铁岭市(演示·小)",
    code="211200",
    outline=((123.78, 42.245), (123.91, 42.245), (123.91, 42.325), (123.78, 42.325)),
    counties=(CountySpec("211202", (123.842, 42.300), communities=3, townships=1),),
    villages_per_township=(4, 4),
    village_households=(130, 190),
    blocks_per_community=(2, 1),
    communities_per_street=(3, 2),
    cases_per_household_year=0.37,
    case_years=3.0,
    cameras_target=60,
    risk_points=3,
)

CITY = CitySpec(
    name="铁岭市(演示)",
    code="211200",
    outline=(
        (123.42, 42.02),
        (124.05, 41.98),
        (124.70, 42.15),
        (125.05, 42.55),
        (124.95, 43.05),
        (124.40, 43.22),
        (123.80, 43.10),
        (123.45, 42.70),
        (123.38, 42.30),
    ),
    counties=(
        CountySpec("211202", (123.842, 42.290), communities=90, townships=4),
        CountySpec("211204", (124.150, 42.545), communities=24, townships=6),
        CountySpec("211221", (123.990, 42.140), communities=18, townships=13),
        CountySpec("211223", (124.720, 42.740), communities=22, townships=16),
        CountySpec("211224", (124.110, 42.860), communities=38, townships=25),
        CountySpec("211281", (123.560, 42.470), communities=34, townships=3),
        CountySpec("211282", (124.020, 42.600), communities=34, townships=6),
    ),
    villages_per_township=(10, 16),
    village_households=(150, 250),
    blocks_per_community=(2, 2),
    communities_per_street=(4, 2),
    cases_per_household_year=0.37,
    case_years=3.0,
    cameras_target=4205,
    risk_points=91,
)

SIZES: dict[str, CitySpec] = {"small": SMALL, "city": CITY}
