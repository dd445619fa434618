"""Reports: tables and plots from the results store."""

from qdistill.report.markdown import results_table, write_report
from qdistill.report.summary import Stat, SummaryRow, summarize

__all__ = ["Stat", "SummaryRow", "results_table", "summarize", "write_report"]
