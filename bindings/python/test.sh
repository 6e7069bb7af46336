#!/usr/bin/env bash
# Installs the Python package from this repository (pip builds the wheel with
# maturin, in the dev profile so that it reuses what `cargo test` already
# compiled; users' `pip install` builds release) and runs its pytest suite
# against the real alcove-server binary. Needs python3 with pip; fetches maturin and pytest
# from PyPI.
set -euo pipefail
cd "$(dirname "$0")/../.."
pip_install=(python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore)
"${pip_install[@]}" "pytest>=8"
MATURIN_PEP517_ARGS="--profile dev" "${pip_install[@]}" --force-reinstall ./bindings/python
cargo build --quiet -p alcove-server -p alcove-bench --bin alcove-server --bin key_change_peer
ALCOVE_SERVER_BIN="$PWD/target/debug/alcove-server" \
  ALCOVE_KEY_CHANGE_PEER_BIN="$PWD/target/debug/key_change_peer" \
  python3 -m pytest -q -p no:cacheprovider bindings/python/tests
