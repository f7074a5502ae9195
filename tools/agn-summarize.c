/* agn-summarize: reads the metrics of agn-train runs and reports how
 * data-parallel training scaled: per config, one column per world size with
 * epoch time, speedup, efficiency, accuracy and the compute/communication
 * ratio R, an Amdahl fit and a verdict in words; optionally gnuplot plots.
 * The work is in libcommon/summary.c; this file parses options, finds
 * gnuplot and runs it. */
#include "config.h"
#include "project.h"
#include "summary.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

static void usage(void)
{
    printf("Usage: %s [OPTION]... RUN...\n"
           "Summarize how agn-train runs scaled with the number of ranks.  Each RUN is a run\n"
           "directory (its metrics.csv is read) or a metrics.csv file ('-' for stdin).\n"
           "Runs are grouped by config, parameter count, global batch, training data and\n"
           "backend; groups are never compared with each other.\n"
           "\n"
           "  -f, --format=FMT   table format: md (default), csv or json\n"
           "  -o, --output=FILE  write the table to FILE (atomically) instead of stdout\n"
           "  -p, --plot=DIR     write gnuplot data and scripts to DIR and render them\n"
           "                     as PNG and SVG when gnuplot is found\n"
           "      --no-render    with --plot, write the data and scripts only\n"
           "      --single       the runs are one comparison: fail if they do not form\n"
           "                     one group, naming what differs\n"
           "  -q, --quiet        no notes on stderr\n"
           "\n"
           "Projection to W devices over a link (see agn-summarize(1), Projection):\n"
           "      --link=FILE          a link measured by agn-bench-comm --csv (repeatable)\n"
           "      --preset=NAME        a named link: pcie3, pcie4, pcie5, nvlink2, nvlink3,\n"
           "                           nvlink4, ib100, ib200, ib400 (repeatable)\n"
           "      --project=LIST       world sizes to project (default 1,2,4,8,16)\n"
           "      --devices=N          the ranks share N devices (default: one each)\n"
           "      --compute-scale=X    compute, optimizer and data X times as fast\n"
           "      --calibrate=W|none   the run whose overlap, imbalance and optimizer\n"
           "                           calibrate the model (default: the smallest W > 1)\n"
           "      --hidden=F           fraction of the overlappable communication hidden\n"
           "      --emb-rows=N         embedding rows reduced a step (default: the tokens\n"
           "                           of a step, at most the vocabulary)\n"
           "      --bucket-size=BYTES  gradient bucket (default: the run's)\n"
           "      --reduction=WHAT     agn (default): agn's sharded, sparse reduction;\n"
           "                           dense: every bucket all-reduced whole (PyTorch DDP)\n"
           "      --projection-csv=FILE  also write the projection as CSV\n"
           "  -h, --help         show this help and exit\n"
           "  -V, --version      show the version and exit\n"
           "\n"
           "gnuplot is taken from $GNUPLOT, else the one found by configure, else PATH.\n"
           "See agn-summarize(1) for the definitions of every figure.\n",
           agn_progname);
}

/* ---- gnuplot -------------------------------------------------------------- */

static char *search_path(const char *prog)
{
    if (strchr(prog, '/')) return access(prog, X_OK) == 0 ? agn_xstrdup(prog) : NULL;
    const char *path = getenv("PATH");
    if (!path) return NULL;
    char *copy = agn_xstrdup(path), *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        size_t n = strlen(d) + strlen(prog) + 2;
        char *p = agn_xmalloc(n);
        snprintf(p, n, "%s/%s", *d ? d : ".", prog);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0) {
            free(copy);
            return p;
        }
        free(p);
    }
    free(copy);
    return NULL;
}

/* The gnuplot to run, or NULL with *why saying where it looked. */
static char *find_gnuplot(char *why, size_t n)
{
    const char *env = getenv("GNUPLOT");
    if (env && *env) {
        char *p = search_path(env);
        if (!p) snprintf(why, n, "GNUPLOT=%s is not an executable program", env);
        return p;
    }
#ifdef GNUPLOT_PATH
    if (access(GNUPLOT_PATH, X_OK) == 0) return agn_xstrdup(GNUPLOT_PATH);
#endif
    char *p = search_path("gnuplot");
    if (!p) snprintf(why, n, "gnuplot is not installed (not on PATH%s)",
#ifdef GNUPLOT_PATH
                     ", nor at " GNUPLOT_PATH
#else
                     ""
#endif
        );
    return p;
}

/* Runs DIR/NAME.gp so that it writes NAME.{png,svg}.tmp.PID, then renames
 * them: a plot appears under its name only when gnuplot succeeded. */
static char *concat(const char *a, const char *b, const char *c, const char *d)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + strlen(d) + 1;
    char *s = agn_xmalloc(n);
    snprintf(s, n, "%s%s%s%s", a, b, c, d);
    return s;
}

/* Whether the image at PATH is whole: a PNG ends with its IEND chunk, an
 * SVG with </svg> (and white space). */
static int complete_image(const char *path, int svg)
{
    static const unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    unsigned char tail[64];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat st;
    ssize_t got = -1;
    if (fstat(fd, &st) == 0 && st.st_size >= 12) {
        off_t at = st.st_size > (off_t)sizeof tail ? st.st_size - (off_t)sizeof tail : 0;
        got = pread(fd, tail, (size_t)(st.st_size - at), at);
    }
    close(fd);
    if (got < 12) return 0;
    if (!svg) return memcmp(tail + got - 12, iend, 12) == 0;
    while (got > 0 && (tail[got - 1] == '\n' || tail[got - 1] == ' ' || tail[got - 1] == '\r' ||
                       tail[got - 1] == '\t'))
        got--;
    return got >= 6 && memcmp(tail + got - 6, "</svg>", 6) == 0;
}

/* "; the disk is full" when the file system of DIR has no space left, else
 * a hint that it may be */
static const char *disk_note(const char *dir)
{
    struct statvfs vs;
    if (statvfs(dir, &vs) == 0 && (vs.f_bavail == 0 || vs.f_favail == 0))
        return ": No space left on device (the disk is full)";
    return "; is the disk full?";
}

static int render_one(const char *gnuplot, const char *dir, const char *name)
{
    char suffix[32], expr[64];
    static const char *const ext[2] = { ".png", ".svg" };
    snprintf(suffix, sizeof suffix, ".tmp.%ld", (long)getpid());
    snprintf(expr, sizeof expr, "suffix='%s'", suffix);
    char *base = concat(dir, "/", name, "");
    char *script = concat(base, ".gp", "", "");
    char *fin[2], *tmp[2];
    for (int i = 0; i < 2; i++) {
        fin[i] = concat(base, ext[i], "", "");
        tmp[i] = concat(base, ext[i], suffix, "");
    }
    fflush(stdout);
    fflush(stderr);
    int rc = 0;
    pid_t pid = fork();
    if (pid < 0) {
        rc = agn_seterr_errno("fork");
    } else if (pid == 0) {
        int fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, 0);
            dup2(fd, 1); /* stdout may carry the table */
            if (fd > 1) close(fd);
        }
        execl(gnuplot, gnuplot, "-e", expr, script, (char *)NULL);
        fprintf(stderr, "%s: %s: %s\n", agn_progname, gnuplot, strerror(errno));
        _exit(127);
    } else {
        int st;
        while (waitpid(pid, &st, 0) < 0)
            if (errno != EINTR) {
                st = -1;
                break;
            }
        if (st == -1) rc = agn_seterr_errno("waitpid");
        else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            rc = agn_seterr("gnuplot failed on %s (%s %d)", script,
                            WIFEXITED(st) ? "exit status" : "signal",
                            WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        for (int i = 0; i < 2 && rc == 0; i++) {
            struct stat sb;
            if (stat(tmp[i], &sb) != 0 || sb.st_size == 0)
                rc = agn_seterr("gnuplot wrote no %s for %s%s", ext[i] + 1, script, disk_note(dir));
            else if (!complete_image(tmp[i], i))
                rc = agn_seterr("%s: gnuplot's image is incomplete (it exits 0 when a write "
                                "fails)%s", fin[i], disk_note(dir));
        }
        for (int i = 0; i < 2; i++) {
            if (rc == 0 && agn_rename(tmp[i], fin[i]) != 0) rc = agn_seterr_errno("%s", fin[i]);
            if (rc != 0) unlink(tmp[i]);
        }
    }
    for (int i = 0; i < 2; i++) {
        free(fin[i]);
        free(tmp[i]);
    }
    free(script);
    free(base);
    return rc;
}

static int plots(const agn_summary *s, const agn_projection *pj, const char *dir, int render)
{
    if (agn_summary_write_plots(s, dir) != 0) return -1;
    if (pj && agn_projection_write_plots(pj, s, dir) != 0) return -1;
    if (!render) {
        agn_warn("plot data and scripts in %s; render them with: gnuplot %s/*.gp", dir, dir);
        return 0;
    }
    char why[512] = "";
    char *gp = find_gnuplot(why, sizeof why);
    if (!gp) {
        agn_warn("%s: wrote the plot data and scripts to %s but no images; install gnuplot "
                 "and render them with: gnuplot %s/*.gp", why, dir, dir);
        return 0;
    }
    int rc = 0;
    for (int i = 0; agn_summary_plot_names[i] && rc == 0; i++)
        rc = render_one(gp, dir, agn_summary_plot_names[i]);
    for (int i = 0; pj && agn_projection_plot_names[i] && rc == 0; i++)
        rc = render_one(gp, dir, agn_projection_plot_names[i]);
    free(gp);
    return rc;
}

/* ---- main ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    agn_set_progname(argv[0]);
    enum {
        OPT_NO_RENDER = 256, OPT_SINGLE, OPT_LINK, OPT_PRESET, OPT_PROJECT, OPT_DEVICES, OPT_SCALE,
        OPT_CALIBRATE, OPT_HIDDEN, OPT_EMB_ROWS, OPT_BUCKET, OPT_PROJ_CSV, OPT_REDUCTION,
    };
    static const struct option longopts[] = {
        { "format", required_argument, NULL, 'f' },
        { "output", required_argument, NULL, 'o' },
        { "plot", required_argument, NULL, 'p' },
        { "no-render", no_argument, NULL, OPT_NO_RENDER },
        { "single", no_argument, NULL, OPT_SINGLE },
        { "link", required_argument, NULL, OPT_LINK },
        { "preset", required_argument, NULL, OPT_PRESET },
        { "project", required_argument, NULL, OPT_PROJECT },
        { "devices", required_argument, NULL, OPT_DEVICES },
        { "compute-scale", required_argument, NULL, OPT_SCALE },
        { "calibrate", required_argument, NULL, OPT_CALIBRATE },
        { "hidden", required_argument, NULL, OPT_HIDDEN },
        { "emb-rows", required_argument, NULL, OPT_EMB_ROWS },
        { "bucket-size", required_argument, NULL, OPT_BUCKET },
        { "projection-csv", required_argument, NULL, OPT_PROJ_CSV },
        { "reduction", required_argument, NULL, OPT_REDUCTION },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *format = "md", *output = "-", *plotdir = NULL;
    int render = 1, single = 0, quiet = 0, c;
    /* the projection: links in command-line order */
    agn_link links[32];
    int n_links = 0, link_bad = 0;
    long worlds[64];
    int n_worlds = 0;
    const char *proj_csv = NULL;
    agn_proj_opts po = { .compute_scale = 1, .hidden = -1, .calibrate = 0 };
    long lv;
    double dv;
#define PUSAGE(...)                                   \
    do {                                              \
        for (int q = 0; q < n_links; q++) agn_link_free(&links[q]); \
        return agn_usage_error(__VA_ARGS__);          \
    } while (0)
    while ((c = getopt_long(argc, argv, "f:o:p:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': format = optarg; break;
        case 'o': output = optarg; break;
        case 'p': plotdir = optarg; break;
        case OPT_NO_RENDER: render = 0; break;
        case OPT_SINGLE: single = 1; break;
        case OPT_LINK:
        case OPT_PRESET:
            if (n_links == (int)AGN_ARRAY_LEN(links)) PUSAGE("too many links");
            if ((c == OPT_LINK ? agn_link_read(&links[n_links], optarg)
                               : agn_link_preset(&links[n_links], optarg)) != 0) {
                if (c == OPT_PRESET) PUSAGE("--preset: %s", agn_errmsg());
                agn_warn_err(); /* a bad file: reported with the bad runs below */
                link_bad++;
                break;
            }
            n_links++;
            break;
        case OPT_PROJECT: {
            char *copy = agn_xstrdup(optarg), *save = NULL;
            n_worlds = 0;
            for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (n_worlds == (int)AGN_ARRAY_LEN(worlds) ||
                    agn_parse_long(t, 1, 1 << 20, "--project", &lv) != 0 ||
                    (n_worlds && lv <= worlds[n_worlds - 1])) {
                    free(copy);
                    PUSAGE("--project: '%s': expected ascending world sizes, e.g. 1,2,4,8", optarg);
                }
                worlds[n_worlds++] = lv;
            }
            free(copy);
            if (!n_worlds) PUSAGE("--project: no world size given");
            break;
        }
        case OPT_DEVICES:
            if (agn_parse_long(optarg, 1, 1 << 20, "--devices", &po.devices) != 0) PUSAGE("%s", agn_errmsg());
            break;
        case OPT_SCALE:
            if (agn_parse_double(optarg, 1e-6, 1e9, "--compute-scale", &po.compute_scale) != 0)
                PUSAGE("%s", agn_errmsg());
            break;
        case OPT_CALIBRATE:
            if (strcmp(optarg, "none") == 0) po.calibrate = -1;
            else if (agn_parse_long(optarg, 2, 1 << 20, "--calibrate", &po.calibrate) != 0)
                PUSAGE("%s (or none)", agn_errmsg());
            break;
        case OPT_HIDDEN:
            if (agn_parse_double(optarg, 0, 1, "--hidden", &po.hidden) != 0) PUSAGE("%s", agn_errmsg());
            break;
        case OPT_EMB_ROWS:
            if (agn_parse_double(optarg, 1, 1e9, "--emb-rows", &dv) != 0) PUSAGE("%s", agn_errmsg());
            po.emb_rows = dv;
            break;
        case OPT_BUCKET:
            if (agn_parse_size(optarg, "--bucket-size", &po.bucket_bytes) != 0) PUSAGE("%s", agn_errmsg());
            if (po.bucket_bytes < 4) PUSAGE("--bucket-size: at least 4 bytes");
            break;
        case OPT_PROJ_CSV: proj_csv = optarg; break;
        case OPT_REDUCTION:
            if (strcmp(optarg, "agn") == 0) po.dense = 0;
            else if (strcmp(optarg, "dense") == 0) po.dense = 1;
            else PUSAGE("--reduction: '%s' is not agn or dense", optarg);
            break;
        case 'q': quiet = 1; break;
        case 'h': usage(); return agn_stdout_status();
        case 'V': agn_print_version(); return agn_stdout_status();
        default: /* getopt_long has said what is wrong */
            for (int q = 0; q < n_links; q++) agn_link_free(&links[q]);
            fprintf(stderr, "Try '%s --help' for more information.\n", agn_progname);
            return AGN_EXIT_USAGE;
        }
    }
    int (*writer)(const agn_summary *, FILE *);
    if (strcmp(format, "md") == 0) writer = agn_summary_write_md;
    else if (strcmp(format, "csv") == 0) writer = agn_summary_write_csv;
    else if (strcmp(format, "json") == 0) writer = agn_summary_write_json;
    else PUSAGE("--format: '%s' is not md, csv or json", format);
    if (optind >= argc) PUSAGE("no run directories or metrics files given");
    int projecting = n_links > 0 || link_bad > 0;
    if (!projecting && (n_worlds || proj_csv || po.devices || po.compute_scale != 1 || po.calibrate ||
                        po.hidden >= 0 || po.emb_rows > 0 || po.bucket_bytes || po.dense))
        PUSAGE("the projection options need a link: --link FILE or --preset NAME");
    if (!n_worlds) {
        static const long dflt[] = { 1, 2, 4, 8, 16 };
        for (size_t i = 0; i < AGN_ARRAY_LEN(dflt); i++) worlds[n_worlds++] = dflt[i];
    }
    po.worlds = worlds;
    po.n_worlds = n_worlds;
    if (!plotdir && !render) PUSAGE("--no-render needs --plot");
    if (plotdir && !*plotdir) PUSAGE("--plot: empty directory name");
    agn_cleanup_on_signals();

    /* every input is read, so that one pass reports every bad one; any bad
     * input means no summary: a table missing a run would be wrong */
    agn_summary s = { 0 };
    int bad = link_bad;
    for (int i = optind; i < argc; i++)
        if (agn_summary_read(&s, argv[i]) != 0) {
            agn_warn_err();
            bad++;
        }
    if (bad) {
        agn_warn("%d of %d input%s unreadable: no summary written", bad, argc - optind + link_bad,
                 argc - optind + link_bad == 1 ? "" : "s");
        agn_summary_free(&s);
        for (int q = 0; q < n_links; q++) agn_link_free(&links[q]);
        return AGN_EXIT_ERROR;
    }
    agn_projection pj = { 0 };
    if (agn_summary_compute(&s, single) != 0 ||
        (projecting && agn_project(&pj, &s, links, n_links, &po) != 0)) {
        agn_warn_err();
        agn_projection_free(&pj);
        agn_summary_free(&s);
        for (int q = 0; q < n_links; q++) agn_link_free(&links[q]);
        return AGN_EXIT_ERROR;
    }
    if (!quiet)
        for (int i = 0; i < s.n_notes; i++) agn_warn("note: %s", s.notes[i]);
    if (!quiet)
        for (int i = 0; i < pj.n_notes; i++) agn_warn("note: %s", pj.notes[i]);

    int status = AGN_EXIT_OK;
    agn_out out;
    if (agn_out_open(&out, output) != 0 || writer(&s, out.fp) != 0 ||
        (projecting && writer == agn_summary_write_md && agn_projection_write_md(&pj, &s, out.fp) != 0)) {
        if (out.fp) {
            agn_seterr_errno("%s", output);
            agn_out_abort(&out);
        }
        agn_warn_err();
        status = AGN_EXIT_ERROR;
    } else if (agn_out_commit(&out) != 0) {
        agn_warn_err();
        status = AGN_EXIT_ERROR;
    }
    if (status == AGN_EXIT_OK && projecting && proj_csv) {
        agn_out pc;
        if (agn_out_open(&pc, proj_csv) != 0) {
            agn_warn_err();
            status = AGN_EXIT_ERROR;
        } else if (agn_projection_write_csv(&pj, &s, pc.fp) != 0) {
            agn_seterr_errno("%s", proj_csv);
            agn_out_abort(&pc);
            agn_warn_err();
            status = AGN_EXIT_ERROR;
        } else if (agn_out_commit(&pc) != 0) {
            agn_warn_err();
            status = AGN_EXIT_ERROR;
        }
    }
    if (projecting && !quiet && writer != agn_summary_write_md && !proj_csv)
        agn_warn("note: the projection is written with -f md or --projection-csv only");
    if (status == AGN_EXIT_OK && plotdir &&
        plots(&s, projecting && pj.n_groups > 0 ? &pj : NULL, plotdir, render) != 0) {
        agn_warn_err();
        status = AGN_EXIT_ERROR;
    }
    agn_projection_free(&pj);
    for (int q = 0; q < n_links; q++) agn_link_free(&links[q]);
    agn_summary_free(&s);
    if (agn_close_stdout() != 0 && status == AGN_EXIT_OK) {
        agn_warn_err();
        status = AGN_EXIT_ERROR;
    }
    return status;
}
