/* agn-bench-comm: measures the collectives of a transport (local, mpi,
 * nccl) the way nccl-tests does: a sweep of message sizes, per size warm-up
 * and timed calls, algorithm and bus bandwidth, and a check of every
 * result.  Ranks are launched as agn-train's are (launch.h): forked with
 * -n N or -g N, one per process under mpirun or srun; GPU ranks take their
 * GPU and the nccl transport as agn-train's do (comm_gpu.h), with the
 * buffers in device memory.  The work is in libcommon/commbench.c. */
#include "config.h"

#include "commbench.h"
#include "comm.h"
#include "comm_gpu.h"
#include "device.h"
#include "launch.h"
#include "util.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    printf("Usage: %s [--cpu -n N | -g N] [OPTION]...\n", agn_progname);
    fputs("Measure the collectives of agn's communication transport as nccl-tests does:\n"
          "for each message size, warm-up calls, then timed calls; the mean time of one\n"
          "call, the algorithm bandwidth (size / time) and the bus bandwidth (algbw times\n"
          "2(n-1)/n for all-reduce, (n-1)/n for reduce-scatter and all-gather, 1 for\n"
          "broadcast), and the number of wrong elements in a checked call.  A table on\n"
          "stdout (rank 0); --csv writes the rows for agn-summarize --link.\n"
          "\n"
          "Ranks:\n"
          "      --cpu                CPU ranks (the default)\n"
          "  -n, --ranks N            CPU ranks forked on this host (local transport);\n"
          "                           under mpirun or srun each process is one rank (mpi)\n"
          "  -g, --gpus N             GPU ranks (nccl transport), one per GPU, forked on\n"
          "                           this host; under mpirun or srun each process is one\n"
          "                           (give -g 1 or the number of processes); buffers in\n"
          "                           device memory\n"
          "      --bind-to WHAT       core (default) or none, as agn-train's\n"
          "      --comm-timeout SEC   a collective waiting longer fails (default 300)\n"
          "\n"
          "Sweep:\n"
          "  -b, --min-bytes SIZE     smallest message (default 8; k/M/G suffixes)\n"
          "  -e, --max-bytes SIZE     largest message (default 256M)\n"
          "  -f, --step-factor N      multiply the size by N each step (default 2)\n"
          "  -w, --warmup N           untimed calls a size (default 5)\n"
          "  -i, --iters N            timed calls a size (default 20)\n"
          "  -c, --check 0|1          check one call's result a size (default 1)\n"
          "  -d, --dtype TYPE         f32 (default) or f64\n"
          "  -O, --op LIST            comma-separated: all-reduce (default), reduce-scatter,\n"
          "                           all-gather, broadcast, or all\n"
          "      --mpi-allreduce      with the mpi transport (CPU ranks), also time MPI's\n"
          "                           own MPI_Allreduce on the same buffer\n"
          "      --corrupt RANK       alter one element of RANK's checked results (tests\n"
          "                           that the check catches a wrong result)\n"
          "\n"
          "Output:\n"
          "      --csv FILE           also write the rows as CSV (atomically)\n"
          "  -q, --quiet              no table on stdout\n"
          "  -h, --help               show this help and exit\n"
          "  -V, --version            show the version and exit\n",
          stdout);
}

enum { OPT_CPU = 256, OPT_BIND, OPT_COMM_TIMEOUT, OPT_MPI_ALLREDUCE, OPT_CORRUPT, OPT_CSV };

static const struct option long_opts[] = {
    {"cpu", no_argument, NULL, OPT_CPU},
    {"ranks", required_argument, NULL, 'n'},
    {"gpus", required_argument, NULL, 'g'},
    {"bind-to", required_argument, NULL, OPT_BIND},
    {"comm-timeout", required_argument, NULL, OPT_COMM_TIMEOUT},
    {"min-bytes", required_argument, NULL, 'b'},
    {"max-bytes", required_argument, NULL, 'e'},
    {"step-factor", required_argument, NULL, 'f'},
    {"warmup", required_argument, NULL, 'w'},
    {"iters", required_argument, NULL, 'i'},
    {"check", required_argument, NULL, 'c'},
    {"dtype", required_argument, NULL, 'd'},
    {"op", required_argument, NULL, 'O'},
    {"mpi-allreduce", no_argument, NULL, OPT_MPI_ALLREDUCE},
    {"corrupt", required_argument, NULL, OPT_CORRUPT},
    {"csv", required_argument, NULL, OPT_CSV},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* ---- output (rank 0) ---------------------------------------------------------- */

typedef struct {
    FILE *table;   /* NULL with --quiet */
    agn_out csv;
    int have_csv;
    long rows, bad_rows;
} sink;

static int emit(const agn_bench_row *r, void *ctx)
{
    sink *s = ctx;
    s->rows++;
    if (r->wrong > 0) s->bad_rows++;
    if (s->table) {
        agn_bench_table_row(s->table, r);
        fflush(s->table);
    }
    if (s->have_csv) agn_bench_csv_row(s->csv.fp, r);
    return 0;
}

static void on_wrong(const char *msg) { agn_warn("wrong result: %s", msg); }

static int parse_ops(const char *s, unsigned *ops)
{
    *ops = 0;
    char *copy = agn_xstrdup(s), *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(copy, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save)) {
        agn_bench_op op;
        if (strcmp(t, "all") == 0) *ops |= (1u << AGN_BENCH_N_OPS) - 1;
        else if (agn_bench_op_parse(t, &op) != 0) rc = agn_adderr("--op");
        else *ops |= 1u << op;
    }
    free(copy);
    if (rc == 0 && *ops == 0) rc = agn_seterr("--op: no collective named");
    return rc;
}

/* ---- main ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    agn_set_progname(argv[0]);
    agn_bench_opts o = {
        .min_bytes = 8, .max_bytes = 256u << 20, .step_factor = 2, .warmup = 5, .iters = 20,
        .check = 1, .dtype = AGN_F32, .ops = 1u << AGN_BENCH_ALLREDUCE, .corrupt_rank = -1,
        .on_wrong = on_wrong,
    };
    long ranks = 0, gpus = 0, v;
    int bind = 1, quiet = 0, cpu = 0, c;
    double comm_timeout = AGN_COMM_TIMEOUT_DEFAULT;
    const char *csv_path = NULL;
    while ((c = getopt_long(argc, argv, "n:g:b:e:f:w:i:c:d:O:qhV", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_CPU: cpu = 1; break;
        case 'n':
            if (agn_parse_long(optarg, 1, 4096, "--ranks", &ranks) != 0) return agn_usage_error("%s", agn_errmsg());
            break;
        case 'g':
            if (agn_parse_long(optarg, 1, 4096, "--gpus", &gpus) != 0) return agn_usage_error("%s", agn_errmsg());
            break;
        case OPT_BIND:
            if (strcmp(optarg, "core") == 0) bind = 1;
            else if (strcmp(optarg, "none") == 0) bind = 0;
            else return agn_usage_error("--bind-to: '%s' is not core or none", optarg);
            break;
        case OPT_COMM_TIMEOUT:
            if (agn_parse_double(optarg, 0.001, 1e7, "--comm-timeout", &comm_timeout) != 0)
                return agn_usage_error("%s", agn_errmsg());
            break;
        case 'b':
        case 'e': {
            uint64_t *dst = c == 'b' ? &o.min_bytes : &o.max_bytes;
            if (agn_parse_size(optarg, c == 'b' ? "--min-bytes" : "--max-bytes", dst) != 0)
                return agn_usage_error("%s", agn_errmsg());
            if (*dst < 1 || *dst > (UINT64_C(1) << 40))
                return agn_usage_error("%s: between 1 byte and 1T", c == 'b' ? "--min-bytes" : "--max-bytes");
            break;
        }
        case 'f':
            if (agn_parse_long(optarg, 2, 1 << 20, "--step-factor", &o.step_factor) != 0)
                return agn_usage_error("%s", agn_errmsg());
            break;
        case 'w':
            if (agn_parse_long(optarg, 0, 1L << 30, "--warmup", &o.warmup) != 0) return agn_usage_error("%s", agn_errmsg());
            break;
        case 'i':
            if (agn_parse_long(optarg, 1, 1L << 30, "--iters", &o.iters) != 0) return agn_usage_error("%s", agn_errmsg());
            break;
        case 'c':
            if (agn_parse_long(optarg, 0, 1, "--check", &v) != 0) return agn_usage_error("%s", agn_errmsg());
            o.check = (int)v;
            break;
        case 'd':
            if (strcmp(optarg, "f32") == 0) o.dtype = AGN_F32;
            else if (strcmp(optarg, "f64") == 0) o.dtype = AGN_F64;
            else return agn_usage_error("--dtype: '%s' is not f32 or f64", optarg);
            break;
        case 'O':
            if (parse_ops(optarg, &o.ops) != 0) return agn_usage_error("%s", agn_errmsg());
            break;
        case OPT_MPI_ALLREDUCE: o.mpi_allreduce = 1; break;
        case OPT_CORRUPT:
            if (agn_parse_long(optarg, 0, 4095, "--corrupt", &v) != 0) return agn_usage_error("%s", agn_errmsg());
            o.corrupt_rank = (int)v;
            break;
        case OPT_CSV: csv_path = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': usage(); return agn_close_stdout() == 0 ? AGN_EXIT_OK : AGN_EXIT_ERROR;
        case 'V': agn_print_version(); return agn_close_stdout() == 0 ? AGN_EXIT_OK : AGN_EXIT_ERROR;
        default: return agn_usage_error("unknown option");
        }
    }
    if (optind < argc) return agn_usage_error("unexpected argument '%s'", argv[optind]);
    if (o.max_bytes < o.min_bytes) return agn_usage_error("--max-bytes is below --min-bytes");
    if (o.max_bytes < agn_dtype_size(o.dtype))
        return agn_usage_error("--max-bytes: %llu bytes hold no %s element", (unsigned long long)o.max_bytes,
                               o.dtype == AGN_F64 ? "f64" : "f32");
    if (gpus && (ranks || cpu)) return agn_usage_error("-g/--gpus and --cpu/-n/--ranks exclude each other");
    if (gpus && o.mpi_allreduce)
        return agn_usage_error("--mpi-allreduce times MPI_Allreduce on host memory: not with -g/--gpus");
    int mpi_world = 1;
    int mpi = agn_mpi_launched(NULL, &mpi_world);
    if (mpi && gpus > 1 && gpus != mpi_world)
        return agn_usage_error("-g %ld, but mpirun/srun started %d processes: each process is one GPU rank "
                               "(give -g %d, or -g 1)", gpus, mpi_world, mpi_world);
    int world = mpi ? mpi_world : gpus ? (int)gpus : ranks > 1 ? (int)ranks : 1;
    if (o.corrupt_rank >= world) return agn_usage_error("--corrupt: there is no rank %d of %d", o.corrupt_rank, world);
    if (o.mpi_allreduce && !mpi)
        return agn_usage_error("--mpi-allreduce needs the mpi transport: run under mpirun or srun");
    if (mpi && ranks > 1) return agn_usage_error("-n/--ranks: under mpirun or srun the ranks are its processes");
    if (gpus) {
        /* as agn-train -g: the supervisor of forked ranks makes no CUDA call
         * (a child counts the GPUs), each rank one GPU of its own */
        if (!agn_comm_nccl_built()) {
            agn_warn("-g %ld: this build has no nccl transport (configure found no CUDA toolkit with NCCL); "
                     "measure CPU ranks with --cpu -n N", gpus);
            return AGN_EXIT_ERROR;
        }
        char gdesc[1024];
        int visible = 0;
        if (agn_gpu_ranks_check(gpus, mpi, 0, &visible, gdesc, sizeof gdesc) != 0) {
            agn_warn("-g %ld: %s", gpus, agn_errmsg());
            return AGN_EXIT_ERROR;
        }
    }

    agn_cleanup_on_signals();
    /* MPI_Allreduce is called from this thread, the transport's collectives
     * from its own: MPI must be initialised for both, before the launch */
    if (o.mpi_allreduce && agn_bench_mpi_init() != 0) {
        agn_warn_err();
        return AGN_EXIT_ERROR;
    }
    agn_launch_opts lo = {.ranks = (int)(gpus ? (mpi ? 0 : gpus) : ranks), .timeout_s = comm_timeout, .bind = bind};
    agn_comm *comm = NULL;
    int status = AGN_EXIT_OK;
    int lrc = agn_launch(&lo, &comm, &status);
    if (lrc == AGN_LAUNCH_DONE) { /* the supervisor of forked ranks */
        if (status != 0) agn_warn_err();
        return status;
    }
    if (lrc < 0) {
        agn_warn_err();
        agn_bench_mpi_finalize();
        return AGN_EXIT_ERROR;
    }

    /* GPU ranks: this rank's GPU, the nccl transport over the host's (at
     * -g 1 too: NCCL's one-rank call is what is measured), a stream the
     * collectives follow, and the benchmark's buffer in device memory */
    void *stream = NULL;
    agn_bench_mem mem;
    char gpu_name[256] = "";
    if (gpus) {
        agn_gpu_comm_opts go = {0};
        int grc = agn_gpu_rank_setup(&comm, 0, 1, &go);
        if (grc == 0 && (agn_cuda_stream_create(go.device, &stream) != 0 || agn_comm_set_stream(comm, stream) != 0))
            grc = agn_adderr("rank %d: GPU %d", comm->rank, go.device);
        if (grc != 0) {
            agn_warn_err();
            agn_comm_abort(comm, agn_errmsg());
            agn_comm_free(comm);
            agn_cuda_stream_free(stream);
            return AGN_EXIT_ERROR;
        }
        agn_bench_cuda_mem(&mem, stream);
        o.mem = &mem;
        agn_cuda_device_name(go.device, gpu_name, sizeof gpu_name);
    }

    sink s = {.table = quiet ? NULL : stdout};
    if (comm->rank == 0) {
        if (csv_path && agn_out_open(&s.csv, csv_path) != 0) {
            agn_warn_err();
            agn_comm_abort(comm, "rank 0 cannot write the CSV");
            agn_comm_free(comm);
            agn_cuda_stream_free(stream);
            agn_bench_mpi_finalize();
            return AGN_EXIT_ERROR;
        }
        s.have_csv = csv_path != NULL;
        if (s.have_csv) fprintf(s.csv.fp, "%s\n", AGN_BENCH_CSV_HEADER);
        if (s.table) agn_bench_table_header(s.table, comm->ops->name, comm->world, &o);
        if (s.table && gpus) fprintf(s.table, "# rank 0: %s\n", gpu_name);
    }
    int rc = agn_bench_run(comm, &o, emit, &s);
    if (rc != 0) {
        agn_warn("rank %d: %s", comm->rank, agn_errmsg());
        if (comm->world > 1) agn_comm_abort(comm, agn_errmsg());
        status = AGN_EXIT_ERROR;
    }
    if (comm->rank == 0) {
        if (s.have_csv) {
            if (status == AGN_EXIT_OK && agn_out_commit(&s.csv) != 0) {
                agn_warn_err();
                status = AGN_EXIT_ERROR;
            } else if (status != AGN_EXIT_OK) {
                agn_out_abort(&s.csv);
            }
        }
        if (status == AGN_EXIT_OK && s.bad_rows) {
            agn_warn("%ld of %ld measurements gave wrong results (see above)", s.bad_rows, s.rows);
            status = AGN_EXIT_ERROR;
        }
        if (agn_close_stdout() != 0 && status == AGN_EXIT_OK) {
            agn_warn_err();
            status = AGN_EXIT_ERROR;
        }
    }
    agn_comm_free(comm);
    agn_cuda_stream_free(stream);
    agn_bench_mpi_finalize();
    return status;
}
