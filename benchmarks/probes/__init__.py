"""One-off measurements, one file each: what a section of RESULTS.md or NOTEBOOK.md reports.

Each module's docstring names the section it feeds and the command that made its figures.
The library that tests and other modules import stays one folder up.
"""
