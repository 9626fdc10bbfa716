#!/usr/bin/env bash
# Build pycaffe (CPU only) for a given Python interpreter, cached.
#
# Usage: scripts/build-pycaffe.sh PYTHON
#
#   PYTHON   interpreter of the project's virtualenv (e.g. .venv/bin/python);
#            it must already have numpy<2 installed (pycaffe is compiled
#            against that numpy's headers).
#
# What it does (each step prints one progress line with elapsed time):
#   1. apt-get installs the Debian build dependencies that are missing
#      (checked with dpkg -s; needs root only when something is missing).
#   2. pip-installs pycaffe's runtime Python deps into PYTHON.
#   3. fetches the brocolli-caffe sdist (BVLC/SSD Caffe) with
#      `PYTHON -m pip download`, and builds it with CMake (CPU_ONLY, python
#      layer on, Release) under the cache directory:
#        ${SB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/streamline-bridge/pycaffe}/<key>/
#          dist/      the downloaded sdist
#          src/       the unpacked (and patched) source
#          build/     the CMake build tree
#          python/    RESULT: the importable `caffe` package (with _caffe.so)
#          build.log  full apt/pip/cmake/make/verify output
#          .complete  written only after a successful verification
#      <key> = caffe-<caffe version>-py<X.Y>-numpy<major.minor>-r<recipe rev>
#   4. writes pycaffe.pth into PYTHON's site-packages, pointing at python/.
#   5. verifies: `import caffe` resolves to that directory, and a tiny
#      one-convolution net can be created and run forward.
#   A second run with .complete present skips the build: it only re-writes
#   the .pth and re-verifies (seconds).
#
# Environment:
#   SB_CAFFE_JOBS   parallel make jobs (default: nproc)
#   SB_CACHE_DIR    cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/streamline-bridge/pycaffe)
#
# To force a rebuild, delete the <key> directory (its path is printed).
set -euo pipefail

CAFFE_DIST=brocolli-caffe
CAFFE_VERSION=9.0.2
CAFFE_SDIST_SHA256=c6410cc60bdd6db685d441b66be7df05410f8850ac88d6b75d48ef9b2315c08a
# Bump when the build recipe changes in a way that needs a rebuild.
RECIPE_REV=1

# Runtime Python deps of pycaffe. numpy itself is never changed: the pip
# call below pins the numpy already installed (pycaffe is compiled against
# its headers), so the resolver picks versions of these that work with it.
# - protobuf: caffe_pb2.py is generated at build time by Debian 12's protoc
#   3.21.12; that generated code needs the `builder` runtime module, which
#   protobuf >= 3.20 has (3.19 fails to import it). Checked working with
#   the SqueezeNet prototxt + caffemodel: 3.20.3 (pure python on 3.11),
#   4.21.12, 4.25.9, 5.29.5, 6.33.0. <7 guards against a future runtime
#   that drops support for such old generated code.
# - scikit-image: caffe.io does `import skimage.io` (and scipy.ndimage) at
#   import time, so `import caffe` needs it; 0.21+ has cp311 wheels and
#   works with numpy 1.26 (checked 0.24.0 and 0.25.2). caffe.io.load_image
#   itself is not used (images are loaded with Pillow).
PY_RUNTIME_DEPS=(
  "six>=1.16"
  "protobuf>=3.20.3,<7"
  "scikit-image>=0.21"
  "Pillow>=9"
)

PROG=build-pycaffe
T0=$SECONDS
STEP="startup"
LOG=""

die() {
  # One clear message on stderr, then exit non-zero.
  local msg="$1"
  trap - ERR
  if [[ -n "$LOG" && -f "$LOG" ]]; then
    printf '%s: FAILED in step "%s": %s\n  full log: %s\n' "$PROG" "$STEP" "$msg" "$LOG" >&2
  else
    printf '%s: FAILED in step "%s": %s\n' "$PROG" "$STEP" "$msg" >&2
  fi
  exit 1
}

on_err() {
  local rc=$1 line=$2
  die "command exited with status $rc (script line $line)"
}
trap 'on_err $? $LINENO' ERR

elapsed() {
  local s=$((SECONDS - T0))
  printf '%dm%02ds' $((s / 60)) $((s % 60))
}

step() {
  STEP="$1"
  printf '[%s +%s] %s\n' "$PROG" "$(elapsed)" "$1"
}

note() {
  printf '[%s +%s]   %s\n' "$PROG" "$(elapsed)" "$1"
}

log() {
  # Append a header line to the build log.
  [[ -n "$LOG" ]] && printf '\n===== %s: %s =====\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >>"$LOG"
  return 0
}

# --------------------------------------------------------------------------
# Arguments and interpreter facts
# --------------------------------------------------------------------------
if [[ $# -ne 1 || -z "${1:-}" || "$1" == -h || "$1" == --help ]]; then
  echo "usage: $0 PYTHON   (the virtualenv's interpreter, e.g. .venv/bin/python)" >&2
  exit 2
fi

step "inspect interpreter"
PYTHON_ARG="$1"
if [[ "$PYTHON_ARG" != */* ]]; then
  PYTHON_ARG="$(command -v "$PYTHON_ARG" || true)"
  [[ -n "$PYTHON_ARG" ]] || die "interpreter '$1' not found on PATH"
fi
[[ -x "$PYTHON_ARG" ]] || die "interpreter '$PYTHON_ARG' does not exist or is not executable"
# Absolute path WITHOUT resolving symlinks: a venv's bin/python is a symlink
# to the base interpreter, and resolving it would leave the venv.
PYTHON="$(cd "$(dirname "$PYTHON_ARG")" && pwd)/$(basename "$PYTHON_ARG")"

PYINFO="$("$PYTHON" - <<'EOF' 2>&1
import sys, sysconfig
print(f"{sys.version_info[0]}.{sys.version_info[1]}")
print(sysconfig.get_paths()["purelib"])
print(sysconfig.get_paths()["include"])
try:
    import numpy
except Exception as exc:  # noqa: BLE001
    print("NONUMPY")
    print(f"{type(exc).__name__}: {exc}")
else:
    print(numpy.__version__)
    print(numpy.get_include())
EOF
)" || die "could not run $PYTHON: $PYINFO"

{ read -r PY_VER; read -r PY_PURELIB; read -r PY_INCLUDE; read -r NUMPY_VERSION; read -r NUMPY_INCLUDE; } <<<"$PYINFO"
[[ "$NUMPY_VERSION" != NONUMPY ]] || die "numpy is not importable in $PYTHON ($NUMPY_INCLUDE); install it first: $PYTHON -m pip install 'numpy<2'"
NUMPY_MM="$(cut -d. -f1,2 <<<"$NUMPY_VERSION")"
[[ "${NUMPY_MM%%.*}" -lt 2 ]] || die "numpy $NUMPY_VERSION in $PYTHON: pycaffe needs numpy<2 (install 'numpy<2' first)"
[[ -f "$PY_INCLUDE/Python.h" ]] || die "Python.h not found in $PY_INCLUDE (install the Python development headers for $PYTHON)"
PY_TAG="${PY_VER/./}"
note "python $PY_VER ($PYTHON), numpy $NUMPY_VERSION"

KEY="caffe-${CAFFE_VERSION}-py${PY_VER}-numpy${NUMPY_MM}-r${RECIPE_REV}"
CACHE_ROOT="${SB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/streamline-bridge/pycaffe}"
KEYDIR="$CACHE_ROOT/$KEY"
OUT_PY="$KEYDIR/python"
COMPLETE="$KEYDIR/.complete"
JOBS="${SB_CAFFE_JOBS:-$(nproc)}"
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "SB_CAFFE_JOBS must be a positive integer (got '$JOBS')"

mkdir -p "$KEYDIR" || die "cannot create cache directory $KEYDIR"
# Serialise concurrent runs on the same key.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$KEYDIR/.lock"
  flock 9
fi

CACHED=0
if [[ -f "$COMPLETE" && -f "$OUT_PY/caffe/_caffe.so" ]]; then
  CACHED=1
  LOG="$KEYDIR/build.log"
  log "cached run for $PYTHON"
else
  rm -f "$COMPLETE"
  LOG="$KEYDIR/build.log"
  : >"$LOG"
  log "cold build for $PYTHON (python $PY_VER, numpy $NUMPY_VERSION, key $KEY)"
fi
note "cache: $KEYDIR ($([[ $CACHED == 1 ]] && echo cached || echo 'not built yet'))"

# --------------------------------------------------------------------------
# 1. Debian build dependencies
# --------------------------------------------------------------------------
step "1/5 Debian build dependencies"
MULTIARCH="$( (gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null) || true)"
APT_PKGS=(
  cmake g++ make
  libprotobuf-dev protobuf-compiler
  libboost-system-dev libboost-thread-dev libboost-filesystem-dev
  libboost-regex-dev libboost-python-dev
  libgoogle-glog-dev libgflags-dev
  libhdf5-dev libopenblas-dev libgtest-dev
)
MISSING=()
for p in "${APT_PKGS[@]}"; do
  st="$(dpkg -s "$p" 2>/dev/null || true)"
  if ! grep -q '^Status: install ok installed' <<<"$st"; then
    MISSING+=("$p")
  fi
done
if ((${#MISSING[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    die "missing Debian packages and not root: ${MISSING[*]} (run: sudo apt-get install ${MISSING[*]})"
  fi
  note "installing: ${MISSING[*]}"
  log "apt-get update"
  apt-get update >>"$LOG" 2>&1 || die "apt-get update failed"
  log "apt-get install ${MISSING[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${MISSING[@]}" >>"$LOG" 2>&1 ||
    die "apt-get install ${MISSING[*]} failed"
  [[ -n "$MULTIARCH" ]] || MULTIARCH="$(gcc -print-multiarch)"
else
  note "all ${#APT_PKGS[@]} packages present"
fi
[[ -n "$MULTIARCH" ]] || die "cannot determine the multiarch triplet (gcc -print-multiarch)"
LIBDIR="/usr/lib/$MULTIARCH"
BOOST_PY_LIB="boost_python${PY_TAG}"
[[ -e "$LIBDIR/lib${BOOST_PY_LIB}.so" ]] ||
  die "Boost.Python for Python $PY_VER ($LIBDIR/lib${BOOST_PY_LIB}.so) not found; Debian's libboost-python-dev only provides it for the system Python version"
HDF5_INC=/usr/include/hdf5/serial
HDF5_LIBDIR="$LIBDIR/hdf5/serial"
[[ -f "$HDF5_INC/hdf5.h" && -d "$HDF5_LIBDIR" ]] || die "HDF5 (serial) headers/libraries not found under $HDF5_INC / $HDF5_LIBDIR"

# --------------------------------------------------------------------------
# 2. Python runtime deps
# --------------------------------------------------------------------------
step "2/5 Python runtime deps (pip)"
log "pip install ${PY_RUNTIME_DEPS[*]}"
# Pin the numpy already installed so that pip never swaps it under us
# (pycaffe is compiled against exactly this numpy's headers).
"$PYTHON" -m pip install --disable-pip-version-check --no-input \
  "numpy==$NUMPY_VERSION" "${PY_RUNTIME_DEPS[@]}" >>"$LOG" 2>&1 ||
  die "pip install ${PY_RUNTIME_DEPS[*]} into $PYTHON failed"

# --------------------------------------------------------------------------
# 3. Build
# --------------------------------------------------------------------------
if [[ $CACHED == 1 ]]; then
  step "3/5 build caffe: cached, skipped"
else
  step "3/5 build caffe: fetch sdist"
  DIST="$KEYDIR/dist"
  SDIST="$DIST/${CAFFE_DIST}-${CAFFE_VERSION}.tar.gz"
  mkdir -p "$DIST"
  if [[ ! -f "$SDIST" ]] || ! sha256sum "$SDIST" | grep -q "^$CAFFE_SDIST_SHA256 "; then
    rm -f "$SDIST"
    log "pip download ${CAFFE_DIST}==${CAFFE_VERSION}"
    "$PYTHON" -m pip download --disable-pip-version-check --no-input --no-deps --no-binary :all: \
      -d "$DIST" "${CAFFE_DIST}==${CAFFE_VERSION}" >>"$LOG" 2>&1 ||
      die "pip download ${CAFFE_DIST}==${CAFFE_VERSION} failed"
    [[ -f "$SDIST" ]] || die "pip download did not produce $SDIST"
  fi
  GOT_SHA="$(sha256sum "$SDIST" | cut -d' ' -f1)"
  [[ "$GOT_SHA" == "$CAFFE_SDIST_SHA256" ]] ||
    die "sha256 mismatch for $SDIST: got $GOT_SHA, expected $CAFFE_SDIST_SHA256"

  SRC_PARENT="$KEYDIR/src"
  SRC="$SRC_PARENT/${CAFFE_DIST}-${CAFFE_VERSION}"
  if [[ ! -f "$SRC_PARENT/.unpacked" ]]; then
    step "3/5 build caffe: unpack + patch source"
    rm -rf "$SRC_PARENT" "$KEYDIR/build"
    mkdir -p "$SRC_PARENT"
    tar -xzf "$SDIST" -C "$SRC_PARENT" >>"$LOG" 2>&1 || die "cannot unpack $SDIST"
    [[ -f "$SRC/CMakeLists.txt" ]] || die "unexpected sdist layout: $SRC/CMakeLists.txt missing"
    # The sdist ships protobuf sources generated by an old protoc (and .pyc
    # files for Python 3.8). Drop them so that everything is regenerated by
    # the system protoc into the build tree, matching the system libprotobuf.
    rm -f "$SRC/include/caffe/proto/caffe.pb.h" "$SRC/src/caffe/proto/caffe.pb.cc" \
          "$SRC/python/caffe/proto/caffe_pb2.py"
    find "$SRC" -name __pycache__ -type d -prune -exec rm -rf {} + 2>>"$LOG"
    # python/CMakeLists.txt links a hard-coded -lboost_python; Debian names
    # the library after the Python version (libboost_python311).
    PYCM="$SRC/python/CMakeLists.txt"
    grep -q -- '-lboost_python ' "$PYCM" || die "cannot find -lboost_python in $PYCM (sdist changed?)"
    sed -i "s/-lboost_python /-l${BOOST_PY_LIB} /" "$PYCM"
    grep -q -- "-l${BOOST_PY_LIB} " "$PYCM" || die "patching $PYCM for ${BOOST_PY_LIB} failed"
    # cmake/Misc.cmake sets the install RPATH to <prefix>/lib, a directory
    # that never exists here. _caffe.so is monolithic (all of libcaffe is
    # compiled into it; there is no separate libcaffe.so), so it needs no
    # private search path; use $ORIGIN so that anything placed next to it
    # would be found, and nothing outside the package is searched.
    MISC="$SRC/cmake/Misc.cmake"
    grep -q 'set(CMAKE_INSTALL_RPATH ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR})' "$MISC" ||
      die "cannot find the CMAKE_INSTALL_RPATH line in $MISC (sdist changed?)"
    sed -i 's|set(CMAKE_INSTALL_RPATH ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR})|set(CMAKE_INSTALL_RPATH "$ORIGIN")|' "$MISC"
    touch "$SRC_PARENT/.unpacked"
  fi

  step "3/5 build caffe: configure (cmake)"
  BUILD="$KEYDIR/build"
  STAGE="$KEYDIR/stage"
  mkdir -p "$BUILD"
  # The top-level CMakeLists adds ${ANACONDA_HOME}/include... to the include
  # path (default /root/miniconda3): point it at an empty directory so a
  # stray conda install can never leak headers into the build.
  EMPTY="$KEYDIR/empty"
  mkdir -p "$EMPTY"
  log "cmake"
  cmake -S "$SRC" -B "$BUILD" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$STAGE" \
    -DCMAKE_CXX_FLAGS="-I$HDF5_INC -DWITH_PYTHON_LAYER -Wno-deprecated-declarations" \
    -DCMAKE_SHARED_LINKER_FLAGS="-L$HDF5_LIBDIR" \
    -DCPU_ONLY=ON -DUSE_CUDNN=OFF -DUSE_NCCL=OFF \
    -DBUILD_python=ON -DBUILD_python_layer=ON \
    -DBUILD_matlab=OFF -DBUILD_docs=OFF \
    -DUSE_OPENCV=OFF -DUSE_LEVELDB=OFF -DUSE_LMDB=OFF \
    -Dpython_version=3 \
    -DPYTHON_EXECUTABLE="$PYTHON" \
    -DPYTHON_INCLUDE_DIR="$PY_INCLUDE" \
    -DPYTHON_INCLUDE_DIRS="$PY_INCLUDE" \
    -DNUMPY_INCLUDE_DIR="$NUMPY_INCLUDE" \
    -DANACONDA_HOME="$EMPTY" \
    >>"$LOG" 2>&1 || die "cmake configure failed"

  step "3/5 build caffe: compile (make -j$JOBS; 7-15 min on 2 cores)"
  log "make -j$JOBS"
  make -C "$BUILD" -j"$JOBS" >>"$LOG" 2>&1 || die "make failed"

  step "3/5 build caffe: install into $OUT_PY"
  log "make install"
  rm -rf "$STAGE"
  make -C "$BUILD" install >>"$LOG" 2>&1 || die "make install failed"
  [[ -f "$STAGE/python/caffe/_caffe.so" ]] || die "make install produced no $STAGE/python/caffe/_caffe.so"
  [[ -f "$STAGE/python/caffe/proto/caffe_pb2.py" ]] || die "make install produced no caffe_pb2.py"
  rm -rf "$OUT_PY"
  mv "$STAGE/python" "$OUT_PY"
  rm -rf "$STAGE"
  # Every shared library _caffe.so needs must resolve without LD_LIBRARY_PATH.
  log "ldd _caffe.so"
  LDD_OUT="$(env -u LD_LIBRARY_PATH ldd "$OUT_PY/caffe/_caffe.so" 2>&1)" || die "ldd $OUT_PY/caffe/_caffe.so failed: $LDD_OUT"
  printf '%s\n' "$LDD_OUT" >>"$LOG"
  RUNPATH="$(readelf -d "$OUT_PY/caffe/_caffe.so" 2>/dev/null | sed -n 's/.*(R[UN]*PATH).*\[\(.*\)\]/\1/p')"
  printf 'RUNPATH: %s\n' "$RUNPATH" >>"$LOG"
  [[ -z "$RUNPATH" || "$RUNPATH" == '$ORIGIN' ]] || die "unexpected RUNPATH '$RUNPATH' in _caffe.so"
  if grep -q 'not found' <<<"$LDD_OUT"; then
    die "unresolved libraries for _caffe.so: $(grep 'not found' <<<"$LDD_OUT" | tr -s ' \t' ' ' | paste -sd, -)"
  fi
fi

# --------------------------------------------------------------------------
# 4. .pth
# --------------------------------------------------------------------------
step "4/5 write pycaffe.pth"
mkdir -p "$PY_PURELIB"
PTH="$PY_PURELIB/pycaffe.pth"
printf '%s\n' "$OUT_PY" >"$PTH.tmp.$$" && mv -f "$PTH.tmp.$$" "$PTH" || die "cannot write $PTH"
note "$PTH -> $OUT_PY"

# --------------------------------------------------------------------------
# 5. Verify
# --------------------------------------------------------------------------
step "5/5 verify (import caffe, tiny net forward)"
VTMP="$(mktemp -d)"
cleanup() { rm -rf "$VTMP"; }
trap cleanup EXIT
cat >"$VTMP/tiny.prototxt" <<'EOF'
name: "tiny"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 2 kernel_size: 3
                            weight_filler { type: "constant" value: 1 }
                            bias_filler { type: "constant" value: 0.5 } } }
EOF
log "verify"
VERIFY_OUT="$(cd "$VTMP" && GLOG_minloglevel=2 env -u LD_LIBRARY_PATH "$PYTHON" - "$VTMP/tiny.prototxt" "$OUT_PY" <<'EOF' 2>&1
import os, sys
proto, want_dir = sys.argv[1], os.path.realpath(sys.argv[2])
import numpy as np
import caffe
got = os.path.realpath(os.path.dirname(os.path.dirname(caffe.__file__)))
assert got == want_dir, f"caffe imported from {caffe.__file__}, expected under {want_dir}"
caffe.set_mode_cpu()
net = caffe.Net(proto, caffe.TEST)
net.blobs["data"].data[...] = 1.0
out = net.forward()["conv1"]
assert out.shape == (1, 2, 6, 6), out.shape
# every output = 3*3*3 ones * weight 1 + bias 0.5
assert np.allclose(out, 27.5), out.ravel()[:4]
assert "Python" in caffe.layer_type_list(), "caffe was built without the Python layer"
print(caffe.__file__)
EOF
)" || { printf '%s\n' "$VERIFY_OUT" >>"$LOG"; 
  hint=""; [[ $CACHED == 1 ]] && hint=" (cached build; to force a rebuild: rm -rf '$KEYDIR')"
  die "verification failed: $(tail -n 1 <<<"$VERIFY_OUT")$hint"; }
printf '%s\n' "$VERIFY_OUT" >>"$LOG"
note "import caffe -> $(tail -n 1 <<<"$VERIFY_OUT")"

if [[ $CACHED == 0 ]]; then
  date -u +%Y-%m-%dT%H:%M:%SZ >"$COMPLETE"
fi
STEP="done"
printf '[%s +%s] done\n' "$PROG" "$(elapsed)"
echo "pycaffe ready: $OUT_PY"
