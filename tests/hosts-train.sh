#!/bin/sh
# hosts-train.sh: agn-train across hosts, for real: test hosts made on this
# machine (tests/hosts.sh: network namespaces with their own addresses and
# hostnames, joined by a bridge), one rank on each, started by mpirun
# through an rsh agent, with Open MPI's TCP transport only (no shared
# memory), so that every byte of every collective crosses a network stack.
#  - 2 and 3 hosts end with the weights of the 1-rank run (largest relative
#    difference per tensor printed, fail above 1e-5);
#  - the bytes through each host's link are at least what the collectives
#    must have moved (they did not go another way);
#  - each rank says where it runs: its host, rank and local rank;
#  - the NCCL bootstrap (the unique id over MPI, and its failure) reaches
#    the ranks on every host (tests/t-commgpu, no GPU needed).
# Skips without MPI or without root (namespaces).
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

need_mpi
. "$top_srcdir/tests/hosts.sh"
. "$top_srcdir/tests/train-fixture.sh"
hosts_make 3

T="$TRAIN -b 7 -e 1 --dropout 0.2 --eval-every 20 --val $VAL"
# without -q: each rank describes itself on stderr
LOUD=$(echo "$T" | sed 's/ -q / /')
$T -o w1 "$SH"
params=$(sed -n 's/.*config tiny: \([0-9]*\) parameters.*/\1/p' w1/train.log)
[ -n "$params" ] || fail "no parameter count in w1/train.log"

for n in 2 3; do
    before=$(port_bytes "$n")
    hosts_mpirun "$n" $LOUD -o "h$n" "$SH" >out 2>err ||
        { cat err >&2; fail "mpirun across $n hosts failed"; }
    moved=$(( $(port_bytes "$n") - before ))
    assert_eq "$(sed -n 2p "h$n/metrics.csv" | cut -d, -f2,4)" "$n,mpi" "$n hosts: metrics.csv world_size,transport"
    sed -n 's/^agn-train: \(rank .* of .*started by.*\)/#   \1/p' err
    r=0
    while [ "$r" -lt "$n" ]; do
        grep -q "rank $r of $n, local rank 0 of 1, on host agnhost$((r + 1)); started by Open MPI's mpirun; transport mpi" err ||
            { cat err >&2; fail "$n hosts: rank $r does not say it runs alone on agnhost$((r + 1))"; }
        r=$((r + 1))
    done
    # the last host's rank receives, in each of the 58 steps, at least the
    # (n-1)/n of the gradients that the others reduced (all-gather)
    least=$(( 58 * params * 4 * (n - 1) / n ))
    [ "$moved" -ge "$least" ] || fail "$n hosts: $moved bytes through agnhost$n's link, fewer than the $least the all-reduces need"
    echo "# $n hosts against 1 rank, largest relative difference per tensor:"
    set +e
    "$STDIFF" --tol 1e-5 w1/last.safetensors "h$n/last.safetensors" >diff.out
    st=$?
    set -e
    sed 's/^/#   /' diff.out
    [ "$st" -eq 0 ] || fail "$n hosts: weights differ from the 1-rank run by more than 1e-5"
    ok "$n hosts over TCP ($moved bytes through agnhost$n's link): $(tail -n 1 diff.out)"
done

# the NCCL bootstrap of GPU ranks (comm_gpu.h) across the hosts: rank 0's
# unique id (a stand-in: no GPU needed) reaches the ranks on the other hosts
# over the mpi transport, and when rank 0 cannot make one, every rank says so
t=$top_builddir/tests/t-commgpu
hosts_mpirun 3 "$t" --mpi >out 2>err || { cat out err >&2; fail "t-commgpu --mpi across 3 hosts"; }
assert_eq "$(grep -c '^ok - mpi rank' out || true)" 3 "ranks across 3 hosts that received the id"
hosts_mpirun 3 "$t" --mpi fail >out 2>err || { cat out err >&2; fail "t-commgpu --mpi fail across 3 hosts"; }
assert_eq "$(grep -c '^ok - mpi rank .* failure reported' out || true)" 3 "ranks across 3 hosts that reported rank 0's failure"
ok "NCCL bootstrap across 3 hosts: the id reaches every rank; rank 0's failure reaches every rank"
