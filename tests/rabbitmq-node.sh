#!/usr/bin/env bash
# shellcheck disable=SC1091 # each node's env file is written by this script
# Extra RabbitMQ nodes on this machine, for tests: the compose broker's settings checked on a
# node of its own, and a three-node cluster for failover tests. Each node has its own name,
# ports, configuration and directories; the machine's own broker (5672) is never touched.
# Needs root (the nodes run as the rabbitmq user, as Debian's rabbitmq-server does),
# rabbitmq-server, and python3 with pika and PyYAML (the Python half: rabbitmq_node.py).
#
#   tests/rabbitmq-node.sh compose-check [BASE_PORT]
#       Boots one node with the broker settings of deploy/compose.yaml (or $MIDNIT_COMPOSE_FILE):
#       the conf.d files and advanced.config it mounts, the definitions its entrypoint script
#       writes from its environment, its RABBITMQ_* variables, the image's defaults. Checks over
#       AMQP and HTTP that the workers' user (the worker's MIDNIT_AMQP_URL) can declare the
#       jobs queue as a worker of its MIDNIT_TOPOLOGY does, publish to it and get from it; that
#       guest and a wrong password are refused; that the management UI takes the admin user
#       and not guest or the workers' user; that the paging ratio is above 1. Required compose
#       variables (the passwords) are random unless set in the environment. The node is killed
#       and its directory removed whatever happens (MIDNIT_RABBIT_KEEP=1 keeps the directory).
#       Ports: AMQP BASE, distribution BASE+10, management BASE+20 (default BASE 36100).
#       Prints one line `compose-check ok: …`.
#
#   tests/rabbitmq-node.sh cluster-up BASE_PORT         3 nodes joined into one cluster
#   tests/rabbitmq-node.sh kill NODE                    kill -9 the node's VM
#   tests/rabbitmq-node.sh stop NODE                    rabbitmqctl stop (the VM exits)
#   tests/rabbitmq-node.sh start NODE                   start a stopped or killed node again
#                                                       (same directories: it rejoins)
#   tests/rabbitmq-node.sh leader QUEUE [VHOST]         the node leading a quorum queue (after
#                                                       a kill: once a running one leads), or a
#                                                       classic queue's node
#   tests/rabbitmq-node.sh status                       each node, running or down, its URL
#   tests/rabbitmq-node.sh urls                         the nodes' URLs, comma-separated
#   tests/rabbitmq-node.sh cluster-down                 kill every node, remove the state dir
#   tests/rabbitmq-node.sh cluster-check [BASE_PORT]    cluster-up, a quorum queue failover and
#                                                       a classic queue's loss, cluster-down
#                                                       (default BASE 36200)
#
# The cluster lives in the state directory $MIDNIT_RABBIT_STATE, which every cluster command
# needs (cluster-up makes it if missing; with the variable unset it makes one under /tmp and
# prints `state DIR` first). Nodes are midnit-c1-BASE@localhost, -c2-, -c3-, AMQP ports BASE,
# BASE+1, BASE+2, distribution ports BASE+10, +11, +12; they run detached (setsid) and
# outlive this script until cluster-down. NODE is c1, c2, c3, 1, 2, 3 or the node name.
# cluster-up prints `node c1 NAME URL` per node, then `urls URL,URL,URL`; URLs use guest,
# which a node lets in over the loopback only. MIDNIT_RABBIT_FORMATION=classic_config forms
# the cluster by peer discovery from deploy/rabbitmq/cluster/rabbitmq-cluster.conf instead
# of rabbitmqctl join_cluster.
#
# Output: results on stdout; progress on stderr. Exit 0 on success; otherwise non-zero and
# one line `rabbitmq-node: <reason>` on stderr. MIDNIT_RABBIT_TIMEOUT (seconds, default 90)
# bounds each wait.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
probe_py="$here/rabbitmq_node.py"
timeout_s="${MIDNIT_RABBIT_TIMEOUT:-90}"

die() {
  echo "rabbitmq-node: $*" >&2
  exit 1
}
say() { echo "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

command -v rabbitmq-server >/dev/null || die "rabbitmq-server is not installed"
command -v rabbitmqctl >/dev/null || die "rabbitmqctl is not installed"

# rabbitmqctl against one node, bounded in time.
ctl() {
  local node="$1"
  shift
  timeout "$timeout_s" rabbitmqctl -q -n "$node" "$@"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

check_base() {
  if ! [[ "$1" =~ ^[0-9]+$ ]] || (($1 < 1024 || $1 > 65500)); then
    die "BASE_PORT must be 1024–65500: $1"
  fi
}

# The directory a node lives in: rabbitmq.conf, enabled_plugins, env (its RABBITMQ_*
# variables), pid, mnesia/, log/.
write_node_env() {
  local dir="$1" name="$2" amqp="$3" dist="$4"
  : >"$dir/env"
  # compose-check: the service's own RABBITMQ_* variables first.
  if [ -f "$dir/service.env" ]; then
    cat "$dir/service.env" >>"$dir/env"
  fi
  cat >>"$dir/env" <<EOF
export RABBITMQ_NODENAME='$name'
export RABBITMQ_NODE_PORT='$amqp'
export RABBITMQ_DIST_PORT='$dist'
export RABBITMQ_CONFIG_FILE='$dir/rabbitmq.conf'
export RABBITMQ_MNESIA_BASE='$dir/mnesia'
export RABBITMQ_LOG_BASE='$dir/log'
export RABBITMQ_ENABLED_PLUGINS_FILE='$dir/enabled_plugins'
export RABBITMQ_PID_FILE='$dir/pid'
EOF
  if [ -f "$dir/advanced.config" ]; then
    echo "export RABBITMQ_ADVANCED_CONFIG_FILE='$dir/advanced.config'" >>"$dir/env"
  fi
}

# The broker runs as the rabbitmq user: its directory must be that user's, and the way to it
# open to it.
own_dir() {
  if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
    chown -R rabbitmq:rabbitmq "$1"
    runuser -u rabbitmq -- test -w "$1" ||
      die "the rabbitmq user cannot reach $1 (a parent directory is not searchable: chmod o+x it)"
  fi
}

pid_of() {
  local dir="$1"
  if [ -s "$dir/pid" ]; then tr -dc '0-9' <"$dir/pid"; fi
}

# Alive and not a zombie.
alive() {
  local pid="$1"
  [ -n "$pid" ] && [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null
}

# Why a node did not boot: the first error it printed (a configuration it refused is only
# printed, never logged) or logged.
first_error() {
  local log line
  for log in "$1/server.out" "$1"/log/*.log; do
    [ -f "$log" ] || continue
    [[ "$log" == *_upgrade.log ]] && continue
    line="$(grep -m1 -E '\[(error|critical)\]|BOOT FAILED|ERROR' "$log" || true)"
    if [ -n "$line" ]; then
      sed -E 's/^[0-9-]+ [0-9:.+]+ \[[a-z]+\] <[0-9.]+> //' <<<"$line" | cut -c1-300
      return 0
    fi
  done
  echo "no error printed (see $1)"
}

# Starts the node in `dir` detached with setsid (it outlives this script), its output in
# `dir`/server.out.
start_node() {
  local dir="$1"
  rm -f "$dir/pid"
  (. "$dir/env" && exec setsid rabbitmq-server >"$dir/server.out" 2>&1 </dev/null) &
  echo $! >"$dir/launcher.pid"
}

# Waits until the node in `dir` has booted; fails at once if its VM exits.
await_node() {
  local dir="$1" name deadline pid
  name="$(. "$dir/env" && echo "$RABBITMQ_NODENAME")"
  deadline=$(($(date +%s) + timeout_s))
  while :; do
    # await_startup fails at once until the node is registered, then waits for the boot.
    if ctl "$name" await_startup --timeout "$timeout_s" >/dev/null 2>&1; then
      return 0
    fi
    pid="$(pid_of "$dir")"
    if { [ -n "$pid" ] && ! alive "$pid"; } || ! alive "$(cat "$dir/launcher.pid")"; then
      die "$name exited while booting: $(first_error "$dir")"
    fi
    (($(date +%s) < deadline)) || die "$name did not boot in ${timeout_s}s: $(first_error "$dir")"
    sleep 0.5
  done
}

# The VM started for `dir`, found by its environment (before it has written its pid file).
vm_of() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = beam.smp ] || continue
    if tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qxF "RABBITMQ_PID_FILE=$1/pid"; then
      echo "${p#/proc/}"
      return 0
    fi
  done
}

# Ends the node in `dir` for good (its directory is removed next, so a graceful stop would
# only take longer): kill -9, then wait until the VM is gone. A node still booting has no pid
# file yet: then its VM is found by its RABBITMQ_PID_FILE in the process table.
discard_node() {
  local dir="$1" pid
  pid="$(pid_of "$dir")"
  if [ -z "$pid" ]; then
    pid="$(vm_of "$dir")"
  fi
  alive "$pid" || return 0
  kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    alive "$pid" || return 0
    sleep 0.05
  done
}

# ---------------------------------------------------------------------------------------
# compose-check

compose_check() {
  local base="${1:-36100}" state started rc
  check_base "$base"
  for p in "$base" $((base + 10)) $((base + 20)); do
    port_free "$p" || die "port $p is in use (choose another BASE_PORT)"
  done
  state="$(mktemp -d /tmp/midnit-rabbit-compose.XXXXXX)"
  # Cleanup whatever happens: stop the node, remove its directory.
  compose_state="$state"
  trap 'discard_node "$compose_state" 2>/dev/null || true; [ -n "${MIDNIT_RABBIT_KEEP:-}" ] || rm -rf "$compose_state"' EXIT
  trap 'exit 130' INT TERM

  started="$(now)"
  python3 "$probe_py" compose-prepare "$state" "$base" "${MIDNIT_COMPOSE_FILE:-$repo/deploy/compose.yaml}" ||
    exit 1
  write_node_env "$state" "midnit-compose-$base@localhost" "$base" $((base + 10))
  own_dir "$state"
  say "compose-check: booting midnit-compose-$base@localhost (AMQP $base, management $((base + 20)))"
  start_node "$state"
  await_node "$state"
  say "compose-check: node up after $(since "$started") s"
  rc=0
  python3 "$probe_py" compose-probe "$state" "midnit-compose-$base@localhost" || rc=$?
  [ "$rc" = 0 ] || exit "$rc"
  say "compose-check: done in $(since "$started") s"
}

# ---------------------------------------------------------------------------------------
# the cluster

state_dir() {
  [ -n "${MIDNIT_RABBIT_STATE:-}" ] || die "set MIDNIT_RABBIT_STATE to the cluster's state directory"
  [ -s "$MIDNIT_RABBIT_STATE/nodes" ] || die "no cluster in $MIDNIT_RABBIT_STATE (cluster-up first)"
  echo "$MIDNIT_RABBIT_STATE"
}

# `nodes` has one line per node: short name, node name, AMQP port, distribution port.
resolve() {
  local state="$1" want="$2" short name amqp dist
  [[ "$want" =~ ^[0-9]+$ ]] && want="c$want"
  while read -r short name amqp dist; do
    if [ "$want" = "$short" ] || [ "$want" = "$name" ]; then
      echo "$short"
      return 0
    fi
  done <"$state/nodes"
  die "no node $want in this cluster"
}

node_name() { awk -v s="$2" '$1 == s { print $2 }' "$1/nodes"; }

url_of() { echo "amqp://guest:guest@127.0.0.1:$1/%2f"; }

running_count() {
  python3 -c 'import json, sys; print(len(json.load(sys.stdin)["running_nodes"]))'
}

cluster_up() {
  local base="${1:-}" state made="" started i short name amqp dist first rc
  [ -n "$base" ] || die "usage: cluster-up BASE_PORT"
  check_base "$base"
  local formation="${MIDNIT_RABBIT_FORMATION:-join}"
  case "$formation" in
    join | classic_config) ;;
    *) die "MIDNIT_RABBIT_FORMATION must be join or classic_config: $formation" ;;
  esac
  for i in 1 2 3; do
    for p in $((base + i - 1)) $((base + 9 + i)); do
      port_free "$p" || die "port $p is in use (choose another BASE_PORT)"
    done
  done
  if [ -n "${MIDNIT_RABBIT_STATE:-}" ]; then
    state="$MIDNIT_RABBIT_STATE"
    [ ! -e "$state/nodes" ] || die "a cluster is already up in $state (cluster-down first)"
    mkdir -p "$state"
  else
    state="$(mktemp -d /tmp/midnit-rabbit-cluster.XXXXXX)"
    made=1
  fi
  started="$(now)"
  # On any failure from here: take down what was started.
  trap 'rc=$?; if [ "$rc" != 0 ]; then MIDNIT_RABBIT_STATE="'"$state"'" cluster_down >/dev/null 2>&1 || true; fi' EXIT

  : >"$state/nodes.tmp"
  for i in 1 2 3; do
    short="c$i"
    name="midnit-c$i-$base@localhost"
    amqp=$((base + i - 1))
    dist=$((base + 9 + i))
    mkdir -p "$state/$short"
    {
      echo "# deploy/rabbitmq/rabbitmq.conf"
      cat "$repo/deploy/rabbitmq/rabbitmq.conf"
      echo
      echo "# deploy/rabbitmq/cluster/rabbitmq-cluster.conf, without its node list"
      grep -v '^cluster_formation\.' "$repo/deploy/rabbitmq/cluster/rabbitmq-cluster.conf"
      if [ "$formation" = classic_config ]; then
        grep '^cluster_formation\.' "$repo/deploy/rabbitmq/cluster/rabbitmq-cluster.conf" |
          grep -v '^cluster_formation\.classic_config\.nodes\.'
        for j in 1 2 3; do
          echo "cluster_formation.classic_config.nodes.$j = midnit-c$j-$base@localhost"
        done
      fi
      echo
      echo "# this node"
      echo "listeners.tcp.default = 127.0.0.1:$amqp"
    } >"$state/$short/rabbitmq.conf"
    cp "$repo/deploy/rabbitmq/advanced.config" "$state/$short/advanced.config"
    echo "[]." >"$state/$short/enabled_plugins"
    write_node_env "$state/$short" "$name" "$amqp" "$dist"
    echo "$short $name $amqp $dist" >>"$state/nodes.tmp"
  done
  mv "$state/nodes.tmp" "$state/nodes"
  own_dir "$state"

  say "cluster-up: booting 3 nodes in $state"
  for i in 1 2 3; do start_node "$state/c$i"; done
  for i in 1 2 3; do await_node "$state/c$i"; done
  first="$(node_name "$state" c1)"
  if [ "$formation" = classic_config ]; then
    say "cluster-up: 3 nodes booted after $(since "$started") s (peer discovery: classic_config)"
  else
    say "cluster-up: 3 nodes booted after $(since "$started") s; joining c2 and c3 to c1"
  fi
  for i in 2 3; do
    [ "$formation" = join ] || break
    name="$(node_name "$state" "c$i")"
    # (join_cluster logs warnings of its own; kept in the node's directory.)
    for step in stop_app reset "join_cluster $first" start_app; do
      # shellcheck disable=SC2086
      ctl "$name" $step >>"$state/c$i/join.out" 2>&1 ||
        die "$step on $name failed: $(grep -v '^\s*$' "$state/c$i/join.out" | tail -1)"
    done
  done
  local deadline=$(($(date +%s) + timeout_s)) n=0
  while :; do
    n="$(ctl "$first" cluster_status --formatter json 2>/dev/null | running_count 2>/dev/null || echo 0)"
    [ "$n" = 3 ] && break
    (($(date +%s) < deadline)) || die "cluster_status shows $n running nodes, not 3"
    sleep 0.5
  done
  say "cluster-up: 3 nodes running in one cluster after $(since "$started") s"
  [ -z "$made" ] || echo "state $state"
  while read -r short name amqp dist; do
    echo "node $short $name $(url_of "$amqp")"
  done <"$state/nodes"
  echo "urls $(MIDNIT_RABBIT_STATE="$state" urls_of)"
  trap - EXIT
}

urls_of() {
  local state short name amqp dist out=""
  state="$(state_dir)"
  while read -r short name amqp dist; do
    out="${out:+$out,}$(url_of "$amqp")"
  done <"$state/nodes"
  echo "$out"
}

kill_cmd() {
  local state short name pid
  [ -n "${1:-}" ] || die "usage: kill NODE"
  state="$(state_dir)"
  short="$(resolve "$state" "$1")"
  name="$(node_name "$state" "$short")"
  pid="$(pid_of "$state/$short")"
  alive "$pid" || die "$name is not running"
  kill -9 "$pid"
  # A VM blocked in the kernel (a disk flush on a busy machine) dies when that returns: wait
  # for it as long as for anything else (MIDNIT_RABBIT_TIMEOUT).
  local deadline=$(($(date +%s) + timeout_s))
  while alive "$pid" && (($(date +%s) < deadline)); do
    sleep 0.05
  done
  if alive "$pid"; then
    die "$name (pid $pid) is still alive ${timeout_s} s after kill -9 ($(grep State "/proc/$pid/status" 2>/dev/null))"
  fi
  echo "killed $name pid $pid"
}

stop_cmd() {
  local state short name pid
  [ -n "${1:-}" ] || die "usage: stop NODE"
  state="$(state_dir)"
  short="$(resolve "$state" "$1")"
  name="$(node_name "$state" "$short")"
  pid="$(pid_of "$state/$short")"
  alive "$pid" || die "$name is not running"
  # Waits until the VM has exited (the pid file's process).
  ctl "$name" stop "$state/$short/pid" >/dev/null || die "rabbitmqctl stop failed on $name"
  echo "stopped $name"
}

start_cmd() {
  local state short name started
  [ -n "${1:-}" ] || die "usage: start NODE"
  state="$(state_dir)"
  short="$(resolve "$state" "$1")"
  name="$(node_name "$state" "$short")"
  alive "$(pid_of "$state/$short")" && die "$name is already running"
  started="$(now)"
  start_node "$state/$short"
  await_node "$state/$short"
  say "start: $name up after $(since "$started") s"
  echo "started $name"
}

status_cmd() {
  local state short name amqp dist
  state="$(state_dir)"
  while read -r short name amqp dist; do
    if alive "$(pid_of "$state/$short")"; then
      echo "$short $name running $(url_of "$amqp")"
    else
      echo "$short $name down $(url_of "$amqp")"
    fi
  done <"$state/nodes"
}

# The queue's leader (quorum, stream) or home node (classic), as a running node lists it.
# After a kill a quorum queue's listing names the dead leader for a few seconds: this waits
# until the leader is a node that runs. A classic queue whose node is down has none.
leader_cmd() {
  local queue="${1:-}" vhost="${2:-/}" state deadline short name amqp dist out row type lead
  [ -n "$queue" ] || die "usage: leader QUEUE [VHOST]"
  state="$(state_dir)"
  deadline=$(($(date +%s) + timeout_s))
  local missing_deadline=$(($(date +%s) + 10))
  while :; do
    out=""
    while read -r short name amqp dist; do
      alive "$(pid_of "$state/$short")" || continue
      out="$(ctl "$name" list_queues -p "$vhost" name type leader pid --no-table-headers 2>/dev/null)" && break
      out=""
    done <"$state/nodes"
    [ -n "$out" ] || die "no running node answers"
    row="$(awk -F'\t' -v q="$queue" '$1 == q { print; exit }' <<<"$out")"
    if [ -z "$row" ]; then
      # Right after its leader died a quorum queue can be missing from the listing.
      (($(date +%s) < missing_deadline)) || die "no queue $queue in vhost $vhost"
      sleep 0.3
      continue
    fi
    type="$(cut -f2 <<<"$row")"
    lead="$(cut -f3 <<<"$row")"
    if [ -z "$lead" ] || [ "$lead" = undefined ]; then
      # A classic queue: the node of its process, <node.N.N.N>.
      lead="$(cut -f4 <<<"$row" | sed -nE 's/^<([^.]+)\..*/\1/p')"
    fi
    [ -n "$lead" ] || die "cannot tell the node of $queue from: $row"
    short="$(awk -v n="$lead" '$2 == n { print $1 }' "$state/nodes")"
    if [ -z "$short" ] || alive "$(pid_of "$state/$short")"; then
      echo "$lead"
      return 0
    fi
    case "$type" in
      classic | rabbit_classic_queue) die "$queue is a classic queue on $lead, which is down" ;;
    esac
    (($(date +%s) < deadline)) || die "no running leader for $queue within ${timeout_s}s (last seen: $lead)"
    sleep 0.3
  done
}

cluster_down() {
  local state short name amqp dist
  [ -n "${MIDNIT_RABBIT_STATE:-}" ] || die "set MIDNIT_RABBIT_STATE to the cluster's state directory"
  state="$MIDNIT_RABBIT_STATE"
  if [ -s "$state/nodes" ]; then
    while read -r short name amqp dist; do
      discard_node "$state/$short"
    done <"$state/nodes"
  fi
  rm -rf "$state"
  echo "cluster down"
}

cluster_check() {
  local base="${1:-36200}" state started rc=0
  check_base "$base"
  state="$(mktemp -d /tmp/midnit-rabbit-cluster.XXXXXX)"
  export MIDNIT_RABBIT_STATE="$state"
  trap 'cluster_down >/dev/null 2>&1 || true' EXIT
  trap 'exit 130' INT TERM
  started="$(now)"
  cluster_up "$base" >"$state/up.out" || exit 1
  cat "$state/up.out" >&2
  # The cluster is up: from here the EXIT trap must take it down.
  trap 'cluster_down >/dev/null 2>&1 || true' EXIT
  python3 "$probe_py" cluster-probe "$state" "$0" || rc=$?
  [ "$rc" = 0 ] || exit "$rc"
  say "cluster-check: done in $(since "$started") s"
}

cmd="${1:-}"
[ "$#" -gt 0 ] && shift
case "$cmd" in
  compose-check) compose_check "$@" ;;
  cluster-up) cluster_up "$@" ;;
  kill) kill_cmd "$@" ;;
  stop) stop_cmd "$@" ;;
  start) start_cmd "$@" ;;
  leader) leader_cmd "$@" ;;
  status) status_cmd ;;
  urls) urls_of ;;
  cluster-down) cluster_down ;;
  cluster-check) cluster_check "$@" ;;
  *) die "usage: $0 compose-check [BASE_PORT] | cluster-up BASE_PORT | kill|stop|start NODE | leader QUEUE [VHOST] | status | urls | cluster-down | cluster-check [BASE_PORT]" ;;
esac
