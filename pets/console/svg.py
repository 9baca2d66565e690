"""Small server-side SVG plots of the console (no script, no inline style: the console's
Content-Security-Policy allows neither)."""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Sequence

__all__ = ["budget_bar", "burndown"]


def _num(x: float) -> str:
    return f"{x:.6g}"


def budget_bar(spent: float, total: float, *, label: str, width: int = 160, height: int = 18) -> str:
    """A horizontal bar: the spent share of ``total``, with an accessible title."""
    frac = 0.0 if total <= 0 else min(1.0, max(0.0, spent / total))
    w = round(frac * (width - 2), 1)
    cls = "bar-high" if frac >= 0.9 else "bar-mid" if frac >= 0.6 else "bar-low"
    text = f"{label}: {_num(spent)} of {_num(total)} spent ({frac:.0%})"
    return (
        f'<svg class="budget-bar" role="img" aria-label="{escape(text)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(text)}</title>'
        f'<rect class="bar-bg" x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" rx="3"/>'
        f'<rect class="{cls}" x="1" y="1" width="{w}" height="{height - 2}" rx="2"/></svg>'
    )


def burndown(points: Sequence[tuple[str, float]], total: float, *, label: str, start: str | None = None,
             charges: int | None = None, width: int = 240, height: int = 100) -> str:
    """Budget left over time: ``points`` are (ISO time, amount charged then), oldest
    first; the line steps down from ``total`` at ``start`` (or the first charge)."""
    pad_l, pad_r, pad_t, pad_b = 44, 8, 8, 22
    iw, ih = width - pad_l - pad_r, height - pad_t - pad_b
    times = [_ts(t) for t, _ in points]
    t0 = _ts(start) if start else (times[0] if times else 0.0)
    t0 = min([t0] + times) if times else t0
    t1 = max(times) if times else t0
    span = (t1 - t0) or 1.0
    top = max(total, sum(c for _, c in points), 1e-12)

    def x(t: float) -> float:
        return round(pad_l + (t - t0) / span * iw, 1)

    def y(v: float) -> float:
        return round(pad_t + (1 - max(v, 0.0) / top) * ih, 1)

    left = total
    path = [f"M{x(t0)},{y(left)}"]
    for t, (_, c) in zip(times, points):
        path.append(f"H{x(t)}")
        left -= c
        path.append(f"V{y(left)}")
    path.append(f"H{pad_l + iw}")
    n = len(points) if charges is None else charges
    desc = (f"{label}: {n} charge{'' if n == 1 else 's'}, {_num(max(left, 0.0))} of {_num(total)} left")
    first = datetime.fromtimestamp(t0).strftime("%Y-%m-%d %H:%M") if points or start else ""
    last = datetime.fromtimestamp(t1).strftime("%Y-%m-%d %H:%M") if points else ""
    return (
        f'<svg class="burndown" role="img" aria-label="{escape(desc)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(desc)}</title>'
        f'<line class="axis" x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + ih}"/>'
        f'<line class="axis" x1="{pad_l}" y1="{pad_t + ih}" x2="{pad_l + iw}" y2="{pad_t + ih}"/>'
        f'<text class="tick" x="{pad_l - 4}" y="{pad_t + 8}" text-anchor="end">{_num(total)}</text>'
        f'<text class="tick" x="{pad_l - 4}" y="{pad_t + ih}" text-anchor="end">0</text>'
        f'<text class="tick" x="{pad_l}" y="{height - 6}">{escape(first)}</text>'
        f'<text class="tick" x="{pad_l + iw}" y="{height - 6}" text-anchor="end">{escape(last)}</text>'
        f'<path class="line" d="{" ".join(path)}"/></svg>'
    )


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
