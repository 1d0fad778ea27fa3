#!/usr/bin/env bash
# llm_trainer: side virtualenvs holding the *users'* dataset readers, so the exporters can be checked
# against the real consumers without putting those packages (and their pins) into the project venv.
#
#   bash scripts/reader_venvs.sh lerobot              # <repo>/.venv-readers/lerobot   (LeRobotDataset, lerobot 0.4.4)
#   bash scripts/reader_venvs.sh robomimic            # <repo>/.venv-readers/robomimic (SequenceDataset, robomimic 0.3.0)
#   bash scripts/reader_venvs.sh all                  # both
#   LEROBOT_VENV=/tmp/lr ROBOMIMIC_VENV=/tmp/rm bash scripts/reader_venvs.sh all
#
# Idempotent: a target whose venv already holds a stamp matching this script's recipe (and whose
# import check passes) is left alone; delete <venv>/reader_venv.stamp to force a rebuild.
# Environment: READERS_DIR (default <repo>/.venv-readers), LEROBOT_VENV, ROBOMIMIC_VENV,
# PYTHON (interpreter used to create the venvs; default python3.11, else python3).
# Needs root (or ffmpeg already installed) for the lerobot target: torchcodec loads FFmpeg's shared
# libraries at import time, so Debian's ffmpeg (libavcodec & co.) is installed with apt-get.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
READERS_DIR="${READERS_DIR:-$REPO/.venv-readers}"
LEROBOT_VENV="${LEROBOT_VENV:-$READERS_DIR/lerobot}"
ROBOMIMIC_VENV="${ROBOMIMIC_VENV:-$READERS_DIR/robomimic}"
if [ -z "${PYTHON:-}" ]; then
    if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi

step() { printf '==> [reader_venvs] %s\n' "$*"; }

# --- lerobot 0.4.4 ---------------------------------------------------------------------------------
# torch/torchvision: the x86_64 pair pip finds on this machine's disk (pinned because lerobot is
# installed --no-deps; its own metadata would pull newer/CUDA wheels and a lot of optional extras).
# torch/torchvision/torchcodec are newer than lerobot's declared ranges (torch<2.11, torchcodec<0.11):
# older torch builds are not on this disk and would cost a multi-GB CUDA download. The pure-Python
# packages are kept inside lerobot 0.4.4's declared ranges (av<16, deepdiff<9, opencv<4.13, ...).
LEROBOT_RECIPE='v2 torch==2.14.1 torchvision==0.29.1 lerobot==0.4.4 datasets>=4,<5 huggingface-hub<0.36 draccus==0.10.0 av>=15,<16 deepdiff>=7.0.1,<9 opencv<4.13 packaging<26 setuptools<81'
LEROBOT_DEPS=("datasets>=4,<5" "huggingface-hub<0.36" "draccus==0.10.0" jsonlines einops "av>=15,<16" pandas pyarrow
    termcolor "deepdiff>=7.0.1,<9" imageio "opencv-python-headless>=4.9,<4.13" "packaging>=24.2,<26"
    "setuptools>=71,<81" gymnasium torchcodec accelerate)
LEROBOT_CHECK='from lerobot.datasets.lerobot_dataset import LeRobotDataset; import torchcodec.decoders; print("lerobot reader ok")'

# --- robomimic 0.3.0 -------------------------------------------------------------------------------
# torch 2.13.0 = the CPU wheel on disk (installed first and alone, so nothing pulls a CUDA build);
# robomimic --no-deps skips egl_probe (needs a GL/GPU build), torchvision, matplotlib and the
# training-only extras; SequenceDataset + obs_utils import only h5py, numpy, tqdm and termcolor
# (checked with `python -X importtime`).
ROBOMIMIC_RECIPE='v2 torch==2.13.0 robomimic==0.3.0 h5py numpy tqdm termcolor'
ROBOMIMIC_DEPS=(h5py numpy tqdm termcolor)
ROBOMIMIC_CHECK='import robomimic.utils.obs_utils; from robomimic.utils.dataset import SequenceDataset; print("robomimic reader ok")'

up_to_date() { # venv recipe check
    local venv="$1" recipe="$2" check="$3"
    [ -f "$venv/reader_venv.stamp" ] && [ "$(cat "$venv/reader_venv.stamp")" = "$recipe" ] &&
        (cd / && HF_HUB_OFFLINE=1 "$venv/bin/python" -c "$check") >/dev/null 2>&1
}

make_venv() {
    local venv="$1"
    [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
    rm -f "$venv/reader_venv.stamp"
}

ensure_ffmpeg() {
    if ldconfig -p 2>/dev/null | grep -q 'libavcodec\.so\.'; then return 0; fi
    step "installing Debian ffmpeg (torchcodec needs FFmpeg's shared libraries)"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q ffmpeg
}

build_lerobot() {
    local venv="$LEROBOT_VENV" t0=$SECONDS
    ensure_ffmpeg
    if up_to_date "$venv" "$LEROBOT_RECIPE" "$LEROBOT_CHECK"; then step "lerobot: $venv up to date"; return 0; fi
    step "lerobot: building $venv"
    make_venv "$venv"
    "$venv/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
    "$venv/bin/pip" install -q --no-deps lerobot==0.4.4
    "$venv/bin/pip" install -q "${LEROBOT_DEPS[@]}"
    (cd / && HF_HUB_OFFLINE=1 "$venv/bin/python" -c "$LEROBOT_CHECK") # from / : no local module shadows
    printf '%s' "$LEROBOT_RECIPE" >"$venv/reader_venv.stamp"
    step "lerobot: done in $((SECONDS - t0)) s"
}

build_robomimic() {
    local venv="$ROBOMIMIC_VENV" t0=$SECONDS
    if up_to_date "$venv" "$ROBOMIMIC_RECIPE" "$ROBOMIMIC_CHECK"; then step "robomimic: $venv up to date"; return 0; fi
    step "robomimic: building $venv"
    make_venv "$venv"
    "$venv/bin/pip" install -q torch==2.13.0
    "$venv/bin/pip" install -q --no-deps robomimic==0.3.0
    "$venv/bin/pip" install -q "${ROBOMIMIC_DEPS[@]}"
    (cd / && "$venv/bin/python" -c "$ROBOMIMIC_CHECK") # from / : no local robomimic.py shadows
    printf '%s' "$ROBOMIMIC_RECIPE" >"$venv/reader_venv.stamp"
    step "robomimic: done in $((SECONDS - t0)) s"
}

[ $# -ge 1 ] || set -- all
for target in "$@"; do
    case "$target" in
    lerobot) build_lerobot ;;
    robomimic) build_robomimic ;;
    all) build_lerobot && build_robomimic ;;
    *) echo "usage: $0 [lerobot|robomimic|all]..." >&2; exit 2 ;;
    esac
done
