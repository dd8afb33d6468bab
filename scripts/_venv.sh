# Sourced by scripts/*: ensure_venv [extra ...] makes .venv and installs the project into it.
ensure_venv() {
  local python=${PYTHON:-python3}
  if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
  fi
  local extras=""
  if [ "$#" -gt 0 ]; then
    extras="[$(IFS=,; echo "$*")]"
  fi
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}" 2>&1 \
    | grep -v "^WARNING: Location" || true
}
