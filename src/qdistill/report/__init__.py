"""Reports: tables, sections and plots written from typed run records."""

from qdistill.report.markdown import write_report
from qdistill.report.results import results_table
from qdistill.report.summary import Stat, SummaryRow, summarize

__all__ = ["Stat", "SummaryRow", "results_table", "summarize", "write_report"]
