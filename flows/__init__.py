"""Prefect flows, run on the user's machine: thin compositions of tasks."""
