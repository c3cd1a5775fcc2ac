"""Does the *order* in which action tokens are committed decide closed-loop success?

Why this exists: the bidirectional teacher picks blocks from the conveyor while every block-causal
student (distilled or from scratch, any block decoder) picks none, although the students' decoded
chunks are as close to the expert's as the teacher's on expert frames. A block-causal model must
commit a chunk in time order; the bidirectional baseline commits the most confident tokens anywhere
in the chunk first. This benchmark runs the *same* teacher weights in closed loop under different
commit orders (same seeds, same simulator), and a block-causal student under the teacher's global
confidence order, so the two effects (order vs. weights) separate:

* ``confidence``: the baseline, ``BidirectionalDecoder`` (12 cosine steps, most confident first);
* ``blocks_in_time_order``: same weights and mask, but block t (timestep t) is finished before block
  t+1 starts (2 forwards per block): the order a block-causal decoder is bound to;
* ``gripper_first``: one forward commits the whole chunk's gripper tokens, then blocks in time order;
* ``student_confidence`` (with ``--student``): a block-causal checkpoint under the block-causal mask
  with the baseline's global cosine top-k schedule (no cache).

With ``--observations DEMO_DIR`` it also prints, for the teacher's baseline decoding on recorded
frames, the mean step (0..11) at which each (timestep, dimension) token was committed.

    .venv/bin/python bench/decode_order.py --teacher models/teacher_bidirectional \\
        --student models/student_distilled --episodes 50 --observations runs/train/demos
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fast_dvla_ros.core.decoders import unmasking as U
from fast_dvla_ros.core.decoders.base import ObservationBatch
from fast_dvla_ros.core.decoders.bidirectional import BidirectionalDecoder
from fast_dvla_ros.core.model import DVLA
from fast_dvla_ros.core.policy import Observation, Policy
from fast_dvla_ros.train.closed_loop import TABLE_HEADER, evaluate


class _FullForward(BidirectionalDecoder):
    """Full-sequence forwards (no cache) with a pluggable commit order; ``when`` records the step at
    which every token was committed (for the commit-order table)."""

    mask_kind = "bidirectional"

    def _decode(self, batch: ObservationBatch) -> torch.Tensor:
        self._prefix = self.model.embed_prefix(batch.images, batch.instruction_ids, batch.proprio)
        self._mask = self.model.attention_mask(self.mask_kind)
        bins = self._empty_bins(batch)
        self.when = torch.full_like(bins, -1)
        self._step = 0
        self._order(bins)
        return bins

    def _commit_where(self, bins: torch.Tensor, allowed: torch.Tensor, count: int) -> None:
        """One forward; commit the ``count`` most confident masked tokens among ``allowed``."""
        hidden = self._forward(torch.cat([self._prefix, self.model.embed_actions(bins)], dim=1), self._mask, 0, None)
        pred, conf = self._predict(self.model.action_logits(hidden[:, self.P :]))
        chosen = U.select_top_k(conf, (bins < 0) & allowed, count)
        self.when[chosen] = self._step
        self._step += 1
        self._commit(bins, 0, self.N, chosen, pred)

    def _order(self, bins: torch.Tensor) -> None:
        everything = torch.ones_like(bins, dtype=torch.bool)
        for count in self.schedule():
            self._commit_where(bins, everything, count)


class ConfidenceOrder(_FullForward):
    name = "confidence"


class BlocksInTimeOrder(_FullForward):
    name = "blocks_in_time_order"
    gripper_first = False

    def _order(self, bins: torch.Tensor) -> None:
        d = self.D
        if self.gripper_first:
            gripper = torch.zeros_like(bins, dtype=torch.bool)
            gripper[:, d - 1 :: d] = True
            self._commit_where(bins, gripper, self.H)
        for t in range(self.H):
            block = torch.zeros_like(bins, dtype=torch.bool)
            block[:, t * d : (t + 1) * d] = True
            remaining = int(((bins < 0) & block).sum(dim=1).max())
            first = (remaining + 1) // 2
            self._commit_where(bins, block, first)
            self._commit_where(bins, block, remaining - first)


class GripperFirst(BlocksInTimeOrder):
    name = "gripper_first"
    gripper_first = True


class StudentConfidenceOrder(_FullForward):
    name = "student_confidence"
    attention = "block_causal"
    mask_kind = "block_causal"


def commit_order_table(teacher: DVLA, demo_dir: Path, frames: int) -> np.ndarray:
    """Mean commit step per (timestep, dimension) of the baseline order on recorded frames."""
    from fast_dvla_ros.train.demos import DemoDataset

    decoder = ConfidenceOrder(teacher)
    policy = Policy(teacher, decoder, "teacher")
    ds = DemoDataset(demo_dir, horizon=teacher.config.horizon)
    gap = teacher.config.frame_gap
    steps = []
    for i in np.random.default_rng(0).choice(len(ds), size=min(frames, len(ds)), replace=False):
        sample, f = ds[int(i)], int(ds._frames[int(i)])
        g = f - gap
        two_frames = teacher.config.num_frames == 2 and g >= 0 and ds.episode[g] == ds.episode[f]
        previous = ds.images[g] if two_frames else None
        policy.predict(Observation(sample.image, sample.proprio, sample.instruction, previous))
        steps.append(decoder.when.reshape(teacher.config.horizon, -1).numpy())
    return np.mean(steps, axis=0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", required=True, help="bidirectional checkpoint")
    p.add_argument("--student", help="block-causal checkpoint for the student_confidence row")
    p.add_argument(
        "--orders",
        default="confidence,blocks_in_time_order,gripper_first",
        help="comma-separated teacher orders to run",
    )
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--observations", type=Path, help="demo dir: print the baseline's commit-order table")
    p.add_argument("--frames", type=int, default=80, help="recorded frames for the commit-order table")
    p.add_argument("--readout", choices=["argmax", "mean"], default="argmax",
                   help="bin readout for every row (argmax: the baseline's default)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    kinds = {"confidence": ConfidenceOrder, "blocks_in_time_order": BlocksInTimeOrder, "gripper_first": GripperFirst}
    teacher = DVLA.from_pretrained(a.teacher)
    if a.observations:
        table = commit_order_table(teacher, a.observations, a.frames)
        names = teacher.action_tokenizer.space.names
        print("mean commit step of the baseline (rows: timestep, columns: " + ", ".join(names) + ")")
        for t, row in enumerate(table):
            print(f"  t{t}: " + " ".join(f"{v:5.1f}" for v in row))
    rows = []
    orders = [o for o in a.orders.split(",") if o]
    for order in orders:
        if order not in kinds:
            p.error(f"unknown order {order!r}; choose from {sorted(kinds)}")
        policy = Policy(teacher, kinds[order](teacher, readout=a.readout), Path(a.teacher).name)
        rows.append(evaluate(policy, a.episodes, a.seed, progress=False).row())
        print(rows[-1], flush=True)
    if a.student:
        student = DVLA.from_pretrained(a.student)
        policy = Policy(student, StudentConfidenceOrder(student, readout=a.readout), Path(a.student).name)
        rows.append(evaluate(policy, a.episodes, a.seed, progress=False).row())
    print(f"\n{a.episodes} episodes per row, seeds {a.seed}..{a.seed + a.episodes - 1}\n")
    print(TABLE_HEADER)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
