#!/usr/bin/env bash
# Build this package with colcon, as a roboticist's workspace would, against the ROS 2
# Jazzy of the venv (no system ROS needed): copies the tracked sources into WS/src and runs
# `colcon build` there. Usage: tools/colcon_build.sh WORKSPACE_DIR
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FAST_DVLA_VENV:-$ROOT/.venv}"
WS="$(mkdir -p "$1" && cd "$1" && pwd)"
rm -rf "$WS/src" && mkdir -p "$WS/src/fast_dvla_ros"
# Tracked and untracked-but-not-ignored files: what a clone of the package would contain.
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard) \
  | (cd "$ROOT" && xargs -0 cp --parents -t "$WS/src/fast_dvla_ros" 2>/dev/null || true)
# Prepended, not replaced: with a sourced ROS 2 install (/opt/ros/...) its prefixes stay on the paths.
export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" PATH="$VENV/bin:$PATH"
cd "$WS"
colcon build --event-handlers console_direct- \
  --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF
