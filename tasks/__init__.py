"""Prefect tasks: each wraps plain functions from jobspecs/, provisioning/ or remote/.

providers.py  which box a run gets and how it is given back (`rented`), the instance's record, the secrets
box.py        work on the box: set up, upload, start the worker and follow it (WorkerFollower), stitch, bundle, fetch
costs.py      the plan, the estimate before renting, the cost table
report.py     verify the bundle, the summary; the overnight's runs side by side and its report
job.py        load and validate the spec, the run's id, the code's commit
"""
