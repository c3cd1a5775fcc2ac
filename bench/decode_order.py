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

With ``--observations DEMO_DIR`` it also prints, on recorded frames, the mean step (0..11) at which the
baseline committed each (timestep, dimension) token, and how far each order's decoded chunks move the arm
relative to the expert's chunks on the same frames, with argmax and with predictive-mean readout
(``--episodes 0`` prints only these).

    .venv/bin/python bench/decode_order.py --teacher models/teacher_bidirectional \\
        --student models/student_distilled --episodes 50 --observations runs/heldout

``runs/heldout``: expert episodes no checkpoint was trained on, e.g.
``.venv/bin/python -m fast_dvla_ros.train.demos --episodes 30 --seed0 9000 --out runs/heldout``.
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
from fast_dvla_ros.core.decoders.pipelined import PipelinedDecoder
from fast_dvla_ros.core.model import DVLA
from fast_dvla_ros.core.policy import Observation, Policy
from fast_dvla_ros.evaluation.closed_loop import TABLE_HEADER, evaluate


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


def _recorded_observations(demo_dir: Path, model: DVLA, frames: int) -> list[tuple[Observation, np.ndarray]]:
    """``frames`` random recorded frames (fixed seed) with the expert's action chunk from each."""
    from fast_dvla_ros.train.chunks import chunk_rows, episode_bounds
    from fast_dvla_ros.train.demos import load_demo_arrays

    demos = load_demo_arrays(demo_dir)
    episode, images = demos["episode"], demos["images"]
    _, last = episode_bounds(episode)
    gap = model.config.frame_gap
    out = []
    for i in np.random.default_rng(0).choice(len(episode), size=min(frames, len(episode)), replace=False):
        f = int(i)
        actions = demos["actions"][chunk_rows(np.array([f]), last, model.config.horizon)[0]]
        g = f - gap
        two_frames = model.config.num_frames == 2 and g >= 0 and episode[g] == episode[f]
        previous = images[g] if two_frames else None
        out.append((Observation(images[f], demos["proprio"][f], demos["instructions"][f], previous), actions))
    return out


def commit_order_table(teacher: DVLA, recorded: list[tuple[Observation, np.ndarray]]) -> np.ndarray:
    """Mean commit step per (timestep, dimension) of the baseline order on recorded frames."""
    decoder = ConfidenceOrder(teacher)
    policy = Policy(teacher, decoder, "teacher")
    steps = []
    for obs, _ in recorded:
        policy.predict(obs)
        steps.append(decoder.when.reshape(teacher.config.horizon, -1).numpy())
    return np.mean(steps, axis=0)


def motion_ratio(policy: Policy, recorded: list[tuple[Observation, np.ndarray]]) -> float:
    """How far the decoded chunks move the arm relative to the expert's chunks on the same frames: mean over
    frames and steps of ||decoded joint target - current joints|| over the expert's (1.0 = as far)."""
    decoded, expert = [], []
    for obs, actions in recorded:
        q0 = np.asarray(obs.proprio[:7], dtype=np.float64)
        decoded.append(np.linalg.norm(policy.predict(obs).actions[:, :7] - q0, axis=1))
        expert.append(np.linalg.norm(actions[:, :7] - q0, axis=1))
    return float(np.mean(decoded) / np.mean(expert))


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
    p.add_argument("--observations", type=Path,
                   help="demo dir: print the baseline's commit-order table and each order's motion ratio")
    p.add_argument("--frames", type=int, default=80, help="recorded frames for the tables")
    p.add_argument("--readout", choices=["argmax", "mean"], default="argmax",
                   help="bin readout for every row (argmax: the old baseline default, kept for this probe)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    kinds = {"confidence": ConfidenceOrder, "blocks_in_time_order": BlocksInTimeOrder, "gripper_first": GripperFirst}
    teacher = DVLA.from_pretrained(a.teacher)
    student = DVLA.from_pretrained(a.student) if a.student else None
    if a.observations:
        recorded = _recorded_observations(a.observations, teacher, a.frames)
        table = commit_order_table(teacher, recorded)
        names = teacher.action_tokenizer.space.names
        print("mean commit step of the baseline (rows: timestep, columns: " + ", ".join(names) + ")")
        for t, row in enumerate(table):
            print(f"  t{t}: " + " ".join(f"{v:5.1f}" for v in row))
        print("\nmotion of the decoded chunks relative to the expert's on the same frames (1.00 = as far)")
        probes = [(f"teacher {name}, {r}", teacher, kinds[name], r) for name in kinds for r in ("argmax", "mean")]
        if student is not None:
            probes += [(f"student pipelined, {r}", student, PipelinedDecoder, r) for r in ("argmax", "mean")]
        for label, model, kind, readout in probes:
            print(f"  {label}: {motion_ratio(Policy(model, kind(model, readout=readout)), recorded):.2f}", flush=True)
    rows = []
    orders = [o for o in a.orders.split(",") if o]
    for order in orders if a.episodes > 0 else []:
        if order not in kinds:
            p.error(f"unknown order {order!r}; choose from {sorted(kinds)}")
        policy = Policy(teacher, kinds[order](teacher, readout=a.readout), Path(a.teacher).name)
        rows.append(evaluate(policy, a.episodes, a.seed, progress=False).row())
        print(rows[-1], flush=True)
    if student is not None and a.episodes > 0:
        policy = Policy(student, StudentConfidenceOrder(student, readout=a.readout), Path(a.student).name)
        rows.append(evaluate(policy, a.episodes, a.seed, progress=False).row())
    if not rows:
        return 0
    print(f"\n{a.episodes} episodes per row, seeds {a.seed}..{a.seed + a.episodes - 1}\n")
    print(TABLE_HEADER)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
