"""Charts (matplotlib, the optional `plot` extra): the market's daily close and cumulative volume;
compliance status counts per period and sector."""

from __future__ import annotations

import os
from typing import Any

from ledger.errors import BadInput


def check_target(path: str) -> None:
    """A chart goes to a .png file in a directory that exists: checked before anything is computed."""
    if not path.lower().endswith(".png"):
        raise BadInput(f"--plot {path}: charts are PNG files; name it NAME.png")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise BadInput(f"--plot {path}: no directory {folder}")
    if not os.access(folder, os.W_OK):
        raise BadInput(f"--plot {path}: cannot write in {folder}")


def _save(fig: Any, path: str) -> None:
    try:
        _save(fig, path)
    except OSError as e:
        raise BadInput(f"--plot {path}: cannot write it: {e.strerror}") from None


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BadInput("plotting needs matplotlib: pip install 'carbon-ledger[plot]'") from None
    return plt


def plot_market(report: dict[str, Any], path: str) -> None:
    import datetime as dt

    plt = _pyplot()
    days = report["days"]
    if not days:
        raise BadInput("no trades to plot")
    cum_dates: list[dt.date] = []
    cum, total = [], 0
    for d in days:
        total += d["volume"]
        day = dt.date.fromisoformat(d["date"])
        if cum_dates and cum_dates[-1] == day:
            cum[-1] = total / 1e6
        else:
            cum_dates.append(day)
            cum.append(total / 1e6)
    fig, ax1 = plt.subplots(figsize=(10, 5))
    for vintage in sorted({d["vintage"] for d in days}):
        rows = [d for d in days if d["vintage"] == vintage and d["close"] is not None]
        ax1.plot([dt.date.fromisoformat(d["date"]) for d in rows], [float(d["close"]) for d in rows],
                 linewidth=1.2, label=f"{report['unit']} {vintage} close")
    ax1.set_ylabel("yuan per tonne (close of each product)")
    ax1.legend(loc="upper left", fontsize="small")
    ax2 = ax1.twinx()
    ax2.plot(cum_dates, cum, color="tab:green", linewidth=1.2, label="cumulative volume")
    ax2.set_ylabel("cumulative volume (Mt)", color="tab:green")
    ax1.set_title(f"{report['unit']}: daily close and cumulative volume")
    fig.autofmt_xdate()
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_compliance(rows: list[dict[str, Any]], path: str) -> None:
    plt = _pyplot()
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for r in rows:
        key = (r["period"], r["sector"])
        s = r["status"].rstrip("*")
        if s == "-":
            continue  # no obligation: not part of the picture
        counts.setdefault(key, {}).setdefault(s, 0)
        counts[key][s] += 1
    if not counts:
        raise BadInput("no compliance rows to plot")
    keys = sorted(counts)
    labels = [f"{p} {s}" for p, s in keys]
    fig, ax = plt.subplots(figsize=(max(6, len(keys) * 0.8), 5.5))
    bottom = [0] * len(keys)
    for status, color in (("A", "tab:green"), ("B", "tab:red"), ("C", "tab:orange")):
        vals = [counts[k].get(status, 0) for k in keys]
        ax.bar(labels, vals, bottom=bottom, color=color, label=status)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("firms")
    ax.tick_params(axis="x", labelrotation=45)
    ax.set_title("Compliance status per period and sector")
    ax.legend(title="status")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
