# shellcheck shell=bash
# wait_for_poold WHO PID SOCKET SECONDS: waits until the cxlkv-poold started as PID listens on
# SOCKET; says on stderr and returns 1 if it exits first or is not listening after SECONDS. Used
# by the scripts that start a daemon of their own (demo, bench-cold-start, bench-ttft). Sourced.

wait_for_poold() {
  local who=$1 pid=$2 sock=$3 seconds=$4 _
  for _ in $(seq $((seconds * 20))); do
    [ -S "$sock" ] && return 0
    kill -0 "$pid" 2>/dev/null || { echo "$who: cxlkv-poold exited during start-up" >&2; return 1; }
    sleep 0.05
  done
  [ -S "$sock" ] && return 0
  echo "$who: cxlkv-poold did not open $sock within $seconds s" >&2
  return 1
}
