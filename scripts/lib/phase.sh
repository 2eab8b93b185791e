# shellcheck shell=bash
# Phase lines for the project's entry points (scripts/test, scripts/demo): `phase NAME` prints one
# line as each phase starts, with the seconds since the script began; any command that fails
# unhandled prints the phase and the command before set -e ends the script. Sourced, never run;
# callers set PHASE_WHO and `set -E` first.

PHASE="starting"

phase() {
  PHASE=$1
  echo "== $PHASE [${SECONDS} s]"
}

trap 'echo "$PHASE_WHO: failed while $PHASE: \`$BASH_COMMAND\` exited $?" >&2' ERR
