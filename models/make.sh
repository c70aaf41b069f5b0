#!/usr/bin/env bash
# Regenerates every file in models/ from the pinned requirements, in its own venv
# (models/.venv, ignored by git). The outputs are byte-for-byte reproducible: after running it,
# `git status models/` shows no change.
set -euo pipefail
cd "$(dirname "$0")"
NEED_PYTHON=1 source ../scripts/debian-deps.sh
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
.venv/bin/python scripts/make_models.py
