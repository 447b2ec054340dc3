"""Reports over the stored conversations: the weekly top failures (issue #13 part 3).

``failures`` finds the failed answers, ``clusters`` groups their questions by meaning and explains each
group, ``report`` writes Markdown / HTML / JSON and posts the summary, ``weekly`` runs it by itself."""

from kefu.reports.failures import FailedCase, find_failures
from kefu.reports.report import FailureReport, build_failure_report, post_summary, render, write_report
from kefu.reports.weekly import FailureReportWorker, next_run, run_failure_report

__all__ = [
    "FailedCase",
    "FailureReport",
    "FailureReportWorker",
    "build_failure_report",
    "find_failures",
    "next_run",
    "post_summary",
    "render",
    "run_failure_report",
    "write_report",
]
