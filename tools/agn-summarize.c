/* agn-summarize: reads the metrics of agn-train runs and reports how
 * data-parallel training scaled: per config, one column per world size with
 * epoch time, speedup, efficiency, accuracy and the compute/communication
 * ratio R, an Amdahl fit and a verdict in words; optionally gnuplot plots.
 * The work is in libcommon/summary.c; this file parses options, finds
 * gnuplot and runs it. */
#include "config.h"
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

static int plots(const agn_summary *s, const char *dir, int render)
{
    if (agn_summary_write_plots(s, dir) != 0) return -1;
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
    free(gp);
    return rc;
}

/* ---- main ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    agn_set_progname(argv[0]);
    enum { OPT_NO_RENDER = 256, OPT_SINGLE };
    static const struct option longopts[] = {
        { "format", required_argument, NULL, 'f' },
        { "output", required_argument, NULL, 'o' },
        { "plot", required_argument, NULL, 'p' },
        { "no-render", no_argument, NULL, OPT_NO_RENDER },
        { "single", no_argument, NULL, OPT_SINGLE },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *format = "md", *output = "-", *plotdir = NULL;
    int render = 1, single = 0, quiet = 0, c;
    while ((c = getopt_long(argc, argv, "f:o:p:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': format = optarg; break;
        case 'o': output = optarg; break;
        case 'p': plotdir = optarg; break;
        case OPT_NO_RENDER: render = 0; break;
        case OPT_SINGLE: single = 1; break;
        case 'q': quiet = 1; break;
        case 'h': usage(); return agn_stdout_status();
        case 'V': agn_print_version(); return agn_stdout_status();
        default: /* getopt_long has said what is wrong */
            fprintf(stderr, "Try '%s --help' for more information.\n", agn_progname);
            return AGN_EXIT_USAGE;
        }
    }
    int (*writer)(const agn_summary *, FILE *);
    if (strcmp(format, "md") == 0) writer = agn_summary_write_md;
    else if (strcmp(format, "csv") == 0) writer = agn_summary_write_csv;
    else if (strcmp(format, "json") == 0) writer = agn_summary_write_json;
    else return agn_usage_error("--format: '%s' is not md, csv or json", format);
    if (optind >= argc) return agn_usage_error("no run directories or metrics files given");
    if (!plotdir && !render) return agn_usage_error("--no-render needs --plot");
    if (plotdir && !*plotdir) return agn_usage_error("--plot: empty directory name");
    agn_cleanup_on_signals();

    /* every input is read, so that one pass reports every bad one; any bad
     * input means no summary: a table missing a run would be wrong */
    agn_summary s = { 0 };
    int bad = 0;
    for (int i = optind; i < argc; i++)
        if (agn_summary_read(&s, argv[i]) != 0) {
            agn_warn_err();
            bad++;
        }
    if (bad) {
        agn_warn("%d of %d input%s unreadable: no summary written", bad, argc - optind,
                 argc - optind == 1 ? "" : "s");
        agn_summary_free(&s);
        return AGN_EXIT_ERROR;
    }
    if (agn_summary_compute(&s, single) != 0) {
        agn_warn_err();
        agn_summary_free(&s);
        return AGN_EXIT_ERROR;
    }
    if (!quiet)
        for (int i = 0; i < s.n_notes; i++) agn_warn("note: %s", s.notes[i]);

    int status = AGN_EXIT_OK;
    agn_out out;
    if (agn_out_open(&out, output) != 0 || writer(&s, out.fp) != 0) {
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
    if (status == AGN_EXIT_OK && plotdir && plots(&s, plotdir, render) != 0) {
        agn_warn_err();
        status = AGN_EXIT_ERROR;
    }
    agn_summary_free(&s);
    if (agn_close_stdout() != 0 && status == AGN_EXIT_OK) {
        agn_warn_err();
        status = AGN_EXIT_ERROR;
    }
    return status;
}
