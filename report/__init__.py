"""The comparison report over finished runs (plain functions; the flow and `shootout report` call them)."""

from report.compare import DEFAULT_WEIGHTS, METRICS, ReportError, compare_runs, contact_sheet, parse_weights

__all__ = ["DEFAULT_WEIGHTS", "METRICS", "ReportError", "compare_runs", "contact_sheet", "parse_weights"]
