"""Context parallelism: one clip's transformer forwards on the N GPUs of one box, through diffusers' own mechanism.

    torchrun --nproc-per-node N -m remote.worker JOB_DIR     (remote.supervise starts it when num_gpus > 1)

Every rank loads the whole pipeline once and runs the same pipeline call with the same inputs (the same seeded CPU
generator, the same input image: rank 0's, sent to the others with `from_rank0`). Inside the transformer, diffusers'
Ulysses attention (ContextParallelConfig(ulysses_degree=N), ModelMixin.enable_parallelism) splits the token
sequence across the ranks: each rank runs the blocks' linear layers on its 1/N of the tokens, and for attention an
all-to-all trades tokens for heads (each rank attends over the whole sequence with 1/N of the heads) and back. The
output projection gathers the sequence, so every rank holds the whole prediction, steps the scheduler itself and
decodes; only rank 0 writes files (remote/worker.py). Ulysses, not ring attention: it needs no softmax statistics
from the attention kernel, so diffusers' native backend (torch SDPA: cuDNN or flash) runs inside it, where the
FlashAttention-4 and 8-bit routes answer SDPA's calls as on one GPU (not yet run on GPUs: issue #15); it moves 4
all-to-alls of activations per attention (q, k, v, out), which NVLink and even PCIe boxes of 2-8 GPUs carry. The
number of GPUs must divide the heads (24 for Wan and Hunyuan, 48 for CogVideoX; jobspecs/schema.py checks it).
Sequences that N does not divide (Hunyuan's trimmed prompt, CogVideoX's 226 text tokens on 4 GPUs) are split
unevenly (`ulysses_anything`).

What is whose:
  Wan 2.2      the model's own `_cp_plan` (diffusers 0.42.1).
  CogVideoX    ours (cogvideox_plan): the video and the text tokens split at the first block, the rotary
               embedding split at the model's input; its processor calls torch SDPA itself, so it is replaced by
               one that calls diffusers' dispatch_attention_fn (the same math otherwise).
  Hunyuan      ours (hunyuan_plan): the same split at the first double-stream block, the rotary embedding split
               where it is made. Its token_replace blocks modulate the first frame's tokens apart, and
               only rank 0 holds them: the others are told the first frame has 0 tokens. Its blocks' attention must
               be unmasked, which prompt_trim makes it (the schema refuses Hunyuan on N GPUs without it).
Each rank holds the whole model: context parallelism divides the work of a forward, not the weights' memory.
"""

from __future__ import annotations

import ctypes
import functools
import inspect
import os
import signal
from contextlib import contextmanager

ULYSSES = "Ulysses context parallelism (diffusers ContextParallelConfig)"


def world_size() -> int:
    """The ranks torchrun started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_rank0() -> bool:
    return rank() == 0


def die_with_parent() -> None:
    """SIGKILL this rank when its parent (torchrun's agent) dies: torchrun starts every rank in a session of its own,
    out of reach of the supervisor's kill of the worker's process group, so a rank must not outlive its agent
    (remote/supervise.py kills the whole tree too). Linux's PR_SET_PDEATHSIG; elsewhere nothing."""
    PR_SET_PDEATHSIG = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() == 1:  # the agent died before the line above
        os._exit(1)


def device_of_rank():
    """This rank's device: its GPU (LOCAL_RANK) where there are GPUs, else the CPU (the tests' gloo ranks)."""
    import torch

    if not torch.cuda.is_available():
        return torch.device("cpu")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if local >= torch.cuda.device_count():
        raise RuntimeError(
            f"rank {rank()} of {world_size()} needs GPU {local}, but the box has {torch.cuda.device_count()}"
        )
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def start(device) -> None:
    """Join the ranks' process group: NCCL between GPUs, gloo on the CPU (tests)."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if device.type == "cuda":
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")


def from_rank0(value):
    """`value` as rank 0 has it, on every rank (a picklable object: the clip's input image). Also the ranks' meeting
    point before each clip: a rank that died makes the others fail here instead of computing alone."""
    import torch.distributed as dist

    if world_size() == 1:
        return value
    box = [value if is_rank0() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextmanager
def rank0_first():
    """The block on rank 0 first, then on the other ranks: finding the weights, where the tiny pipelines are built on
    demand, and transformers 5 saves a model's weights only on rank 0 once a process group exists (another rank's
    build leaves its text encoder's folder empty)."""
    import torch.distributed as dist

    several = world_size() > 1 and dist.is_initialized()
    if several and not is_rank0():
        dist.barrier()
    yield
    if several and is_rank0():
        dist.barrier()


@contextmanager
def one_device_per_cpu_rank(device):
    """diffusers 0.42.1 picks each rank's device as `rank % torch.accelerator.device_count()`
    (ModelMixin._resolve_parallel_config), which divides by zero on a machine with no accelerator. There every rank
    runs on the one CPU device, which is what a count of 1 gives; on GPUs nothing is changed."""
    import torch

    if device.type != "cpu":
        yield
        return
    count = torch.accelerator.device_count
    torch.accelerator.device_count = lambda: 1
    try:
        yield
    finally:
        torch.accelerator.device_count = count


# --- the plans of the two models diffusers has none for ------------------------------------------------------------


def cogvideox_plan() -> dict:
    from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput

    return {
        # the rotary embedding (cos, sin), each (video tokens, head dim), comes from the pipeline: split at the input
        "": {
            "image_rotary_emb": [
                ContextParallelInput(split_dim=0, expected_dims=2, split_output=False),
                ContextParallelInput(split_dim=0, expected_dims=2, split_output=False),
            ],
        },
        # video and text tokens split before the first block; the blocks keep them split (their attention's
        # all-to-all hands each rank back its own tokens)
        "transformer_blocks.0": {
            "hidden_states": ContextParallelInput(split_dim=1, expected_dims=3, split_output=False),
            "encoder_hidden_states": ContextParallelInput(split_dim=1, expected_dims=3, split_output=False),
        },
        "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }


def hunyuan_plan() -> dict:
    from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput

    return {
        # the rotary embedding (cos, sin), each (video tokens, head dim), made by `rope`: its output split
        "rope": {
            0: ContextParallelInput(split_dim=0, expected_dims=2, split_output=True),
            1: ContextParallelInput(split_dim=0, expected_dims=2, split_output=True),
        },
        "transformer_blocks.0": {
            "hidden_states": ContextParallelInput(split_dim=1, expected_dims=3, split_output=False),
            "encoder_hidden_states": ContextParallelInput(split_dim=1, expected_dims=3, split_output=False),
        },
        "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }


@functools.cache
def cogvideox_processor_class() -> type:
    """diffusers' CogVideoXAttnProcessor2_0 with its attention through dispatch_attention_fn (which context
    parallelism reaches) instead of torch SDPA; otherwise the same steps: QKV of [text, video], norms, rotary on the
    video tokens, attention, output projection, split back into video and text."""
    import torch
    from diffusers.models.attention_dispatch import dispatch_attention_fn
    from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0
    from diffusers.models.embeddings import apply_rotary_emb

    class CogVideoXParallelAttnProcessor(CogVideoXAttnProcessor2_0):
        _attention_backend = None
        _parallel_config = None

        def __call__(self, attn, hidden_states, encoder_hidden_states, attention_mask=None, image_rotary_emb=None):
            if attention_mask is not None:
                raise ValueError("CogVideoX on several GPUs: its attention takes no mask")
            text_length = encoder_hidden_states.size(1)
            hidden_states = torch.cat([encoder_hidden_states, hidden_states], dim=1)
            query = attn.to_q(hidden_states).unflatten(2, (attn.heads, -1))  # (B, S, H, D)
            key = attn.to_k(hidden_states).unflatten(2, (attn.heads, -1))
            value = attn.to_v(hidden_states).unflatten(2, (attn.heads, -1))
            if attn.norm_q is not None:
                query = attn.norm_q(query)
            if attn.norm_k is not None:
                key = attn.norm_k(key)
            if image_rotary_emb is not None:
                query[:, text_length:] = apply_rotary_emb(query[:, text_length:], image_rotary_emb, sequence_dim=1)
                if not attn.is_cross_attention:
                    key[:, text_length:] = apply_rotary_emb(key[:, text_length:], image_rotary_emb, sequence_dim=1)
            hidden_states = dispatch_attention_fn(
                query, key, value, backend=self._attention_backend, parallel_config=self._parallel_config
            )
            hidden_states = attn.to_out[1](attn.to_out[0](hidden_states.flatten(2, 3).to(query.dtype)))
            encoder_hidden_states, hidden_states = hidden_states.split(
                [text_length, hidden_states.size(1) - text_length], dim=1
            )
            return hidden_states, encoder_hidden_states

    return CogVideoXParallelAttnProcessor


def first_frame_on_rank0(transformer) -> None:
    """Hunyuan's token_replace blocks get `first_frame_num_tokens` (their 7th argument) and modulate that many leading
    tokens as the first frame's. With the sequence split, rank 0's part begins with the first frame (its tokens are a
    33rd of a 129-frame clip's, far fewer than rank 0's share); every other rank's part holds none of them."""
    if is_rank0():
        return

    def none_of_the_first_frame(module, args):
        if len(args) < 7:
            raise ValueError(f"{type(module).__name__}: expected first_frame_num_tokens as the 7th argument")
        return (*args[:6], 0, *args[7:])

    for block in (*transformer.transformer_blocks, *transformer.single_transformer_blocks):
        block.register_forward_pre_hook(none_of_the_first_frame)


def read_signatures_now(transformer) -> None:
    """diffusers' split hooks find an argument passed by position from the module's signature (inspect.signature) on
    their first call and cache it. A first call inside a compiled block makes torch.compile trace inspect, which
    torch 2.11's dynamo refuses ("Unexpected type in sourceless builder"): read every hook's signature here, before
    anything is compiled."""
    for module in transformer.modules():
        registry = getattr(module, "_diffusers_hook", None)
        for hook in registry.hooks.values() if registry is not None else ():
            metadata = getattr(hook, "module_forward_metadata", None)
            if metadata is not None and metadata.cached_parameter_indices is None:
                names = list(inspect.signature(metadata._cls.forward).parameters)[1:]  # after `self`
                metadata.cached_parameter_indices = {name: index for index, name in enumerate(names)}


def enable(transformer, spec, device) -> str:
    """Split `transformer`'s forwards across the ranks (Ulysses); returns what the logs record. After the attention
    backend is set (diffusers checks it supports context parallelism) and before compile, which it rules out where
    a sequence splits unevenly (`ulysses_anything`: remote/models/hf.py skips the compile then, and says why)."""
    from diffusers import ContextParallelConfig

    from jobspecs.plan import every_clip_splits_evenly

    size, model_id = world_size(), spec.model
    plan = None
    if model_id == "cogvideox15_5b_i2v":
        plan = cogvideox_plan()
        processor = cogvideox_processor_class()
        for block in transformer.transformer_blocks:
            block.attn1.set_processor(processor())
    elif model_id == "hunyuan_i2v":
        plan = hunyuan_plan()
        if getattr(transformer.config, "image_condition_type", None) == "token_replace":
            first_frame_on_rank0(transformer)
    even = every_clip_splits_evenly(spec, size)
    config = ContextParallelConfig(ulysses_degree=size, ulysses_anything=not even)
    with one_device_per_cpu_rank(device):
        transformer.enable_parallelism(config=config, cp_plan=plan)
    read_signatures_now(transformer)
    whose = "the model's own plan" if plan is None else "this project's plan (remote/models/parallel.py)"
    split = "even splits" if even else "uneven splits (ulysses_anything)"
    return f"{ULYSSES}, {size} ranks ({device.type}), {whose}, {split}"
