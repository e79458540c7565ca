"""The shootout flow run's name: the name Prefect gave it (what `prefect deployment run` prints, which `shootout
watch` finds in it), what it runs (the model and the spec's title), then its run id once the flow has one:

    grumpy-cat · kenburns: Morning espresso · 20260101-120000-kenburns-1a2b3c
"""

from __future__ import annotations

from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.runtime import flow_run as current_flow_run

from jobspecs import SpecError
from jobspecs.load import apply_override, read_spec

SEPARATOR = " · "
TITLE_CHARS = 40  # a longer title is cut at the last word that fits (with "…")


def spec_label(spec: str, overrides: list[str] | None = None) -> str:
    """'kenburns: Morning espresso': the model and title of the spec file with `overrides` set, read as the file
    says (no validation: the flow validates it next); the file's name where it can't be read."""
    try:
        data = read_spec(Path(spec))
        for item in overrides or []:
            apply_override(data, item)
    except (SpecError, OSError):
        return Path(spec).name
    model, title = data.get("model"), " ".join(str(data.get("title") or "").split())
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"  # at a word's end
    if model and title:
        return f"{model}: {title}"
    return str(model or title or Path(spec).name)


def shootout_run_name() -> str:
    """The shootout flow's flow_run_name: Prefect's own name for the run, then spec_label of its parameters."""
    parameters = current_flow_run.parameters
    label = spec_label(str(parameters.get("spec") or ""), parameters.get("overrides"))
    return SEPARATOR.join(part for part in (current_flow_run.name, label) if part)


def add_run_id_to_name(run_id: str) -> str | None:
    """Rename the flow run this runs in: its name, then `run_id`. Returns the new name (None outside a flow run)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    name = f"{context.flow_run.name}{SEPARATOR}{run_id}"
    with get_client(sync_client=True) as client:
        client.set_flow_run_name(context.flow_run.id, name)
    context.flow_run.name = name
    return name
