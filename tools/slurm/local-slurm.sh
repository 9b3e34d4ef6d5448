#!/usr/bin/env bash
# A real single-node Slurm on this machine, for testing the job scripts in jobs/.
#
#   tools/slurm/local-slurm.sh start    # install when missing, write the config, start the daemons
#   tools/slurm/local-slurm.sh status   # which daemons run, and sinfo
#   tools/slurm/local-slurm.sh stop     # cancel its jobs, stop the daemons by their pid files
#   eval "$(tools/slurm/local-slurm.sh start)"   # start, then point this shell's clients at it
#
# Runs as root on Debian/Ubuntu (no systemd needed). `start` installs
#   slurmctld slurmd slurm-client munge libpmix-dev
# with apt-get when one is missing, writes slurm.conf and mpi.conf under the base folder,
# creates the munge key when there is none, starts munged, slurmctld and `slurmd -N localhost`,
# waits until sinfo shows the node idle, and prints `export SLURM_CONF=...` on stdout (all
# other messages go to stderr). `start` while it runs is a no-op (it prints the line again).
# `stop` signals only the pids in the pid files this script's daemons wrote, never by name.
#
# The cluster (see /work/shared/reference/slurm-local.md for why each setting):
#   one node `localhost` with CPUs=4 (SlurmdParameters=config_overrides: 4 tasks fit on 2 cores),
#   one partition `debug` (Default=YES), SlurmUser=root, no cgroup plugins, MpiDefault=pmi2,
#   AuthInfo=cred_expire=10 (a requeued job restarts 11 s later instead of 121 s), JobRequeue=1,
#   KillWait=2, sched_interval=1, MinJobAge=5 (finished jobs leave `scontrol show job` after ~5 s).
#
# Environment:
#   HPCDIST_SLURM_DIR   base folder for config, state, spool, logs, pids (default /tmp/hpcdist-slurm)
#   HPCDIST_SLURM_CPUS  CPUs the node announces (default 4)
#
# Exit codes: 0 ok; 1 a daemon did not start (see the logs it names); 3 not root;
# 4 the packages are missing and cannot be installed (no apt-get, or apt-get failed).
set -euo pipefail

BASE="${HPCDIST_SLURM_DIR:-/tmp/hpcdist-slurm}"
CPUS="${HPCDIST_SLURM_CPUS:-4}"
CONF="$BASE/etc/slurm.conf"
PIDS="$BASE/run"
LOGS="$BASE/log"
PACKAGES=(slurmctld slurmd slurm-client munge libpmix-dev)
MUNGE_KEY=/etc/munge/munge.key
MUNGE_SOCKET=/run/munge/munge.socket.2

say() { echo "local-slurm: $*" >&2; }
die() { local code="$1"; shift; say "ERROR: $*"; exit "$code"; }

export SLURM_CONF="$CONF"

alive() {  # alive NAME: the daemon whose pid file is $PIDS/NAME.pid runs
    local f="$PIDS/$1.pid" pid
    [ -s "$f" ] || return 1
    pid="$(cat "$f" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

node_state() { sinfo -h -N -n localhost -o %t 2>/dev/null | head -n1 | tr -d ' *~#!%$@^-' || true; }

munge_works() { command -v munge >/dev/null && munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die 3 "must run as root (it installs packages and starts slurmctld/slurmd with SlurmUser=root); try: sudo $0 ${1:-start}"
}

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

install_packages() {
    local missing
    if command -v dpkg-query >/dev/null; then
        missing="$(missing_packages | tr '\n' ' ')"
    elif command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sinfo >/dev/null && command -v munged >/dev/null; then
        missing=""
    else
        die 4 "Slurm is not installed and this is not a dpkg/apt system: install ${PACKAGES[*]} by hand"
    fi
    [ -n "${missing// /}" ] || return 0
    command -v apt-get >/dev/null || die 4 "apt-get is not available: cannot install the missing packages: $missing"
    mkdir -p "$LOGS"
    local log="$LOGS/apt.log" t0=$SECONDS
    say "installing $missing(apt-get; log in $log)"
    export DEBIAN_FRONTEND=noninteractive
    # "policy-rc.d denied execution of start" in the log is expected: this script starts the daemons.
    if ! { apt-get -qq update && apt-get -y -qq -o DPkg::Lock::Timeout=120 --no-install-recommends install $missing; } >"$log" 2>&1; then
        tail -n 15 "$log" >&2 || true
        die 4 "apt-get could not install: $missing(the package archive may be unreachable; full log: $log)"
    fi
    missing="$(missing_packages | tr '\n' ' ')"
    [ -z "${missing// /}" ] || die 4 "still missing after apt-get: $missing(see $log)"
    say "installed in $((SECONDS - t0)) s"
}

write_config() {
    mkdir -p "$BASE/etc" "$BASE/state" "$BASE/spool" "$PIDS" "$LOGS"
    # Job ids must not repeat on this machine: MPICH names its shared-memory segment after
    # the PMI name "JOBID.STEPID", and a segment left in /dev/shm by ranks that ended
    # without MPI_Finalize (killed, os._exit) makes a later step with the same name fail in
    # MPI_Init. The state folder keeps the sequence across restarts; a fresh folder starts
    # at a random id instead of 1.
    local first="$BASE/etc/first-job-id"
    [ -s "$first" ] || echo $(( 10000 + (RANDOM * 32768 + RANDOM) % 5000000 )) >"$first"
    local tmp="$CONF.tmp"
    cat >"$tmp" <<EOF
# Written by tools/slurm/local-slurm.sh: a single-node test cluster (see that script).
ClusterName=hpcdist-local
FirstJobId=$(cat "$first")
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job may start again after cred_expire + 1 s (default 120 + 1).
AuthInfo=cred_expire=10
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$PIDS/slurmctld.pid
SlurmdPidFile=$PIDS/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroup plugins: the sandbox's cgroup hierarchy cannot be delegated.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
# srun talks PMI-2 to the MPICH wheel's ranks.
MpiDefault=pmi2
JobRequeue=1
ReturnToService=2
KillWait=2
# `sbatch --wait` polls every 2 s only while 2 >= MinJobAge/2 (integer division), else every
# 8-10 s: keep finished job records 5 s only (the job logs stay), so that a short job is
# seen done in 2 s, not 10.
MinJobAge=5
InactiveLimit=0
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# Announce CPUs=$CPUS whatever the hardware has (more tasks than cores for tests).
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    mv "$tmp" "$CONF"
    # Read by Slurm's PMIx plugin (srun --mpi=pmix, Open MPI); harmless otherwise.
    printf '%s\n' 'PMIxEnv=PMIX_MCA_gds=hash;PMIX_MCA_psec=native' >"$BASE/etc/mpi.conf"
}

start_munge() {
    if munge_works; then
        return 0  # already served (by us or by the system): reuse it
    fi
    if [ ! -s "$MUNGE_KEY" ]; then
        say "creating $MUNGE_KEY"
        mkdir -p "$(dirname "$MUNGE_KEY")"
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$MUNGE_KEY" --force >/dev/null
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
        fi
    fi
    chown munge:munge "$MUNGE_KEY" "$(dirname "$MUNGE_KEY")" 2>/dev/null || true
    chmod 0400 "$MUNGE_KEY"
    chmod 0700 "$(dirname "$MUNGE_KEY")"
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 0755 /run/munge
    rm -f "$PIDS/munged.pid"
    touch "$PIDS/munged.pid" "$LOGS/munged.log"
    chown munge:munge "$PIDS/munged.pid" "$LOGS/munged.log"
    # munged refuses to run as root by default: run it as its own user.
    if command -v runuser >/dev/null; then
        runuser -u munge -- munged --pid-file="$PIDS/munged.pid" --log-file="$LOGS/munged.log" --socket="$MUNGE_SOCKET"
    else
        su -s /bin/sh munge -c "munged --pid-file='$PIDS/munged.pid' --log-file='$LOGS/munged.log' --socket='$MUNGE_SOCKET'"
    fi
    local i
    for i in $(seq 50); do munge_works && return 0; sleep 0.1; done
    tail -n 20 "$LOGS/munged.log" >&2 || true
    die 1 "munged did not start (log: $LOGS/munged.log)"
}

wait_pid_file() {  # wait_pid_file NAME LOG
    local i
    for i in $(seq 100); do alive "$1" && return 0; sleep 0.1; done
    tail -n 20 "$2" >&2 || true
    die 1 "$1 did not start (log: $2)"
}

start() {
    need_root start
    install_packages
    if alive slurmctld && alive slurmd && munge_works; then
        case "$(node_state)" in
            idle|mix|alloc)
                say "already running ($BASE)"
                echo "export SLURM_CONF=$CONF"
                return 0 ;;
        esac
    fi
    write_config
    start_munge
    if ! alive slurmctld; then
        # The job queue is recovered from the state folder (`stop` cancels the jobs first);
        # -i: start even if a state file is damaged.
        slurmctld -f "$CONF" -i
        wait_pid_file slurmctld "$LOGS/slurmctld.log"
    fi
    if ! alive slurmd; then
        slurmd -f "$CONF" -N localhost
        wait_pid_file slurmd "$LOGS/slurmd.log"
    fi
    local i state=""
    for i in $(seq 300); do
        state="$(node_state)"
        case "$state" in
            idle|mix|alloc) break ;;
            down|drain|drng|fail|failg)
                scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 0.1
    done
    if [ "$state" != idle ] && [ "$state" != mix ] && [ "$state" != alloc ]; then
        sinfo >&2 || true
        tail -n 20 "$LOGS/slurmctld.log" "$LOGS/slurmd.log" >&2 || true
        die 1 "the node did not become idle (state '${state:-none}'; logs in $LOGS)"
    fi
    say "running: node localhost $state, $CPUS CPUs, partition debug ($BASE)"
    echo "export SLURM_CONF=$CONF"
}

stop_pids() {  # stop_pids NAME...: SIGTERM to all of them, SIGKILL to those still there after 10 s
    local name pid i alive_pids=() names=()
    for name in "$@"; do
        if alive "$name"; then
            pid="$(cat "$PIDS/$name.pid")"
            kill -TERM "$pid" 2>/dev/null || true
            alive_pids+=("$pid"); names+=("$name")
        fi
    done
    for i in $(seq 100); do
        local left=0
        for pid in "${alive_pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
        [ $left -eq 0 ] && break
        sleep 0.1
    done
    for i in "${!alive_pids[@]}"; do
        if kill -0 "${alive_pids[$i]}" 2>/dev/null; then
            say "${names[$i]} (${alive_pids[$i]}) ignored SIGTERM: SIGKILL"
            kill -KILL "${alive_pids[$i]}" 2>/dev/null || true
        fi
    done
    for name in "$@"; do rm -f "$PIDS/$name.pid"; done
}

stop() {
    need_root stop
    if alive slurmctld && [ -f "$CONF" ]; then
        # This cluster's jobs only (SLURM_CONF points at it): their steps must not outlive slurmd.
        local jobs
        jobs="$(squeue -h -o %i 2>/dev/null | tr '\n' ' ' || true)"
        if [ -n "${jobs// /}" ]; then
            scancel $jobs 2>/dev/null || true
            local i
            for i in $(seq 50); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.1; done
        fi
    fi
    stop_pids slurmd slurmctld
    stop_pids munged  # only when this script started it (its pid file is under $BASE)
    say "stopped ($BASE)"
}

status() {
    local rc=0 d
    for d in munged slurmctld slurmd; do
        if alive "$d"; then
            echo "$d: running (pid $(cat "$PIDS/$d.pid"))"
        elif [ "$d" = munged ] && munge_works; then
            echo "munged: running (not started by this script)"
        else
            echo "$d: stopped"; rc=1
        fi
    done
    if [ $rc -eq 0 ]; then
        sinfo 2>&1 || rc=1
        echo "export SLURM_CONF=$CONF"
    fi
    return $rc
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status   (base folder: \$HPCDIST_SLURM_DIR, default /tmp/hpcdist-slurm)" >&2; exit 2 ;;
esac
