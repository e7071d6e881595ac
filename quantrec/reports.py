"""Self-contained HTML reports with embedded plots: the one way every stage writes them.

A report is a list of sections (heading + HTML body). Figures are matplotlib figures
embedded as base64 PNG so a single file opens anywhere, including the KFP UI's HTML
artifact viewer (which shows one file, no side assets).
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pandas as pd

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:1.6em}
table{border-collapse:collapse;font-size:0.9em;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
.pass{color:#176c2c;font-weight:600}.fail{color:#b00020;font-weight:600}
.note{color:#555;font-size:0.9em}img{max-width:100%}
"""


def figure_to_html(fig: Any, alt: str = "figure") -> str:
    """Render a matplotlib figure as an inline ``<img>`` tag (PNG, base64) and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'


def table_to_html(df: pd.DataFrame, float_format: str = "{:.4g}", index: bool = False) -> str:
    """A DataFrame as a plain HTML table with compact number formatting."""
    return df.to_html(index=index, escape=True, border=0,
                      float_format=lambda v: float_format.format(v), na_rep="")


def escape(text: Any) -> str:
    return html.escape(str(text))


@dataclass
class HtmlReport:
    """Accumulates sections and writes one self-contained HTML file through fsspec."""

    title: str
    sections: list[tuple[str, str]] = field(default_factory=list)

    def add(self, heading: str, body_html: str) -> "HtmlReport":
        self.sections.append((heading, body_html))
        return self

    def add_text(self, heading: str, text: str) -> "HtmlReport":
        return self.add(heading, f"<p>{escape(text)}</p>")

    def add_table(self, heading: str, df: pd.DataFrame, **kwargs: Any) -> "HtmlReport":
        return self.add(heading, table_to_html(df, **kwargs))

    def add_figure(self, heading: str, fig: Any, caption: str = "") -> "HtmlReport":
        body = figure_to_html(fig, alt=heading)
        if caption:
            body += f'<p class="note">{escape(caption)}</p>'
        return self.add(heading, body)

    def render(self) -> str:
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(self.title)}</title>",
                 f"<style>{_STYLE}</style></head><body><h1>{escape(self.title)}</h1>"]
        for heading, body in self.sections:
            parts.append(f"<h2>{escape(heading)}</h2>\n{body}")
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self, path: str) -> str:
        with fsspec.open(path, "w", encoding="utf-8") as f:
            f.write(self.render())
        return path
