"""The download-only stage: the model's pinned revision into HF_HOME / HF_HUB_CACHE, before any GPU work.

    python -m remote.prefetch MODEL_ID [--token-on-stdin | --smoke-seconds N]

Only the files a diffusers pipeline loads are fetched (configs, safetensors weights, tokenizer files);
`snapshot_download` resumes an interrupted download. The Hugging Face token: the first line of standard input with
--token-on-stdin (how the laptop sends it: not in the box's process list), else HF_TOKEN; never printed.
Later loads run with HF_HUB_OFFLINE=1. --smoke-seconds checks that the repo answers (one small file) in time.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from pathlib import Path

from jobspecs import baselines
from jobspecs.contracts import PrefetchResult, SmokeResult

PIPELINE_FILES = [
    "model_index.json",
    "*/config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "*/tokenizer*",
    "*/special_tokens_map.json",
    "*/vocab*",
    "*/merges.txt",
    "*/spiece.model",
    "*/preprocessor_config.json",
    "*/scheduler_config.json",
    "*/added_tokens.json",
    "*/chat_template*",
]


def prefetch(model_id: str, token: str | None = None) -> PrefetchResult:
    """Download (or find in the cache) what the pipeline needs; returns what the manifest and the cost need.
    `token`: the Hugging Face token (None: huggingface_hub's own lookup, HF_TOKEN first)."""
    base = baselines()[model_id]
    if base.repo is None:
        return PrefetchResult(model=model_id, repo=None, files=0, bytes=0, seconds=0.0)
    from huggingface_hub import snapshot_download

    start = time.monotonic()
    revision = getattr(base, "revision", None)
    folder = Path(snapshot_download(repo_id=base.repo, revision=revision, allow_patterns=PIPELINE_FILES, token=token))
    files = [p for p in folder.rglob("*") if p.is_file()]
    return PrefetchResult(
        model=model_id,
        repo=base.repo,
        revision=folder.name,
        files=len(files),
        bytes=sum(p.stat().st_size for p in files),
        seconds=round(time.monotonic() - start, 1),
    )


def _fetch_index(repo: str, revision: str | None) -> None:
    from huggingface_hub import hf_hub_download

    hf_hub_download(repo, "model_index.json", revision=revision)


def smoke(model_id: str, seconds: float) -> SmokeResult:
    """Does the repo answer within `seconds`? Fetches model_index.json in a process that is killed at the limit."""
    base = baselines()[model_id]
    if base.repo is None:
        return SmokeResult(model=model_id, ok=True, seconds=0.0)
    start = time.monotonic()
    process = multiprocessing.get_context("spawn").Process(
        target=_fetch_index, args=(base.repo, getattr(base, "revision", None))
    )
    process.start()
    process.join(seconds)
    if process.is_alive():
        process.kill()
        process.join()
    return SmokeResult(model=model_id, ok=process.exitcode == 0, seconds=round(time.monotonic() - start, 1))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 3 and args[1] == "--smoke-seconds":
        result = smoke(args[0], float(args[2]))
        print(result.model_dump_json())
        return 0 if result.ok else 1
    token = None
    if len(args) == 2 and args[1] == "--token-on-stdin":
        token = sys.stdin.readline().strip() or None
        args = args[:1]
    if len(args) != 1:
        print("usage: python -m remote.prefetch MODEL_ID [--token-on-stdin | --smoke-seconds N]", file=sys.stderr)
        return 2
    print(prefetch(args[0], token).model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
