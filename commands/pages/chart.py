"""The market chart as inline SVG, drawn on the server (no JavaScript): the daily close of each product (unit
and vintage) above, the cumulative volume below, with a <title> and a <desc> for screen readers. It plots the
rows of projections.market.report as they are; it computes nothing that is shown as a figure elsewhere."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from html import escape
from typing import Any

W, H = 900, 440
LEFT, RIGHT = 80, 20
TOP = (20, 250)  # price panel: y from 20 to 250
BOTTOM = (290, 400)  # cumulative volume panel
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def _ordinal(date: str) -> int:
    return dt.date.fromisoformat(date).toordinal()


def svg(days: list[dict[str, Any]], t: Any, unit: str) -> str:
    title, desc = t("chart_title") + f" ({unit})", _desc(days, t, unit)
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="100%" role="img"'
            f' aria-labelledby="chart-title chart-desc"><title id="chart-title">{escape(title)}</title>'
            f'<desc id="chart-desc">{escape(desc)}</desc>')
    if not days:
        return head + f'<text x="{W // 2}" y="{H // 2}" text-anchor="middle">{escape(t("chart_none"))}</text></svg>'
    x0, x1 = _ordinal(days[0]["date"]), _ordinal(max(d["date"] for d in days))
    span = max(x1 - x0, 1)

    def x(date: str) -> float:
        return LEFT + (W - LEFT - RIGHT) * (_ordinal(date) - x0) / span

    closes = [Decimal(d["close"]) for d in days if d["close"] is not None]
    lo, hi = (min(closes), max(closes)) if closes else (Decimal(0), Decimal(1))
    if hi == lo:
        hi = lo + 1

    def y_price(p: Decimal) -> float:
        return TOP[1] - (TOP[1] - TOP[0]) * float((p - lo) / (hi - lo))

    parts = [head, f'<g font-size="12" font-family="sans-serif">']
    # axes and labels
    for (y0, y1), label in ((TOP, t("close_axis")), (BOTTOM, t("cumvol_axis"))):
        parts.append(f'<line x1="{LEFT}" y1="{y1}" x2="{W - RIGHT}" y2="{y1}" stroke="#555"/>'
                     f'<line x1="{LEFT}" y1="{y0}" x2="{LEFT}" y2="{y1}" stroke="#555"/>'
                     f'<text x="{LEFT + 4}" y="{y0 + 12}" fill="#333">{escape(label)}</text>')
    parts.append(f'<text x="{LEFT - 6}" y="{TOP[0] + 4}" text-anchor="end">{hi:.2f}</text>'
                 f'<text x="{LEFT - 6}" y="{TOP[1]}" text-anchor="end">{lo:.2f}</text>')
    for year in range(dt.date.fromordinal(x0).year + 1, dt.date.fromordinal(x1).year + 1):
        xx = x(f"{year}-01-01")
        parts.append(f'<line x1="{xx:.1f}" y1="{TOP[0]}" x2="{xx:.1f}" y2="{BOTTOM[1]}" stroke="#ddd"/>'
                     f'<text x="{xx:.1f}" y="{BOTTOM[1] + 16}" text-anchor="middle">{year}</text>')
    # one line per product
    by_vintage: dict[int, list[str]] = {}
    for d in days:
        if d["close"] is not None:
            by_vintage.setdefault(d["vintage"], []).append(f"{x(d['date']):.1f},{y_price(Decimal(d['close'])):.1f}")
    for i, (vintage, pts) in enumerate(sorted(by_vintage.items())):
        colour = COLOURS[i % len(COLOURS)]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(pts)}"/>'
                     f'<rect x="{LEFT + 90 * i}" y="{TOP[1] + 12}" width="12" height="4" fill="{colour}"/>'
                     f'<text x="{LEFT + 16 + 90 * i}" y="{TOP[1] + 18}" fill="{colour}">{escape(unit)} {vintage}</text>')
    # the cumulative volume, all products, by trade date
    per_day: dict[str, int] = {}
    for d in days:
        per_day[d["date"]] = per_day.get(d["date"], 0) + d["volume"]
    total = sum(per_day.values()) or 1
    run, pts = 0, [f"{LEFT},{BOTTOM[1]}"]
    for date in sorted(per_day):
        run += per_day[date]
        pts.append(f"{x(date):.1f},{BOTTOM[1] - (BOTTOM[1] - BOTTOM[0]) * run / total:.1f}")
    pts.append(f"{x(max(per_day)):.1f},{BOTTOM[1]}")
    parts.append(f'<polygon fill="#9ecae1" stroke="#3182bd" points="{" ".join(pts)}"/>'
                 f'<text x="{LEFT - 6}" y="{BOTTOM[0] + 4}" text-anchor="end">{total:,}</text>'
                 f'<text x="{LEFT - 6}" y="{BOTTOM[1]}" text-anchor="end">0</text>')
    parts.append("</g></svg>")
    return "".join(parts)


def _desc(days: list[dict[str, Any]], t: Any, unit: str) -> str:
    if not days:
        return t("chart_none")
    closes = [(Decimal(d["close"]), d["date"]) for d in days if d["close"] is not None]
    products = sorted({d["vintage"] for d in days})
    first, last = days[0]["date"], max(d["date"] for d in days)
    volume = sum(d["volume"] for d in days)
    s = (f"{unit}, {len(products)} products (vintages {', '.join(map(str, products))}), {first} to {last}; ")
    if closes:
        (lo, lo_d), (hi, hi_d) = min(closes), max(closes)
        s += f"close from {lo:.2f} ({lo_d}) to {hi:.2f} ({hi_d}) yuan/t; "
    return s + f"cumulative volume {volume:,} t."
