# tests/hosts.sh: sourced by the multi-host tests after setup.sh.  Makes
# test hosts on this machine, each a network namespace with its own address
# and its own hostname, joined by veth pairs to a bridge that lives in a
# namespace of its own (a "switch"): nothing is added to this machine's own
# network namespace, and the hosts reach only each other (10.213.0.0/24,
# no route elsewhere) and their loopback.  Needs root (or CAP_SYS_ADMIN and
# CAP_NET_ADMIN), ip(8) and unshare(1); else hosts_make skips (exit 77).
#
#   hosts_make N        makes hosts agnhost1..agnhostN, 10.213.0.1..N;
#                       removed on exit, whatever ends the test
#   on_host H CMD...    runs CMD on host H (1..N): in its network namespace,
#                       with its hostname (a UTS namespace of its own), and
#                       an /etc/hosts naming every test host (bound over the
#                       real one in a mount namespace of its own), and its
#                       own $HOST_LOCAL; the rest of the file system, /tmp
#                       and /sys included, is this machine's
#   $HOST_LOCAL         a folder with other contents on each host (a node's
#                       local scratch: Slurm's TmpFS, where PMIx puts its
#                       per-node files, which would collide in a shared /tmp)
#   host_link H up|down sets host H's link (its port on the switch)
#   host_pids H         the processes in host H's network namespace
#   $HOSTS_RSH          an rsh agent for Open MPI (plm_rsh_agent): "HOST CMD"
#                       runs the shell command CMD on HOST (with this
#                       environment, which ssh would not pass: the tests
#                       still give ranks their variables with mpirun -x)
#   $HOSTS_NET          the hosts' subnet, for btl_tcp_if_include
#
# Namespaces are named agnt<pid>-<name>, so that concurrent tests do not
# meet; those of a test that was killed outright (SIGKILL: no trap runs) are
# removed by the next hosts_make, which finds their pid gone.
HOSTS_NET=10.213.0.0/24
hosts_n=0
hosts_pfx=agnt$$-

hosts_cleanup() {
    [ "$hosts_n" -gt 0 ] || return 0
    _hosts_remove "$hosts_pfx"
    hosts_n=0
}

# _hosts_remove PREFIX: kills what runs in the namespaces named PREFIX*, then
# deletes them and their /etc/netns files
_hosts_remove() {
    for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }'); do
        case $ns in "$1"*) ;; *) continue ;; esac
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    done
    for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }'); do
        case $ns in "$1"*) ;; *) continue ;; esac
        ip netns del "$ns" 2>/dev/null || true
    done
}

# namespaces left by tests that died without their trap
_hosts_sweep() {
    for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }'); do
        case $ns in agnt[0-9]*-*) ;; *) continue ;; esac
        p=${ns#agnt}; p=${p%%-*}
        [ -d "/proc/$p" ] || _hosts_remove "agnt$p-"
    done
}

hosts_make() {
    n=$1
    command -v ip >/dev/null 2>&1 || skip "test hosts: no ip(8) (install iproute2)"
    command -v unshare >/dev/null 2>&1 || skip "test hosts: no unshare(1) (install util-linux)"
    [ "$(id -u)" = 0 ] || skip "test hosts: network namespaces need root"
    # the EXIT trap runs on a signal too: a killed test leaves no host behind
    trap 'hosts_cleanup; rm -rf "$tmp"' EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 143' TERM
    _hosts_sweep
    sw=${hosts_pfx}switch
    hosts_n=$n # from here on, hosts_cleanup removes what exists
    ip netns add "$sw" 2>"$tmp/.hosts.err" ||
        skip "test hosts: cannot make a network namespace: $(cat "$tmp/.hosts.err")"
    ip -n "$sw" link add br0 type bridge 2>"$tmp/.hosts.err" ||
        skip "test hosts: cannot make a bridge: $(cat "$tmp/.hosts.err")"
    ip -n "$sw" link set br0 up
    etc=
    i=1
    while [ "$i" -le "$n" ]; do
        etc="$etc
10.213.0.$i agnhost$i"
        i=$((i + 1))
    done
    HOSTS_ETC=$tmp/hosts/etc-hosts
    HOST_LOCAL=$tmp/hosts/local
    mkdir -p "$HOST_LOCAL"
    printf '127.0.0.1 localhost\n::1 localhost%s\n' "$etc" >"$HOSTS_ETC"
    i=1
    while [ "$i" -le "$n" ]; do
        ns=${hosts_pfx}agnhost$i
        ip netns add "$ns"
        # the host's end is eth0 in its namespace, the switch's port$i
        ip -n "$sw" link add "port$i" type veth peer name eth0 netns "$ns" 2>"$tmp/.hosts.err" ||
            skip "test hosts: cannot make a veth pair: $(cat "$tmp/.hosts.err")"
        ip -n "$sw" link set "port$i" master br0 up
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add "10.213.0.$i/24" dev eth0
        ip -n "$ns" link set eth0 up
        # data unacknowledged on a dead link fails after ~13 s (5 retries),
        # not the 15 minutes of the default 15: mpirun's own messages to a
        # host that is gone end, so does the job (tcp_retries2 is the
        # namespace's own)
        nsenter --net="/run/netns/$ns" sh -c 'echo 5 >/proc/sys/net/ipv4/tcp_retries2'
        mkdir "$tmp/hosts/agnhost$i"
        i=$((i + 1))
    done
    # the rsh agent: "HOST CMD..." runs the shell command on HOST
    HOSTS_RSH=$tmp/hosts-rsh
    cat >"$HOSTS_RSH" <<EOF
#!/bin/sh
# rsh agent of the test hosts (tests/hosts.sh): HOST COMMAND...
h=\$1; shift
case \$h in agnhost[0-9]*) ;; *) echo "hosts-rsh: \$h is no test host" >&2; exit 255 ;; esac
exec nsenter --net=/run/netns/${hosts_pfx}\$h unshare --mount --uts sh -c 'mount --bind "$HOSTS_ETC" /etc/hosts && mount --bind "$tmp/hosts/\$0" "$HOST_LOCAL" && hostname "\$0" && exec sh -c "\$1"' "\$h" "\$*"
EOF
    chmod +x "$HOSTS_RSH"
    # each host answers with its own name and address
    got=$(on_host "$n" sh -c 'hostname; ip -4 -o addr show eth0' 2>&1 | tr '\n' ' ')
    case $got in "agnhost$n "*"10.213.0.$n/24"*) ;;
    *) skip "test hosts: agnhost$n is not itself: $got" ;;
    esac
    export HOSTS_RSH HOSTS_NET HOST_LOCAL
}

on_host() {
    h=$1; shift
    nsenter --net="/run/netns/${hosts_pfx}agnhost$h" unshare --mount --uts \
        sh -c 'mount --bind "$1" /etc/hosts && mount --bind "$2" "$3" && hostname "$0" && shift 3 && exec "$@"' \
        "agnhost$h" "$HOSTS_ETC" "$tmp/hosts/agnhost$h" "$HOST_LOCAL" "$@"
}

host_link() {
    ip -n "${hosts_pfx}switch" link set "port$1" "$2"
}

host_pids() {
    ip netns pids "${hosts_pfx}agnhost$1"
}

# hosts_mpirun N MPIRUN-ARGS...: mpirun on agnhost1 with one slot on each of
# agnhost1..N, started through $HOSTS_RSH, Open MPI's TCP transport only
# (btl tcp,self: no shared memory, no other fabric) on the hosts' subnet,
# its own control traffic (oob) there too, and TCP keepalive probes that
# notice a dead link within seconds (the defaults, 300 s idle then 9 probes
# 20 s apart, leave mpirun waiting for a host that is gone long after agn's
# own timeout).  No binding: the hosts share this machine's CPUs, and
# Open MPI would bind the first rank of every host to the same core 0.
# Bounded by $HOSTS_TIMEOUT (60 s).
hosts_mpirun() {
    n=$1; shift
    : >"$tmp/hostfile"
    i=1
    while [ "$i" -le "$n" ]; do
        echo "agnhost$i slots=1" >>"$tmp/hostfile"
        i=$((i + 1))
    done
    on_host 1 timeout -k 5 "${HOSTS_TIMEOUT:-60}" "${MPIRUN:-mpirun}" --allow-run-as-root \
        --hostfile "$tmp/hostfile" -np "$n" --mca plm_rsh_agent "$HOSTS_RSH" \
        --mca btl tcp,self --mca btl_tcp_if_include "$HOSTS_NET" \
        --mca oob_tcp_if_include "$HOSTS_NET" --mca oob_tcp_keepalive_time 4 \
        --mca oob_tcp_keepalive_intvl 1 --mca oob_tcp_keepalive_probes 3 --bind-to none "$@"
}

# port_bytes H: bytes that went through host H's switch port, both ways
port_bytes() {
    ip netns exec "${hosts_pfx}switch" cat "/sys/class/net/port$1/statistics/rx_bytes" \
        "/sys/class/net/port$1/statistics/tx_bytes" | awk '{ s += $1 } END { print s }'
}
