#!/usr/bin/env bash
# Start or stop a private Slurm cluster on localhost (munge + slurmctld + slurmd) for the integration tests.
#   tests/slurm/cluster.sh start DIR   -> writes DIR/slurm.conf, starts the daemons, prints `export SLURM_CONF=...`
#   tests/slurm/cluster.sh stop DIR    -> stops the daemons started from DIR (by their pid files)
# Two partitions on the one node: `low` (default, PriorityTier 1) and `high` (PriorityTier 10). A `high` job that
# needs CPUs a `low` job holds preempts it: the low job's tasks get its --signal (submitit's USR2) at once
# (preempt_send_user_signal), and Slurm requeues it GraceTime seconds later unless it requeued itself first.
# SLURM_TEST_PREEMPT_SIGNAL=TERM leaves that parameter out: preempted tasks then get SIGTERM (Slurm's default,
# what many sites do), which submitit ignores.
# No accounting database: DIR/bin/sacct answers from `squeue -t all` (finished jobs stay visible for MinJobAge),
# which is what submitit asks for job states.
set -euo pipefail
cmd=${1:?usage: cluster.sh start|stop DIR}
dir=$(realpath -m "${2:?usage: cluster.sh start|stop DIR}")
host=$(hostname -s)
# munged runs as user munge, which may not traverse DIR (pytest folders are 0700): its files live in /tmp
mdir=/tmp/munge-$(echo "$dir" | md5sum | cut -c1-12)
# GNU nproc obeys OMP_NUM_THREADS (the tests set it to 1): the node must have every core, or a job asking
# for all of them never fits and a higher partition has nothing to preempt for
ncpu=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
# SLURM_TEST_CPUS declares more CPUs than the machine has (slurmd told to trust slurm.conf): on a 2-core
# machine a 2-rank job then leaves room that only a preempting job asking for every CPU cannot use
slurmd_params="# the node's CPUs as slurmd counts them"
if [ -n "${SLURM_TEST_CPUS:-}" ] && [ "$SLURM_TEST_CPUS" -gt "$ncpu" ]; then
  ncpu=$SLURM_TEST_CPUS slurmd_params=SlurmdParameters=config_overrides
fi
# ports from DIR (the next free pair), so two clusters at once (two test modules in one pytest session, two
# people) do not collide; SLURM_TEST_PORT sets the controller's port (slurmd takes the next one)
port=${SLURM_TEST_PORT:-$(( 16817 + 2 * (0x$(echo "$dir" | md5sum | cut -c1-4) % 500) ))}
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))

stop() {
  # end this cluster's jobs first: slurmstepd outlives a stopped slurmd and would keep the job's processes
  if [ -f "$dir/slurm.conf" ] && SLURM_CONF=$dir/slurm.conf timeout 5 scontrol ping >/dev/null 2>&1; then
    SLURM_CONF=$dir/slurm.conf scancel --full -u "$(id -un)" 2>/dev/null || true
    for _ in $(seq 50); do
      [ -z "$(SLURM_CONF=$dir/slurm.conf squeue -h -t running,completing 2>/dev/null)" ] && break; sleep 0.1
    done
  fi
  for name in slurmd slurmctld munged; do
    if [ -f "$dir/$name.pid" ]; then
      pid=$(cat "$dir/$name.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      rm -f "$dir/$name.pid"
    fi
  done
  rm -rf "$mdir"
}

write_conf() {
  local ctld_params=SlurmctldParameters=preempt_send_user_signal
  [ "${SLURM_TEST_PREEMPT_SIGNAL:-USER}" = TERM ] && ctld_params="# preempted tasks get SIGTERM"
  mkdir -p "$dir"/{state,spool,log,bin} "$mdir"
  cat > "$dir/slurm.conf" <<CONF
ClusterName=localtest
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmctldPort=${port}
SlurmdPort=$(( port + 1 ))
AuthType=auth/munge
AuthInfo=socket=$mdir/munge.socket,cred_expire=5
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerParameters=bf_interval=1,sched_interval=1
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
${ctld_params}
${slurmd_params}
DependencyParameters=kill_invalid_depend
MinJobAge=3600
ReturnToService=2
KillWait=5
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${ncpu} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=low Nodes=${host} Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=30
PartitionName=high Nodes=${host} MaxTime=INFINITE State=UP PriorityTier=10
CONF
  # sacct stand-in: "JobID|State|NodeList" rows as submitit parses them, from squeue (finished jobs kept MinJobAge)
  cat > "$dir/bin/sacct" <<'SACCT'
#!/usr/bin/env bash
jobs=() header=1
while [ $# -gt 0 ]; do
  case "$1" in -j) jobs+=("$2"); shift 2;; -j*) jobs+=("${1#-j}"); shift;; -n|--noheader) header=0; shift;;
    *) shift;; esac
done
[ "$header" = 1 ] && echo "JobID|State|NodeList"
ids=$(IFS=,; echo "${jobs[*]}")
squeue -h -t all ${ids:+-j "$ids"} -o "%i|%T|%N" 2>/dev/null | sed 's/|COMPLETING|/|RUNNING|/'
SACCT
  chmod +x "$dir/bin/sacct"
}

wait_for() {  # wait_for SECONDS CMD...
  local n=$(( $1 * 10 )); shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "cluster.sh: timed out waiting for: $*" >&2; return 1
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  stop
  if [ -z "${SLURM_TEST_PORT:-}" ]; then
    while port_busy "$port" || port_busy $(( port + 1 )); do port=$(( port + 2 )); done
  fi
  rm -rf "$dir/state" "$dir/spool"
  write_conf
  export SLURM_CONF=$dir/slurm.conf
  chown munge: "$mdir" 2>/dev/null || true
  [ -f /etc/munge/munge.key ] || { runuser -u munge -- /usr/sbin/mungekey -c 2>/dev/null || true; }
  runuser -u munge -- /usr/sbin/munged --socket="$mdir/munge.socket" --pid-file="$mdir/munged.pid" \
    --log-file="$mdir/munged.log" --seed-file="$mdir/seed" --force
  wait_for 10 test -f "$mdir/munged.pid"
  cp "$mdir/munged.pid" "$dir/munged.pid"
  /usr/sbin/slurmctld -f "$dir/slurm.conf"
  wait_for 20 scontrol ping
  /usr/sbin/slurmd -f "$dir/slurm.conf"
  wait_for 20 bash -c "sinfo -h -o %T | grep -qE 'idle|mixed|alloc'"
  echo "export SLURM_CONF=$dir/slurm.conf PATH=$dir/bin:\$PATH"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: cluster.sh start|stop DIR" >&2; exit 2 ;;
esac
