"""The dashboard's charts: pygal line charts rendered to SVG on the server, to inline.

pygal adds a script to every chart (its tooltip configuration, and a tooltip library from a
CDN unless `js=[]`), and comments with its web address; the page runs no script and names
no other host, so both are taken out of the tree before it is written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pygal
from pygal.style import Style

from app.dashboard.figures import bucket_label
from app.stats.schemas import Bucket, BucketRow

FONTS = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
# Colours that stay apart for the common colour blindnesses (Okabe and Ito's palette).
COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442")


def _style(*, text: int) -> Style:
    return Style(
        font_family=FONTS,
        background="transparent",
        plot_background="#ffffff",
        foreground="#3f3f46",
        foreground_strong="#18181b",
        foreground_subtle="#e4e4e7",
        colors=COLOURS,
        label_font_size=text,
        major_label_font_size=text,
        legend_font_size=text + 1,
        value_font_size=text,
        tooltip_font_size=text,
    )


@dataclass(frozen=True)
class _Shape:
    """A drawing size. The page shows the wide one, or the narrow one on a phone, where
    the wide one scaled down would have unreadably small text."""

    width: int
    height: int
    text: int
    x_labels: int  # at most this many, to stay readable
    legend_columns: int


WIDE = _Shape(width=960, height=320, text=12, x_labels=10, legend_columns=4)
NARROW = _Shape(width=400, height=340, text=13, x_labels=4, legend_columns=2)


@dataclass(frozen=True)
class Chart:
    """One chart of the page: its name (for tests and anchors), title, and SVG markup."""

    name: str
    title: str
    svg: str
    svg_narrow: str


def line_chart(
    name: str,
    title: str,
    rows: Sequence[BucketRow],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    bucket: Bucket,
    money: bool = False,
) -> Chart:
    """A line per (label, values) over the buckets of `rows`, as inline SVG markup."""
    return Chart(
        name=name,
        title=title,
        svg=_render(title, rows, series, bucket=bucket, money=money, shape=WIDE),
        svg_narrow=_render(title, rows, series, bucket=bucket, money=money, shape=NARROW),
    )


def _render(
    title: str,
    rows: Sequence[BucketRow],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    bucket: Bucket,
    money: bool,
    shape: _Shape,
) -> str:
    chart = pygal.Line(
        style=_style(text=shape.text),
        js=[],
        disable_xml_declaration=True,
        width=shape.width,
        height=shape.height,
        margin=12,
        show_dots=len(rows) <= 62,
        dots_size=3,
        stroke_style={"width": 2.5},
        include_x_axis=True,  # counts start at 0, so a small change does not look large
        show_minor_x_labels=False,
        x_labels_major_every=max(1, -(-len(rows) // shape.x_labels)),
        show_x_guides=False,
        legend_at_bottom=True,
        legend_at_bottom_columns=min(len(series), shape.legend_columns),
        truncate_legend=-1,
        truncate_label=-1,
        value_formatter=(lambda value: f"{value:,.2f}") if money else (lambda v: f"{v:,.0f}"),
        classes=["pygal-chart", "chart"],
    )
    top = max((max(values, default=0) for _, values in series), default=0)
    if not money or top >= 1:
        # Round numbers on the axis, whole ones for counts: pygal's own ticks would put
        # 0.5 there (shown as "0"), and stop short of the highest point.
        ticks = integer_ticks(top)
        chart.y_labels = ticks
        chart.range = (0, ticks[-1])
    chart.x_labels = [bucket_label(row.start, bucket) for row in rows]
    for label, values in series:
        chart.add(label, list(values))
    chart.add_xml_filter(_without_scripts(title))
    svg: str = chart.render(is_unicode=True)
    return svg


def integer_ticks(top: float, *, most: int = 6) -> list[int]:
    """Ticks from 0 to at least `top`, 1, 2 or 5 times a power of ten apart, at most `most`."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if math.ceil(top / (step * factor)) < most:
                last = max(1, math.ceil(top / (step * factor)))
                return [index * step * factor for index in range(last + 1)]
        step *= 10


def _without_scripts(title: str) -> Any:
    def strip(root: Any) -> Any:
        for parent in list(root.iter()):
            for child in list(parent):
                if child.tag == "script" or not isinstance(child.tag, str):  # comments
                    parent.remove(child)
        # Inline in HTML the SVG namespace is implied; the attribute would only name a URL.
        root.attrib.pop("xmlns", None)
        root.set("role", "img")
        root.set("aria-label", title)
        for node in root.iter("title"):
            node.text = title
        return root

    return strip
