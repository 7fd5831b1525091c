# shellcheck shell=bash
# Shell helpers shared by scripts/demo.sh and scripts/bench.sh (sourced, not run).
# The sourcing script defines `say`.

# port_taken PORT: true when something listens on 127.0.0.1:PORT.
port_taken() {
  local port="$1"
  if command -v ss >/dev/null 2>&1 && [[ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]]; then
    return 0
  fi
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

# stop_pid PID [NAME]: SIGTERM, up to 5 s grace, then SIGKILL; reaps the child.
stop_pid() {
  local pid="$1" name="${2:-process}" i
  [[ -n "$pid" ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name (pid $pid) did not stop on SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

# wait_for SECONDS PID COMMAND...: polls COMMAND every 0.1 s; fails early when PID exits.
wait_for() {
  local seconds="$1" pid="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  while ((SECONDS < deadline)); do
    "$@" && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  "$@"
}
