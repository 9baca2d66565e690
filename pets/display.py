"""Rich HTML for notebooks: ``Release._repr_html_``, ``Explanation._repr_html_`` and
``Extract._repr_html_``. Everything shown is what the release already holds (its
values, intervals, cost); nothing is computed from data. Each released cell is drawn
with its 95% confidence interval as an inline SVG (no script)."""

from __future__ import annotations

import math
from html import escape
from typing import Any

__all__ = ["release_html", "explanation_html", "extract_html"]

MAX_ROWS = 50


def _f(x: Any) -> str:
    if isinstance(x, float):
        return "" if math.isnan(x) else f"{x:.6g}"
    return escape(str(x))


def interval_svg(value: float, lower: float, upper: float, lo: float, hi: float,
                 width: int = 160, height: int = 14) -> str:
    """The interval [lower, upper] as a bar and the value as a tick, on the axis [lo, hi]."""
    span = (hi - lo) or 1.0

    def x(v: float) -> float:
        return round(2 + (min(max(v, lo), hi) - lo) / span * (width - 4), 1)

    label = f"{_f(value)} (95% CI {_f(lower)} to {_f(upper)})"
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="{label}">'
            f'<title>{label}</title>'
            f'<line x1="2" y1="{height / 2}" x2="{width - 2}" y2="{height / 2}" stroke="#ccc"/>'
            f'<rect x="{x(lower)}" y="3" width="{max(x(upper) - x(lower), 1)}" height="{height - 6}" '
            f'fill="#9ec5e8"/><line x1="{x(value)}" y1="1" x2="{x(value)}" y2="{height - 1}" '
            f'stroke="#0b5394" stroke-width="2"/></svg>')


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def release_html(r: Any) -> str:
    title = "Release" + (" (dummy data)" if r.dummy else "")
    facts = (f"spent ε={_f(r.spent.epsilon)}, δ={_f(r.spent.delta)} · audit record "
             f"{r.audit_id} · {len(r.df)} cells"
             + (f" · {r.suppressed} suppressed" if r.suppressed else "")
             + (f" · repeat of record {r.repeat_of} (no new cost)" if r.repeat_of else ""))
    try:
        ci = r.ci(0.95)
    except (TypeError, Exception):  # noqa: BLE001 - a release without intervals
        ci = None
    if ci is None or ci.empty or not {"aggregate", "value", "lower", "upper"} <= set(ci.columns):
        table = r.df.head(MAX_ROWS).to_html(index=False)
    else:
        keys = [c for c in ci.columns if c not in ("aggregate", "value", "lower", "upper")]
        axes = {a: (float(g["lower"].min()), float(g["upper"].max())) for a, g in ci.groupby("aggregate")}
        rows = []
        for _, row in ci.head(MAX_ROWS).iterrows():
            lo, hi = axes[row["aggregate"]]
            v, lw, up = float(row["value"]), float(row["lower"]), float(row["upper"])
            scale = r.scale.get(row["aggregate"])
            rows.append([_f(row[k]) for k in keys] + [
                escape(str(row["aggregate"])), _f(v), f"[{_f(lw)}, {_f(up)}]",
                "" if scale is None else _f(float(scale)), interval_svg(v, lw, up, lo, hi)])
        table = _table(keys + ["aggregate", "value", "95% CI", "noise scale", "interval"], rows)
    more = f"<p>… {len(r.df) - MAX_ROWS} more cells (r.df)</p>" if len(r.df) > MAX_ROWS else ""
    return f"<div><strong>{title}</strong><p>{facts}</p>{table}{more}</div>"


def explanation_html(e: Any) -> str:
    if not e.allowed:
        return (f"<div><strong>Explanation: refused</strong> by rule <code>{escape(str(e.rule))}</code>"
                f"<p>{escape(str(e.message))}</p></div>")
    widths = [w for w in e.ci_width.values() if w is not None]
    top = max(widths) if widths else 1.0
    rows = []
    for name, s in e.scale.items():
        w = e.ci_width.get(name)
        bar = "" if w is None else interval_svg(0.0, -w / 2, w / 2, -top / 2, top / 2)
        rows.append([escape(name), _f(float(s)),
                     "depends on group size" if w is None else _f(float(w)), bar])
    left = "" if e.remaining is None else f" · remaining before it ε={_f(e.remaining.epsilon)}, δ={_f(e.remaining.delta)}"
    return (f"<div><strong>Explanation: allowed</strong><p>cost ε={_f(e.cost.epsilon)}, "
            f"δ={_f(e.cost.delta)}{left} · nothing spent</p>"
            + _table(["output", "noise scale", "95% CI width", "width (around the value)"], rows)
            + "</div>")


def extract_html(x: Any) -> str:
    title = "Extract" + (" (dummy data)" if x.dummy else "")
    metrics = ", ".join(f"{escape(str(k))}={_f(v)}" for k, v in list(x.metrics.items())[:8])
    facts = (f"{len(x.df)} rows · {x.classes} classes · {x.suppressed} suppressed · "
             f"transformation {escape(str(x.transformation))} · audit record {x.audit_id}"
             + (f" · extracts left {x.extracts_left}" if x.extracts_left is not None else ""))
    more = f"<p>… {len(x.df) - MAX_ROWS} more rows (x.df)</p>" if len(x.df) > MAX_ROWS else ""
    return (f"<div><strong>{title}</strong><p>{facts}</p><p>{metrics}</p>"
            f"{x.df.head(MAX_ROWS).to_html(index=False)}{more}</div>")
