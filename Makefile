# Two commands do all set-up (see README.md):  `make demo`  and  `make test`.
# Both first run tools/bootstrap.sh, which is idempotent (a second call installs nothing).
VENV ?= .venv
PY := $(VENV)/bin/python
export FAST_DVLA_VENV := $(abspath $(VENV))

.PHONY: setup demo test test-all lint bench train colcon clean

setup:
	@bash tools/bootstrap.sh

## The main job: simulated conveyor-picking loop over real DDS (sim + policy + executor), bag + summary.
demo: setup
	$(PY) -m fast_dvla_ros.demo $(ARGS)

## The default test suite (what .ci/run runs).
test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

## Everything, slow tests included.
test-all: setup
	$(PY) -m pytest -m '' $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

## Decoder speed benchmark (prints ratios measured side by side).
bench: setup
	$(PY) bench/decode.py $(ARGS)

## Reproduce the shipped checkpoints from nothing (demonstrations, teacher, distillation, scratch student).
train: setup
	$(PY) -m fast_dvla_ros.train.pipeline $(ARGS)

## colcon build of this package into build/colcon_ws (against the venv's ROS 2).
colcon: setup
	bash tools/colcon_build.sh build/colcon_ws

clean:
	rm -rf build install log
