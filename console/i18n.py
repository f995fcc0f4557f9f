"""The one translation table. Chinese (zh) is the default; English (en) on request.

Every user-facing string of the console and the CLI is looked up here with ``t(key, lang)``.
A missing key is a bug caught by ``tests/console/test_i18n.py`` (every key has both languages).
"""

from __future__ import annotations

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"

TEXT: dict[str, tuple[str, str]] = {
    # app shell
    "app.title": ("网格化服务管理指挥平台", "Grid Governance Command Console"),
    "app.language": ("界面语言", "Language"),
    "app.database": ("数据库", "Database"),
    "app.no_data": (
        "数据库中还没有网格数据。请运行 `gridconsole demo --size small` 生成演示城市，或导入边界文件。",
        "The database holds no grids yet. Run `gridconsole demo --size small` to generate the demo city, or import boundaries.",
    ),
    "app.db_error": ("数据库不可用：{error}", "The database is not available: {error}"),
    "app.pending": (
        "此页面的功能将在后续版本中提供（见议题 #{issue}）。",
        "This page's features arrive with a later release (issue #{issue}).",
    ),
    # pages
    "page.map": ("网格地图", "Grid map"),
    "page.bigscreen": ("指挥大屏", "Big screen"),
    "page.dispatch": ("事件派遣", "Dispatch"),
    "page.planning": ("网格规划", "Grid planning"),
    "page.cases": ("事件管理", "Cases"),
    "page.staff": ("网格力量", "Staff"),
    "page.cameras": ("视频监控", "Cameras"),
    "page.settings": ("系统设置", "Settings"),
    "page.bigscreen.desc": (
        "全市态势一屏统览：实时人员轨迹、事件、视频点位与核心指标。",
        "A live full-screen overview of the city: staff, cases, cameras and headline figures.",
    ),
    "page.dispatch.desc": (
        "在地图上点击事件，按位置、负荷与职能推荐附近力量并派单，跟踪闭环与时限。",
        "Click an incident on the map, assign nearby staff by location, workload and role, follow the loop and its time limits.",
    ),
    "page.planning.desc": (
        "按户数自动划分网格，拆分、合并、调整楼栋，校验并发布新版本。",
        "Partition by households, split, merge, move buildings, validate and publish a new version.",
    ),
    "page.cases.desc": ("事件受理、闭环流转、时限与督办。", "Case intake, the closed loop, time limits and escalation."),
    "page.staff.desc": ("网格员实时位置、轨迹回放、巡查覆盖与考核。", "Live positions, track replay, patrol coverage and KPIs."),
    "page.cameras.desc": ("视频点位、可视范围、视频调度与盲区分析。", "Camera points, fields of view, video dispatch and blind spots."),
    # map page
    "map.level": ("显示层级", "Showing"),
    "map.level.county": ("县(市)区", "counties/districts"),
    "map.level.township": ("乡镇/街道", "townships/streets"),
    "map.level.village": ("村/社区", "villages/communities"),
    "map.level.grid": ("微网格", "micro-grids"),
    "map.features": ("要素数", "features"),
    "map.payload": ("本屏数据量", "payload this screen"),
    "map.zoom_hint": (
        "放大到街区级别即可看到微网格；城市级别显示汇总单元。",
        "Zoom in to street level to see micro-grids; city zoom shows aggregated units.",
    ),
    "map.legend": ("图例", "Legend"),
    "metric.grids": ("网格数", "Grids"),
    "metric.households": ("户数", "Households"),
    "metric.in_band": ("户数达标率", "Grids in band"),
    "metric.staff": ("网格力量", "Staff"),
    "metric.open_cases": ("在办事件", "Open cases"),
    "grid.code": ("网格编码", "Grid code"),
    "grid.name": ("网格名称", "Grid name"),
    "grid.unit": ("所属村/社区", "Village/community"),
    "grid.households": ("户数", "Households"),
    "grid.band": ("标准户数", "Band"),
    "grid.worker": ("专职网格员", "Grid worker"),
    "grid.status": ("状态", "Status"),
    "grid.status.in_band": ("户数达标", "inside band"),
    "grid.status.under": ("户数偏少", "below band"),
    "grid.status.over": ("户数偏多", "above band"),
    "grid.status.empty": ("无住户", "no households"),
    "grid.status.dedicated": ("专属网格", "dedicated grid"),
    "unit.name": ("名称", "Name"),
    "unit.code": ("区划代码", "Code"),
    "unit.grids": ("网格数", "Grids"),
    "unit.households": ("户数", "Households"),
    "unit.in_band": ("达标网格占比", "Grids in band"),
    "unit.staff": ("网格力量", "Staff"),
    "unit.open_cases": ("在办事件", "Open cases"),
    # settings page
    "settings.basemap": ("底图", "Basemap"),
    "settings.basemap.none": ("无底图（本地矢量背景）", "None (local vector context)"),
    "settings.basemap.xyz": ("XYZ 瓦片（内网服务/天地图）", "XYZ tiles (intranet server / Tianditu)"),
    "settings.basemap.gcj02": ("GCJ-02 瓦片（高德类）", "GCJ-02 tiles (AMap-style)"),
    "settings.basemap.url": ("瓦片地址模板", "Tile URL template"),
    "settings.basemap.attribution": ("版权说明", "Attribution"),
    "settings.basemap.subdomains": ("子域名 {s}（天地图 01234567，高德 1234）", "Subdomains for {s} (Tianditu 01234567, AMap 1234)"),
    "settings.save": ("保存", "Save"),
    "settings.saved": ("已保存。", "Saved."),
    "settings.bad_url": (
        "瓦片地址须为 http(s) 模板并包含 {z}、{x}、{y}。",
        "The tile URL must be an http(s) template containing {z}, {x} and {y}.",
    ),
    "settings.summary": ("数据概况", "Data summary"),
    "settings.table": ("数据表", "Table"),
    "settings.rows": ("行数", "Rows"),
    # CLI
    "cli.demo.done": ("演示城市已生成：{summary}，用时 {seconds:.1f} 秒。", "Demo city generated: {summary} in {seconds:.1f} s."),
    "cli.import.done": ("已导入 {rows} 条{kind}记录（修复 {repaired} 个几何）。", "Imported {rows} {kind} rows ({repaired} geometries repaired)."),
    "cli.import.rejected": ("导入被拒绝，未写入任何数据：\n{problems}", "Import rejected, nothing was written:\n{problems}"),
    "cli.export.done": ("已导出 {rows} 条{kind}记录到 {path}。", "Exported {rows} {kind} rows to {path}."),
    "cli.error": ("错误：{error}", "Error: {error}"),
}


def t(key: str, lang: str = DEFAULT_LANG, **kwargs: object) -> str:
    """The text for ``key`` in ``lang`` (zh or en), formatted with ``kwargs``."""
    try:
        zh, en = TEXT[key]
    except KeyError:
        raise KeyError(f"no translation for {key!r}") from None
    text = en if lang == "en" else zh
    return text.format(**kwargs) if kwargs else text


def labels(prefixes: tuple[str, ...], lang: str) -> dict[str, str]:
    """All translated texts whose key starts with one of ``prefixes`` (for layers' tooltip labels)."""
    return {k: t(k, lang) for k in TEXT if k.startswith(prefixes)}
