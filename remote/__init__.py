"""Everything that runs on the GPU box. Imports jobspecs only (never provisioning/, tasks/ or flows/).

supervise.py  the hard stops: runs the worker and SIGKILLs it past a clip or run limit
worker.py     where a clip is generated: the model loaded once, the clips in order
models/       one adapter per model (remote/models/__init__.py)
status.py     status/status.json and progress.log, which the laptop follows
stitch.py     the deterministic 720p film; ffmpeg.py the pinned encoder settings
bundle.py     the manifest and the archive: where every byte is hashed, and verified (also on the laptop)
color.py      colour matching of a chained input to the reference (CIELAB, scikit-image)
layout.py     the job directory's paths; prefetch.py the model's files into the HF cache
Every file they write for the laptop is a model of jobspecs/contracts.py.
"""
