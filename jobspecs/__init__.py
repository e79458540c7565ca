"""What the laptop and the GPU box share; imports nothing else of the project.

schema.py     the job spec (pydantic): what a user writes, every rule it must pass
load.py       a spec file (and what it `extends`), --set overrides, the reference image
plan.py       shots → clips and prompts, and the planner (each clip's predicted seconds, check_plan)
flops.py      transformer FLOPs per forward from a model's full-size config
config.py     the project's config files as models: baselines.yaml, architectures.yaml, throughput.yaml
contracts.py  the files and summaries the laptop and the box hand each other (status, clip log, manifest, ...)
"""

from jobspecs.config import baselines
from jobspecs.load import LoadedSpec, load_spec, validate
from jobspecs.plan import ClipPlan, build_prompt, plan_clips
from jobspecs.schema import JobSpec, SpecError

__all__ = [
    "ClipPlan",
    "JobSpec",
    "LoadedSpec",
    "SpecError",
    "baselines",
    "build_prompt",
    "load_spec",
    "plan_clips",
    "validate",
]
