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
    'plan.township': ('街道/乡镇', 'Street / township'),
    'plan.unit': ('社区/村', 'Community / village'),
    'plan.no_units': ('该街道/乡镇下没有社区或村。', 'This street/township has no communities or villages.'),
    'plan.tab.edit': ('草稿编辑', 'Edit draft'),
    'plan.tab.versions': ('版本与对比', 'Versions and diff'),
    'plan.tab.unify': ('多网合一', 'Unified grids'),
    'plan.draft': ('草稿', 'Draft'),
    'plan.no_draft': ('尚无草稿', 'No draft yet'),
    'plan.new_current': ('从现行网格新建草稿', 'New draft from current grids'),
    'plan.new_partition': ('自动划分新建草稿', 'New draft by automatic partition'),
    'plan.partitioning': ('正在按户数自动划分…', 'Partitioning by household count…'),
    'plan.created': ('已新建草稿 #{draft}。现行网格不受影响，发布后才生效。', 'Draft #{draft} created. Live grids are untouched until you publish.'),
    'plan.band': ('户数区间：{lo}–{hi} 户/网格', 'Household band: {lo}–{hi} per grid'),
    'plan.band_min': ('最少户数', 'Minimum households'),
    'plan.band_max': ('最多户数', 'Maximum households'),
    'plan.band_save': ('保存区间', 'Save band'),
    'plan.band_saved': ('户数区间已设为 {lo}–{hi}。', 'Band set to {lo}–{hi}.'),
    'plan.start_hint': ('新建一个草稿开始调整网格：从现行网格复制，或按户数自动划分。', 'Start a draft to redraw the grids: copy the current grids, or partition automatically by household count.'),
    'plan.mode': ('工具', 'Tool'),
    'plan.mode.select': ('选择网格', 'Select grids'),
    'plan.mode.move': ('移动建筑', 'Move buildings'),
    'plan.mode.split': ('画线拆分', 'Split by line'),
    'plan.mode.reshape': ('修改边界', 'Edit outline'),
    'plan.mode.select.hint': ('点击网格选中或取消；选中多个相邻网格后可合并或重新划分。', 'Click grids to select them; merge or re-partition the selection.'),
    'plan.mode.move.hint': ('先在“选择网格”中选中目标网格，再点击建筑把它移入目标网格。', 'Select the target grid first (Select grids), then click buildings to move them into it.'),
    'plan.mode.split.hint': ('用左上角的画线工具穿过一个网格画线，双击结束即拆分。', 'Draw a line across a grid with the line tool (top left); finish it to split the grid.'),
    'plan.mode.reshape.hint': ('选中一个网格，用多边形工具画出它的新边界；相邻网格随之调整。', 'Select one grid, then draw its new outline with the polygon tool; neighbours adjust.'),
    'plan.action.split': ('拆分', 'split'),
    'plan.action.merge': ('合并', 'merge'),
    'plan.action.move': ('移动建筑', 'move buildings'),
    'plan.action.reshape': ('修改边界', 'edit outline'),
    'plan.action.repartition': ('重新划分', 're-partition'),
    'plan.edited': ('已{action}（第 {revision} 版草稿）。', 'Done: {action} (draft revision {revision}).'),
    'plan.edit_failed': ('未做修改：{error}', 'Nothing changed: {error}'),
    'plan.move_pick_target': ('请先选中要移入的目标网格。', 'Select the grid to move buildings into first.'),
    'plan.split_no_grid': ('这条线没有穿过任何基础网格。', 'The line does not cross any base grid.'),
    'plan.reshape_pick': ('请先只选中一个网格，再画它的新边界。', 'Select exactly one grid, then draw its new outline.'),
    'plan.wrong_tool': ('当前工具不使用这种图形：拆分请画线，修改边界请画多边形。', 'This tool does not use that shape: draw a line to split, a polygon to edit an outline.'),
    'plan.m.grids': ('基础网格', 'Base grids'),
    'plan.m.households': ('户数', 'Households'),
    'plan.m.in_band': ('达标率', 'In band'),
    'plan.m.problems': ('错误 / 警告', 'Errors / warnings'),
    'plan.m.problems.help': ('有错误不能发布；警告需填写理由后才能发布。', 'Errors block publishing; warnings need a reason.'),
    'plan.revision': ('草稿第 {revision} 版（最新 {head}），上次操作：{note}', 'Draft revision {revision} of {head}; last edit: {note}'),
    'plan.undo': ('撤销', 'Undo'),
    'plan.redo': ('重做', 'Redo'),
    'plan.clear': ('取消选择', 'Clear selection'),
    'plan.merge': ('合并所选（{n}）', 'Merge selected ({n})'),
    'plan.repartition': ('重新划分所选（{n}）', 'Re-partition selected ({n})'),
    'plan.grid': ('网格', 'Grid'),
    'plan.name': ('名称', 'Name'),
    'plan.households': ('户数', 'Households'),
    'plan.buildings': ('建筑', 'Buildings'),
    'plan.status': ('状态', 'Status'),
    'plan.building': ('建筑编号', 'Building'),
    'plan.finding': ('问题', 'Problem'),
    'plan.diff': ('变化', 'Change'),
    'plan.diff.unchanged': ('未变', 'unchanged'),
    'plan.diff.changed': ('调整', 'changed'),
    'plan.diff.added': ('新增', 'added'),
    'plan.diff.removed': ('撤销', 'removed'),
    'plan.severity': ('级别', 'Severity'),
    'plan.severity.error': ('错误', 'error'),
    'plan.severity.warning': ('警告', 'warning'),
    'plan.code': ('类型', 'Type'),
    'plan.where': ('网格', 'Grids'),
    'plan.message': ('说明', 'Details'),
    'plan.valid': ('校验通过：无缺口、无重叠、户数均在区间内。', 'Valid: no gaps, no overlaps, every grid inside its band.'),
    'plan.publish': ('发布为新版本', 'Publish as a new version'),
    'plan.effective': ('生效日期', 'Effective date'),
    'plan.reason': ('接受警告的理由', 'Reason for accepting the warnings'),
    'plan.publish_button': ('发布', 'Publish'),
    'plan.published': ('已发布第 {version} 版（{grids} 个网格）；{cases} 件在办事件、{staff} 条网格员责任已按位置重新归属。', 'Published version {version} ({grids} grids); {cases} open cases and {staff} staff responsibilities re-attributed by location.'),
    'plan.conflict': ('发布冲突，未写入任何数据：{error}', 'Publishing conflict, nothing was written: {error}'),
    'plan.rebase': ('基于最新版本继续', 'Rebase on the latest version'),
    'plan.rebase.help': ('他人已发布新版本时，把本草稿移到最新版本上，重新校验后再发布。', 'After someone else published, move this draft onto the latest version, check it and publish again.'),
    'plan.rebased': ('草稿已基于第 {version} 版。请重新检查校验结果。', 'The draft now starts from version {version}. Check the validation again.'),
    'plan.discard': ('放弃草稿', 'Discard draft'),
    'plan.discarded': ('草稿 #{draft} 已放弃。', 'Draft #{draft} discarded.'),
    'plan.before': ('对比前版本', 'Before'),
    'plan.after': ('对比后版本', 'After'),
    'plan.export_format': ('导出格式', 'Export format'),
    'plan.export': ('下载第 {version} 版网格', 'Download version {version}'),
    'plan.unify.hint': ('导入各部门的原有网格图层（民政、公安、城管等），查看不一致之处，生成统一网格草稿和对照表。', "Import each department's legacy grid layer (civil affairs, police, urban management…), see where they disagree, and propose one unified draft with a crosswalk."),
    'plan.unify.file': ('部门网格图层文件', 'Legacy layer file'),
    'plan.unify.layer': ('图层名称', 'Layer name'),
    'plan.unify.code_field': ('编码字段', 'Code column'),
    'plan.unify.import': ('导入图层', 'Import layer'),
    'plan.unify.imported': ('已导入 {n} 个网格到图层 {layer}。', 'Imported {n} grids into layer {layer}.'),
    'plan.unify.layers': ('参与合一的图层', 'Layers to unify'),
    'plan.unify.propose': ('生成统一网格草稿', 'Propose unified grids'),
    'plan.unify.done': ('已生成统一网格草稿 #{draft}：{grids} 个网格，一致率 {agreement:.0%}，{disagreements} 处不一致。', 'Unified draft #{draft}: {grids} grids, agreement {agreement:.0%}, {disagreements} disagreements.'),
    "cli.error": ("错误：{error}", "Error: {error}"),
    "cli.validate.summary": ("校验结果：{errors} 个错误，{warnings} 个警告。", "Validation: {errors} errors, {warnings} warnings."),
    "cli.partition.done": (
        "已划分 {grids} 个网格（{households} 户，{share:.0%} 在户数区间内），用时 {seconds:.1f} 秒，已写入 {path}。",
        "Partitioned {grids} grids ({households} households, {share:.0%} inside the band) in {seconds:.1f} s; written to {path}.",
    ),
    "cli.partition.all": (
        "全市 {units} 个村/社区划分为 {grids} 个网格（{households} 户，{share:.1%} 在区间内），用时 {seconds:.1f} 秒，"
        "{failed} 个失败，已写入 {path}。",
        "{units} villages/communities partitioned into {grids} grids ({households} households, {share:.1%} inside the "
        "band) in {seconds:.1f} s, {failed} failed; written to {path}.",
    ),
    "cli.partition.draft": (
        "已生成草稿 {draft}：{grids} 个基础网格，{share:.0%} 在户数区间内。",
        "Draft {draft} created: {grids} base grids, {share:.0%} inside the band.",
    ),
    "cli.partition.estimated": (
        "{n} 栋建筑无户数，按占地面积×层数÷{area:g} m² 估算。",
        "{n} buildings had no household count: estimated as footprint × levels ÷ {area:g} m².",
    ),
    "cli.partition.outside": ("{n} 栋建筑在边界外，未参与划分。", "{n} buildings lie outside the boundary and were left out."),
    "cli.publish.done": (
        "已发布 {unit} 第 {version} 版网格（{grids} 个），{cases} 件在办事件、{staff} 条网格员责任已按位置重新归属。",
        "Published version {version} of {unit} ({grids} grids); {cases} open cases and {staff} staff responsibilities "
        "re-attributed by location.",
    ),
    "cli.unify.done": (
        "已合并 {layers} 个部门图层为 {grids} 个统一网格（一致率 {agreement:.0%}，{disagreements} 处不一致），已写入 {path}。",
        "Unified {layers} layers into {grids} grids (agreement {agreement:.0%}, {disagreements} disagreements); "
        "written to {path}.",
    ),
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
