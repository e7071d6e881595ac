"""The validation verdict: checks, summary, JSON and a small self-contained HTML report."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pandas as pd

from quantrec.redact import redact, redact_obj
from quantrec.reports import HtmlReport, escape, table_to_html
from validation.checks import Check, json_safe
from validation.cleaning_drift import max_ratio_per_rule

ERROR_SUITE = "load"
ERROR_EXPECTATION = "data_is_usable"


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class ValidationResult:
    """Outcome of ``run_validation``: every check, the verdict and what it ran on.

    ``error`` is set when the data could not be used at all (unreadable file, bad
    spec, run date outside the data); it is also the one failed check then.
    ``daily_rows`` (day, rows, role) feeds the row-count plot of the report;
    ``cleaning`` (totals per rule) and ``cleaning_drift`` (``cleaning_drift.drift_table``)
    the cleaning section. ``frame``: the canonical rows that were validated (every row
    before run_date), for the caller to hand on as the run's validated snapshot; it is
    never serialised. Everything written or shown (``message``, ``summary``,
    ``to_json_dict``, ``html_report``) is redacted (``quantrec.redact``).
    """

    run_date: str
    checks: list[Check] = field(default_factory=list)
    data_url: str | None = None
    spec_name: str | None = None
    windows: dict[str, str] | None = None
    error: str | None = None
    rows_loaded: int | None = None
    daily_rows: pd.DataFrame | None = None
    elapsed_s: float | None = None
    cleaning: dict[str, Any] | None = None
    cleaning_drift: pd.DataFrame | None = field(default=None, repr=False)
    frame: pd.DataFrame | None = field(default=None, repr=False)

    @classmethod
    def from_error(cls, run_date: str, message: str, **kwargs: Any) -> "ValidationResult":
        message = redact(message)
        check = Check(suite=ERROR_SUITE, expectation=ERROR_EXPECTATION,
                      description="the data, spec and run date can be used", column=None,
                      success=False, observed=message)
        return cls(run_date=run_date, checks=[check], error=message, **kwargs)

    @property
    def passed(self) -> bool:
        # No checks at all is not a pass: nothing was shown to be fine.
        return self.error is None and bool(self.checks) and all(c.success for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.success]

    def summary(self) -> dict[str, Any]:
        """The verdict in a few JSON-safe fields (artifact metadata), redacted."""
        return redact_obj({"verdict": "PASSED" if self.passed else "FAILED", "passed": self.passed,
                "run_date": self.run_date, "checks_total": len(self.checks),
                "checks_failed": len(self.failed), "checks_passed": len(self.checks) - len(self.failed),
                "failed_expectations": [f"{c.suite}: {c.expectation}" + (f" ({c.column})" if c.column else "")
                                        for c in self.failed],
                "data": self.data_url, "spec": self.spec_name, "error": self.error,
                "rows_loaded": self.rows_loaded})

    def message(self) -> str:
        """One paragraph: "passed", or why the data failed and where to look."""
        return redact(self._message())

    def _message(self) -> str:
        if self.passed:
            return "passed"
        where = f"{self.data_url or 'the data'} for run_date {self.run_date}"
        if self.error is not None:
            return f"Validation of {where} FAILED: the data cannot be used: {self.error}"
        parts = []
        for c in self.failed:
            col = f" [column {c.column}]" if c.column else ""
            parts.append(f"{c.description}{col} ({c.expectation}, observed {_short(c.observed, 80)})")
        return (f"Validation of {where} FAILED {len(self.failed)} of {len(self.checks)} checks: "
                + "; ".join(parts) + ". See the HTML report for example rows.")

    def to_json_dict(self) -> dict[str, Any]:
        daily = None
        if self.daily_rows is not None:
            daily = json_safe(self.daily_rows.to_dict(orient="records"))
        drift_max = None
        if self.cleaning_drift is not None:
            drift_max = max_ratio_per_rule(self.cleaning_drift[self.cleaning_drift["in_window"]])
        return redact_obj({**self.summary(), "message": self.message(), "windows": self.windows,
                           "elapsed_s": self.elapsed_s, "cleaning": self.cleaning,
                           "cleaning_max_share_over_limit": drift_max,
                           "checks": [json_safe(c.to_dict()) for c in self.checks],
                           "daily_rows": daily})

    def write(self, json_path: str, html_path: str) -> tuple[str, str]:
        """Write the JSON result and the HTML report (through fsspec); returns both paths."""
        with fsspec.open(json_path, "w", encoding="utf-8") as f:
            json.dump(self.to_json_dict(), f, indent=1)
        self.html_report().write(html_path)
        return json_path, html_path

    def html_report(self) -> HtmlReport:
        """The self-contained HTML report; every section redacted."""
        rep = self._html_report()
        rep.title = redact(rep.title)
        rep.sections = [(redact(h), redact(b)) for h, b in rep.sections]
        return rep

    def _html_report(self) -> HtmlReport:
        verdict = "PASSED" if self.passed else "FAILED"
        rep = HtmlReport(title=f"quantrec data validation, run_date {self.run_date}: {verdict}")
        css = "pass" if self.passed else "fail"
        info = pd.DataFrame([{"data": self.data_url, "spec": self.spec_name,
                              "rows loaded (before run_date)": self.rows_loaded,
                              "checks": len(self.checks), "failed": len(self.failed),
                              **{f"window {k}": v for k, v in (self.windows or {}).items()}}]).T
        rep.add("Verdict", f'<p class="{css}">{verdict}</p><p>{escape(self.message())}</p>'
                + table_to_html(info.reset_index().set_axis(["", "value"], axis=1)))
        if self.failed:
            body = []
            for c in self.failed:
                body.append(f"<h3>{escape(c.suite)}: {escape(c.expectation)}"
                            + (f" &mdash; column <code>{escape(c.column)}</code>" if c.column else "")
                            + "</h3>")
                body.append(f"<p>{escape(c.description)}. Observed: <code>{escape(_short(c.observed, 400))}</code>"
                            + (f"; thresholds: <code>{escape(_short(c.details, 300))}</code>" if c.details else "")
                            + "</p>")
                if c.examples:
                    body.append('<p class="note">Example offending rows:</p>'
                                + table_to_html(pd.DataFrame(c.examples)))
            rep.add("Failed expectations", "\n".join(body))
        if self.daily_rows is not None and len(self.daily_rows):
            rep.add("Daily row counts", _daily_plot(self.daily_rows))
        if self.cleaning_drift is not None:
            rep.add("Cleaning rules per day", _drift_section(self.cleaning_drift, self.cleaning))
        table = pd.DataFrame([{"suite": c.suite, "expectation": c.expectation, "column": c.column or "",
                               "result": "pass" if c.success else "FAIL",
                               "observed": _short(c.observed, 60)} for c in self.checks])
        rep.add("All checks", table_to_html(table))
        return rep


def _daily_plot(daily: pd.DataFrame) -> str:
    """Bar chart of rows per trading day, eval days highlighted (small PNG)."""
    from matplotlib.figure import Figure

    from quantrec.reports import figure_to_html

    fig = Figure(figsize=(7, 2.4))
    ax = fig.add_subplot()
    colors = ["#b00020" if r == "eval" else "#7a8ca3" for r in daily["role"]]
    ax.bar(pd.to_datetime(daily["day"]), daily["rows"], color=colors, width=0.8)
    ref = daily[daily["role"] == "reference"]["rows"]
    if len(ref):
        ax.axhline(float(ref.median()), color="#333", lw=1, ls="--", label="reference median")
        ax.legend(loc="upper left", fontsize=7, frameon=False)
    ax.set_ylabel("rows / day", fontsize=8)
    ax.tick_params(labelsize=7)
    fig.autofmt_xdate()
    return figure_to_html(fig, alt="daily row counts") + (
        '<p class="note">Grey: reference trading days; red: eval window. '
        "The row-count check compares each eval day with the dashed median.</p>")


def _drift_section(drift: pd.DataFrame, totals: dict[str, Any] | None) -> str:
    """Totals per rule, and per rule that removed anything in the windows: daily share vs limit."""
    from matplotlib.figure import Figure

    from quantrec.reports import figure_to_html

    win = drift[drift["in_window"]]
    rules = [r for r, g in win.groupby("rule", sort=False) if g["removed"].sum() > 0]
    html = ""
    if totals:
        removed = pd.DataFrame([{"rule": r, "rows removed (all rows read)": n}
                                for r, n in totals.get("removed", {}).items()])
        html += table_to_html(removed)
    if not rules:
        return html + '<p class="note">No cleaning rule removed rows in the run\'s windows.</p>'
    ncols = 2
    nrows = (len(rules) + ncols - 1) // ncols
    fig = Figure(figsize=(7.5, 1.15 * nrows + 0.3))
    for k, rule in enumerate(rules):
        g = win[win["rule"] == rule]
        ax = fig.add_subplot(nrows, ncols, k + 1)
        days = pd.to_datetime(g["day"])
        ax.plot(days, g["share"], color="#7a8ca3", lw=0.7, label="share of the day's rows removed")
        # A limit above 1 cannot be reached (a rule with a high, noisy share): drawn at 1.
        ax.plot(days, g["limit"].clip(upper=1.0), color="#333", lw=0.7, ls="--", label="limit")
        bad = g[g["ratio"] > 1.0]
        if len(bad):
            ax.scatter(pd.to_datetime(bad["day"]), bad["share"], color="#b00020", s=10, zorder=3,
                       label="above the limit")
        ax.set_title(rule, fontsize=7, pad=2)
        ax.tick_params(labelsize=6)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    for ax in fig.axes[1:]:  # the red marker may appear on any panel
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="upper center", ncol=3, fontsize=6, frameon=False)
    fig.autofmt_xdate()
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))
    return html + figure_to_html(fig, alt="cleaning drop shares per day") + (
        '<p class="note">Share of each day\'s rows a cleaning rule removed (grey) and its limit '
        "(dashed: max(min_share, ratio x the rule's p95 over the previous trading days)); red: days "
        "above the limit where the rule removed at least min_count rows.</p>")
