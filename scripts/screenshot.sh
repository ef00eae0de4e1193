#!/usr/bin/env bash
# Takes a screenshot of the real console window under Xvfb.
#   scripts/screenshot.sh OUT.png [xdotool commands, run after the window is up] [-- drconsole args]
# Needs: apt-get install -y xvfb xauth mesa-vulkan-drivers libgl1-mesa-dri libxkbcommon-x11-0 imagemagick xdotool
# Example (select web-01, hover its third destination):
#   scripts/screenshot.sh assets/console.png 'xdotool mousemove 107 174 click 1; sleep 1; xdotool mousemove 350 424' -- --workspace /tmp/shot-ws
set -euo pipefail
out=$1
actions=${2:-}
shift $(( $# >= 2 ? 2 : 1 ))
[ "${1:-}" = "--" ] && shift
bin=${DRCONSOLE_BIN:-target/release/drconsole}
[ -x "$bin" ] || cargo build --release
export DRCONSOLE_SHOT_OUT=$out DRCONSOLE_SHOT_ACTIONS=$actions DRCONSOLE_SHOT_BIN=$bin
xvfb-run -a -s "-screen 0 1280x800x24" bash -c '
    "$DRCONSOLE_SHOT_BIN" "$@" >/dev/null 2>&1 &
    pid=$!
    sleep 6
    if [ -n "$DRCONSOLE_SHOT_ACTIONS" ]; then eval "$DRCONSOLE_SHOT_ACTIONS"; sleep 1.5; fi
    import -window root "$DRCONSOLE_SHOT_OUT"
    kill $pid
' _ "$@"
echo "wrote $out"
