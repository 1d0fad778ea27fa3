#!/usr/bin/env bash
# llm_trainer: side virtualenvs holding *peer* simulators, so the generation benchmark can put our
# episodes/min next to theirs without putting those packages (and their pins) into the project venv.
#
#   bash scripts/peer_venvs.sh robosuite              # <repo>/.venv-peers/robosuite (robosuite 1.5.2, MimicGen's sim)
#   bash scripts/peer_venvs.sh all                    # every peer (robosuite only, for now)
#   ROBOSUITE_VENV=/tmp/rs bash scripts/peer_venvs.sh robosuite
#
# Idempotent: a target whose venv already holds a stamp matching this script's recipe (and whose
# import check passes) is left alone; delete <venv>/peer_venv.stamp to force a rebuild.
# Environment: PEERS_DIR (default <repo>/.venv-peers), ROBOSUITE_VENV,
# PYTHON (interpreter used to create the venvs; default python3.11, else python3).
# Install time, measured on the 2-core dev machine while another heavy job ran: 24 s for robosuite
# (venv + pip install of prebuilt wheels; pip's cache may have held a few of them already); a second
# run (stamp hit) takes under 1 s. The venv is ~1.3 GB: robosuite's robot/object assets are 530 MB,
# plus numba/llvmlite, scipy and opencv from its hard dependencies.
# The first run of the peer after a fresh build JIT-compiles robosuite's numba kernels (~8 s here,
# then cached in site-packages); scripts/peer_robosuite_stack.py keeps that out of its rate.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS_DIR="${PEERS_DIR:-$REPO/.venv-peers}"
ROBOSUITE_VENV="${ROBOSUITE_VENV:-$PEERS_DIR/robosuite}"
if [ -z "${PYTHON:-}" ]; then
    if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi

step() { printf '==> [peer_venvs] %s\n' "$*"; }

# --- robosuite 1.5.2 -------------------------------------------------------------------------------
# mujoco<3.4: robosuite 1.5.2 declares only mujoco>=3.3.0, so pip would take the newest MuJoCo;
# keep it on the 3.3 line robosuite 1.5.2 was released and tested against (resolves to 3.3.7).
# Only the core package: the peer runs without renderers or cameras (scripts/peer_robosuite_stack.py).
ROBOSUITE_RECIPE='v1 robosuite==1.5.2 mujoco<3.4 numpy'
ROBOSUITE_PKGS=("robosuite==1.5.2" "mujoco<3.4" numpy)
ROBOSUITE_CHECK='import mujoco, robosuite; print("robosuite", robosuite.__version__, "mujoco", mujoco.__version__)'

up_to_date() { # venv recipe check
    local venv="$1" recipe="$2" check="$3"
    [ -f "$venv/peer_venv.stamp" ] && [ "$(cat "$venv/peer_venv.stamp")" = "$recipe" ] &&
        (cd / && "$venv/bin/python" -c "$check") >/dev/null 2>&1
}

make_venv() {
    local venv="$1"
    [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
    rm -f "$venv/peer_venv.stamp"
}

build_robosuite() {
    local venv="$ROBOSUITE_VENV" t0=$SECONDS
    if up_to_date "$venv" "$ROBOSUITE_RECIPE" "$ROBOSUITE_CHECK"; then step "robosuite: $venv up to date"; return 0; fi
    step "robosuite: building $venv"
    make_venv "$venv"
    "$venv/bin/pip" install -q "${ROBOSUITE_PKGS[@]}"
    (cd / && "$venv/bin/python" -c "$ROBOSUITE_CHECK") # from / : no local robosuite.py shadows
    printf '%s' "$ROBOSUITE_RECIPE" >"$venv/peer_venv.stamp"
    step "robosuite: done in $((SECONDS - t0)) s"
}

[ $# -ge 1 ] || set -- all
for target in "$@"; do
    case "$target" in
    robosuite) build_robosuite ;;
    all) build_robosuite ;;
    *) echo "usage: $0 [robosuite|all]..." >&2; exit 2 ;;
    esac
done
