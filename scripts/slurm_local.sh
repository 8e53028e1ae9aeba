#!/usr/bin/env bash
# A single-node Slurm on this machine, for trying the grid driver's Slurm runner on a laptop and for
# its tests (tests/test_slurm.py). Needs root (Debian/Ubuntu: installs the packages with apt-get
# when missing; no systemd needed).
#
#   sudo bash scripts/slurm_local.sh start     # install if needed, start munged, slurmctld, slurmd
#   export SLURM_CONF=/tmp/clml-slurm/slurm.conf   # printed by start; sinfo, sbatch... read it
#   sudo bash scripts/slurm_local.sh status
#   sudo bash scripts/slurm_local.sh stop      # cancel its jobs, stop the daemons it started (pid)
#
# Settings (environment): CLML_SLURM_DIR (state, logs, conf; default /tmp/clml-slurm),
# CLML_SLURM_CPUS (CPUs of the node, default: all of this machine's), CLML_SLURM_PORT (slurmctld
# port; slurmd takes the next one; default 16817, away from a system Slurm's 6817).
# Everything it writes is under CLML_SLURM_DIR: its own munge key and socket (a system munged is
# left alone), slurm.conf, the daemons' state, logs and pid files. The cluster has one partition
# `local` holding the node; jobs run as the submitting user; no accounting (sacct is unavailable).
set -euo pipefail
DIR="${CLML_SLURM_DIR:-/tmp/clml-slurm}"
PORT="${CLML_SLURM_PORT:-16817}"
CPUS="${CLML_SLURM_CPUS:-$(nproc)}"
HOST="$(hostname -s)"
CONF="$DIR/slurm.conf"
PACKAGES=(slurmctld slurmd slurm-client munge)
DAEMONS=(slurmd slurmctld munged)  # stop order

say() { echo "[slurm_local] $*"; }
die() { echo "[slurm_local] error: $*" >&2; exit 1; }
pid_of() { [ -s "$DIR/$1.pid" ] && cat "$DIR/$1.pid" || true; }
alive() { local pid; pid="$(pid_of "$1")"; [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

need_root() {
    [ "$(id -u)" = 0 ] || die "needs root (it installs packages and starts daemons): sudo bash $0 $1"
}

install_packages() {
    local missing=()
    for cmd in slurmctld slurmd sbatch munged; do command -v "$cmd" >/dev/null || missing+=("$cmd"); done
    [ ${#missing[@]} = 0 ] && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install ${PACKAGES[*]}"
    say "installing ${PACKAGES[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null
}

write_conf() {
    local mem
    mem="$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)"
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    cat > "$CONF" <<EOF
# written by scripts/slurm_local.sh: a single-node cluster on $HOST
ClusterName=clml-local
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge-run/munge.socket,cred_expire=10
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=2
ReturnToService=2
# a requeued job may start again cred_expire seconds after its requeue (default 120)
KillWait=2
MinJobAge=600
SlurmdTimeout=60
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    id munge >/dev/null 2>&1 || die "no 'munge' user: is the munge package installed?"
    mkdir -p "$DIR/munge" "$DIR/munge-run"  # key (private) and socket (reachable by all)
    if [ ! -s "$DIR/munge/munge.key" ]; then
        dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    fi
    chown -R munge: "$DIR/munge" "$DIR/munge-run"
    chmod 700 "$DIR/munge"
    chmod 755 "$DIR/munge-run"
    chmod 400 "$DIR/munge/munge.key"
    touch "$DIR/munged.pid" && chown munge: "$DIR/munged.pid"
    runuser -u munge -- munged --key-file="$DIR/munge/munge.key" \
        --socket="$DIR/munge-run/munge.socket" --pid-file="$DIR/munged.pid" \
        --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed" \
        || die "munged did not start; see $DIR/munge/munged.log"
}

wait_idle() {
    local i
    for i in $(seq 1 60); do
        if SLURM_CONF="$CONF" sinfo -h -N -o '%T' 2>/dev/null | grep -qx idle; then return 0; fi
        sleep 0.5
    done
    SLURM_CONF="$CONF" sinfo -N 2>&1 || true
    die "the node did not become idle in 30 s; logs: $DIR/log/slurmctld.log $DIR/log/slurmd.log"
}

start() {
    need_root start
    if alive slurmctld || alive slurmd || alive munged; then
        say "already running (pids $(pid_of munged) $(pid_of slurmctld) $(pid_of slurmd)); " \
            "stop it first: bash $0 stop"
        exit 1
    fi
    install_packages
    for port in "$PORT" "$((PORT + 1))"; do
        if (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            die "port $port is in use (another Slurm?); set CLML_SLURM_PORT"
        fi
    done
    rm -rf "$DIR/state" "$DIR/spool"  # a fresh cluster: no jobs left from an earlier start
    write_conf
    start_munge
    slurmctld -f "$CONF" -i || die "slurmctld did not start; see $DIR/log/slurmctld.log"
    slurmd -f "$CONF" -N "$HOST" || die "slurmd did not start; see $DIR/log/slurmd.log"
    wait_idle
    say "node $HOST idle ($CPUS CPUs, partition local); daemons munged $(pid_of munged)," \
        "slurmctld $(pid_of slurmctld), slurmd $(pid_of slurmd)"
    say "use it with: export SLURM_CONF=$CONF"
}

stop() {
    need_root stop
    if alive slurmctld; then  # its jobs first, so that no job step outlives the daemons
        local jobs
        jobs="$(SLURM_CONF="$CONF" squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')"
        if [ -n "${jobs// /}" ]; then
            say "cancelling jobs $jobs"
            # shellcheck disable=SC2086
            SLURM_CONF="$CONF" scancel $jobs || true
            for _ in $(seq 1 40); do
                [ -z "$(SLURM_CONF="$CONF" squeue -h -t R,CG -o '%A' 2>/dev/null)" ] && break
                sleep 0.5
            done
        fi
    fi
    local name pid
    for name in "${DAEMONS[@]}"; do
        pid="$(pid_of "$name")"
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
            if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
            say "stopped $name (pid $pid)"
        fi
        rm -f "$DIR/$name.pid"
    done
}

status() {
    local name
    for name in munged slurmctld slurmd; do
        if alive "$name"; then say "$name running (pid $(pid_of "$name"))"; else say "$name not running"; fi
    done
    if alive slurmctld; then SLURM_CONF="$CONF" sinfo; echo "export SLURM_CONF=$CONF"; fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: bash $0 start|stop|status   (see the header of $0)" >&2; exit 2 ;;
esac
