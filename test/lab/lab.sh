#!/usr/bin/env bash
# Carrier-NAT lab: network namespaces standing in for "the internet" (coturn + edge), a rover B behind one
# symmetric NAT and a rover A with two uplinks (wifi preferred, cell backup), each behind its own symmetric NAT.
# Usage: test/lab/lab.sh <command> [args]   (needs root; see docs/lab.md for the picture and every command)
set -euo pipefail

# A lab is named (RL_LAB_NAME, default "rl"): its namespaces are <name>-a, <name>-b, ... and its state is
# in /tmp/<name>-lab, so labs with different names run side by side (the test runner gives each of its
# workers one). Cleanup touches this lab's six namespaces and nothing else.
L=${RL_LAB_NAME:-rl}
[[ $L =~ ^rl[a-z0-9]{0,6}$ ]] || {
  echo "lab: RL_LAB_NAME '$L' must be rl followed by up to 6 lowercase letters or digits" >&2
  exit 1
}
ALL_NS=("$L-a" "$L-b" "$L-natw" "$L-natc" "$L-natb" "$L-inet")
STATE=${RL_LAB_DIR:-/tmp/$L-lab}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

INET_GW=198.51.100.1
NATB_WAN=198.51.100.2
NATW_WAN=198.51.100.3
NATC_WAN=198.51.100.4
TURN_IP=203.0.113.10
EDGE_IP=203.0.113.20
TURN_PORT=3478
EDGE_PORT=8787
A_WIFI=192.168.10.2
WIFI_GW=192.168.10.1
A_CELL=100.64.20.2
CELL_GW=100.64.20.1
B_IP=192.168.30.2
B_GW=192.168.30.1
WIFI_TABLE=10
CELL_TABLE=20
TURN_SECRET_DEFAULT=rl-lab-turn-secret

die() {
  echo "lab: $*" >&2
  exit 1
}
# Lowest-metric default route wins; "prefer" swaps these.
METRIC_PREFERRED=100
METRIC_BACKUP=200

# Short names (a, b, inet, natb, natw, natc, and the uplink aliases wifi/cell) or full rl-* names.
ns_of() {
  case "$1" in
  a | b | inet | natb | natw | natc) echo "$L-$1" ;;
  wifi) echo "$L-natw" ;;
  cell) echo "$L-natc" ;;
  "$L-a" | "$L-b" | "$L-inet" | "$L-natb" | "$L-natw" | "$L-natc") echo "$1" ;;
  *) die "unknown namespace '$1' (a, b, inet, natb, natw, natc, wifi, cell)" ;;
  esac
}
nat_of() {
  case "$1" in
  natb | b | "$L-natb") echo "$L-natb" ;;
  natw | wifi | "$L-natw") echo "$L-natw" ;;
  natc | cell | "$L-natc") echo "$L-natc" ;;
  *) die "unknown NAT '$1' (natb|b, natw|wifi, natc|cell)" ;;
  esac
}
nsx() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}
lab_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep -xF "$(printf '%s\n' "${ALL_NS[@]}")" || true; }
is_up() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$L-inet"; }
need_up() { is_up || die "the lab is not up (run: test/lab/lab.sh up)"; }
alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

# --- prerequisites ---------------------------------------------------------------------------------------------

cmd_check() {
  [[ $(id -u) -eq 0 ]] || die "needs root (network namespaces and iptables); running as uid $(id -u)"
  local c
  for c in ip iptables turnserver sysctl; do
    command -v "$c" >/dev/null || die "'$c' not found on PATH (apt-get install -y iproute2 iptables coturn procps)"
  done
  local probe="rl-check-$$"
  ip netns add "$probe" 2>/dev/null || die "cannot create a network namespace (ip netns add failed)"
  local ok=1
  ip netns exec "$probe" iptables -t nat -L POSTROUTING -n >/dev/null 2>&1 || ok=0
  ip netns del "$probe"
  [[ $ok -eq 1 ]] || die "iptables (nat table) does not work inside a network namespace"
  echo "ok"
}

# --- owner: two runs must not build or tear down each other's lab ------------------------------------------------

owner() { cat "$STATE/owner" 2>/dev/null || true; }
my_owner() { echo "${RL_LAB_OWNER:-$PPID}"; }
check_owner() {
  local o
  o=$(owner)
  if [[ "${FORCE:-0}" != 1 ]] && alive "$o" && [[ "$o" != "$(my_owner)" ]]; then
    die "the lab belongs to live process $o ($(tr '\0' ' ' <"/proc/$o/cmdline" 2>/dev/null | cut -c1-80)); pass --force to override"
  fi
}

# --- up / down -------------------------------------------------------------------------------------------------

sysctl_ns() {
  local ns=$1
  shift
  nsx "$ns" sysctl -qw "$@" >/dev/null
}

# A symmetric NAT: random port per flow (--random-fully), inbound only for ESTABLISHED,RELATED, the rest dropped.
# Faults go in RL_FAULT (checked first); the two ACCEPT rules double as packet counters (rl-up, rl-down).
make_nat() {
  local ns=$1 lan_addr=$2 wan_addr=$3
  nsx "$ns" ip addr add "$lan_addr" dev lan
  nsx "$ns" ip addr add "$wan_addr/24" dev wan
  nsx "$ns" ip link set lan up
  nsx "$ns" ip link set wan up
  nsx "$ns" ip route add default via "$INET_GW" dev wan
  sysctl_ns "$ns" net.ipv4.ip_forward=1
  nsx "$ns" iptables -t nat -A POSTROUTING -o wan -j MASQUERADE --random-fully
  nsx "$ns" iptables -N RL_FAULT
  nsx "$ns" iptables -P FORWARD DROP
  nsx "$ns" iptables -A FORWARD -j RL_FAULT
  nsx "$ns" iptables -A FORWARD -i wan -o lan -m conntrack --ctstate ESTABLISHED,RELATED \
    -m comment --comment rl-down -j ACCEPT
  nsx "$ns" iptables -A FORWARD -i lan -o wan -m comment --comment rl-up -j ACCEPT
  nsx "$ns" iptables -A INPUT -j RL_FAULT
  nsx "$ns" iptables -A INPUT -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  nsx "$ns" iptables -A INPUT -i wan -j DROP
}

build() {
  local ns
  for ns in "${ALL_NS[@]}"; do
    ip netns add "$ns"
    nsx "$ns" ip link set lo up
    # IPv4 only (no link-local v6 candidates), no reverse-path filter (rl-a sends with either source on
    # either uplink after a fault, as a real multi-homed host does).
    sysctl_ns "$ns" net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
      net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  done

  # rl-inet: one bridge (a switch: no IP forwarding needed) carries the NATs' public side and the service
  # addresses. Its default route points at the bridge too, so unknown destinations die unanswered; coturn
  # refuses allocations on a host without a default route. (This kernel has no dummy interfaces.)
  nsx "$L-inet" ip link add br0 type bridge
  nsx "$L-inet" ip addr add "$INET_GW/24" dev br0
  nsx "$L-inet" ip addr add 203.0.113.1/24 dev br0
  nsx "$L-inet" ip addr add "$TURN_IP/24" dev br0
  nsx "$L-inet" ip addr add "$EDGE_IP/24" dev br0
  nsx "$L-inet" ip link set br0 up
  nsx "$L-inet" ip route add default dev br0
  # Edge outages: RL_EDGE holds DROP rules for the edge address while it is "unreachable".
  nsx "$L-inet" iptables -N RL_EDGE
  nsx "$L-inet" iptables -A INPUT -j RL_EDGE
  nsx "$L-inet" iptables -A OUTPUT -j RL_EDGE

  local nat
  for nat in natb natw natc; do
    ip link add "$nat" netns "$L-inet" type veth peer name wan netns "$L-$nat"
    nsx "$L-inet" ip link set "$nat" master br0
    nsx "$L-inet" ip link set "$nat" up
  done

  # Rover B behind rl-natb.
  ip link add eth0 netns "$L-b" type veth peer name lan netns "$L-natb"
  make_nat "$L-natb" "$B_GW/24" "$NATB_WAN"
  nsx "$L-b" ip addr add "$B_IP/24" dev eth0
  nsx "$L-b" ip link set eth0 up
  nsx "$L-b" ip route add default via "$B_GW" dev eth0

  # Rover A: wifi through rl-natw, cell through rl-natc.
  ip link add wifi netns "$L-a" type veth peer name lan netns "$L-natw"
  ip link add cell netns "$L-a" type veth peer name lan netns "$L-natc"
  make_nat "$L-natw" "$WIFI_GW/24" "$NATW_WAN"
  make_nat "$L-natc" "$CELL_GW/24" "$NATC_WAN"
  nsx "$L-a" ip addr add "$A_WIFI/24" dev wifi
  nsx "$L-a" ip addr add "$A_CELL/24" dev cell
  nsx "$L-a" ip link set wifi up
  nsx "$L-a" ip link set cell up
  # A link without carrier stops carrying routes (what a network manager does when wifi drops).
  sysctl_ns "$L-a" net.ipv4.conf.all.ignore_routes_with_linkdown=1
  # Source-address policy routing: a socket bound to one uplink's address leaves through that uplink;
  # unbound sockets follow the main table, where the lower metric (wifi) wins.
  nsx "$L-a" ip rule add from "$A_WIFI" lookup "$WIFI_TABLE" pref 100
  nsx "$L-a" ip rule add from "$A_CELL" lookup "$CELL_TABLE" pref 100
  echo wifi >"$STATE/prefer"
  routes_a
}

# (Re)install rover A's default routes for the links that are up, in place (new routes first, then stale ones
# removed, so a planned switch never leaves rl-a without a route). Idempotent; used after every fault.
routes_a() {
  local pref wm cm dev gw table m
  pref=$(cat "$STATE/prefer" 2>/dev/null || echo wifi)
  if [[ $pref == cell ]]; then wm=$METRIC_BACKUP cm=$METRIC_PREFERRED; else wm=$METRIC_PREFERRED cm=$METRIC_BACKUP; fi
  for dev in wifi cell; do
    if [[ $dev == wifi ]]; then gw=$WIFI_GW table=$WIFI_TABLE m=$wm; else gw=$CELL_GW table=$CELL_TABLE m=$cm; fi
    # Admin-down links lose their routes in the kernel; put them back only for links that are up.
    nsx "$L-a" ip link show "$dev" | grep -q '[<,]UP[,>]' || continue
    nsx "$L-a" ip route replace default via "$gw" dev "$dev" metric "$m"
    nsx "$L-a" ip route replace default via "$gw" dev "$dev" table "$table"
    local stale=$METRIC_BACKUP
    [[ $m == "$METRIC_BACKUP" ]] && stale=$METRIC_PREFERRED
    nsx "$L-a" ip route del default via "$gw" dev "$dev" metric "$stale" 2>/dev/null || true
  done
}

kill_pids() {
  local pids=("$@") p
  [[ ${#pids[@]} -gt 0 ]] || return 0
  kill "${pids[@]}" 2>/dev/null || true
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local left=0
    for p in "${pids[@]}"; do alive "$p" && left=1; done
    [[ $left -eq 0 ]] && return 0
    sleep 0.2
  done
  kill -9 "${pids[@]}" 2>/dev/null || true
}

teardown() {
  local f ns
  # Background jobs we started (flapper, coturn, edge, agents) by their recorded pids.
  for f in "$STATE"/*.pid; do
    [[ -e $f ]] || continue
    kill_pids "$(cat "$f")"
    rm -f "$f"
  done
  # Anything else still running inside our namespaces (e.g. peers from a crashed test).
  for ns in $(lab_namespaces); do
    mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null)
    kill_pids "${pids[@]}"
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -f "$STATE/owner" "$STATE/prefer"
}

cmd_up() {
  [[ ${1:-} == --force ]] && FORCE=1
  cmd_check >/dev/null
  mkdir -p "$STATE"
  check_owner
  teardown # leftovers from a crashed run
  rm -f "$STATE"/*.log "$STATE"/*.out
  my_owner >"$STATE/owner"
  trap 'if [[ $? -ne 0 ]]; then echo "lab: up failed; tearing down" >&2; teardown; fi' EXIT
  build
  trap - EXIT
  echo "lab up (state in $STATE)"
}

cmd_down() {
  [[ ${1:-} == --force ]] && FORCE=1
  mkdir -p "$STATE"
  check_owner
  teardown
  echo "lab down"
}

cmd_status() {
  local ns
  if ! is_up; then
    echo "lab is down"
    [[ -z $(lab_namespaces) ]] || echo "leftover namespaces: $(lab_namespaces | tr '\n' ' ')"
    return 0
  fi
  echo "lab is up (owner pid $(owner), state in $STATE)"
  for ns in "${ALL_NS[@]}"; do
    echo "== $ns: $(nsx "$ns" ip -br -4 addr | grep -v '^lo' |
      awk '{ printf "%s %s", $1, $2; for (i = 3; i <= NF; i++) printf " %s", $i; printf "; " }')"
  done
  echo "== $L-a routes:"
  nsx "$L-a" ip route show table main | sed 's/^/   /'
  for f in "$STATE"/*.pid; do
    [[ -e $f ]] || continue
    local name
    name=$(basename "$f" .pid)
    if alive "$(cat "$f")"; then echo "== job $name: pid $(cat "$f") running"; else echo "== job $name: exited"; fi
  done
  local nat
  for nat in natb natw natc; do echo "== $L-$nat counters: $(counters "$L-$nat")"; done
}

cmd_env() {
  cat <<EOF
NAME=$L
STATE=$STATE
INET_GW=$INET_GW
NATB_WAN=$NATB_WAN
NATW_WAN=$NATW_WAN
NATC_WAN=$NATC_WAN
TURN_IP=$TURN_IP
TURN_PORT=$TURN_PORT
EDGE_IP=$EDGE_IP
EDGE_PORT=$EDGE_PORT
A_WIFI=$A_WIFI
A_CELL=$A_CELL
B_IP=$B_IP
TURN_SECRET_DEFAULT=$TURN_SECRET_DEFAULT
EOF
}

# --- processes inside namespaces -------------------------------------------------------------------------------

cmd_exec() {
  [[ $# -ge 2 ]] || die "usage: exec <ns> <command...>"
  local ns
  ns=$(ns_of "$1")
  shift
  need_up
  exec ip netns exec "$ns" "$@"
}

# bg <name> <ns> <command...>: start in the background, output to $STATE/<name>.log, pid in $STATE/<name>.pid.
cmd_bg() {
  [[ $# -ge 3 ]] || die "usage: bg <name> <ns> <command...>"
  local name=$1 ns
  ns=$(ns_of "$2")
  shift 2
  need_up
  [[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || die "job name '$name' must be letters, digits, . _ -"
  alive "$(cat "$STATE/$name.pid" 2>/dev/null)" && die "job '$name' is already running"
  # ip netns exec execs the command, so $! is the command's own pid.
  ip netns exec "$ns" "$@" </dev/null >"$STATE/$name.log" 2>&1 &
  echo $! >"$STATE/$name.pid"
  echo $!
}

cmd_stop() {
  [[ $# -eq 1 ]] || die "usage: stop <name>"
  local f="$STATE/$1.pid"
  [[ -e $f ]] || return 0
  kill_pids "$(cat "$f")"
  rm -f "$f"
}

# wait_for_udp <ns> <ip> <port> <job name>: until something listens there (or the job died / 5 s passed).
wait_for_udp() {
  local ns=$1 ip=$2 port=$3 job=$4
  for _ in $(seq 1 50); do
    [[ -n $(nsx "$ns" ss -Hluna "src $ip:$port") ]] && return 0
    alive "$(cat "$STATE/$job.pid" 2>/dev/null)" || die "$job exited at start; see $STATE/$job.log"
    sleep 0.1
  done
  die "$job did not listen on $ip:$port within 5 s; see $STATE/$job.log"
}

# turn-start [--secret S] [--realm R] [--lifetime S] [-- extra turnserver args]
cmd_turn_start() {
  local secret=$TURN_SECRET_DEFAULT realm=roverlink.lab lifetime=3600 extra=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
    --secret) secret=${2:?} && shift 2 ;;
    --realm) realm=${2:?} && shift 2 ;;
    --lifetime) lifetime=${2:?} && shift 2 ;;
    --) shift && extra=("$@") && break ;;
    *) die "turn-start: unknown option '$1' (--secret, --realm, --lifetime, -- extra args)" ;;
    esac
  done
  need_up
  # coturn logs only to stdout (no files under /var/log), which the job captures in $STATE/turn.log.
  cmd_bg turn inet turnserver -n --no-cli --no-tls --no-dtls --fingerprint \
    --listening-ip "$TURN_IP" --relay-ip "$TURN_IP" --listening-port "$TURN_PORT" \
    --use-auth-secret --static-auth-secret "$secret" --realm "$realm" \
    --max-allocate-lifetime="$lifetime" --pidfile "$STATE/turnserver.pidfile" --userdb "$STATE/turndb" \
    --log-file stdout --new-log-timestamp "${extra[@]}" >/dev/null
  wait_for_udp "$L-inet" "$TURN_IP" "$TURN_PORT" turn
  echo "turn:$TURN_IP:$TURN_PORT?transport=udp (log $STATE/turn.log)"
}

# edge-start [--secret S] [-- command...]: the edge in rl-inet on EDGE_IP:EDGE_PORT, TURN wired to coturn.
cmd_edge_start() {
  local secret=$TURN_SECRET_DEFAULT
  if [[ ${1:-} == --secret ]]; then secret=${2:?} && shift 2; fi
  [[ ${1:-} == -- ]] && shift
  local node="$REPO/node_modules/.bin/node"
  [[ -x $node ]] || node=node
  if [[ $# -eq 0 ]]; then
    # State in this lab's directory: labs side by side never share a Durable Object store.
    set -- "$node" "$REPO/rover/cli.ts" edge --ip "$EDGE_IP" --port "$EDGE_PORT" \
      --persist-to "$STATE/edge-state" \
      --var "TURN_URLS:turn:$TURN_IP:$TURN_PORT?transport=udp"
  fi
  # The TURN secret from the environment, as docs/cli.md asks (a command line is visible to `ps`).
  (cd "$REPO" && TURN_SECRET=$secret cmd_bg edge inet "$@")
}

# --- faults ----------------------------------------------------------------------------------------------------

cmd_wifi_down() {
  need_up
  nsx "$L-a" ip link set wifi down
  routes_a
}
cmd_wifi_up() {
  need_up
  nsx "$L-a" ip link set wifi up
  routes_a
}
# Carrier: the far end of the veth goes down; `wifi` keeps its address but has no carrier.
cmd_wifi_carrier() {
  need_up
  case "${1:-}" in
  off) nsx "$L-natw" ip link set lan down ;;
  on) nsx "$L-natw" ip link set lan up ;;
  *) die "usage: wifi-carrier off|on" ;;
  esac
}
del_fault() { # del_fault <ns> <rule spec...>: delete every copy of a rule in RL_FAULT
  local ns=$1
  shift
  while nsx "$ns" iptables -D RL_FAULT "$@" 2>/dev/null; do :; done
}
# Blackhole: link and routes look fine, every packet through rl-natw is dropped.
cmd_wifi_blackhole() {
  need_up
  local spec=(-m comment --comment rl-blackhole -j DROP)
  case "${1:-}" in
  on) del_fault "$L-natw" "${spec[@]}" && nsx "$L-natw" iptables -I RL_FAULT "${spec[@]}" ;;
  off) del_fault "$L-natw" "${spec[@]}" ;;
  *) die "usage: wifi-blackhole on|off" ;;
  esac
}
# Planned switch: both links stay up, the route metrics make the other one preferred.
cmd_prefer() {
  need_up
  case "${1:-}" in
  wifi | cell) echo "$1" >"$STATE/prefer" ;;
  *) die "usage: prefer wifi|cell" ;;
  esac
  routes_a
}
# loss <nat> <p>: drop each forwarded packet (both directions) with probability p; p=0 clears.
cmd_loss() {
  [[ $# -eq 2 ]] || die "usage: loss <natb|natw|natc|b|wifi|cell> <probability 0..1>"
  local ns
  ns=$(nat_of "$1")
  [[ $2 =~ ^(0(\.[0-9]+)?|1(\.0+)?)$ ]] || die "loss probability must be a number in 0..1, got '$2'"
  need_up
  local old
  # Remove whatever loss rule is there (any probability), then add the new one.
  while old=$(nsx "$ns" iptables -S RL_FAULT | grep -- '--comment rl-loss' | head -1) && [[ -n $old ]]; do
    eval "nsx $ns iptables ${old/-A /-D }"
  done
  if [[ $2 != 0 && ! $2 =~ ^0\.0*$ ]]; then
    nsx "$ns" iptables -A RL_FAULT -m statistic --mode random --probability "$2" -m comment --comment rl-loss -j DROP
  fi
}
cmd_edge_block() {
  need_up
  cmd_edge_unblock
  nsx "$L-inet" iptables -A RL_EDGE -d "$EDGE_IP" -m comment --comment rl-edge -j DROP
  nsx "$L-inet" iptables -A RL_EDGE -s "$EDGE_IP" -m comment --comment rl-edge -j DROP
}
cmd_edge_unblock() {
  need_up
  nsx "$L-inet" iptables -F RL_EDGE
}
cmd_edge_outage() {
  [[ ${1:-} =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "usage: edge-outage <seconds>"
  cmd_edge_block
  trap 'cmd_edge_unblock' EXIT
  sleep "$1"
}

# flap [--period S] [--mode down|carrier|blackhole] [--repetitions N]: wifi fails for S seconds, recovers for
# S seconds, N times (default $RL_LAB_REPETITIONS, else forever); wifi is always healthy again on exit.
flap_fault() {
  case "$1" in
  down) if [[ $2 == on ]]; then cmd_wifi_down; else cmd_wifi_up; fi ;;
  carrier) if [[ $2 == on ]]; then cmd_wifi_carrier off; else cmd_wifi_carrier on; fi ;;
  blackhole) cmd_wifi_blackhole "$2" ;;
  esac
}
cmd_flap() {
  local period=2 mode=down reps=${RL_LAB_REPETITIONS:-0}
  while [[ $# -gt 0 ]]; do
    case "$1" in
    --period) period=${2:?} && shift 2 ;;
    --mode) mode=${2:?} && shift 2 ;;
    --repetitions) reps=${2:?} && shift 2 ;;
    *) die "flap: unknown option '$1' (--period S, --mode down|carrier|blackhole, --repetitions N)" ;;
    esac
  done
  [[ $mode =~ ^(down|carrier|blackhole)$ ]] || die "flap --mode must be down, carrier or blackhole"
  [[ $reps =~ ^[0-9]+$ ]] || die "flap --repetitions must be a whole number"
  [[ $period =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "flap --period must be a number of seconds"
  need_up
  local i=0
  FLAP_MODE=$mode FLAP_SLEEPER=
  # Globals: the traps run after this function has returned. Sleep in a child and wait, so a TERM is
  # handled at once (and the sleeper does not outlive us).
  trap 'flap_fault "$FLAP_MODE" off' EXIT
  trap '[[ -n $FLAP_SLEEPER ]] && kill "$FLAP_SLEEPER" 2>/dev/null; exit 0' TERM INT
  while [[ $reps -eq 0 || $i -lt $reps ]]; do
    flap_fault "$mode" on
    echo "flap $((i + 1)): wifi $mode"
    sleep "$period" &
    FLAP_SLEEPER=$!
    wait "$FLAP_SLEEPER"
    flap_fault "$mode" off
    echo "flap $((i + 1)): wifi back"
    sleep "$period" &
    FLAP_SLEEPER=$!
    wait "$FLAP_SLEEPER"
    i=$((i + 1))
  done
}
cmd_flap_start() {
  need_up
  alive "$(cat "$STATE/flap.pid" 2>/dev/null)" && die "a flapper is already running"
  "${BASH_SOURCE[0]}" flap "$@" </dev/null >"$STATE/flap.log" 2>&1 &
  echo $! >"$STATE/flap.pid"
  echo $!
}
cmd_flap_stop() {
  cmd_stop flap
  # Whatever the flapper was doing when it stopped, wifi is healthy afterwards.
  nsx "$L-a" ip link set wifi up
  nsx "$L-natw" ip link set lan up
  cmd_wifi_blackhole off
  routes_a
}

# heal: every fault off, wifi preferred again (between scenarios).
cmd_heal() {
  need_up
  cmd_flap_stop
  local nat
  for nat in natb natw natc; do cmd_loss "$nat" 0; done
  cmd_edge_unblock
  cmd_prefer wifi
}

# counters <nat>: packets forwarded out (inside -> internet) and in (replies) by that NAT.
counters() {
  nsx "$1" iptables -L FORWARD -v -x -n | awk '
    /rl-up/ { up = $1 } /rl-down/ { down = $1 }
    END { printf "up=%d down=%d\n", up, down }'
}
cmd_counters() {
  [[ $# -eq 1 ]] || die "usage: counters <natb|natw|natc|b|wifi|cell>"
  need_up
  counters "$(nat_of "$1")"
}

usage() {
  cat <<'EOF'
usage: test/lab/lab.sh <command> [args]     (root; RL_LAB_NAME names the lab, default rl: namespaces rl-a ...;
                                            state, logs and pids in $RL_LAB_DIR, default /tmp/<name>-lab)
  check                         are the prerequisites there (root, ip, iptables, turnserver, netns)?
  up [--force] | down [--force] build / tear down (idempotent; cleans leftovers of a crashed run)
  status | env                  what is running / the lab's addresses as KEY=VALUE
  exec <ns> <cmd...>            run a command in a namespace (a, b, inet, natb, natw, natc)
  bg <name> <ns> <cmd...>       start in the background (log $RL_LAB_DIR/<name>.log); stop <name>
  turn-start [--secret S] [--realm R] [--lifetime S] [-- args]   coturn in "$L-inet"; turn-stop
  edge-start [--secret S] [-- cmd...]                             the edge in "$L-inet"; edge-stop
  wifi-down | wifi-up           rover A's wifi interface administratively down / up
  wifi-carrier off|on           wifi loses / regains carrier (far end of the link down), stays configured
  wifi-blackhole on|off         wifi looks fine but "$L-natw" drops every packet
  prefer wifi|cell              planned switch: route metrics prefer that uplink, both stay up
  flap [--period S] [--mode down|carrier|blackhole] [--repetitions N]   toggle wifi (foreground)
  flap-start [same options] | flap-stop                                  the same in the background
  loss <natb|natw|natc> <p>     random loss with probability p in that NAT (both directions); 0 clears
  edge-block | edge-unblock | edge-outage <seconds>   drop everything to/from the edge address
  heal                          every fault off, wifi preferred
  counters <natb|natw|natc>     packets the NAT forwarded: up=<out> down=<in>
Environment: RL_LAB_DIR (state dir), RL_LAB_REPETITIONS (default flap count; 0 = forever), RL_LAB_OWNER.
EOF
}

main() {
  local cmd=${1:-help}
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
  check) cmd_check ;;
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  status) cmd_status ;;
  env) cmd_env ;;
  exec) cmd_exec "$@" ;;
  bg) cmd_bg "$@" ;;
  stop) cmd_stop "$@" ;;
  turn-start) cmd_turn_start "$@" ;;
  turn-stop) cmd_stop turn ;;
  edge-start) cmd_edge_start "$@" ;;
  edge-stop) cmd_stop edge ;;
  wifi-down) cmd_wifi_down ;;
  wifi-up) cmd_wifi_up ;;
  wifi-carrier) cmd_wifi_carrier "$@" ;;
  wifi-blackhole) cmd_wifi_blackhole "$@" ;;
  prefer) cmd_prefer "$@" ;;
  flap) cmd_flap "$@" ;;
  flap-start) cmd_flap_start "$@" ;;
  flap-stop) cmd_flap_stop ;;
  loss) cmd_loss "$@" ;;
  edge-block) cmd_edge_block ;;
  edge-unblock) cmd_edge_unblock ;;
  edge-outage) cmd_edge_outage "$@" ;;
  heal) cmd_heal ;;
  counters) cmd_counters "$@" ;;
  help | -h | --help) usage ;;
  *)
    usage >&2
    die "unknown command '$cmd'"
    ;;
  esac
}
main "$@"
