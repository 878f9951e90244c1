"""Server-drawn SVG charts (escaped, accessible, scaled) and the role-driven navigation (pure)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from arrears.web.charts import Series, _nice_top, bar_chart
from arrears.web.navigation import NAV, NavLink, links_for, register


def test_a_bar_chart_is_well_formed_svg_with_a_title_per_bar_and_escaped_text() -> None:
    svg = str(
        bar_chart(
            title="余额 <by> bucket",
            labels=["1-30 天", "31-60 & more"],
            series=[Series("balance", [300, 1200]), Series("prior", [0, 50])],
            test_id="t",
        )
    )
    root = ET.fromstring(svg)
    assert root.get("role") == "img" and root.get("aria-labelledby") == "t-t t-d"
    assert root.find("title") is not None and root.find("desc") is not None
    assert "余额 &lt;by&gt; bucket" in svg and "31-60 &amp; more" in svg
    bars = re.findall(r'<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)" fill', svg)
    assert len(bars) == 4 + 2  # four bars, two legend swatches
    heights = [float(h) for _, h in bars[:4]]
    # the axis tops out at 2,000: 1,200 is 60% of the plot's height, 300 is a quarter of that
    assert abs(heights[2] / heights[0] - 4) < 0.01 and heights[1] == 0.0
    assert svg.count("<title>") == 4 and "1-30 天 · balance: 300" in svg


def test_axis_tops_are_round_numbers() -> None:
    assert [_nice_top(v) for v in (0, 1, 3, 7, 12, 1200, 50_001)] == [1, 1, 5, 10, 20, 2000, 100_000]


def test_navigation_follows_the_role_and_takes_new_links() -> None:
    assert [link.href for link in links_for("collector")] == ["/queue"]
    assert "/supervisor/approvals" in [link.href for link in links_for("supervisor")]
    assert "/supervisor" not in [link.href for link in links_for("read_only")]
    assert [link.href for link in links_for("compliance")] == ["/queue", "/compliance/contacts"]
    assert "/admin/imports" in [link.href for link in links_for("admin")]
    assert "/admin/imports" not in [link.href for link in links_for("supervisor")]
    before = len(NAV)
    register(NavLink("/retention", "retention", frozenset({"compliance"})))
    register(NavLink("/retention", "retention", frozenset({"compliance"})))
    try:
        assert len(NAV) == before + 1
        assert [link.href for link in links_for("compliance")] == [
            "/queue",
            "/compliance/contacts",
            "/retention",
        ]
    finally:
        NAV.pop()
