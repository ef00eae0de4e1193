#!/usr/bin/env bash
# Makes the README's screenshots from the real console window under Xvfb: each view is a
# fresh run of the release binary (its own home, so no saved settings leak in), driven
# with xdotool — mouse clicks on the default layout, and the demo player's presenter keys
# (Page Down runs the next step, F5 plays or pauses).
#   scripts/screenshots.sh [OUT_DIR [VIEW...]]   (default: assets, every view)
# Needs: apt-get install -y xvfb xauth mesa-vulkan-drivers libgl1-mesa-dri libxkbcommon-x11-0 imagemagick xdotool
# Look at every image it writes: a changed layout moves what the clicks hit.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-assets}
shift $(($# > 0 ? 1 : 0))
views=" ${*:-console migration replication demo failover resilience} "
mkdir -p "$out"
bin=${DRCONSOLE_BIN:-target/release/drconsole}
[ -x "$bin" ] || cargo build --release
bin=$(realpath "$bin")
out=$(realpath "$out")
rm -rf /tmp/drconsole-shot-console /tmp/drconsole-shot-replication

# shot NAME 'ACTIONS' [drconsole args...]: starts the console, focuses it, runs ACTIONS
# (shell commands; `snap FILE` takes a picture) and closes it.
shot() {
    local name=$1 actions=$2
    shift 2
    [[ $views == *" $name "* ]] || return 0
    local home
    home=$(mktemp -d)
    HOME=$home XDG_DATA_HOME=$home/data XDG_CONFIG_HOME=$home/config \
        SHOT_BIN=$bin SHOT_OUT=$out SHOT_ACTIONS=$actions SHOT_HOME=$home \
        xvfb-run -a -s "-screen 0 1280x800x24" bash -c '
            snap() { import -window root "$SHOT_OUT/$1"; echo "wrote $SHOT_OUT/$1"; }
            # Page Down and F5 go to the focused window; a bare X server focuses nothing.
            key() { xdotool key "$@"; }
            "$SHOT_BIN" "$@" >"$SHOT_HOME/console.log" 2>&1 &
            pid=$!
            sleep 6
            xdotool windowfocus --sync "$(xdotool search --name drconsole | head -1)"
            eval "$SHOT_ACTIONS"
            kill $pid
        ' _ "$@"
    rm -rf "$home"
    echo "$name done"
}

# The console on the built-in demo: web-01 selected, a rated destination hovered.
shot console 'xdotool mousemove 110 174 click 1; sleep 1; xdotool mousemove 350 452; sleep 1.5; snap console.png' \
    --workspace /tmp/drconsole-shot-console

# The demo drives the migration wizard: vm1 to another consistency group, rated
# heightened-mild, overridden ("Are you sure?" ticked) a moment before Start.
shot migration 'key Next; sleep 3; key Next; sleep 1; snap migration.png' \
    --demo sample_scenarios/disaster_mid_copy.ron

# Replication: groups, lag against RPO, the lag plot, after a few minutes of writes.
shot replication 'xdotool mousemove 70 39 click 1; sleep 0.5; xdotool mousemove 330 39 click 1
    sleep 0.5; xdotool mousemove 975 69 click 1; sleep 12; snap replication.png' \
    --workspace /tmp/drconsole-shot-replication

# The demo player: a caption over the console, mid-copy.
shot demo 'key Next; sleep 3; key Next; sleep 3; snap demo.png' \
    --demo sample_scenarios/disaster_mid_copy.ron

# The patent timelines after a disaster in mid-copy: the failover's verified results.
# (the finished demo's caption has gone: the Failover tab sits just below the player bar).
shot failover 'key F5; sleep 30; xdotool mousemove 435 107 click 1; sleep 1; snap failover.png' \
    --demo sample_scenarios/disaster_mid_copy.ron


# The Resilience tab in the partition demo: ds-stretch created while New York is cut off,
# its Palo Alto leg only, out of compliance.
shot resilience 'for k in 1 2 3 4; do key Next; sleep 2.5; done; snap resilience.png' \
    --demo sample_scenarios/partition_create_and_heal.ron

rm -rf /tmp/drconsole-shot-console /tmp/drconsole-shot-replication
