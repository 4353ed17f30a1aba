"""The geometry of the console's charts, drawn as inline SVG by templates/_charts.html.

Our own few lines instead of a JavaScript charting package: the pages stay server-rendered and
readable without scripts, print as they show, and nothing is downloaded or copied in. Pure
functions: numbers in, shapes out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    anchor: str = "start"


@dataclass
class Chart:
    width: float
    height: float
    title: str
    rects: list[Rect] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    lines: list[tuple[float, float, float, float]] = field(default_factory=list)  # grid and axes
    paths: list[tuple[str, str, str]] = field(default_factory=list)  # (points, css, title)
    dots: list[tuple[float, float, str, str]] = field(default_factory=list)  # (x, y, css, title)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (css, words)


def stacked_bars(rows: Sequence[tuple[str, Sequence[tuple[str, int, str]]]], title: str,
                 width: float = 560, bar: float = 26, label_width: float = 60) -> Chart:
    """One horizontal bar per row (label, [(segment words, count, css)]), segments side by side,
    scaled to the largest row total."""
    gap = 12
    chart = Chart(width, len(rows) * (bar + gap) + gap + 24, title)
    most = max((sum(n for _, n, _ in segments) for _, segments in rows), default=0) or 1
    room = width - label_width - 50
    seen: dict[str, str] = {}
    for i, (label, segments) in enumerate(rows):
        y = gap + i * (bar + gap)
        chart.texts.append(Text(label_width - 8, y + bar * 0.68, label, "end"))
        x = label_width
        for words, count, css in segments:
            seen.setdefault(css, words)
            if count <= 0:
                continue
            w = room * count / most
            chart.rects.append(Rect(x, y, w, bar, css, f"{label} {words} {count}"))
            x += w
        chart.texts.append(Text(x + 6, y + bar * 0.68, str(sum(n for _, n, _ in segments))))
    chart.lines.append((label_width, 4, label_width, chart.height - 24))
    chart.legend = list((css, words) for css, words in seen.items())
    return chart


def line_chart(x_labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[float | None]]], title: str,
               width: float = 560, height: float = 220) -> Chart:
    """Lines of rates (0–1) over the x labels; a missing rate (no denominator) leaves a gap."""
    left, right, top, bottom = 44, 16, 12, 36
    chart = Chart(width, height, title)
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(len(x_labels) - 1, 1)
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        y = top + plot_h * (1 - fraction)
        chart.lines.append((left, y, width - right, y))
        chart.texts.append(Text(left - 6, y + 4, f"{fraction:.0%}", "end"))
    for i, label in enumerate(x_labels):
        chart.texts.append(Text(left + i * step, height - bottom + 18, label, "middle"))
    for words, css, values in series:
        chart.legend.append((css, words))
        run: list[str] = []
        for i, value in enumerate(values):
            if value is None:
                if len(run) > 1:
                    chart.paths.append((" ".join(run), css, words))
                run = []
                continue
            x, y = left + i * step, top + plot_h * (1 - max(0.0, min(1.0, value)))
            run.append(f"{x:.1f},{y:.1f}")
            chart.dots.append((x, y, css, f"{x_labels[i]} {words} {value:.0%}"))
        if len(run) > 1:
            chart.paths.append((" ".join(run), css, words))
    return chart


def grouped_bars(groups: Sequence[tuple[str, Sequence[tuple[str, str, float | None]]]], title: str,
                 width: float = 560, height: float = 240) -> Chart:
    """Vertical bars of rates (0–1), one group per label (a town), one bar per series in it."""
    left, right, top, bottom = 44, 16, 12, 40
    chart = Chart(width, height, title)
    plot_w, plot_h = width - left - right, height - top - bottom
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        y = top + plot_h * (1 - fraction)
        chart.lines.append((left, y, width - right, y))
        chart.texts.append(Text(left - 6, y + 4, f"{fraction:.0%}", "end"))
    slot = plot_w / max(len(groups), 1)
    seen: dict[str, str] = {}
    for g, (label, bars) in enumerate(groups):
        n = max(len(bars), 1)
        bar_w = slot * 0.8 / n
        x0 = left + g * slot + slot * 0.1
        chart.texts.append(Text(left + g * slot + slot / 2, height - bottom + 18, label, "middle"))
        for b, (words, css, value) in enumerate(bars):
            seen.setdefault(css, words)
            if value is None:
                continue
            h = plot_h * max(0.0, min(1.0, value))
            chart.rects.append(Rect(x0 + b * bar_w, top + plot_h - h, bar_w * 0.9, h, css,
                                    f"{label} {words} {value:.0%}"))
    chart.legend = list((css, words) for css, words in seen.items())
    return chart
