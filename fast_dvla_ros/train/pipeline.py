"""`make train`: reproduce the shipped checkpoints from nothing.

1. demonstrations from the scripted expert in the conveyor simulator (clean), and a second set with
   DART noise on the executed joint targets (labels stay clean);
2. a data-collection policy: a bidirectional masked-diffusion model trained from random weights on the
   DART set (a data collector only: such teachers pick too rarely, see stage 5);
3. recovery demonstrations: its 1000-step checkpoint drives for 10-70 steps, then the expert takes over
   from where it left the arm (only the expert's part is recorded);
4. the block-causal student from scratch (600 steps, the convergence baseline), and the same trained
   5x longer (3000 steps; bench/RESULTS.md section 1);
5. the teacher: the long block-causal model converted to bidirectional attention (its prefix isolated)
   and fine-tuned with masked-diffusion SFT on all three sets, as DD-VLA fine-tunes an autoregressive
   VLA; trained from random weights, bidirectional teachers picked at most 22% (bench/history/);
6. the block-causal student by asymmetric distillation from the frozen teacher (all three sets);
7. two more rounds (``--rounds``, default 3): the last round's distilled student converted to
   bidirectional attention and fine-tuned into the next teacher (3000 steps), and a new student distilled
   from it; with the evaluation's receding horizon the teacher went from 38% (round 1) to 56% (round 2)
   and 66% (round 3), in the ROS loop's mode from 74% (round 2) to 80-84% (round 3, the shipped pair;
   bench/RESULTS.md sections 1 and 2);
8. a side-by-side convergence plot/CSV of the last distillation vs the 600-step student, and the last
   round's checkpoints copied into ``models/``.

Every stage is skipped when its output already exists (delete the run directory to redo it), so
an interrupted run resumes at the stage it was in.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

from fast_dvla_ros.train.trainer import StageTrainer, TrainConfig, plot_curves

SHIPPED_STUDENTS = {"scratch": "student_scratch", "scratch_long": "student_scratch_long"}


def round_dirs(run: Path, k: int) -> tuple[Path, Path]:
    """Teacher and distilled-student run directories of round ``k`` (1-based; round 1 keeps the names it
    had before rounds existed, so an older run directory resumes instead of retraining)."""
    suffix = "" if k == 1 else f"_r{k}"
    return run / f"teacher{suffix}", run / f"distill{suffix}"


def round_stages(run: Path, rounds: int, first_teacher_steps: int, teacher_steps: int, student_steps: int,
                 **common) -> list[TrainConfig]:
    """The teacher/student rounds, in order: round 1's teacher starts from the long block-causal student,
    each later teacher from the previous round's distilled student (converted to bidirectional attention),
    and every student is distilled from its own round's frozen teacher."""
    stages, init = [], run / "scratch_long"
    for k in range(1, rounds + 1):
        teacher, distill = round_dirs(run, k)
        stages += [
            TrainConfig(stage="teacher", out_dir=str(teacher), steps=first_teacher_steps if k == 1 else teacher_steps,
                        init_from=str(init), lr=3e-4, **common),
            TrainConfig(stage="distill", out_dir=str(distill), steps=student_steps, teacher_dir=str(teacher),
                        lr=5e-4, **common),
        ]
        init = distill
    return stages


def read_log(path: Path) -> list[dict]:
    """A stage's ``log.csv`` as rows of floats (empty cells dropped: validation runs every N steps)."""
    with open(path) as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def steps_to_reach(rows: list[dict], threshold: float, metric: str = "val_ce") -> int | None:
    """First evaluated step whose validation metric is <= threshold (None if never)."""
    for r in rows:
        if metric in r and r[metric] <= threshold:
            return int(r["step"])
    return None


def convergence_report(distill_rows: list[dict], scratch_rows: list[dict]) -> dict:
    """How many steps each student needs to reach the scratch student's final validation CE."""
    final_scratch = [r["val_ce"] for r in scratch_rows if "val_ce" in r][-1]
    return {
        "threshold_val_ce": final_scratch,
        "distill_steps": steps_to_reach(distill_rows, final_scratch),
        "scratch_steps": steps_to_reach(scratch_rows, final_scratch),
    }


def speedup_table(distill_rows: list[dict], scratch_rows: list[dict], at: list[int],
                  metric: str = "val_ce") -> list[dict]:
    """Steps-to-target convergence: for each distillation step k, the first scratch step whose metric is
    at least as good as distillation's at k, and their ratio.

    This measures a rate, unlike ``convergence_report`` (whose answer, 1 step, is set by the distilled
    student starting from the teacher's weights). ``scratch_steps`` is None when the scratch run never
    got there; ``ratio`` is then a lower bound computed from the scratch run's length (``ratio_is_bound``).
    """
    by_step = {int(r["step"]): r[metric] for r in distill_rows if metric in r}
    scratch_last = max(int(r["step"]) for r in scratch_rows)
    table = []
    for k in at:
        if k not in by_step:
            raise ValueError(f"distillation log has no {metric} at step {k}")
        target = by_step[k]
        s = steps_to_reach(scratch_rows, target, metric)
        table.append({"distill_step": k, metric: target, "scratch_steps": s,
                      "ratio": (s if s is not None else scratch_last) / k, "ratio_is_bound": s is None})
    return table


def _run_stage(cfg: TrainConfig) -> None:
    if (Path(cfg.out_dir) / "summary.json").exists():
        print(f"[train] {cfg.stage}: done already ({cfg.out_dir})")
        return
    StageTrainer(cfg).run()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", type=Path, default=Path("runs/train"))
    p.add_argument("--models-dir", type=Path, default=Path("models"))
    p.add_argument("--episodes", type=int, default=400, help="demonstration episodes")
    p.add_argument("--base-steps", type=int, default=2000,
                   help="data-collection policy on the DART set (stopped at 2000 of a 3000-step cosine schedule)")
    p.add_argument("--teacher-steps", type=int, default=1000,
                   help="round 1's teacher: bidirectional fine-tuning of the long block-causal model on all sets")
    p.add_argument("--round-teacher-steps", type=int, default=3000,
                   help="later rounds' teachers: bidirectional fine-tuning of the last distilled student")
    p.add_argument("--rounds", type=int, default=3,
                   help="teacher -> distilled student rounds (>= 1; the shipped pair is round 3's)")
    p.add_argument("--takeover-episodes", type=int, default=300)
    p.add_argument("--student-steps", type=int, default=600, help="budget of both students")
    p.add_argument("--scratch-long-steps", type=int, default=3000,
                   help="the long from-scratch student, the teacher's starting point (~31 min on one core)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--preset", default="sim")
    p.add_argument("--no-copy", action="store_true", help="do not copy the checkpoints into --models-dir")
    a = p.parse_args(argv)
    if a.scratch_long_steps < 1:
        p.error("--scratch-long-steps must be >= 1: the teacher starts from the long scratch student")
    if a.rounds < 1:
        p.error("--rounds must be >= 1")
    run = a.run_dir
    data, dart, takeover = run / "demos", run / "demos_dart", run / "demos_takeover"
    demos = [sys.executable, "-m", "fast_dvla_ros.train.demos"]
    if not (data / "meta.json").exists():
        subprocess.run([*demos, "--episodes", str(a.episodes), "--out", str(data)], check=True)
    if not (dart / "meta.json").exists():
        subprocess.run([*demos, "--episodes", str(a.episodes), "--action-noise", "0.03", "--out", str(dart)],
                       check=True)
    base = TrainConfig(stage="teacher", data_dir=str(dart), out_dir=str(run / "teacher_base"), steps=a.base_steps,
                       batch_size=a.batch_size, preset=a.preset, save_every=1000,
                       lr_schedule_steps=max(a.base_steps, 3000))
    _run_stage(base)
    if not (takeover / "meta.json").exists():
        subprocess.run([*demos, "--episodes", str(a.takeover_episodes), "--seed0", "5000", "--out", str(takeover),
                        "--takeover-checkpoint", str(run / "teacher_base" / "step_1000"), "--takeover-steps", "10",
                        "70"], check=True)
    common = dict(data_dir=f"{data},{dart},{takeover}", batch_size=a.batch_size, preset=a.preset)
    for cfg in (
        TrainConfig(stage="scratch", out_dir=str(run / "scratch"), steps=a.student_steps, **common),
        TrainConfig(stage="scratch", out_dir=str(run / "scratch_long"), steps=a.scratch_long_steps,
                    save_every=1000, **common),
        *round_stages(run, a.rounds, a.teacher_steps, a.round_teacher_steps, a.student_steps, **common),
    ):
        _run_stage(cfg)
    teacher, distill = round_dirs(run, a.rounds)

    # The convergence comparison. Since the teachers descend from the long scratch student, the
    # distilled student continues that lineage rather than racing the 600-step one (models/README.md).
    d_rows, s_rows = read_log(distill / "log.csv"), read_log(run / "scratch" / "log.csv")
    conv = convergence_report(d_rows, s_rows)
    (run / "convergence.json").write_text(json.dumps(conv, indent=2))
    plot_curves({"distill": d_rows, "scratch": s_rows}, run / "convergence.png")
    print(f"[train] convergence: {json.dumps(conv)}")

    if not a.no_copy:
        shipped = {teacher: "teacher_bidirectional", distill: "student_distilled",
                   **{run / stage: name for stage, name in SHIPPED_STUDENTS.items()}}
        for src, name in shipped.items():
            dst = a.models_dir / name
            if not (src / "model.safetensors").exists():
                continue
            dst.mkdir(parents=True, exist_ok=True)
            for f in ("model.safetensors", "config.json", "action_tokenizer.json", "summary.json", "log.csv",
                      "loss_curve.png"):
                if (src / f).exists():
                    shutil.copy2(src / f, dst / f)
        shutil.copy2(run / "convergence.png", a.models_dir / "convergence.png")
        shutil.copy2(run / "convergence.json", a.models_dir / "convergence.json")
        shutil.copy2(data / "stats.json", a.models_dir / "demo_stats.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
