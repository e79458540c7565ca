"""The job spec, shared by the orchestrator and the GPU box."""

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
