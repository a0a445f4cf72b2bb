"""The report: every verdict row, section and sentence of `report.md`, made from the summaries the stages
wrote (read through cl_limits/stages/layout.py). The only package that writes English about results; the
report stage (cl_limits/stages/report.py) calls `document.write`."""
