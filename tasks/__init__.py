"""Prefect tasks: each wraps plain functions from jobspecs/, provisioning/ or remote/."""
