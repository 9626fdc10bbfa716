#!/usr/bin/env bash
# Static checks, as CI runs them (after scripts/bootstrap.sh): lint, format, types, and that
# annotate/ still runs on the oldest Python it claims (3.6). Exits non-zero on the first failure.
#   scripts/check.sh            all checks
# Tool versions are pinned in scripts/constraints.txt; settings live in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
step() { printf 'check: %s\n' "$*"; }

step "ruff check"
"$BIN/ruff" check .
step "ruff format --check"
"$BIN/ruff" format --check .
step "mypy (the package)"
"$BIN/mypy"

# annotate/ is imported by the profiled program, which may run an old Python. Two names it uses
# are newer than 3.6 and both are guarded (hasattr / except AttributeError, with a 3.6 fallback).
step "vermin: annotate/ needs no more than Python 3.6"
"$BIN/vermin" -t=3.6- --no-tips --violations --eval-annotations \
  --exclude os.register_at_fork --exclude time.clock_gettime_ns annotate/

# Where a real 3.6 interpreter is at hand (PYTHON36, python3.6 on PATH, or pyenv's), import every
# module of annotate/ with it too; vermin alone is the gate where none is.
py36=""
for cand in "${PYTHON36:-}" python3.6 "$HOME"/.pyenv/versions/3.6*/bin/python3.6; do
  if [ -n "$cand" ] && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 6))' 2>/dev/null; then
    py36=$cand
    break
  fi
done
if [ -n "$py36" ]; then
  step "importing every annotate/ module with $py36"
  "$py36" -c '
import importlib, pkgutil, annotate
names = [m.name for m in pkgutil.walk_packages(annotate.__path__, "annotate.")]
for name in names:
    importlib.import_module(name)
print("check: %d modules imported on Python %s" % (len(names), __import__("platform").python_version()))
'
else
  step "no Python 3.6 interpreter here: vermin's verdict stands alone"
fi
step "all passed"
