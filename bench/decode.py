"""Decoder benchmark: the four Fast-dVLA decoders side by side in one process.

Random weights (default): every decoder runs the same fixed schedule (``--tokens-per-step`` per
step per decoding unit), so the speed ratios isolate KV caching and smaller forwards, not
confidence luck. A 12-step cosine MaskGIT bidirectional row is printed as well (DD-VLA's setting).
``--checkpoint DIR``: a trained model with the confidence-driven default schedules instead.

Also measured: the lower bound "one forward per block" (block decoder committing a whole block per
forward, the prefix riding in the first; tables of bench/history/ that say "prefix + 1 fwd/block" are from
a version that gave the prefix a forward of its own) and how close each decoder gets to it.

Examples::

    .venv/bin/python bench/decode.py --sizes tiny,small --repeats 15
    .venv/bin/python bench/decode.py --sizes base --repeats 3 --tokens-per-step 4
    .venv/bin/python bench/decode.py --checkpoint runs/train/scratch --observations runs/train/demos/shard_00000.npz
    .venv/bin/python bench/decode.py --sizes small --device cuda --dtype bfloat16
    .venv/bin/python bench/decode.py --checkpoint models/teacher_bidirectional --backends fast,transformers

``--prefix-steps 3,4``: also the pipelined decoder with an action prefix of that many steps (latency-compensated
decoding: the first blocks are given, as the policy runner gives them from the executor's plan). The prefix is
the first steps of the same decoder's own chunk for the batch, so it is what a plan of this policy looks like.

``--backends``: one table per backbone backend (``fast`` = FastQwen2, ``transformers`` = the
transformers module with a DynamicCache), every decoder compared with the bidirectional row of
the same backend; a last table gives fast vs transformers per decoder, measured in the same run.
"""

from __future__ import annotations

import argparse
import logging
import math
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fast_dvla_ros.core.config import DVLAConfig
from fast_dvla_ros.core.decoders import Decoder, ObservationBatch, make_decoder
from fast_dvla_ros.core.model import DVLA


@dataclass
class Row:
    label: str
    latencies: list[float]
    forwards: list[int]
    tokens: int
    first_action_err: list[float]

    @property
    def median_forwards(self) -> float:
        return statistics.median(self.forwards)

    @property
    def median(self) -> float:
        return statistics.median(self.latencies)

    @property
    def iqr(self) -> tuple[float, float]:
        q = statistics.quantiles(self.latencies, n=4) if len(self.latencies) >= 2 else [self.median] * 3
        return q[0], q[2]


def build_model(size: str, image_tokens: int, device: torch.device, dtype: torch.dtype) -> DVLA:
    """Preset with the image resolution chosen so the prefix has ``image_tokens`` image tokens."""
    base = DVLAConfig.preset(size)
    side = math.isqrt(image_tokens)
    if side * side != image_tokens:
        raise SystemExit("--image-tokens must be a perfect square")
    torch.manual_seed(0)
    model = DVLA(DVLAConfig.preset(size, image_size=side * base.patch_size))
    return model.to(device=device, dtype=dtype).eval()


def make_batch(model: DVLA, batch: int, device: torch.device) -> ObservationBatch:
    g = torch.Generator().manual_seed(0)
    s, c = model.config.image_size, 3 * model.config.num_frames
    return ObservationBatch(
        images=torch.randint(0, 256, (batch, c, s, s), generator=g, dtype=torch.uint8).to(device),
        instruction_ids=torch.as_tensor(
            model.instruction_tokenizer.encode_batch(["pick up the red block on the belt"] * batch), device=device
        ),
        proprio=torch.zeros(batch, model.config.proprio_dim, device=device),
    )


def decoders_for(
    model: DVLA, trained: bool, k: int, block_model: DVLA | None = None, backend: str = "fast"
) -> dict[str, Decoder]:
    """Random weights: equal fixed schedule. Trained: confidence-driven defaults; ``block_model`` (a
    block-causal student) serves the block decoders when the main checkpoint is a bidirectional teacher."""
    D = model.config.action_dim

    def dec(name: str, m: DVLA, **kw) -> Decoder:
        return make_decoder(name, m, backend=backend, **kw)

    if trained:
        bm = block_model or model
        rows = {
            "bidirectional (12 cosine steps)": dec("bidirectional", model, steps=12),
            "prefix_cache (tau 0.5)": dec("prefix_cache", model),
            "block_cache (tau 0.5)": dec("block_cache", bm),
            "pipelined (Fast-dVLA defaults)": dec("pipelined", bm),
        }
        own = bm.config.runtime.decoder if bm.config.runtime is not None else None
        if own is not None and own.name == "pipelined" and own.options:  # the student's own settings (n = 1)
            rows[f"pipelined (checkpoint's: {own})"] = make_decoder(own, bm, backend=backend)
        rows["lower bound: 1 fwd/block"] = dec("block_cache", bm, tokens_per_step=D)
        return rows
    return {
        f"bidirectional ({k} tok/step)": dec("bidirectional", model, tokens_per_step=k),
        "bidirectional (12 cosine steps)": dec("bidirectional", model, steps=12),
        f"prefix_cache ({k} tok/step)": dec("prefix_cache", model, tokens_per_step=k),
        f"block_cache ({k} tok/step/block)": dec("block_cache", model, tokens_per_step=k),
        f"pipelined ({k} tok/step/block)": dec("pipelined", model, tokens_per_step=k),
        "lower bound: 1 fwd/block": dec("block_cache", model, tokens_per_step=D),
    }


class WithPrefix:
    """A decoder run on batches whose first ``steps`` blocks are given (its own earlier chunk's first blocks)."""

    def __init__(self, decoder: Decoder, steps: int) -> None:
        self.decoder, self.steps = decoder, steps
        self._known: dict[int, torch.Tensor] = {}

    def decode(self, batch: ObservationBatch):
        key = id(batch)
        if key not in self._known:  # the prefix: this decoder's own first steps for the batch, tokens of the plan
            self._known[key] = self.decoder.decode(batch).tokens[:, : self.steps].reshape(batch.batch_size, -1)
        given = ObservationBatch(batch.images, batch.instruction_ids, batch.proprio,
                                 self._known[key].to(batch.images.device))
        return self.decoder.decode(given)


def load_observations(path: Path, model: DVLA, count: int, batch: int, device: torch.device):
    """``count`` batches of real frames from a demos shard (images, proprio, actions[, episode, instructions])."""
    import numpy as np

    from fast_dvla_ros.core.policy import preprocess_image

    data = np.load(path, allow_pickle=False)
    n = data["images"].shape[0]
    idx = np.linspace(0, n - 1, count * batch).astype(int).reshape(count, batch)
    texts = ["pick up the block"] * n
    if "instructions" in data.files and "episode" in data.files and "episode_ids" in data.files:
        by_ep = dict(zip(data["episode_ids"].tolist(), data["instructions"].tolist(), strict=False))
        texts = [by_ep.get(int(e), texts[0]) for e in data["episode"]]
    # two-frame checkpoints: frame i stacked with frame i - frame_gap of the same episode (as in training)
    episode = data["episode"] if "episode" in data.files else np.zeros(n, np.int64)
    first = np.array([np.flatnonzero(episode == e)[0] for e in episode]) if model.config.num_frames == 2 else None

    def image(i: int) -> torch.Tensor:
        img = preprocess_image(data["images"][i], model.config.image_size)
        if first is None:
            return img
        prev = preprocess_image(data["images"][max(i - model.config.frame_gap, first[i])], model.config.image_size)
        return torch.cat([img, prev], dim=0)

    out = []
    for rows in idx:
        images = torch.stack([image(i) for i in rows])
        out.append((
            ObservationBatch(
                images=images.to(device),
                instruction_ids=torch.as_tensor(
                    model.instruction_tokenizer.encode_batch([texts[i] for i in rows]), device=device
                ),
                proprio=torch.as_tensor(data["proprio"][rows], dtype=torch.float32, device=device),
            ),
            data["actions"][rows] if "actions" in data.files else None,
        ))
    return out


def run(decoders: dict[str, Decoder], batches: list, repeats: int, warmup: int) -> list[Row]:
    """``batches``: list of (ObservationBatch, reference first actions or None); repeat r uses batch r % len."""
    rows = {name: Row(name, [], [], 0, []) for name in decoders}
    for _ in range(warmup):
        for dec in decoders.values():
            dec.decode(batches[0][0])
    # round-robin so load from other processes spreads evenly over the decoders
    for r in range(repeats):
        batch, ref = batches[r % len(batches)]
        for name, dec in decoders.items():
            out = dec.decode(batch)
            rows[name].latencies.append(out.stats.latency_s)
            rows[name].forwards.append(out.stats.forward_passes)
            rows[name].tokens = out.stats.tokens_committed
            if ref is not None:
                rows[name].first_action_err.append(float(abs(out.actions[:, 0, :7] - ref[:, :7]).mean()))
    return list(rows.values())


def table(rows: list[Row], reference: str, bound: str) -> str:
    ref = next(r for r in rows if r.label == reference).median
    low = next(r for r in rows if r.label == bound).median
    with_err = any(r.first_action_err for r in rows)
    err_head = " first-action joint MAE vs demo (rad) |" if with_err else ""
    lines = [
        "| decoder | median chunk latency ms (IQR) | forwards/chunk (median) | tokens/forward | tokens/s | "
        f"speed-up vs bidirectional | lower bound / latency |{err_head}",
        "|---|---|---|---|---|---|---|" + ("---|" if with_err else ""),
    ]
    for r in rows:
        q1, q3 = r.iqr
        err = f" {statistics.mean(r.first_action_err):.4f} |" if with_err else ""
        lines.append(
            f"| {r.label} | {r.median * 1e3:.1f} ({q1 * 1e3:.1f}-{q3 * 1e3:.1f}) | {r.median_forwards:g} | "
            f"{r.tokens / r.median_forwards:.2f} | {r.tokens / r.median:.1f} | {ref / r.median:.2f}x | "
            f"{low / r.median:.2f} |{err}"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="tiny,small", help="comma list of presets: tiny,sim,small,base")
    ap.add_argument("--checkpoint", type=Path, help="trained checkpoint dir: confidence-driven schedules")
    ap.add_argument("--block-checkpoint", type=Path, help="block-causal student for block_cache/pipelined")
    ap.add_argument("--observations", type=Path, help="demos .npz (images, proprio, actions) for --checkpoint runs")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--image-tokens", type=int, default=256, help="image tokens in the prefix (random-weight runs)")
    ap.add_argument("--tokens-per-step", type=int, default=2, help="fixed schedule for random weights")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--backends", default="fast", help="comma list of backbone backends: fast,transformers")
    ap.add_argument("--prefix-steps", default="", help="comma list: extra pipelined rows with an action prefix of "
                    "that many steps (latency-compensated decoding)")
    args = ap.parse_args()
    backends = [b for b in args.backends.split(",") if b]

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    if not args.checkpoint:  # random weights were trained with no mask at all: the mismatch warning is noise
        logging.getLogger("fast_dvla_ros.core.decoders.base").setLevel(logging.ERROR)
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, device {device}, "
          f"dtype {args.dtype}, threads {torch.get_num_threads()}, batch {args.batch}, repeats {args.repeats}")

    jobs: list[tuple[str, DVLA, bool]] = []
    if args.checkpoint:
        jobs.append((f"checkpoint {args.checkpoint}", DVLA.from_pretrained(args.checkpoint, map_location=device)
                     .to(dtype=dtype).eval(), True))
    else:
        for size in [s for s in args.sizes.split(",") if s]:
            t0 = time.perf_counter()
            model = build_model(size, args.image_tokens, device, dtype)
            print(f"# built {size} in {time.perf_counter() - t0:.1f}s", flush=True)
            jobs.append((size, model, False))

    for label, model, trained in jobs:
        params = sum(p.numel() for p in model.parameters())
        cfg = model.config
        print(f"\n## {label}: {params / 1e6:.1f}M params, hidden {cfg.hidden_size} x {cfg.num_layers} layers, "
              f"prefix {model.prefix_len} tokens ({model.num_image_tokens} image + {cfg.instruction_max_len} text + "
              f"{cfg.num_proprio_tokens} proprio), chunk {cfg.horizon} x {cfg.action_dim}", flush=True)
        block_model = None
        if trained and args.block_checkpoint:
            block_model = DVLA.from_pretrained(args.block_checkpoint, map_location=device).to(dtype=dtype).eval()
            print(f"# block decoders use {args.block_checkpoint}")
        if trained and args.observations:
            batches = load_observations(args.observations, model, args.repeats, args.batch, device)
        else:
            batches = [(make_batch(model, args.batch, device), None)]
        # all backends' decoders in one round-robin, so machine load hits them alike
        decoders: dict[str, Decoder] = {}
        for backend in backends:
            for name, d in decoders_for(model, trained, args.tokens_per_step, block_model, backend).items():
                decoders[f"{name} [{backend}]"] = d
            # the last pipelined row: the checkpoint's own settings where it has them
            pipelined = [d for n, d in decoders.items() if n.startswith("pipelined") and n.endswith(f"[{backend}]")][-1]
            for steps in [int(x) for x in args.prefix_steps.split(",") if x]:
                decoders[f"pipelined + action prefix of {steps} steps [{backend}]"] = WithPrefix(  # type: ignore[assignment]
                    type(pipelined)(pipelined.model, pipelined.options), steps)
        rows = run(decoders, batches, args.repeats, args.warmup)
        for backend in backends:
            mine = [r for r in rows if r.label.endswith(f"[{backend}]")]
            print(f"\n### backend {backend}")
            print(table(mine, mine[0].label, next(r.label for r in mine if r.label.startswith("lower bound"))),
                  flush=True)
        if len(backends) > 1:
            print(f"\n### {backends[0]} vs {backends[1]} backend, same decoder (median latency ratio)")
            print("| decoder | " + " | ".join(f"{b} ms" for b in backends[:2]) + " | ratio |\n|---|---|---|---|")
            by_label = {r.label: r for r in rows}
            for r in rows:
                if r.label.endswith(f"[{backends[0]}]"):
                    other = by_label[r.label.replace(f"[{backends[0]}]", f"[{backends[1]}]")]
                    print(f"| {r.label.rsplit(' [', 1)[0]} | {r.median * 1e3:.1f} | {other.median * 1e3:.1f} | "
                          f"{other.median / r.median:.2f}x |")
        del model, decoders


if __name__ == "__main__":
    main()
