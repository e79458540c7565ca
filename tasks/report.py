"""Tasks after the bundle is here: verify every hash, extract, publish the summary."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from remote.bundle import verify_bundle


@task(name="verify-bundle")
def verify(archive: Path, out_dir: Path) -> dict:
    """The archive's hash, every member's hash, safe extraction into out_dir/<run_id>/."""
    manifest = verify_bundle(archive, dest=out_dir)
    get_run_logger().info(f"verified {archive.name}: {len(manifest['files']) + 2} files, every sha256 matches")
    return manifest


def summary_markdown(manifest: dict, run_dir: Path) -> str:
    video, guard = manifest["final_video"], manifest["guardrails"]
    lines = [
        f"# {manifest['title']} — {manifest['model']['id']}",
        "",
        f"- run: `{manifest['run_id']}`",
        f"- video: `{run_dir / video['path']}` ({video['seconds']:.2f} s, {video['frames']} frames, "
        f"{manifest['stitch']['size']} @ {manifest['stitch']['fps']} fps)"
        if video
        else "- video: none (no clip finished)",
        f"- clips: {manifest['clips']['finished']} of {manifest['clips']['planned']} finished",
        f"- guardrails: {guard['outcome']}"
        + (f" — {guard['reason']}" if guard["reason"] else "")
        + f" (clip limit {guard['clip_limit_s']:g} s, run limit {guard['run_limit_s']:g} s)",
        f"- code: `{manifest['pipeline_commit'].get('sha')}`"
        + (" (dirty)" if manifest["pipeline_commit"].get("dirty") else ""),
        "",
        "| clip | shot | camera | seconds | seed | total s |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    for clip in manifest["clips"]["list"]:
        lines.append(
            f"| {clip['clip']} | {clip['shot']} | {clip['camera']} | {clip['seconds']:.2f} | {clip['seed']} | "
            f"{clip['timings_s']['clip_total']:.1f} |"
        )
    return "\n".join(lines)


@task(name="publish-summary")
def publish_summary(manifest: dict, run_dir: Path) -> str:
    markdown = summary_markdown(manifest, run_dir)
    create_markdown_artifact(
        key=f"summary-{manifest['model']['id'].replace('_', '-')}",
        markdown=markdown,
        description=f"{manifest['title']}: {manifest['clips']['finished']} clips, {manifest['guardrails']['outcome']}",
    )
    return markdown
