"""Every label of the public pages in English and Simplified Chinese: one table, `LABELS[key] = (en, zh)`.

A page asks `t(key)`; a key missing from the table is an error in the tests (tests/test_pages.py), never a
blank on a page. Figures are never translated: they come from the read functions the CLI uses."""

from __future__ import annotations

LANGS = ("en", "zh")

LABELS: dict[str, tuple[str, str]] = {
    # the site
    "site": ("China national carbon market: public registry", "全国碳排放权交易市场：公开登记信息"),
    "nav_home": ("At a glance", "概览"),
    "nav_market": ("Market", "市场"),
    "nav_compliance": ("Compliance", "履约"),
    "nav_coverage": ("Coverage", "覆盖范围"),
    "nav_audit": ("Verify the figures", "核验数据"),
    "other_lang": ("中文", "English"),
    "computed_at": ("Computed at position", "计算所依据的位置"),
    "hash": ("hash", "哈希"),
    "as_of_label": ("Show as the ledger stood at position", "显示账本在以下位置时的状态"),
    "show": ("Show", "显示"),
    "open_data": ("Open data", "开放数据"),
    "download": ("Download", "下载"),
    "no_rows": ("No rows.", "无数据。"),
    "error": ("Error", "错误"),
    "not_found": ("Not found", "未找到"),
    "bad_request": ("Bad request", "请求有误"),
    "back_home": ("Back to the overview", "返回概览"),
    # the overview
    "home_title": ("The market at a glance", "市场概览"),
    "head": ("Head of the ledger", "账本最新位置"),
    "position": ("Position", "位置"),
    "checkpoint": ("Latest signed checkpoint", "最新签名检查点"),
    "no_checkpoint": ("This server publishes no signed checkpoint.", "本服务器未发布签名检查点。"),
    "checkpoint_ok": ("signature valid; the log holds this hash at this position",
                      "签名有效；账本在该位置的哈希与之一致"),
    "checkpoint_bad": ("does NOT match the log or its signature is not valid", "与账本不一致或签名无效"),
    "signed_by": ("signed by", "签署者"),
    "signed_at": ("at", "时间"),
    "cumulative": ("Cumulative trading", "累计成交"),
    "volume": ("Volume (t)", "成交量（吨）"),
    "value": ("Value (yuan)", "成交额（元）"),
    "trades": ("Trades", "成交笔数"),
    "covered": ("Covered firms and emissions", "纳入企业与排放量"),
    "years_title": ("Compliance years", "履约年度"),
    # the market
    "market_title": ("Market statistics", "市场统计"),
    "unit": ("Unit", "品种"),
    "chart_title": ("Daily close per product and cumulative volume", "各产品每日收盘价与累计成交量"),
    "chart_caption": ("Top: the daily close (yuan/t) of each product (unit and vintage). Bottom: the cumulative"
                      " volume traded (t), all products.",
                      "上图：各产品（品种与年份）每日收盘价（元/吨）。下图：全部产品累计成交量（吨）。"),
    "chart_none": ("No trades yet.", "尚无成交。"),
    "close_axis": ("Close (yuan/t)", "收盘价（元/吨）"),
    "cumvol_axis": ("Cumulative volume (t)", "累计成交量（吨）"),
    "yearly": ("By year", "按年度"),
    "by_mode": ("By trade mode", "按交易方式"),
    "daily_data": ("Daily rows (per product)", "每日数据（按产品）"),
    "yearly_data": ("Yearly rows", "年度数据"),
    # compliance
    "compliance_title": ("Compliance", "履约情况"),
    "filter": ("Filter", "筛选"),
    "all": ("all", "全部"),
    "apply": ("Apply", "应用"),
    "page": ("Page", "页"),
    "of": ("of", "/"),
    "rows_total": ("rows", "行"),
    "per_page": ("per page", "每页"),
    "previous": ("Previous", "上一页"),
    "next": ("Next", "下一页"),
    "sort_by": ("sort by", "排序"),
    "ascending": ("ascending", "升序"),
    "descending": ("descending", "降序"),
    "status_legend": ("Status: A surrendered at least the obligation; B less; C no verified emissions; - no"
                      " obligation; * changed after the period closed.",
                      "履约状态：A 清缴量不少于应清缴量；B 少于应清缴量；C 无核查排放量；- 无清缴义务；"
                      "* 履约期结束后有变化。"),
    # firms
    "firm_title": ("Public record of", "企业公开记录："),
    "unknown_firm": ("No firm with this id is registered.", "没有以此编号登记的企业。"),
    # coverage
    "coverage_title": ("Coverage", "覆盖范围"),
    "total_verified": ("Total verified emissions (t)", "核查排放总量（吨）"),
    "national_total": ("National emissions (t)", "全国排放量（吨）"),
    "covered_share": ("Covered share of national emissions (%)", "覆盖全国排放量的比例（%）"),
    "national_hint": ("Give national emissions (t) to see the covered share", "输入全国排放量（吨）以计算覆盖比例"),
    "unknown_year": ("No compliance year has been opened for this year.", "该年度尚未开启履约。"),
    # audit
    "audit_title": ("How to verify the published figures", "如何核验公开数据"),
    "audit_intro": ("Every figure on these pages is computed from the ledger's hash-chained log by the same read"
                    " functions as the command line. Anyone can download the log, check its chain and the"
                    " regulator's signatures, and recompute any page.",
                    "本网站所有数据均由与命令行相同的读取函数，根据账本的哈希链日志计算得出。任何人都可以下载日志，"
                    "核验哈希链与监管机构的签名，并重新计算任何页面。"),
    "audit_export": ("The log (public part: positions, types, times, hashes)", "日志（公开部分：位置、类型、时间、哈希）"),
    "audit_commands": ("Recompute a page", "重新计算页面"),
    "audit_columns": ("Open-data files and their columns", "开放数据文件及其字段"),
    "file": ("File", "文件"),
    "meaning": ("Meaning", "含义"),
    "export_note": ("JSON lines; a regulator's signed request gets every field, to re-execute every command",
                    "JSON 行格式；监管机构的签名请求可获得全部字段，用以重新执行每条命令"),
    "columns": ("Columns", "字段"),
    "schema_note": ("Each JSON file has a top-level schema_version; each CSV file starts with one comment line"
                    " (# schema_version=..., the table, position and hash), then the header row. Quantities"
                    " are whole tonnes; money and prices are exact decimal strings with two places.",
                    "每个 JSON 文件含顶层字段 schema_version；每个 CSV 文件第一行为注释"
                    "（# schema_version=...、表名、位置与哈希），其后为表头。数量为整吨；金额与价格为两位小数的"
                    "精确十进制字符串。"),
    # columns (open data and tables)
    "col_firm_id": ("Firm", "企业编号"),
    "col_name": ("Name", "名称"),
    "col_sector": ("Sector", "行业"),
    "col_region": ("Region", "地区"),
    "col_period": ("Period", "履约期"),
    "col_year": ("Year", "年度"),
    "col_free_allocation": ("Free allocation (t)", "免费配额（吨）"),
    "col_exemptions": ("Exemptions issued (t)", "豁免发放（吨）"),
    "col_verified": ("Verified emissions (t)", "核查排放量（吨）"),
    "col_obligation": ("Obligation (t)", "应清缴量（吨）"),
    "col_surrendered_cea": ("Surrendered CEA (t)", "清缴 CEA（吨）"),
    "col_surrendered_ccer": ("Surrendered CCER (t)", "清缴 CCER（吨）"),
    "col_shortfall": ("Shortfall (t)", "缺口（吨）"),
    "col_status": ("Status", "状态"),
    "col_fine": ("Fine (yuan)", "罚款（元）"),
    "col_deduction": ("Deduction (t)", "核减（吨）"),
    "col_date": ("Date", "日期"),
    "col_unit": ("Unit", "品种"),
    "col_vintage": ("Vintage", "年份"),
    "col_open": ("Open", "开盘价"),
    "col_high": ("High", "最高价"),
    "col_low": ("Low", "最低价"),
    "col_close": ("Close", "收盘价"),
    "col_volume": ("Volume (t)", "成交量（吨）"),
    "col_value": ("Value (yuan)", "成交额（元）"),
    "col_trades": ("Trades", "成交笔数"),
    "col_average_price": ("Average price", "均价"),
    "col_mode": ("Mode", "交易方式"),
    "col_firms": ("Firms", "企业数"),
    "col_verified_firms": ("Firms verified", "已核查企业数"),
    "col_share": ("Share of verified (%)", "占核查排放量比例（%）"),
}


def translator(lang: str):
    i = LANGS.index(lang)

    def t(key: str) -> str:
        return LABELS[key][i]

    return t
