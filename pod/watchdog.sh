#!/bin/sh
# Pod-side dead-man's switch of gpu-study-orchestrator (POSIX sh; needs date, stat, kill, sleep, curl).
#
#   sh watchdog.sh <dir>            watch (run detached, with a pid file)
#   sh watchdog.sh <dir> --probe    print whether a pod id and a stop credential are available, then exit
#
# <dir> (the orchestrator uses <ws>/watchdog) holds `config`, a sh file setting WS, STALE_AFTER_S, CHECK_EVERY_S,
# SELF_STOP (pod-key | account-key | none), POD_ID and API_BASE_URL, and, only when the study opted in, `api-key`.
# The orchestrator touches <ws>/heartbeat on every poll. When the file is older than STALE_AFTER_S, the watchdog ends
# the pod's work (harness, vLLM, downloads, through their pid files), then asks RunPod to stop this pod, and exits.
# Stop, not terminate: the volume with any results not yet brought home survives, and compute billing ends.
# It writes <dir>/log and <dir>/state (watching, stopping, stopped, fired-no-stop, stop-refused, stop-failed).
#
# UNCONFIRMED about real RunPod: that RUNPOD_API_KEY on a pod is a key scoped to that pod which REST v2 accepts for
# POST /v2/pods/{id}/action {"action":"stop"}; that /etc/rp_environment holds the pod's variables as
# `export NAME="value"` lines for sessions that did not inherit them. Without a usable key the watchdog still ends
# the work and says so in its log; the reaper (or a person) then has to terminate the pod.
set -u
DIR=$1
CONFIG="$DIR/config"

log() { printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >> "$DIR/log"; }
set_state() { printf '%s\n' "$1" > "$DIR/state.tmp" && mv -f "$DIR/state.tmp" "$DIR/state"; }

# A pod-level variable: this process's environment, else RunPod's /etc/rp_environment, else the container's PID 1.
pod_env() {
  eval "v=\${$1:-}"
  if [ -z "$v" ] && [ -r /etc/rp_environment ]; then
    v=$(sed -n "s/^\(export \)\{0,1\}$1=\"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\2/p" /etc/rp_environment | tail -n 1)
  fi
  if [ -z "$v" ] && [ -r /proc/1/environ ]; then
    v=$(tr '\0' '\n' < /proc/1/environ 2>/dev/null | sed -n "s/^$1=//p" | tail -n 1)
  fi
  printf '%s' "$v"
}

# Ends the process group a pid file names (started with setsid, so the group id is the pid), TERM then KILL.
end_pidfile() {
  f=$1
  [ -f "$f" ] || return 0
  p=$(cat "$f" 2>/dev/null)
  case $p in '' | *[!0-9]*) return 0 ;; esac
  kill -0 "$p" 2>/dev/null || return 0
  kill -TERM -"$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null
  i=0
  while [ $i -lt 20 ] && kill -0 "$p" 2>/dev/null; do
    sleep 0.5
    i=$((i + 1))
  done
  kill -KILL -"$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null
  log "ended $f (pid $p)"
}

. "$CONFIG"
if [ "${2:-}" = --probe ]; then
  # What the watchdog would stop the pod with, without a value: `pod-id=yes|no key=yes|no`.
  pod=${POD_ID:-}
  [ -n "$pod" ] || pod=$(pod_env RUNPOD_POD_ID)
  case $SELF_STOP in
    pod-key) key=$(pod_env RUNPOD_API_KEY) ;;
    account-key) key=$(cat "$DIR/api-key" 2>/dev/null || true) ;;
    *) key= ;;
  esac
  printf 'pod-id=%s key=%s\n' "$([ -n "$pod" ] && echo yes || echo no)" "$([ -n "$key" ] && echo yes || echo no)"
  exit 0
fi
STARTED=$(date +%s)
log "watching $WS/heartbeat: stale after ${STALE_AFTER_S}s, checked every ${CHECK_EVERY_S}s; self-stop: $SELF_STOP"
set_state watching
while :; do
  # A prepare that runs again may change the settings; pick them up without a restart.
  [ -r "$CONFIG" ] && . "$CONFIG"
  now=$(date +%s)
  touched=$(stat -c %Y "$WS/heartbeat" 2>/dev/null || echo "$STARTED")
  age=$((now - touched))
  [ "$age" -ge "$STALE_AFTER_S" ] && break
  sleep "$CHECK_EVERY_S"
done

log "no heartbeat from the orchestrator for ${age}s (limit ${STALE_AFTER_S}s): ending the pod's work"
# The harness first (it closes its energy window on TERM), then the server it talks to, then downloads.
for f in "$WS"/runs/*/harness.pid "$WS"/vllm/pid "$WS"/models/*.download.pid; do end_pidfile "$f"; done

pod=${POD_ID:-}
[ -n "$pod" ] || pod=$(pod_env RUNPOD_POD_ID)
case $SELF_STOP in
  pod-key) key=$(pod_env RUNPOD_API_KEY) ;;
  account-key) key=$(cat "$DIR/api-key" 2>/dev/null || true) ;;
  *) key= ;;
esac
if [ "$SELF_STOP" = none ]; then
  log "self-stop is off: the work is ended; the pod is NOT stopped and bills until the reaper or a person ends it"
  set_state fired-no-stop
  exit 0
fi
if [ -z "$key" ] || [ -z "$pod" ]; then
  what="no pod id"
  [ -n "$pod" ] && what="no $SELF_STOP credential on this pod"
  log "cannot stop the pod ($what): the work is ended; the pod bills until the reaper or a person ends it"
  set_state fired-no-stop
  exit 0
fi

# The key goes to curl in a header file, never on a command line that `ps` shows.
umask 077
printf 'Authorization: Bearer %s\n' "$key" > "$DIR/.auth"
set_state stopping
n=0
while [ $n -lt 10 ]; do
  n=$((n + 1))
  log "stopping pod $pod: POST $API_BASE_URL/pods/$pod/action {\"action\":\"stop\"} (try $n)"
  code=$(curl -sS -m 30 -o "$DIR/stop-response" -w '%{http_code}' -X POST -H @"$DIR/.auth" \
    -H 'Content-Type: application/json' -d '{"action":"stop"}' "$API_BASE_URL/pods/$pod/action" 2>> "$DIR/log")
  case $code in
    200 | 204)
      log "pod stop accepted (HTTP $code)"
      set_state stopped
      rm -f "$DIR/.auth"
      exit 0
      ;;
    409)
      log "pod stop answered 409 (already stopping or stopped): $(head -c 300 "$DIR/stop-response" 2>/dev/null)"
      set_state stopped
      rm -f "$DIR/.auth"
      exit 0
      ;;
    401 | 403 | 404)
      log "pod stop refused (HTTP $code): $(head -c 300 "$DIR/stop-response" 2>/dev/null); the pod bills until the reaper or a person ends it"
      set_state stop-refused
      rm -f "$DIR/.auth"
      exit 1
      ;;
  esac
  sleep 30
done
log "pod stop kept failing (last HTTP ${code:-none}); the pod bills until the reaper or a person ends it"
set_state stop-failed
rm -f "$DIR/.auth"
exit 1
