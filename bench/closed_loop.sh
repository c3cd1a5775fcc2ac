#!/bin/bash
# Closed-loop evaluation of the shipped checkpoints (bench/RESULTS.md section 1): two processes side by
# side on the 2 cores, N episodes per row (default 50). Run from the repository root. Each decoder uses its
# default readout (bidirectional: argmax; block_cache/pipelined: predictive mean) unless a row says otherwise.
N=${1:-50}
E=".venv/bin/python -m fast_dvla_ros.train.closed_loop --episodes $N --threads 1"
mkdir -p runs/eval
$E --checkpoint models/teacher_bidirectional --decoder bidirectional --checkpoint models/student_distilled --decoder pipelined --json runs/eval/p1.json > runs/eval/p1.txt 2>&1 &
$E --checkpoint models/student_distilled --decoder block_cache --checkpoint models/student_scratch --decoder pipelined --json runs/eval/p2.json > runs/eval/p2.txt 2>&1 &
wait
$E --checkpoint models/teacher_bidirectional --decoder bidirectional --belt-speed 0.08 0.12 --json runs/eval/p3.json > runs/eval/p3.txt 2>&1 &
$E --checkpoint models/student_distilled --decoder pipelined --belt-speed 0.08 0.12 --json runs/eval/p4.json > runs/eval/p4.txt 2>&1 &
wait
$E --checkpoint models/teacher_bidirectional --decoder bidirectional --readout mean --json runs/eval/p5.json > runs/eval/p5.txt 2>&1 &
$E --checkpoint models/student_distilled --decoder pipelined --tau-conf 0.3 --json runs/eval/p6.json > runs/eval/p6.txt 2>&1 &
wait
# Execution modes: replan every 2 steps, and every step through the chunk executor's temporal ensemble
# (what the ROS loop does when decoding keeps up).
$E --checkpoint models/teacher_bidirectional --decoder bidirectional --execute-steps 2 --json runs/eval/p7.json > runs/eval/p7.txt 2>&1 &
$E --checkpoint models/student_distilled --decoder pipelined --execute-steps 2 --json runs/eval/p8.json > runs/eval/p8.txt 2>&1 &
wait
$E --checkpoint models/teacher_bidirectional --decoder bidirectional --execute-steps 1 --blend temporal_ensemble --json runs/eval/p9.json > runs/eval/p9.txt 2>&1 &
$E --checkpoint models/student_distilled --decoder pipelined --execute-steps 1 --blend temporal_ensemble --json runs/eval/p10.json > runs/eval/p10.txt 2>&1 &
wait
# The long from-scratch student (the node's default checkpoint since 2026-11-30): training range, fast belt,
# and the ROS loop's execution mode.
$E --checkpoint models/student_scratch_long --decoder pipelined --json runs/eval/p11.json > runs/eval/p11.txt 2>&1 &
$E --checkpoint models/student_scratch_long --decoder pipelined --belt-speed 0.08 0.12 --json runs/eval/p12.json > runs/eval/p12.txt 2>&1 &
wait
$E --checkpoint models/student_scratch_long --decoder pipelined --execute-steps 1 --blend temporal_ensemble --json runs/eval/p13.json > runs/eval/p13.txt 2>&1
wait
# One forward per block (--n 1: a fully active block commits all its tokens at once): the distilled student
# (the Fast-dVLA row) and the long scratch student.
$E --checkpoint models/student_distilled --decoder pipelined --n 1 --json runs/eval/p14.json > runs/eval/p14.txt 2>&1 &
$E --checkpoint models/student_scratch_long --decoder pipelined --n 1 --json runs/eval/p15.json > runs/eval/p15.txt 2>&1 &
wait
$E --checkpoint models/student_distilled --decoder pipelined --n 1 --belt-speed 0.08 0.12 --json runs/eval/p16.json > runs/eval/p16.txt 2>&1
