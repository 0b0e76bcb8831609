#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, from Debian's packages, for tests and trials.
#
#   tests/slurm_cluster.sh install        apt-get the daemons (root, or sudo)
#   tests/slurm_cluster.sh start DIR      write DIR/slurm.conf and start munged, slurmctld, slurmd
#   tests/slurm_cluster.sh stop DIR       stop what `start DIR` started
#
# The configuration, state, logs and pid files live in DIR. slurmd fetches the
# configuration from slurmctld and links its copy at /run/slurm/conf, where sbatch,
# squeue and the srun inside jobs find it (as on a configless cluster), so nothing
# under /etc is written. munged serves the standard socket (/run/munge), where slurmd
# looks before it has its configuration; one already running there is used as it is.
# No accounting daemon: sacct has nothing to read, so jobs are followed with squeue,
# and MinJobAge keeps finished jobs visible to it for 10 minutes. Two partitions,
# omnimatte_cpu and omnimatte_gpu, share the node, which has one "gpu" GRES (backed by
# /dev/null), so a job asking for a GPU is scheduled as on a real cluster; training
# then finds no CUDA device and runs on the CPU. The daemons run as root (they must,
# to start jobs), so `start` needs root too.
set -euo pipefail

PACKAGES=(slurmctld slurmd munge)
CPU_PARTITION=omnimatte_cpu
GPU_PARTITION=omnimatte_gpu

usage() {
    sed -n '2,6p' "$0" >&2
    exit 2
}

as_root() {
    if [[ $(id -u) == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo "$@"
    else
        echo "slurm_cluster.sh: '$*' needs root (or password-less sudo)" >&2
        return 1
    fi
}

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        echo "slurm_cluster.sh: slurmctld, slurmd and munged are installed"
        return 0
    fi
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Wait up to $1 seconds for the command after it to succeed.
wait_for() {
    local seconds=$1
    shift
    for _ in $(seq "$((seconds * 4))"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    return 1
}

start() {
    local dir=$1
    [[ $(id -u) == 0 ]] || { echo "slurm_cluster.sh start: the SLURM daemons must run as root" >&2; exit 1; }
    for tool in munged slurmctld slurmd sinfo; do
        command -v "$tool" >/dev/null || { echo "slurm_cluster.sh start: $tool is missing; run '$0 install'" >&2; exit 1; }
    done
    if [[ -e /etc/slurm/slurm.conf ]]; then
        echo "slurm_cluster.sh start: this machine has a SLURM configuration (/etc/slurm/slurm.conf); jobs would find it instead of the test cluster's" >&2
        exit 1
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
    chmod 700 "$dir/munge"

    local node hardware
    node=$(hostname -s)
    # the CPU layout as slurmd sees it (CPUs, sockets, cores, threads), without its memory
    hardware=$(slurmd -C | head -1 | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')

    # munge on its standard socket, where slurmd looks before it has fetched its config;
    # a munged already serving there (a machine that is a SLURM client) is used as it is
    if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        head -c 1024 /dev/urandom >"$dir/munge/munge.key"
        chmod 400 "$dir/munge/munge.key"
        mkdir -p /run/munge
        munged --force --key-file "$dir/munge/munge.key" --pid-file "$dir/munge/munged.pid" \
            --log-file "$dir/munge/munged.log" --seed-file "$dir/munge/munged.seed"
        wait_for 10 bash -c 'munge -n </dev/null | unmunge' || { echo "munged did not start; see $dir/munge/munged.log" >&2; exit 1; }
    fi

    local ctld_port
    ctld_port=$(free_port)
    cat >"$dir/slurm.conf" <<EOF
# Written by tests/slurm_cluster.sh: one node, no accounting.
ClusterName=omnimatte-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
# slurmd fetches this file from slurmctld and caches it, as configless clusters do
SlurmctldParameters=enable_configless
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# the node is declared, not probed: the profile's memory requests are kept as they are
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
KillWait=10
GresTypes=gpu
NodeName=$node NodeAddr=127.0.0.1 ${hardware}RealMemory=65536 Gres=gpu:1 State=UNKNOWN
PartitionName=$CPU_PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP
PartitionName=$GPU_PARTITION Nodes=$node MaxTime=INFINITE State=UP
EOF
    cat >"$dir/gres.conf" <<EOF
NodeName=$node Name=gpu Count=1 File=/dev/null
EOF
    export SLURM_CONF=$dir/slurm.conf  # for this script's checks, before slurmd has cached it
    slurmctld -f "$SLURM_CONF"
    wait_for 30 scontrol ping || { echo "slurmctld did not answer; see $dir/slurmctld.log" >&2; exit 1; }
    slurmd --conf-server "127.0.0.1:$ctld_port" -N "$node"
    if ! wait_for 60 bash -c "sinfo -h -n '$node' -o %t | grep -qE '^(idle|mix|alloc)'"; then
        echo "the node did not come up; see $dir/slurmd.log and $dir/slurmctld.log" >&2
        sinfo -N -l >&2 || true
        exit 1
    fi
    echo "SLURM is up: partitions $CPU_PARTITION and $GPU_PARTITION on node $node; logs in $dir"
}

stop() {
    local dir
    dir=$(cd "$1" && pwd)
    for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
        [[ -f $pidfile ]] || continue
        local pid
        pid=$(cat "$pidfile")
        if kill "$pid" 2>/dev/null; then
            wait_for 20 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
    # slurmd's link to its cached config, through which commands inside jobs find the cluster
    if [[ $(readlink /run/slurm/conf 2>/dev/null) == "$dir/spool/conf-cache" ]]; then
        rm -f /run/slurm/conf
    fi
}

case "${1:-}" in
    install) install ;;
    start) [[ $# == 2 ]] || usage; start "$2" ;;
    stop) [[ $# == 2 ]] || usage; stop "$2" ;;
    *) usage ;;
esac
