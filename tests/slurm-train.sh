#!/bin/sh
# slurm-train.sh: agn-train under a real Slurm cluster made on this machine
# from Debian's packages (slurm-wlm, munge): two test hosts (tests/hosts.sh),
# slurmctld on agnhost1 and a slurmd on each, munged with its own key, all
# configured by this test in its own folder and stopped at its end.
#  - srun --mpi=pmix -N 2 -n 2 agn-train: the weights of the 1-rank run
#    (largest relative difference per tensor printed, fail above 1e-5);
#    each rank says what it found: rank and world size, local rank, host,
#    Slurm job, step and node, as srun's own variables give them;
#  - srun -N 1 -n 2 -c 1: both ranks on one node, local ranks 0 and 1 of 2,
#    one thread each from SLURM_CPUS_PER_TASK (no -t given);
#  - srun without MPI support (MpiDefault=none): exit 1 within seconds,
#    saying how to launch, no hang;
#  - sbatch --wait examples/slurm/train.sbatch (the script users copy),
#    with the test's shards and 2 CPUs per task: the 1-rank weights again.
# Skips, saying why, without MPI, root, Slurm or munge, when the daemons do
# not start, and in the sanitizer pass of tests/run-all.sh.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

need_mpi
# once per tests/run-all.sh: its daemons take most of its 16-60 s, and the
# agn code it runs is checked under the sanitizers by hosts-train.sh
# (launch, describe, mpi transport) and t-comm (srun's variables)
[ -z "${AGN_TEST_SANITIZED:-}" ] || skip "the Slurm cluster test runs in the release pass only (AGN_TEST_SANITIZED is set)"
for p in slurmctld slurmd munged munge srun sbatch sinfo; do
    command -v "$p" >/dev/null 2>&1 || skip "no $p (install slurm-wlm and munge: tests/install-deps.sh)"
done
. "$top_srcdir/tests/hosts.sh"
. "$top_srcdir/tests/train-fixture.sh"
hosts_make 2

# ---- the cluster
d=$tmp/slurm
mkdir -p "$d/state" "$d/spool/agnhost1" "$d/spool/agnhost2"
slurm_stop() { # the daemons by their pid files (hosts_cleanup kills the rest)
    for f in "$d"/slurmd-agnhost1.pid "$d"/slurmd-agnhost2.pid "$d"/slurmctld.pid "$d"/munged.pid; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
}
trap 'slurm_stop; hosts_cleanup; rm -rf "$tmp"' EXIT
daemon_fail() { # daemon_fail WHAT LOG: skip, with the log's end
    tail -n 5 "$2" 2>/dev/null | sed 's/^/#   /' >&2
    skip "$1 did not start (log above)"
}

head -c 1024 /dev/urandom >"$d/munge.key"
chmod 400 "$d/munge.key"
on_host 1 munged -f --key-file="$d/munge.key" --socket="$d/munge.socket" --pid-file="$d/munged.pid" \
    --log-file="$d/munged.log" --seed-file="$d/munged.seed" || daemon_fail munged "$d/munged.log"
munge -S "$d/munge.socket" -n | unmunge -S "$d/munge.socket" >/dev/null 2>&1 ||
    daemon_fail "munge (munge -n | unmunge)" "$d/munged.log"

cat >"$d/slurm.conf" <<EOC
ClusterName=agntest
SlurmctldHost=agnhost1(10.213.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
AuthInfo=socket=$d/munge.socket
CredType=cred/munge
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool/%n
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd-%n.pid
SlurmctldLogFile=$d/slurmctld.log
SlurmdLogFile=$d/slurmd-%n.log
TmpFS=$HOST_LOCAL
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
NodeName=agnhost1 NodeAddr=10.213.0.1 CPUs=2 State=UNKNOWN
NodeName=agnhost2 NodeAddr=10.213.0.2 CPUs=2 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOC
SLURM_CONF=$d/slurm.conf
export SLURM_CONF
on_host 1 slurmctld -i >/dev/null 2>&1 || daemon_fail slurmctld "$d/slurmctld.log"
on_host 1 slurmd -N agnhost1 >/dev/null 2>&1 || daemon_fail "slurmd on agnhost1" "$d/slurmd-agnhost1.log"
on_host 2 slurmd -N agnhost2 >/dev/null 2>&1 || daemon_fail "slurmd on agnhost2" "$d/slurmd-agnhost2.log"
i=0
until [ "$(on_host 1 sinfo -h -o '%D %t' 2>/dev/null)" = "2 idle" ]; do
    i=$((i + 1))
    [ "$i" -le 100 ] || { on_host 1 sinfo >&2 || true; daemon_fail "the nodes (not idle in 20 s)" "$d/slurmctld.log"; }
    sleep 0.2
done
ok "a Slurm cluster of 2 hosts: $(on_host 1 sinfo -h -o '%D nodes %t, partition %P')"

# Open MPI between the ranks: TCP only, on the hosts' subnet
OMPI_MCA_btl=tcp,self
OMPI_MCA_btl_tcp_if_include=$HOSTS_NET
OMPI_MCA_oob_tcp_if_include=$HOSTS_NET
export OMPI_MCA_btl OMPI_MCA_btl_tcp_if_include OMPI_MCA_oob_tcp_if_include
srun_on() { on_host 1 timeout -k 5 60 srun "$@"; }

T="-b 7 -e 1 --dropout 0.2 --eval-every 20 --val $VAL"
TRAIN1=$(echo "$TRAIN" | sed 's/ -q / /; s/ -t 1 / /') # without -q: ranks describe themselves
$TRAIN $T -o w1 "$SH"
same_weights() { # same_weights RUN WHAT
    echo "# $2 against 1 rank, largest relative difference per tensor:"
    set +e
    "$STDIFF" --tol 1e-5 w1/last.safetensors "$1/last.safetensors" >diff.out
    st=$?
    set -e
    sed 's/^/#   /' diff.out
    [ "$st" -eq 0 ] || fail "$2: weights differ from the 1-rank run by more than 1e-5"
    ok "$2: $(tail -n 1 diff.out)"
}
described() { # described FILE: the ranks' descriptions, printed
    sed -n 's/^agn-train: \(rank .* of .*started by.*\)/#   \1/p' "$1"
}

# ---- srun across the 2 hosts
srun_on --mpi=pmix -N 2 -n 2 $TRAIN1 -t 1 $T -o s2 "$SH" >out 2>err || { cat err >&2; fail "srun -N 2 -n 2 failed"; }
described err
job=$(sed -n 's/.*Slurm job \([0-9]*\) step .*/\1/p' err | sort -u)
[ -n "$job" ] && [ "$(echo "$job" | wc -l)" -eq 1 ] || { cat err >&2; fail "srun: no one Slurm job id in the ranks' descriptions"; }
for r in 0 1; do
    grep -q "rank $r of 2, local rank 0 of 1, on host agnhost$((r + 1)); started by srun; transport mpi; Slurm job $job step 0 on node agnhost$((r + 1)), 2 tasks on 2 nodes" err ||
        { cat err >&2; fail "srun: rank $r does not describe its task as srun placed it"; }
done
assert_eq "$(sed -n 2p s2/metrics.csv | cut -d, -f2,4)" "2,mpi" "srun: metrics.csv world_size,transport"
same_weights s2 "srun -N 2 -n 2"

# ---- both tasks on one node, a CPU each
srun_on --mpi=pmix -N 1 -n 2 -c 1 $TRAIN1 $T -o s1n "$SH" >out 2>err || { cat err >&2; fail "srun -N 1 -n 2 -c 1 failed"; }
described err
for r in 0 1; do
    grep -Eq "rank $r of 2, local rank $r of 2, on host agnhost1; .*SLURM_CPUS_PER_TASK=1; CPUs allowed .*; 1 threads" err ||
        { cat err >&2; fail "srun -N 1 -n 2 -c 1: rank $r does not say local rank $r of 2 with 1 thread"; }
done
same_weights s1n "srun -N 1 -n 2 -c 1"

# ---- an srun without MPI support
t0=$(date +%s)
set +e
srun_on -N 2 -n 2 $TRAIN1 -t 1 $T -o none "$SH" >out 2>err
st=$?
set -e
took=$(( $(date +%s) - t0 ))
[ "$st" -ne 0 ] || fail "srun --mpi=none: exit 0"
[ "$took" -le 20 ] || fail "srun --mpi=none: took $took s"
grep -q "srun started 2 tasks without MPI support.*run srun --mpi=pmix" err || { cat err >&2; fail "srun --mpi=none: no message saying how to launch"; }
[ ! -e none/last.safetensors ] || fail "srun --mpi=none: a task trained anyway"
ok "srun without MPI support: exit $st in ${took}s: $(grep -m 1 'without MPI support' err | cut -c 1-80)..."

# ---- the example batch script
cp "$top_srcdir/examples/slurm/train.sbatch" .
on_host 1 env AGN_CONFIG="$CFG" AGN_TRAIN="$SH" AGN_VAL="$VAL" AGN_RUN=sb \
    AGN_ARGS="-s model.vocab_size=$V -b 7 -e 1 --dropout 0.2 --eval-every 20" \
    timeout -k 5 120 sbatch --wait --output="$PWD/sb.out" train.sbatch >out 2>err ||
    { cat err sb.out >&2; fail "sbatch train.sbatch failed"; }
described sb.out
grep -q "rank 1 of 2, local rank 0 of 1, on host agnhost2; started by srun; .*SLURM_CPUS_PER_TASK=2; CPUs allowed .*; 2 threads" sb.out ||
    { cat sb.out >&2; fail "sbatch: rank 1 does not say it runs on agnhost2 with 2 threads"; }
same_weights sb "sbatch examples/slurm/train.sbatch"
