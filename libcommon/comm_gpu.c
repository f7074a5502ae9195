/* comm_gpu.c: the part of the GPU transports (comm_gpu.h) that needs no GPU:
 * the device probe in a child process, the choice of device, the routing
 * rule, the NCCL bootstrap message and its exchange over a host transport,
 * and the wait state machine.  tests/t-commgpu drives all of it on the CPU.
 * The transports themselves are in comm_nccl.cu; without CUDA their
 * constructors below say so. */
#include "config.h"
#include "comm_gpu.h"

#include "device.h"
#include "launch.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* ---- the probe ------------------------------------------------------------------ */

#define PROBE_TIMEOUT_S 120 /* cuInit on a large machine takes seconds, a broken driver forever */

int agn_gpu_probe(int *count, char *desc, size_t n)
{
    *count = 0;
    snprintf(desc, n, "?");
    int fd[2];
    if (pipe(fd) != 0) return agn_seterr_errno("GPU probe: pipe");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fd[0]);
        close(fd[1]);
        errno = e;
        return agn_seterr_errno("GPU probe: fork");
    }
    if (pid == 0) {
        close(fd[0]);
        char buf[2048];
        int k = agn_cuda_device_count();
        size_t len = (size_t)snprintf(buf, sizeof buf, "%d\n", k);
        if (k == 0) {
            agn_cuda_device_name(0, buf + len, (int)(sizeof buf - len));
        } else {
            for (int i = 0; i < k && len + 80 < sizeof buf; i++) {
                len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%d: ", i ? "; " : "", i);
                agn_cuda_device_name(i, buf + len, (int)(sizeof buf - len));
                len = strlen(buf);
            }
        }
        (void)!agn_write_all(fd[1], buf, strlen(buf));
        _exit(0);
    }
    close(fd[1]);
    char buf[2048];
    size_t len = 0;
    double deadline = agn_now() + PROBE_TIMEOUT_S;
    int timed_out = 0;
    for (;;) {
        struct pollfd p = {.fd = fd[0], .events = POLLIN};
        int left_ms = (int)((deadline - agn_now()) * 1000);
        if (left_ms <= 0) {
            timed_out = 1;
            break;
        }
        int rc = poll(&p, 1, left_ms);
        if (rc < 0 && errno == EINTR) continue;
        if (rc <= 0) {
            timed_out = rc == 0;
            break;
        }
        ssize_t r = read(fd[0], buf + len, sizeof buf - 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
        if (len == sizeof buf - 1) break;
    }
    close(fd[0]);
    buf[len] = '\0';
    if (timed_out) kill(pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (timed_out)
        return agn_seterr("GPU probe: the CUDA runtime did not answer in %d s (a hung driver?)", PROBE_TIMEOUT_S);
    if (WIFSIGNALED(st)) {
        char sb[32];
        snprintf(desc, n, "none (the CUDA runtime died of %s while counting GPUs)",
                 agn_signal_name(WTERMSIG(st), sb, sizeof sb));
        return 0;
    }
    char *nl = strchr(buf, '\n');
    long k;
    if (!nl) return agn_seterr("GPU probe: no answer from the child process");
    *nl = '\0';
    if (agn_parse_long(buf, 0, 1 << 16, "GPU count", &k) != 0) return -1;
    *count = (int)k;
    snprintf(desc, n, "%s", nl + 1);
    return 0;
}

/* ---- devices and routing ------------------------------------------------------------- */

int agn_gpu_pick(int local_rank, int local_world, int visible, int share, int *device)
{
    *device = -1;
    if (local_rank < 0 || local_world < 1 || local_rank >= local_world)
        return agn_seterr("local rank %d of %d", local_rank, local_world);
    if (visible < 1) return agn_seterr("no usable GPU");
    if (local_world <= visible) {
        *device = local_rank;
        return 0;
    }
    if (visible == 1 && local_world > 1 && !share) {
        /* one GPU a process (srun --gpus-per-task=1, CUDA_VISIBLE_DEVICES
         * set per rank) looks the same as several ranks on one GPU from
         * here: NCCL itself refuses the latter at init */
        *device = 0;
        return 0;
    }
    if (share) {
        *device = local_rank % visible;
        return 0;
    }
    return agn_seterr("%d ranks on this host but %d GPU%s visible: NCCL cannot put two ranks on one GPU "
                      "(use as many ranks as GPUs, or --transport local to stage through host memory)",
                      local_world, visible, visible == 1 ? "" : "s");
}

int agn_gpu_ranks_check(long gpus, int under_mpi, int share, int *visible, char *desc, size_t n)
{
    *visible = 0;
    if (!under_mpi && gpus > 1) {
        if (agn_gpu_probe(visible, desc, n) != 0) return -1;
    } else { /* one process, no fork to come: ask here */
        *visible = agn_cuda_device_count();
        agn_cuda_device_name(0, desc, n > (size_t)INT_MAX ? INT_MAX : (int)n);
    }
    if (*visible == 0) return agn_seterr("no usable GPU: %s", desc);
    if (!under_mpi && gpus > *visible && !share)
        return agn_seterr("%d GPU%s visible (%s): NCCL cannot put two ranks on one GPU; give -g %d", *visible,
                          *visible == 1 ? "" : "s", desc, *visible);
    return 0;
}

int agn_gpu_rank_setup(agn_comm **comm, int share, int nccl, agn_gpu_comm_opts *go)
{
    agn_comm *c = *comm;
    if (agn_gpu_pick(c->local_rank, c->local_world, agn_cuda_device_count(), share, &go->device) != 0)
        return agn_adderr("rank %d", c->rank);
    if (!nccl) return 0;
    agn_comm *g = agn_comm_nccl_create(c, go);
    if (!g) return -1;
    *comm = g;
    return 0;
}

int agn_gpu_route(agn_mem_kind kind, size_t count)
{
    if (count == 0) return 0;
    return kind == AGN_MEM_DEVICE || kind == AGN_MEM_MANAGED;
}

int agn_nccl_even(size_t count, int world) { return world > 0 && count % (size_t)world == 0; }

/* ---- the bootstrap ---------------------------------------------------------------------- */

static const char boot_magic[8] = {'A', 'G', 'N', 'N', 'C', 'C', 'L', '1'};
#define WHY_OFF (24 + AGN_NCCL_ID_BYTES)
#define WHY_LEN (AGN_NCCL_BOOT_BYTES - WHY_OFF)

static uint32_t boot_crc(const unsigned char *msg)
{
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, msg, 20);
    c = crc32(c, msg + 24, AGN_NCCL_BOOT_BYTES - 24);
    return (uint32_t)c;
}

const char *agn_nccl_version_str(int code, char *buf, size_t n)
{
    if (code >= 10000) snprintf(buf, n, "%d.%d.%d", code / 10000, code / 100 % 100, code % 100);
    else snprintf(buf, n, "%d.%d.%d", code / 1000, code / 100 % 10, code % 100);
    return buf;
}

void agn_nccl_boot_pack(unsigned char msg[AGN_NCCL_BOOT_BYTES], int world, int version,
                        const unsigned char *id, const char *why)
{
    memset(msg, 0, AGN_NCCL_BOOT_BYTES);
    memcpy(msg, boot_magic, sizeof boot_magic);
    agn_put_u32(msg + 8, (uint32_t)world);
    agn_put_u32(msg + 12, (uint32_t)version);
    agn_put_u32(msg + 16, id ? 0 : 1);
    if (id) memcpy(msg + 24, id, AGN_NCCL_ID_BYTES);
    else snprintf((char *)msg + WHY_OFF, WHY_LEN, "%s", why ? why : "unknown error");
    agn_put_u32(msg + 20, boot_crc(msg));
}

int agn_nccl_boot_unpack(const unsigned char *msg, size_t len, int world, int version,
                         unsigned char id[AGN_NCCL_ID_BYTES])
{
    if (len != AGN_NCCL_BOOT_BYTES)
        return agn_seterr("NCCL bootstrap: a message of %zu bytes, expected %d", len, AGN_NCCL_BOOT_BYTES);
    if (memcmp(msg, boot_magic, sizeof boot_magic) != 0)
        return agn_seterr("NCCL bootstrap: not an agn bootstrap message (bad magic)");
    if (agn_get_u32(msg + 20) != boot_crc(msg))
        return agn_seterr("NCCL bootstrap: the message is corrupt (CRC mismatch)");
    uint32_t w = agn_get_u32(msg + 8), v = agn_get_u32(msg + 12), st = agn_get_u32(msg + 16);
    if (st > 1) return agn_seterr("NCCL bootstrap: malformed message (status %u)", st);
    if (st != 0) {
        char why[WHY_LEN];
        memcpy(why, msg + WHY_OFF, WHY_LEN);
        why[WHY_LEN - 1] = '\0';
        return agn_seterr("rank 0 could not create the NCCL unique id: %s", why);
    }
    for (size_t i = WHY_OFF; i < AGN_NCCL_BOOT_BYTES; i++)
        if (msg[i]) return agn_seterr("NCCL bootstrap: malformed message (status 0 with a message)");
    if ((int)w != world)
        return agn_seterr("NCCL bootstrap: rank 0 has %u ranks, this rank %d (two jobs mixed?)", w, world);
    if ((int)v / 100 != version / 100) {
        char a[32], b[32];
        return agn_seterr("NCCL %s here, %s on rank 0: every rank needs the same NCCL version",
                          agn_nccl_version_str(version, a, sizeof a), agn_nccl_version_str((int)v, b, sizeof b));
    }
    memcpy(id, msg + 24, AGN_NCCL_ID_BYTES);
    return 0;
}

int agn_nccl_bootstrap(agn_comm *host, int version,
                       int (*make_id)(void *ctx, unsigned char id[AGN_NCCL_ID_BYTES]), void *ctx,
                       unsigned char id[AGN_NCCL_ID_BYTES])
{
    unsigned char msg[AGN_NCCL_BOOT_BYTES];
    if (host->rank == 0) {
        unsigned char mine[AGN_NCCL_ID_BYTES];
        memset(mine, 0, sizeof mine);
        int rc = make_id(ctx, mine);
        agn_nccl_boot_pack(msg, host->world, version, rc == 0 ? mine : NULL, rc == 0 ? NULL : agn_errmsg());
    } else {
        memset(msg, 0, sizeof msg);
    }
    if (agn_comm_broadcast(host, msg, sizeof msg, AGN_U8, 0) != 0) return agn_adderr("NCCL bootstrap");
    char err[512] = "";
    int ok = agn_nccl_boot_unpack(msg, sizeof msg, host->world, version, id) == 0;
    if (!ok) snprintf(err, sizeof err, "%s", agn_errmsg());
    /* every rank's outcome, so that none goes on to ncclCommInitRank alone */
    double *flags = agn_xcalloc((size_t)host->world, sizeof *flags);
    flags[host->rank] = ok ? 0 : 1;
    if (agn_comm_allreduce(host, flags, (size_t)host->world, AGN_F64) != 0) {
        free(flags);
        return agn_adderr("NCCL bootstrap");
    }
    char who[256] = "";
    size_t len = 0;
    int bad = 0;
    for (int r = 0; r < host->world; r++)
        if (flags[r] != 0) {
            bad++;
            if (len + 16 < sizeof who) len += (size_t)snprintf(who + len, sizeof who - len, "%s%d", len ? ", " : "", r);
        }
    free(flags);
    if (!ok) return agn_seterr("%s", err);
    if (bad) return agn_seterr("NCCL bootstrap failed on rank%s %s (see %s message)", bad > 1 ? "s" : "", who,
                               bad > 1 ? "their" : "its");
    return 0;
}

/* ---- waiting ---------------------------------------------------------------------------- */

void agn_gpu_wait_begin(agn_gpu_wait *w, int rank, const char *what, double timeout_s, double now)
{
    w->rank = rank;
    snprintf(w->what, sizeof w->what, "%s", what);
    w->timeout_s = timeout_s > 0 ? timeout_s : AGN_COMM_TIMEOUT_DEFAULT;
    w->start = now;
    w->deadline = now + w->timeout_s;
    w->sleep_ns = 0;
    w->polls = 0;
}

int agn_gpu_wait_step(agn_gpu_wait *w, const agn_gpu_poll *p, double now, long *sleep_ns)
{
    *sleep_ns = 0;
    w->polls++;
    if (p->error)
        return agn_seterr("rank %d: %s failed: %s", w->rank, w->what, p->error_msg ? p->error_msg : "error");
    if (p->done) return AGN_WAIT_DONE;
    if (p->aborted) return agn_seterr("rank %d: %s aborted: %s", w->rank, w->what, p->aborted);
    if (now >= w->deadline)
        return agn_seterr("rank %d: %s timed out after %g s (see --comm-timeout)", w->rank, w->what,
                          w->timeout_s);
    if (now - w->start < AGN_GPU_SPIN_S) return AGN_WAIT_AGAIN;
    w->sleep_ns = w->sleep_ns ? w->sleep_ns * 2 : AGN_GPU_SLEEP_MIN_NS;
    if (w->sleep_ns > AGN_GPU_SLEEP_MAX_NS) w->sleep_ns = AGN_GPU_SLEEP_MAX_NS;
    double left_ns = (w->deadline - now) * 1e9;
    *sleep_ns = (double)w->sleep_ns < left_ns ? w->sleep_ns : (long)left_ns + 1;
    return AGN_WAIT_AGAIN;
}

int agn_gpu_wait_loop(agn_gpu_wait *w, const agn_gpu_poller *p)
{
    for (;;) {
        agn_gpu_poll st = {0};
        p->poll(p->ctx, &st);
        double now = p->now ? p->now(p->ctx) : agn_now();
        long ns;
        int rc = agn_gpu_wait_step(w, &st, now, &ns);
        if (rc != AGN_WAIT_AGAIN) return rc == AGN_WAIT_DONE ? 0 : -1;
        if (ns <= 0) continue;
        if (p->sleep) {
            p->sleep(p->ctx, ns);
        } else {
            struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
            nanosleep(&ts, NULL);
        }
    }
}

/* ---- without NCCL ---------------------------------------------------------------------- */

#ifndef HAVE_NCCL
agn_comm *agn_comm_nccl_create(agn_comm *host, const agn_gpu_comm_opts *o)
{
    (void)host;
    (void)o;
    agn_seterr("the nccl transport is not built (configure found no CUDA toolkit with NCCL; "
               "--transport local stages through host memory instead)");
    return NULL;
}

int agn_comm_nccl_built(void) { return 0; }
#endif
