# Shared by the service scripts (sourced, not run). The caller defines `log`, `is_running`,
# PID_FILE and LOG_FILE before using these.

# wait_ready NAME SECONDS READY_FN LOG_LINES: polls READY_FN every 0.5 s; fails early, with the
# end of the service's log, if the process exits meanwhile.
wait_ready() {
  local name="$1" seconds="$2" ready="$3" lines="$4"
  for _ in $(seq 1 $((seconds * 2))); do
    if "$ready"; then return 0; fi
    if ! is_running; then
      log "$name exited during start-up; last log lines:"
      tail -n "$lines" "$LOG_FILE" >&2 || true
      rm -f "$PID_FILE"
      return 1
    fi
    sleep 0.5
  done
  log "$name did not become ready within ${seconds}s; see $LOG_FILE"
  return 1
}

# stop_service NAME GRACE_SECONDS: TERM, up to GRACE_SECONDS for a clean shutdown, then KILL.
stop_service() {
  local name="$1" grace="$2"
  if is_running; then
    local pid
    pid="$(cat "$PID_FILE")"
    kill "$pid"
    for _ in $(seq 1 $((grace * 5))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) ignored TERM for ${grace}s; killing it"
      kill -9 "$pid"
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$PID_FILE"
}
