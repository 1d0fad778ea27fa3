# llm_trainer developer entry points. Everything runs from the venv that scripts/setup.sh makes;
# `setup` is idempotent and takes about a second when nothing changed, so the other targets depend on it.
#   make setup | demo | test | test-fast | lint | bench | clean

VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
BUILD_DIR := $(CURDIR)/build
# rclpy needs ROS_LOG_DIR (or HOME); keep its logs inside the (gitignored) build folder.
ROS_LOG_DIR_TEST := $(BUILD_DIR)/ros_log

.PHONY: setup demo test test-fast test-full-torch test-diffusers lint bench bench-executor bench-planner bench-recording bench-asmr bench-iteach reader-venvs clean

setup:
	VENV="$(VENV)" bash scripts/setup.sh

# Each demo run gets its own folder: generate refuses to mix two runs in one --out.
DEMO_OUT ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

demo: setup
	$(VENV)/bin/llm-trainer generate --task stack_blocks --episodes 20 --planner oracle --out $(DEMO_OUT)

# robomimic's reader is light (CPU torch, ~30-50 s): CI builds it so the robomimic export is checked by
# SequenceDataset itself; lerobot's (torch + torchvision + ffmpeg, ~5.5 GB) stays opt-in (make reader-venvs).
test: setup
	bash scripts/reader_venvs.sh robomimic
	ROS_LOG_DIR="$(ROS_LOG_DIR_TEST)" $(PY) -m pytest test -q -ra

test-fast: setup
	ROS_LOG_DIR="$(ROS_LOG_DIR_TEST)" $(PY) -m pytest test -q -ra -m "not slow"

# The users' own dataset readers (robomimic's SequenceDataset, lerobot's LeRobotDataset) in side venvs
# under .venv-readers/; the export tests use them where present and are skipped, with the reason, where not.
# Optional: the perception model tests in a full-torch venv (Molmo2 needs torchvision; ~5.5 GB, not in CI).
test-full-torch:
	bash scripts/full_torch_venv.sh
	PYTHONPATH=src/llm_trainer .venv-full/bin/python -m pytest test/test_perception_models.py -q -ra

# Optional: the diffusion backend's test (diffusers beside the venv, reusing its torch; ~11 s, 62 MB; not in CI)
test-diffusers: setup
	$(VENV)/bin/pip install -q --no-deps --target .venv-diffusers diffusers==0.42.1
	PYTHONPATH=.venv-diffusers $(PY) -m pytest test/test_asmr.py -q -ra

bench-asmr: setup
	PYTHONPATH=.venv-diffusers $(PY) scripts/benchmark_asmr.py --out runs/asmr-bench

# About 21 min on 2 cores (put_block and stack_blocks, 60 episodes each).
bench-iteach: setup
	$(PY) scripts/benchmark_iteach.py --out runs/iteach

reader-venvs:
	bash scripts/reader_venvs.sh all

lint: setup
	$(VENV)/bin/ruff check src test

bench: setup
	$(PY) scripts/benchmark_generation.py

bench-recording: setup
	$(PY) scripts/benchmark_recording.py

bench-executor: setup
	$(PY) scripts/benchmark_executor.py --trials 100

# Slow on a CPU (about 25 min for 50 scenes x 3 modes with SmolLM2).
bench-planner: setup
	$(PY) scripts/benchmark_planner.py --scenes 50

# Build products and caches only: leaves .venv/ (shared; remove it by hand) and runs/ (your data).
clean:
	rm -rf build install log .pytest_cache .ruff_cache src/llm_trainer/llm_trainer.egg-info
	find src test scripts -name __pycache__ -type d -prune -exec rm -rf {} +
