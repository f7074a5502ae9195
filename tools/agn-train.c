/* agn-train: trains the transformer classifier on shards and writes a run
 * directory (DESIGN.md, Run directory).  main() parses the options into a
 * config and trainer options; libcommon/train.c does the work. */
#include "config.h"

#include "backend.h"
#include "comm.h"
#include "comm_gpu.h"
#include "runconfig.h"
#include "device.h"
#include "launch.h"
#include "train.h"
#include "util.h"

#include <getopt.h>
#include <glob.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(void)
{
    printf("Usage: %s -c CONFIG -o RUNDIR [--val SHARD]... [OPTION]... SHARD...\n", agn_progname);
    fputs("Train the agn transformer classifier on training shards (.agns) and write a run\n"
          "directory: config.yaml, metrics.csv, steps.csv, train.log, last.safetensors,\n"
          "best.safetensors.  A SHARD may be a quoted glob ('shards/train-*.agns').\n"
          "\n"
          "Input and output:\n"
          "  -c, --config FILE        model and training config (YAML)\n"
          "  -o, --output DIR         run directory (created)\n"
          "      --val SHARD          validation shard or quoted glob (repeatable)\n"
          "  -v, --vocab FILE         vocabulary the shards were built with, stored in the\n"
          "                           checkpoints (default: vocab.txt beside the shards)\n"
          "      --resume CKPT        continue a run exactly from a last.safetensors\n"
          "  -f, --force              overwrite a previous run in DIR\n"
          "\n"
          "Config overrides:\n"
          "  -e, --epochs N           train.epochs\n"
          "  -b, --global-batch N     train.global_batch (examples per step, all ranks)\n"
          "      --lr X               train.lr (peak learning rate)\n"
          "      --warmup N           train.warmup (steps)\n"
          "      --seed N             train.seed\n"
          "      --dropout X          model.dropout\n"
          "      --log-every N        train.log_every (steps between steps.csv rows)\n"
          "      --eval-every N       train.eval_every (0: validate at epoch ends only)\n"
          "      --max-examples N     train.max_examples (a prefix of each epoch's order)\n"
          "  -s, --set KEY=VALUE      any config key, e.g. -s model.n_layers=4\n"
          "\n"
          "Run:\n"
          "      --max-steps N        stop after N optimizer steps in all (resumable)\n"
          "      --pad-to-max         pad every batch to max_len (default: to the longest\n"
          "                           example of the batch, rounded up to a multiple of 8)\n"
          "  -t, --threads N          threads per rank (default: its CPUs, or all / ranks)\n"
          "      --cpu                train on the CPU\n"
          "  -n, --ranks N            CPU ranks forked on this host\n"
          "  -g, --gpus N             GPU ranks (CUDA), one per GPU, forked on this host\n"
          "      --transport WHAT     with -g: nccl (default) or local (CUDA ranks staged\n"
          "                           through host memory; several may share a GPU)\n"
          "      --wire fp32|bf16     with -g: gradients on NCCL's wire (default fp32)\n"
          "      --bucket-size BYTES  gradient all-reduce bucket (default 1M)\n"
          "      --comm-timeout SEC   a collective waiting longer fails (default 300)\n"
          "      --bind-to WHAT       core: each forked rank on its own cores (default);\n"
          "                           none: wherever the scheduler puts it\n"
          "  -q, --quiet              no progress line or summaries on stderr\n"
          "  -h, --help               show this help and exit\n"
          "  -V, --version            show the version and exit\n",
          stdout);
}

enum {
    OPT_VAL = 256, OPT_LR, OPT_WARMUP, OPT_SEED, OPT_DROPOUT, OPT_LOG_EVERY, OPT_EVAL_EVERY, OPT_MAX_EXAMPLES,
    OPT_MAX_STEPS, OPT_PAD_TO_MAX, OPT_CPU, OPT_BUCKET, OPT_COMM_TIMEOUT, OPT_RESUME, OPT_BIND,
    OPT_TRANSPORT, OPT_WIRE,
};

static const struct option long_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"output", required_argument, NULL, 'o'},
    {"val", required_argument, NULL, OPT_VAL},
    {"vocab", required_argument, NULL, 'v'},
    {"resume", required_argument, NULL, OPT_RESUME},
    {"force", no_argument, NULL, 'f'},
    {"epochs", required_argument, NULL, 'e'},
    {"global-batch", required_argument, NULL, 'b'},
    {"lr", required_argument, NULL, OPT_LR},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"seed", required_argument, NULL, OPT_SEED},
    {"dropout", required_argument, NULL, OPT_DROPOUT},
    {"log-every", required_argument, NULL, OPT_LOG_EVERY},
    {"eval-every", required_argument, NULL, OPT_EVAL_EVERY},
    {"max-examples", required_argument, NULL, OPT_MAX_EXAMPLES},
    {"set", required_argument, NULL, 's'},
    {"max-steps", required_argument, NULL, OPT_MAX_STEPS},
    {"pad-to-max", no_argument, NULL, OPT_PAD_TO_MAX},
    {"threads", required_argument, NULL, 't'},
    {"cpu", no_argument, NULL, OPT_CPU},
    {"ranks", required_argument, NULL, 'n'},
    {"gpus", required_argument, NULL, 'g'},
    {"transport", required_argument, NULL, OPT_TRANSPORT},
    {"wire", required_argument, NULL, OPT_WIRE},
    {"bucket-size", required_argument, NULL, OPT_BUCKET},
    {"comm-timeout", required_argument, NULL, OPT_COMM_TIMEOUT},
    {"bind-to", required_argument, NULL, OPT_BIND},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* ---- file lists ------------------------------------------------------------- */

typedef struct {
    char **v;
    int n, cap;
} strlist;

static void sl_push(strlist *l, const char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->v = agn_xrealloc(l->v, (size_t)l->cap * sizeof *l->v);
    }
    l->v[l->n++] = agn_xstrdup(s);
}

static void sl_free(strlist *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
}

/* Adds PATH, or the files a quoted glob matches (sorted). */
static int add_files(strlist *l, const char *path)
{
    struct stat st;
    if (!strpbrk(path, "*?[") || stat(path, &st) == 0) {
        sl_push(l, path);
        return 0;
    }
    glob_t g;
    int rc = glob(path, 0, NULL, &g);
    if (rc == GLOB_NOMATCH) return agn_seterr("%s: no file matches", path);
    if (rc != 0) return agn_seterr("%s: glob failed", path);
    for (size_t i = 0; i < g.gl_pathc; i++) sl_push(l, g.gl_pathv[i]);
    globfree(&g);
    return 0;
}

/* ---- main ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    agn_set_progname(argv[0]);
    agn_config cfg;
    agn_config_defaults(&cfg);
    const char *config_path = NULL;
    agn_train_opts o;
    memset(&o, 0, sizeof o);
    o.bucket_bytes = 1u << 20;
    strlist val = {0}, train = {0};
    /* overrides are applied after the file is read, in command-line order */
    struct { const char *key, *value, *opt; } sets[256];
    char *set_bufs[256];
    int n_sets = 0, n_bufs = 0;
    long ranks = 0, gpus = 0, threads = 0;
    int bind = 1;
    int cpu = 0;
    int staged = 0, wire_bf16 = 0;
    const char *transport_opt = NULL, *wire_opt = NULL;
    double comm_timeout = 300;
    long v;
    int c;
    int status = AGN_EXIT_OK, lock_fd = -1;
#define USAGE(...)                                  \
    do {                                            \
        status = agn_usage_error(__VA_ARGS__);      \
        goto out;                                   \
    } while (0)
#define SET(k, optname)                                                                        \
    do {                                                                                       \
        if (n_sets == (int)AGN_ARRAY_LEN(sets)) USAGE("too many overrides"); \
        sets[n_sets].key = (k);                                                                \
        sets[n_sets].value = optarg;                                                           \
        sets[n_sets].opt = (optname);                                                          \
        n_sets++;                                                                              \
    } while (0)

    while ((c = getopt_long(argc, argv, "c:o:v:fe:b:s:t:n:g:qhV", long_opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'o': o.run_dir = optarg; break;
        case OPT_VAL:
            if (add_files(&val, optarg) != 0) {
                agn_warn("--val %s", agn_errmsg());
                status = AGN_EXIT_ERROR;
                goto out;
            }
            break;
        case 'v': o.vocab_path = optarg; break;
        case OPT_RESUME: o.resume = optarg; break;
        case 'f': o.force = 1; break;
        case 'e': SET("train.epochs", "--epochs"); break;
        case 'b': SET("train.global_batch", "--global-batch"); break;
        case OPT_LR: SET("train.lr", "--lr"); break;
        case OPT_WARMUP: SET("train.warmup", "--warmup"); break;
        case OPT_SEED: SET("train.seed", "--seed"); break;
        case OPT_DROPOUT: SET("model.dropout", "--dropout"); break;
        case OPT_LOG_EVERY: SET("train.log_every", "--log-every"); break;
        case OPT_EVAL_EVERY: SET("train.eval_every", "--eval-every"); break;
        case OPT_MAX_EXAMPLES: SET("train.max_examples", "--max-examples"); break;
        case 's': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) USAGE("--set '%s': expected KEY=VALUE", optarg);
            if (n_bufs == (int)AGN_ARRAY_LEN(set_bufs) || n_sets == (int)AGN_ARRAY_LEN(sets))
                USAGE("too many overrides");
            char *kv = agn_xstrdup(optarg);
            set_bufs[n_bufs++] = kv;
            kv[eq - optarg] = '\0';
            sets[n_sets].key = kv;
            sets[n_sets].value = kv + (eq - optarg) + 1;
            sets[n_sets].opt = "--set";
            n_sets++;
            break;
        }
        case OPT_MAX_STEPS:
            if (agn_parse_long(optarg, 1, 1L << 50, "--max-steps", &v) != 0) USAGE("%s", agn_errmsg());
            o.max_steps = v;
            break;
        case OPT_PAD_TO_MAX: o.pad_to_max = 1; break;
        case 't':
            if (agn_parse_long(optarg, 1, 4096, "--threads", &threads) != 0) USAGE("%s", agn_errmsg());
            break;
        case OPT_CPU: cpu = 1; break;
        case 'n':
            if (agn_parse_long(optarg, 1, 4096, "--ranks", &ranks) != 0) USAGE("%s", agn_errmsg());
            break;
        case 'g':
            if (agn_parse_long(optarg, 1, 4096, "--gpus", &gpus) != 0) USAGE("%s", agn_errmsg());
            break;
        case OPT_BUCKET:
            if (agn_parse_size(optarg, "--bucket-size", &o.bucket_bytes) != 0) USAGE("%s", agn_errmsg());
            if (o.bucket_bytes < 4) USAGE("--bucket-size: at least 4 bytes");
            break;
        case OPT_COMM_TIMEOUT:
            if (agn_parse_double(optarg, 0.001, 1e7, "--comm-timeout", &comm_timeout) != 0)
                USAGE("%s", agn_errmsg());
            break;
        case OPT_TRANSPORT:
            if (strcmp(optarg, "nccl") == 0) staged = 0;
            else if (strcmp(optarg, "local") == 0) staged = 1;
            else USAGE("--transport: '%s' is not nccl or local", optarg);
            transport_opt = optarg;
            break;
        case OPT_WIRE:
            if (strcmp(optarg, "fp32") == 0) wire_bf16 = 0;
            else if (strcmp(optarg, "bf16") == 0) wire_bf16 = 1;
            else USAGE("--wire: '%s' is not fp32 or bf16", optarg);
            wire_opt = optarg;
            break;
        case OPT_BIND:
            if (strcmp(optarg, "core") == 0) bind = 1;
            else if (strcmp(optarg, "none") == 0) bind = 0;
            else USAGE("--bind-to: '%s' is not core or none", optarg);
            break;
        case 'q': o.quiet = 1; break;
        case 'h':
            usage();
            status = agn_stdout_status();
            goto out;
        case 'V':
            agn_print_version();
            status = agn_stdout_status();
            goto out;
        default: USAGE("unknown option");
        }
    }
    if (!config_path) USAGE("no config given (-c CONFIG)");
    if (!o.run_dir) USAGE("no run directory given (-o DIR)");
    if (optind >= argc) USAGE("no training shards given");
    for (int i = optind; i < argc; i++)
        if (add_files(&train, argv[i]) != 0) {
            agn_warn_err();
            status = AGN_EXIT_ERROR;
            goto out;
        }
    if (gpus && (cpu || ranks)) USAGE("-g/--gpus and --cpu/-n/--ranks exclude each other");
    if (!gpus && transport_opt) USAGE("--transport is for GPU ranks: give -g N");
    if (!gpus && wire_opt) USAGE("--wire is for GPU ranks: give -g N");
    if (staged && wire_bf16) USAGE("--wire bf16 is NCCL's: --transport local moves fp32");

    if (agn_config_load(&cfg, config_path) != 0) {
        agn_warn_err();
        status = AGN_EXIT_ERROR;
        goto out;
    }
    for (int i = 0; i < n_sets; i++)
        if (agn_config_set(&cfg, sets[i].key, sets[i].value, sets[i].opt) != 0) {
            USAGE("%s", agn_errmsg());
        }
    if (agn_config_check(&cfg) != 0) {
        agn_warn_err();
        status = AGN_EXIT_ERROR;
        goto out;
    }

    /* ---- backend and ranks
     * GPU ranks (-g N, or neither -g nor -n nor --cpu and a GPU is there):
     * the CUDA backend; one rank a GPU, forked here or one per process under
     * mpirun/srun.  The supervisor of forked ranks makes no CUDA call (a
     * CUDA context does not survive fork): it counts the GPUs in a child
     * process (agn_gpu_probe), and each rank makes its own device current. */
    const agn_backend_ops *backend = NULL; /* NULL: the CPU */
    char why_cpu[600] = "", gdesc[1024];
    int mrank = 0, mworld = 1, under_mpi = agn_mpi_launched(&mrank, &mworld);
    if (gpus) {
        if (under_mpi && gpus > 1 && gpus != mworld)
            USAGE("-g %ld, but mpirun/srun started %d processes: each process is one GPU rank "
                  "(give -g %d, or -g 1)", gpus, mworld, mworld);
        backend = agn_backend_find("cuda");
        if (!backend) {
            agn_warn("-g %ld: %s; train on the CPU with --cpu", gpus, agn_errmsg());
            status = AGN_EXIT_ERROR;
            goto out;
        }
        int visible = 0;
        if (agn_gpu_ranks_check(gpus, under_mpi, staged, &visible, gdesc, sizeof gdesc) != 0) {
            agn_warn("-g %ld: %s%s", gpus, agn_errmsg(),
                     visible > 0 ? ", or --transport local to stage through host memory" : "");
            status = AGN_EXIT_ERROR;
            goto out;
        }
        if (!staged && (gpus > 1 || mworld > 1) && !agn_comm_nccl_built()) {
            agn_warn("-g %ld: this build has no NCCL (configure found none); --transport local stages "
                     "through host memory instead", gpus);
            status = AGN_EXIT_ERROR;
            goto out;
        }
    } else if (!cpu && !ranks) {
        /* neither: a GPU if there is one (no fork follows: asking here is safe) */
        if (!agn_backend_cuda) {
            snprintf(why_cpu, sizeof why_cpu, "this build has no CUDA backend");
        } else if (agn_cuda_device_count() == 0) {
            snprintf(why_cpu, sizeof why_cpu, "no usable GPU: %s", agn_cuda_device_name(0, gdesc, sizeof gdesc));
        } else if (under_mpi && mworld > 1 && !agn_comm_nccl_built()) {
            snprintf(why_cpu, sizeof why_cpu, "a GPU is there, but this build has no NCCL for %d ranks", mworld);
        } else {
            backend = agn_backend_cuda;
            gpus = 1;
        }
    } else if (!cpu) {
        snprintf(why_cpu, sizeof why_cpu, "-n gives CPU ranks (-g N for GPU ranks)");
    }
    /* The run directory is this job's alone while it runs (two runs into
     * one directory would mix their files): locked by the process that
     * writes it, the supervisor of forked ranks (the ranks inherit the
     * lock), or rank 0 of an MPI job.  Then temporaries of a run killed
     * before it could remove them (SIGKILL, a power cut) are removed. */
    if (!under_mpi || mrank == 0) {
        if ((lock_fd = agn_lock_dir(o.run_dir)) < 0) {
            agn_warn_err();
            status = AGN_EXIT_ERROR;
            goto out;
        }
        static const char *const outputs[] = {"last.safetensors", "best.safetensors",
                                              "config.yaml", "metrics.csv", "steps.csv"};
        int stale = 0;
        for (size_t i = 0; i < AGN_ARRAY_LEN(outputs); i++) {
            size_t n = strlen(o.run_dir) + strlen(outputs[i]) + 2;
            char *p = agn_xmalloc(n);
            snprintf(p, n, "%s/%s", o.run_dir, outputs[i]);
            stale += agn_remove_stale_tmp(p);
            free(p);
        }
        if (stale && !o.quiet)
            agn_warn("%s: removed %d temporary file(s) of a run that was killed", o.run_dir, stale);
    }
    /* Ranks: forked here with -n N or -g N, or this process is one rank of
     * an MPI job, or the only rank.  Before any thread exists: it forks. */
    agn_cleanup_on_signals();
    agn_launch_opts lo = {.ranks = (int)(gpus ? (under_mpi ? 0 : gpus) : ranks), .timeout_s = comm_timeout,
                          .catch_stop = 1, .bind = bind};
    agn_comm *comm = NULL;
    int lrc = agn_launch(&lo, &comm, &status);
    if (lrc == AGN_LAUNCH_DONE) { /* the supervisor of forked ranks */
        if (status != 0) agn_warn_err();
        goto out;
    }
    if (lrc < 0) {
        agn_warn_err();
        status = AGN_EXIT_ERROR;
        goto out;
    }
    /* a bound rank has its own CPUs, a Slurm task its -c; else the ranks
     * of a host divide its CPUs */
    if (threads == 0) threads = agn_launch_threads(comm);
    if (threads < 1) threads = 1;
    /* under mpirun/srun every rank says where it runs and what it was given */
    /* how this rank was started, for stderr (MPI ranks) and train.log */
    char launch_what[1024];
    agn_launch_describe(comm, launch_what, sizeof launch_what);
    o.launch = launch_what;
    if (!o.quiet && comm->ops && strcmp(comm->ops->name, "mpi") == 0) agn_warn("%s; %ld threads", launch_what, threads);
    char device[256];
    int device_index = 0;
    if (backend) {
        /* this rank's GPU, and NCCL between the GPUs; with --transport
         * local the job's transport stays, and the trainer stages the
         * model's buffers over it */
        agn_gpu_comm_opts go = {.wire_bf16 = wire_bf16};
        if (agn_gpu_rank_setup(&comm, staged, comm->world > 1 && !staged, &go) != 0) goto rank_failed;
        device_index = go.device;
        agn_cuda_device_name(device_index, device, sizeof device);
        for (char *p = device; *p; p++) /* a field of metrics.csv */
            if (*p == ',') *p = ';';
        if (!o.quiet && comm->rank == 0)
            agn_warn("training on %d GPU rank%s (%s%s): %s", comm->world, comm->world == 1 ? "" : "s",
                     comm->world == 1 ? "one process" : staged ? "staged through host memory" : "nccl",
                     comm->world > 1 && !staged ? (wire_bf16 ? ", bf16 on the wire" : ", fp32 on the wire") : "",
                     device);
    } else {
        agn_cpu_name(device, sizeof device);
        if (!cpu && !o.quiet && comm->rank == 0)
            agn_warn("training on the CPU (%ld threads): %s", threads, why_cpu);
    }

    o.cfg = &cfg;
    o.train_paths = train.v;
    o.n_train = train.n;
    o.val_paths = val.v;
    o.n_val = val.n;
    o.threads = (int)threads;
    o.device = device;
    o.backend = backend;
    o.device_index = device_index;
    o.stop = agn_stop_flag();

    int rc = agn_train(&o, comm);
    if (rc < 0) {
        if (comm->world > 1) {
            /* ranks not forked here may be on other hosts: the host too */
            char host[256] = "";
            if (strcmp(comm->ops->name, "local") != 0 && gethostname(host + 2, sizeof host - 4) == 0) {
                host[0] = ' ';
                host[1] = '(';
                host[sizeof host - 2] = '\0';
                strcat(host, ")");
            }
            agn_warn("rank %d%s: %s", comm->rank, host, agn_errmsg());
            /* the other ranks fail at their next wait instead of timing out
             * (with MPI this ends the whole job) */
            agn_comm_abort(comm, agn_errmsg());
        } else {
            agn_warn_err();
        }
        status = AGN_EXIT_ERROR;
    } else if (rc == AGN_TRAIN_STOPPED) {
        status = 128 + (agn_stop_requested() ? agn_stop_requested() : SIGINT);
    }
    agn_comm_free(comm);
    goto out;
rank_failed:
    /* a rank that cannot set up its GPU: the others must not wait for it */
    agn_warn_err();
    agn_comm_abort(comm, agn_errmsg());
    agn_comm_free(comm);
    status = AGN_EXIT_ERROR;
out:
    if (lock_fd >= 0) close(lock_fd);
    agn_config_free(&cfg);
    for (int i = 0; i < n_bufs; i++) free(set_bufs[i]);
    sl_free(&val);
    sl_free(&train);
    return status;
}
