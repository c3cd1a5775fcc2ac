#!/bin/bash
# Closed-loop evaluation of the shipped checkpoints (bench/RESULTS.md section 1): two processes side by
# side on the 2 cores, N episodes per row (default 50). Run from the repository root. Every decoder reads
# joint bins at the predictive mean (its default) unless a row says otherwise.
N=${1:-50}
E=".venv/bin/python -m fast_dvla_ros.evaluation.closed_loop --episodes $N --threads 1"
mkdir -p runs/eval
# The baseline dVLA (teacher + bidirectional) and Fast-dVLA (distilled student + pipelined, n = 2 and n = 1)
$E --checkpoint models/teacher_bidirectional --decoder bidirectional --json runs/eval/p1.json > runs/eval/p1.txt 2>&1 &
$E --checkpoint models/student_distilled --decoder pipelined --json runs/eval/p2.json > runs/eval/p2.txt 2>&1 &
wait
$E --checkpoint models/student_distilled --decoder pipelined --n 1 --json runs/eval/p3.json > runs/eval/p3.txt 2>&1 &
$E --checkpoint models/student_distilled --decoder block_cache --json runs/eval/p4.json > runs/eval/p4.txt 2>&1 &
wait
# Belt speeds outside the training range
$E --checkpoint models/teacher_bidirectional --decoder bidirectional --belt-speed 0.08 0.12 --json runs/eval/p5.json > runs/eval/p5.txt 2>&1 &
$E --checkpoint models/student_distilled --decoder pipelined --n 1 --checkpoint models/student_distilled --decoder pipelined \
    --belt-speed 0.08 0.12 --json runs/eval/p6.json > runs/eval/p6.txt 2>&1 &
wait
# The from-scratch students: 600 steps (convergence baseline) and 3000 steps (the teacher's starting point)
$E --checkpoint models/student_scratch --decoder pipelined --json runs/eval/p7.json > runs/eval/p7.txt 2>&1 &
$E --checkpoint models/student_scratch_long --decoder pipelined --json runs/eval/p8.json > runs/eval/p8.txt 2>&1 &
wait
$E --checkpoint models/student_scratch_long --decoder pipelined --belt-speed 0.08 0.12 --json runs/eval/p9.json > runs/eval/p9.txt 2>&1 &
$E --checkpoint models/student_scratch_long --decoder pipelined --n 1 --json runs/eval/p10.json > runs/eval/p10.txt 2>&1 &
wait
# The ROS loop's mode (a chunk every control step through the executor's temporal ensemble), the node's default:
# the baseline and Fast-dVLA at n = 1 (the targets; for the latency ratio run them alone, in one process)
L="--execute-steps 1 --blend temporal_ensemble"
$E --checkpoint models/teacher_bidirectional --decoder bidirectional $L --json runs/eval/p11.json > runs/eval/p11.txt 2>&1 &
$E --checkpoint models/student_distilled --decoder pipelined --n 1 $L --json runs/eval/p12.json > runs/eval/p12.txt 2>&1 &
wait
