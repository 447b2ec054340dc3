"""Evaluations on data written outside the project (``kefu eval …``)."""
