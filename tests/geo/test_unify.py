"""Unified grids (多网合一): hand-made legacy layers near Tieling (lon 123.84, lat 42.29)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo.errors import CRSError
from geo.unify import Unified, disagreements, unify
from tests.geo.conftest import ORIGIN, UTM51N

X0, Y0 = ORIGIN
# A 2×2 block of 200 m grids: south-west, south-east, north-west, north-east.
QUAD: list[tuple[float, float, float, float]] = [
    (0, 0, 200, 200),
    (200, 0, 400, 200),
    (0, 200, 200, 400),
    (200, 200, 400, 400),
]


def box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def layer(
    boxes: Sequence[tuple[float, float, float, float]], codes: list[str], crs: str = UTM51N
) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame({"code": codes}, geometry=[box(*b) for b in boxes], crs=UTM51N)
    frame.index = frame.index + 100  # a non-default index
    return frame if crs == UTM51N else frame.to_crs(crs)


def civil() -> gpd.GeoDataFrame:
    return layer(QUAD, ["A1", "A2", "A3", "A4"])


def police() -> gpd.GeoDataFrame:
    return layer(QUAD, ["P1", "P2", "P3", "P4"])


def same_polygons(frame: gpd.GeoDataFrame, expected: gpd.GeoDataFrame, tol_m2: float = 1e-3) -> bool:
    """Every polygon of ``frame`` matches exactly one of ``expected`` (up to ``tol_m2`` of difference)."""
    a = np.asarray(frame.to_crs(UTM51N).geometry.values, dtype=object)
    b = np.asarray(expected.to_crs(UTM51N).geometry.values, dtype=object)
    if len(a) != len(b):
        return False
    diff = np.array([[shapely.symmetric_difference(x, y).area for y in b] for x in a])
    return bool(((diff < tol_m2).sum(axis=1) == 1).all() and ((diff < tol_m2).sum(axis=0) == 1).all())


def legacy_to_keys(result: Unified, layer_name: str) -> dict[str, list[int]]:
    cw = result.crosswalk[result.crosswalk["layer"] == layer_name]
    return {str(code): sorted(block["unified_key"].tolist()) for code, block in cw.groupby("legacy_code")}


# --- agreeing layers ----------------------------------------------------------------------------


def test_identical_layers_agree_completely() -> None:
    result = unify({"civil": civil(), "police": police()})
    assert result.agreement == 1.0
    assert result.disagreements.empty
    assert list(result.disagreements.columns) == ["area_m2", "layers", "kind", "geometry"]
    assert result.notes == ()
    grids = result.grids
    assert grids.crs == UTM51N
    assert grids["key"].tolist() == [1, 2, 3, 4]
    assert same_polygons(grids, civil())
    assert "households" not in grids.columns
    # Keys in reading order: north-west first.
    nw = grids.loc[grids["key"] == 1, "geometry"].iloc[0]
    assert nw.representative_point().within(box(0, 200, 200, 400))
    assert grids.loc[grids["key"] == 1, "sources"].iloc[0] == "civil:A3; police:P3"
    # Crosswalk 1:1 with full shares.
    cw = result.crosswalk
    assert list(cw.columns) == [
        "layer",
        "legacy_code",
        "unified_key",
        "area_m2",
        "share_of_legacy",
        "share_of_unified",
        "households",
    ]
    assert len(cw) == 8
    assert cw["share_of_legacy"].tolist() == pytest.approx([1.0] * 8)
    assert cw["share_of_unified"].tolist() == pytest.approx([1.0] * 8)
    assert cw["area_m2"].tolist() == pytest.approx([40_000.0] * 8)
    assert cw["households"].isna().all()
    assert legacy_to_keys(result, "civil") == {"A1": [3], "A2": [4], "A3": [1], "A4": [2]}
    assert legacy_to_keys(result, "police") == {"P1": [3], "P2": [4], "P3": [1], "P4": [2]}


def test_single_layer_is_its_own_unified_set() -> None:
    result = unify({"civil": civil()})
    assert result.agreement == 1.0
    assert same_polygons(result.grids, civil())


def test_layer_in_lonlat_is_reprojected_and_agrees() -> None:
    wgs = police().to_crs("EPSG:4326")
    result = unify({"civil": civil(), "police": wgs})
    assert result.agreement == pytest.approx(1.0)
    assert result.grids.crs == UTM51N
    assert same_polygons(result.grids, civil())
    assert legacy_to_keys(result, "police") == {"P1": [3], "P2": [4], "P3": [1], "P4": [2]}
    assert any("reprojected from EPSG:4326" in note for note in result.notes)


def test_output_in_first_layers_crs_or_crs_keyword() -> None:
    wgs_first = unify({"police": police().to_crs("EPSG:4326"), "civil": civil()})
    assert wgs_first.grids.crs == "EPSG:4326"
    assert wgs_first.disagreements.crs == "EPSG:4326"
    assert wgs_first.agreement == pytest.approx(1.0)
    assert same_polygons(wgs_first.grids, civil(), tol_m2=0.01)
    forced = unify({"civil": civil(), "police": police()}, crs="EPSG:4490")
    assert forced.grids.crs == "EPSG:4490"
    assert same_polygons(forced.grids, civil(), tol_m2=0.01)


def test_digitizing_noise_of_one_metre_is_snapped_away() -> None:
    noisy = police()
    noisy["geometry"] = noisy.translate(1.0, -0.7)
    result = unify({"civil": civil(), "police": noisy})
    assert result.agreement == 1.0
    assert result.disagreements.empty
    assert same_polygons(result.grids, civil())
    assert len(result.crosswalk) == 8
    assert result.crosswalk["share_of_legacy"].tolist() == pytest.approx([1.0] * 8)


def test_vertex_near_an_edge_is_snapped_onto_it() -> None:
    # The police layer's south edge has an extra vertex 1.5 m north of the civil edge.
    kinked = police()
    kinked.loc[100, "geometry"] = shapely.Polygon(
        [(X0, Y0), (X0 + 100, Y0 + 1.5), (X0 + 200, Y0), (X0 + 200, Y0 + 200), (X0, Y0 + 200)]
    )
    result = unify({"civil": civil(), "police": kinked})
    assert result.agreement == 1.0
    assert same_polygons(result.grids, civil())
    assert result.crosswalk["share_of_legacy"].tolist() == pytest.approx([1.0] * 8)


def test_larger_offsets_leave_slivers_that_are_merged() -> None:
    shifted = police()
    shifted["geometry"] = shifted.translate(3.0, -2.5)  # beyond snap_m: strips of 3 m by 200 m
    result = unify({"civil": civil(), "police": shifted})
    assert len(result.grids) == 4
    assert result.agreement == 1.0
    assert any("sliver" in note for note in result.notes)
    assert same_polygons(result.grids, civil(), tol_m2=3_000.0)
    # Each legacy grid maps mostly onto one unified grid; shares still add up to one.
    sums = result.crosswalk.groupby(["layer", "legacy_code"])["share_of_legacy"].sum()
    assert sums.tolist() == pytest.approx([1.0] * 8)
    assert result.crosswalk.groupby(["layer", "legacy_code"])["share_of_legacy"].max().min() > 0.97
    # With no snapping and no sliver merging the strips stay.
    raw = unify({"civil": civil(), "police": shifted}, snap_m=0.0, min_area_m2=0.0)
    assert len(raw.grids) > 4
    assert raw.agreement < 1.0


# --- disagreeing layers -------------------------------------------------------------------------


def test_finer_split_in_one_layer_is_kept_with_a_one_to_two_crosswalk() -> None:
    market = layer([(0, 0, 200, 120), (0, 120, 200, 200), *QUAD[1:]], ["M1a", "M1b", "M2", "M3", "M4"])
    result = unify({"civil": civil(), "market": market})
    assert len(result.grids) == 5
    assert same_polygons(result.grids, market)
    keys = legacy_to_keys(result, "civil")
    assert len(keys["A1"]) == 2
    a1 = result.crosswalk[(result.crosswalk["layer"] == "civil") & (result.crosswalk["legacy_code"] == "A1")]
    assert sorted(a1["share_of_legacy"]) == pytest.approx([0.4, 0.6])
    assert a1["share_of_unified"].tolist() == pytest.approx([1.0, 1.0])
    assert sorted(a1["area_m2"]) == pytest.approx([16_000.0, 24_000.0])
    assert all(len(v) == 1 for k, v in keys.items() if k != "A1")
    assert all(len(v) == 1 for v in legacy_to_keys(result, "market").values())
    # The disagreement is A1, where only the market layer draws a boundary.
    dis = result.disagreements
    assert dis["kind"].tolist() == ["boundary"]
    assert dis["layers"].tolist() == ["market"]
    assert dis["area_m2"].iloc[0] == pytest.approx(40_000.0)
    assert shapely.symmetric_difference(dis.geometry.iloc[0], box(*QUAD[0])).area < 1e-6
    assert result.agreement == pytest.approx(0.75)
    sources = set(result.grids["sources"])
    assert {"civil:A1; market:M1a", "civil:A1; market:M1b"} <= sources


def test_crossing_boundaries_are_one_disagreement_zone() -> None:
    strips = layer([(0, 0, 400, 100), (0, 100, 400, 400)], ["S1", "S2"])
    result = unify({"civil": civil(), "police": police(), "strips": strips})
    assert len(result.grids) == 6  # the strip line cuts the two southern grids
    dis = result.disagreements
    assert set(dis["kind"]) == {"boundary"}
    assert dis["layers"].tolist() == ["civil,police,strips"]  # both sides draw lines the other doesn't
    assert result.agreement == pytest.approx(0.0)


def test_missing_area_is_a_coverage_disagreement() -> None:
    urban = layer(QUAD[:3], ["U1", "U2", "U3"])
    result = unify({"civil": civil(), "police": police(), "urban": urban})
    dis = result.disagreements
    assert dis["kind"].tolist() == ["coverage"]
    assert dis["layers"].tolist() == ["urban"]
    assert dis["area_m2"].iloc[0] == pytest.approx(40_000.0)
    assert shapely.symmetric_difference(dis.geometry.iloc[0], box(*QUAD[3])).area < 1e-6
    assert result.agreement == pytest.approx(0.75)
    assert same_polygons(result.grids, civil())
    assert len(legacy_to_keys(result, "urban")) == 3


def test_partial_coverage_does_not_cut_the_other_layers_grids() -> None:
    # The urban layer stops half way across the eastern grids.
    urban = layer([(0, 0, 300, 200), (0, 200, 300, 400)], ["U1", "U2"])
    result = unify({"civil": civil(), "urban": urban})
    assert same_polygons(result.grids, civil())
    coverage = result.disagreements[result.disagreements["kind"] == "coverage"]
    assert coverage["area_m2"].sum() == pytest.approx(40_000.0)
    assert set(coverage["layers"]) == {"urban"}
    # The urban grids cross the civil line x = 200: boundary disagreement on the western side.
    assert "boundary" in set(result.disagreements["kind"])


def test_boundary_larger_than_the_layers_is_uncovered_by_all() -> None:
    territory = box(0, 0, 400, 500)
    result = unify({"civil": civil(), "police": police()}, boundary=territory)
    dis = result.disagreements
    assert dis["kind"].tolist() == ["coverage"]
    assert dis["layers"].tolist() == ["civil,police"]
    assert dis["area_m2"].iloc[0] == pytest.approx(400 * 100)
    assert result.agreement == pytest.approx(160_000 / 200_000)
    assert len(result.grids) == 5
    assert (result.grids["sources"] == "").sum() == 1


def test_boundary_smaller_than_the_layers_clips_them() -> None:
    territory = gpd.GeoDataFrame(geometry=[box(0, 0, 400, 300)], crs=UTM51N).to_crs("EPSG:4326")
    result = unify({"civil": civil(), "police": police()}, boundary=territory)
    assert result.agreement == pytest.approx(1.0)
    assert result.grids.geometry.area.sum() == pytest.approx(400 * 300, rel=1e-6)
    a3 = result.crosswalk[result.crosswalk["legacy_code"] == "A3"]
    assert a3["share_of_legacy"].tolist() == pytest.approx([0.5], rel=1e-6)
    assert any("outside the boundary" in note for note in result.notes)


def test_disagreements_function_matches_unify() -> None:
    market = layer([(0, 0, 200, 120), (0, 120, 200, 200), *QUAD[1:]], ["M1a", "M1b", "M2", "M3", "M4"])
    urban = layer(QUAD[:3], ["U1", "U2", "U3"])
    layers = {"civil": civil(), "market": market, "urban": urban}
    alone = disagreements(layers)
    full = unify(layers).disagreements
    pd.testing.assert_frame_equal(alone.drop(columns="geometry"), full.drop(columns="geometry"))
    assert alone.geometry.geom_equals(full.geometry).all()
    assert sorted(alone["kind"]) == ["boundary", "coverage"]


def test_overlapping_grids_within_a_layer_are_noted() -> None:
    sloppy = layer([(0, 0, 210, 200), *QUAD[1:]], ["P1", "P2", "P3", "P4"])  # P1 overlaps P2 by 10 m
    result = unify({"civil": civil(), "police": sloppy})
    assert any("overlap each other" in note for note in result.notes)


# --- households band ------------------------------------------------------------------------------


def buildings(points: list[tuple[float, float]], households: list[int]) -> gpd.GeoDataFrame:
    footprints = [box(x - 5, y - 5, x + 5, y + 5) for x, y in points]
    return gpd.GeoDataFrame({"households": households}, geometry=footprints, crs=UTM51N)


def test_buildings_and_band_merge_small_pieces_towards_the_band() -> None:
    # Police strips cut every civil grid in two halves of 25 households each.
    strips = layer(
        [(0, 0, 400, 100), (0, 100, 400, 200), (0, 200, 400, 300), (0, 300, 400, 400)],
        ["P1", "P2", "P3", "P4"],
    )
    houses = buildings([(x, y) for y in (50, 150, 250, 350) for x in (100, 300)], [25] * 8)
    refined = unify({"civil": civil(), "police": strips}, buildings=houses)
    assert len(refined.grids) == 8
    assert refined.grids["households"].tolist() == [25] * 8
    assert refined.crosswalk["households"].sum() == 2 * 200  # every building counted once per layer
    result = unify({"civil": civil(), "police": strips}, buildings=houses, band=(40, 60))
    grids = result.grids
    assert len(grids) == 4
    assert grids["households"].tolist() == [50] * 4
    assert grids["households"].dtype == np.int64
    # Merged within the civil grids (square) rather than along the police strips (long and thin).
    assert same_polygons(grids, civil())
    civil_rows = result.crosswalk[result.crosswalk["layer"] == "civil"]
    assert civil_rows["households"].tolist() == [50] * 4
    assert civil_rows["share_of_legacy"].tolist() == pytest.approx([1.0] * 4)
    police_rows = result.crosswalk[result.crosswalk["layer"] == "police"]
    assert len(police_rows) == 8
    assert police_rows["share_of_legacy"].tolist() == pytest.approx([0.5] * 8)
    assert police_rows["households"].tolist() == [25] * 8
    assert any("merge(s) of pieces below the band" in note for note in result.notes)


def test_band_prefers_neighbours_in_the_same_legacy_grids() -> None:
    # Two layers agree on A1/A2 except that the market layer splits A1; pieces of A1 rejoin first.
    market = layer([(0, 0, 200, 120), (0, 120, 200, 200), *QUAD[1:]], ["M1a", "M1b", "M2", "M3", "M4"])
    houses = buildings([(100, 60), (100, 160), (300, 100), (100, 300), (300, 300)], [20, 20, 45, 45, 45])
    result = unify({"civil": civil(), "market": market}, buildings=houses, band=(40, 60))
    assert sorted(result.grids["households"].tolist()) == [40, 45, 45, 45]
    assert same_polygons(result.grids, civil())


def test_band_leaves_pieces_that_cannot_merge_and_says_so() -> None:
    houses = buildings([(100, 100), (300, 100), (100, 300), (300, 300)], [10, 100, 100, 100])
    result = unify({"civil": civil()}, buildings=houses, band=(40, 60))
    assert sorted(result.grids["households"].tolist()) == [10, 100, 100, 100]
    assert any("stay below" in note for note in result.notes)
    assert any("more than 60" in note for note in result.notes)


def test_empty_pieces_merge_into_a_neighbour() -> None:
    market = layer([(0, 0, 200, 120), (0, 120, 200, 200), *QUAD[1:]], ["M1a", "M1b", "M2", "M3", "M4"])
    houses = buildings([(100, 60), (300, 100), (100, 300), (300, 300)], [50, 50, 50, 50])  # none in M1b
    result = unify({"civil": civil(), "market": market}, buildings=houses, band=(40, 60))
    assert result.grids["households"].tolist() == [50] * 4
    assert same_polygons(result.grids, civil())


def test_buildings_outside_the_territory_are_noted() -> None:
    houses = buildings([(100, 100), (900, 900)], [30, 12])
    result = unify({"civil": civil()}, buildings=houses)
    assert result.grids["households"].sum() == 30
    assert any("outside the territory" in note for note in result.notes)


# --- awkward input -----------------------------------------------------------------------------------


def test_bowtie_is_repaired_and_noted() -> None:
    bowtie = police()
    bowtie.loc[100, "geometry"] = shapely.Polygon(
        [(X0, Y0), (X0 + 200, Y0 + 200), (X0 + 200, Y0), (X0, Y0 + 200)]
    )
    result = unify({"civil": civil(), "police": bowtie})
    assert any("repaired" in note and "P1" in note and "Self-intersection" in note for note in result.notes)
    assert same_polygons(result.grids, civil())  # the triangles do not cut the civil grid
    coverage = result.disagreements[result.disagreements["kind"] == "coverage"]
    assert coverage["area_m2"].sum() == pytest.approx(20_000.0)
    assert set(coverage["layers"]) == {"police"}
    p1 = result.crosswalk[result.crosswalk["legacy_code"] == "P1"]
    assert p1["share_of_legacy"].tolist() == pytest.approx([1.0])
    assert p1["share_of_unified"].tolist() == pytest.approx([0.5])


def test_legacy_grid_thinner_than_the_tolerance_is_absorbed() -> None:
    thin = layer([(0, 0, 400, 1.5), (0, 1.5, 400, 400)], ["thin", "rest"])
    result = unify({"one": layer([(0, 0, 400, 400)], ["B"]), "two": thin})
    assert len(result.grids) == 1
    assert result.agreement == 1.0
    assert not any("overlap" in note for note in result.notes)
    assert legacy_to_keys(result, "two") == {"rest": [1], "thin": [1]}


def test_inputs_are_not_modified() -> None:
    layers = {"civil": civil(), "police": police().to_crs("EPSG:4326")}
    bowtie = layers["civil"]
    bowtie.loc[101, "geometry"] = shapely.Polygon(
        [(X0 + 200, Y0), (X0 + 400, Y0 + 200), (X0 + 400, Y0), (X0 + 200, Y0 + 200)]
    )
    houses = buildings([(100, 100), (300, 100)], [30, 40])
    before = {name: frame.copy(deep=True) for name, frame in layers.items()}
    houses_before = houses.copy(deep=True)
    unify(layers, buildings=houses, band=(40, 60), boundary=box(0, 0, 400, 400))
    for name, frame in layers.items():
        pd.testing.assert_frame_equal(frame, before[name])
        assert frame.crs == before[name].crs
    pd.testing.assert_frame_equal(houses, houses_before)
    assert list(layers) == ["civil", "police"]


def test_result_is_frozen() -> None:
    result = unify({"civil": civil()})
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.agreement = 0.5  # type: ignore[misc]


def test_numeric_codes_become_text() -> None:
    numbered = civil()
    numbered["code"] = [211202001001001, 211202001001002, 211202001001003, 211202001001004]
    result = unify({"civil": numbered})
    assert set(result.crosswalk["legacy_code"]) == {
        "211202001001001",
        "211202001001002",
        "211202001001003",
        "211202001001004",
    }


def test_code_column_option() -> None:
    renamed = civil().rename(columns={"code": "grid_code"})
    result = unify({"civil": renamed}, code="grid_code")
    assert len(result.crosswalk) == 4


# --- errors ------------------------------------------------------------------------------------------


def test_no_crs_raises() -> None:
    bare = civil().set_crs(None, allow_override=True)
    with pytest.raises(CRSError, match="'police'.*no coordinate reference system"):
        unify({"civil": civil(), "police": bare})
    with pytest.raises(ValueError):  # CRSError is a ValueError
        disagreements({"police": bare})
    houses = buildings([(100, 100)], [30]).set_crs(None, allow_override=True)
    with pytest.raises(CRSError, match="buildings"):
        unify({"civil": civil()}, buildings=houses)


def test_mislabelled_crs_raises() -> None:
    degrees_called_metres = civil().to_crs("EPSG:4326").set_crs(UTM51N, allow_override=True)
    with pytest.raises(CRSError, match="look like longitude/latitude"):
        unify({"civil": civil(), "bad": degrees_called_metres})
    metres_called_degrees = civil().set_crs("EPSG:4326", allow_override=True)
    with pytest.raises(CRSError, match="are not degrees"):
        unify({"bad": metres_called_degrees})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: {}, "no layers given"),
        (lambda: {"civil": civil().iloc[:0]}, "has no grids"),
        (lambda: {"civil": civil().drop(columns="code")}, "no code column 'code'"),
        (lambda: {"civil": civil().assign(code=["A1", "A1", "A2", "A2"])}, "duplicate codes.*'A1', 'A2'"),
        (lambda: {"civil": civil().assign(code=["A1", None, "A3", "A4"])}, "1 grid\\(s\\) have no code"),
        (lambda: {"a,b": civil()}, "layer names"),
        (lambda: {"civil": civil().set_geometry(civil().centroid)}, "grids must be polygons"),
        (
            lambda: {
                "civil": civil().set_geometry([box(*QUAD[0]), None, box(*QUAD[2]), box(*QUAD[3])], crs=UTM51N)
            },
            "null or empty geometry",
        ),
    ],
)
def test_bad_layers_raise_value_error(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        unify(make())  # type: ignore[operator]


def test_bad_arguments_raise() -> None:
    houses = buildings([(100, 100)], [30])
    with pytest.raises(TypeError):
        unify([civil()])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        unify({"civil": pd.DataFrame({"code": ["A"]})})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="band needs buildings"):
        unify({"civil": civil()}, band=(40, 60))
    with pytest.raises(ValueError, match="band"):
        unify({"civil": civil()}, buildings=houses, band=(60, 40))
    with pytest.raises(ValueError, match="snap_m"):
        unify({"civil": civil()}, snap_m=-1)
    with pytest.raises(ValueError, match="min_area_m2"):
        unify({"civil": civil()}, min_area_m2=float("nan"))
    with pytest.raises(ValueError, match="household column 'hh'"):
        unify({"civil": civil()}, buildings=houses, households="hh")
    with pytest.raises(ValueError, match="finite numbers >= 0"):
        unify({"civil": civil()}, buildings=houses.assign(households=[-3]))
    with pytest.raises(ValueError, match="boundary is empty"):
        unify({"civil": civil()}, boundary=shapely.Polygon())
    with pytest.raises(ValueError, match="no area in common"):
        unify({"civil": civil()}, boundary=box(5_000, 5_000, 5_100, 5_100))
