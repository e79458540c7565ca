"""Prefect flows, run on the user's machine: thin compositions of tasks.

shootout.py   `shootout`: one spec → one verified film (the chronology of a run)
overnight.py  `overnight`: several shootout deployments side by side → the comparison report
reaper.py     `reaper`: destroys instances whose run is over, unknown, silent or too old
cli.py        the `shootout` command; console.py its `watch` and `runs`; setup.py its `setup`
"""
