/* summary.c: reads agn-train's metrics files, groups comparable runs,
 * derives the scaling figures (epoch time, speedup, efficiency, R, an Amdahl
 * fit), words a verdict, and writes tables and gnuplot material.  See
 * summary.h for the model and man/agn-summarize.1 for the definitions. */
#include "summary.h"
#include "csvread.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* A run with at least this many epochs has its first epoch left out of the
 * timing (warm-up: page faults, thread start, allocator growth). */
#define FIRST_EPOCH_RULE 3

/* ---- small helpers ------------------------------------------------------- */

/* Room for element N of an array that grows one element at a time: the
 * capacity doubles at each power of two, so N appends cost O(N) copies in
 * all (a realloc per element copies the whole array each time under the
 * sanitizers' allocator). */
static void *grow(void *p, size_t n, size_t elem)
{
    if (n & (n - 1)) return p; /* not a power of two: there is room */
    return agn_xrealloc(p, (n ? 2 * n : 1) * elem);
}

static void add_note(agn_summary *s, char *note)
{
    s->notes = grow(s->notes, (size_t)s->n_notes, sizeof *s->notes);
    s->notes[s->n_notes++] = note;
}

/* ---- reading ----------------------------------------------------------------- */

enum {
    C_EPOCH, C_WORLD, C_BACKEND, C_CONFIG, C_PARAMS, C_GBATCH, C_DATA_ID, C_SAMPLES,
    C_TIME, C_COMPUTE, C_COMM, C_OPTIM, C_DATA, C_VAL_ACC,
    C_N_REQUIRED,
    C_TRAIN_EX = C_N_REQUIRED, C_TRANSPORT, C_DEVICE, C_THREADS, C_IMBALANCE,
    C_N
};
static const char *const col_names[C_N] = {
    "epoch", "world_size", "backend", "config", "params", "global_batch", "data_id", "samples",
    "epoch_time_s", "compute_s", "comm_s", "optim_s", "data_s", "val_acc",
    "train_examples", "transport", "device", "threads", "imbalance_s",
};

typedef struct {
    const char *file;
    long line;
    char **f;
    int col[C_N];
} rowctx;

static const char *field(const rowctx *r, int c) { return r->col[c] >= 0 ? r->f[r->col[c]] : ""; }

/* A number in [min, max]; with MISSING_OK an empty field or nan/NaN/- is NAN. */
static int num(const rowctx *r, int c, double min, double max, int integer, int missing_ok,
               double *out)
{
    const char *s = field(r, c);
    if (missing_ok && (*s == '\0' || strcmp(s, "-") == 0 || strcasecmp(s, "nan") == 0)) {
        *out = NAN;
        return 0;
    }
    if (*s == '\0')
        return agn_seterr("%s:%ld: column '%s' is empty", r->file, r->line, col_names[c]);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(v))
        return agn_seterr("%s:%ld: column '%s': '%s' is not a number", r->file, r->line,
                          col_names[c], s);
    if (v < min || v > max || errno == ERANGE)
        return agn_seterr("%s:%ld: column '%s': %s is out of range [%g, %g]", r->file, r->line,
                          col_names[c], s, min, max);
    if (integer && v != floor(v))
        return agn_seterr("%s:%ld: column '%s': '%s' is not a whole number", r->file, r->line,
                          col_names[c], s);
    *out = v;
    return 0;
}

static int same_str(const char *a, const char *b) { return strcmp(a, b) == 0; }

static int same_identity(const agn_sum_run *a, const agn_sum_run *b)
{
    return a->world_size == b->world_size && a->params == b->params &&
           a->global_batch == b->global_batch && same_str(a->config, b->config) &&
           same_str(a->data_id, b->data_id) && same_str(a->backend, b->backend);
}

static void run_free(agn_sum_run *r)
{
    free(r->path); free(r->label);
    free(r->config); free(r->data_id); free(r->backend); free(r->transport); free(r->device);
    free(r->ep);
}

/* The label of a run: its directory for DIR/metrics.csv, else the path. */
static char *label_of(const char *file)
{
    if (strcmp(file, "-") == 0) return agn_xstrdup("(stdin)");
    size_t n = strlen(file);
    const char *tail = "/metrics.csv";
    size_t t = strlen(tail);
    if (n > t && strcmp(file + n - t, tail) == 0) {
        char *l = agn_xstrdup(file);
        l[n - t] = '\0';
        while (strlen(l) > 1 && l[strlen(l) - 1] == '/') l[strlen(l) - 1] = '\0';
        return l;
    }
    if (strcmp(file, "metrics.csv") == 0) return agn_xstrdup(".");
    return agn_xstrdup(file);
}

static int read_file(agn_summary *s, const char *file)
{
    int first_run = s->n_runs;
    agn_csvread *cr = agn_csvread_open(file);
    if (!cr) return -1;
    struct stat st;
    if (strcmp(file, "-") != 0 && stat(file, &st) == 0) {
        for (int i = 0; i < s->n_seen; i++)
            if (s->seen[i][0] == (unsigned long long)st.st_dev &&
                s->seen[i][1] == (unsigned long long)st.st_ino) {
                agn_seterr("%s: given twice (it would count twice)", file);
                agn_csvread_close(cr);
                return -1;
            }
        s->seen = grow(s->seen, (size_t)s->n_seen, sizeof *s->seen);
        s->seen[s->n_seen][0] = (unsigned long long)st.st_dev;
        s->seen[s->n_seen][1] = (unsigned long long)st.st_ino;
        s->n_seen++;
    }
    const char *name = agn_csvread_name(cr);
    char **f;
    int nf, rc = agn_csvread_next(cr, &f, &nf);
    if (rc < 0) goto fail;
    if (rc == 0) {
        agn_seterr("%s: empty file (no header line); is the run still in its first epoch?", name);
        goto fail;
    }
    rowctx rx = { .file = name, .line = 0 };
    for (int c = 0; c < C_N; c++) rx.col[c] = -1;
    for (int i = 0; i < nf; i++)
        for (int c = 0; c < C_N; c++)
            if (strcmp(f[i], col_names[c]) == 0 && rx.col[c] < 0) rx.col[c] = i;
    for (int c = 0; c < C_N_REQUIRED; c++)
        if (rx.col[c] < 0) {
            agn_seterr("%s:%ld: no column '%s' in the header (is this an agn-train metrics.csv?)",
                       name, agn_csvread_line(cr), col_names[c]);
            goto fail;
        }
    int n_header = nf;

    int rows = 0;
    agn_sum_run *cur = NULL;
    while ((rc = agn_csvread_next(cr, &f, &nf)) > 0) {
        rx.line = agn_csvread_line(cr);
        rx.f = f;
        if (nf != n_header) {
            agn_seterr("%s:%ld: %d fields, the header has %d", name, rx.line, nf, n_header);
            goto fail;
        }
        agn_sum_run r = { 0 };
        agn_sum_epoch e = { .line = rx.line };
        double epoch, w, params, gb, threads = -1;
        if (num(&rx, C_EPOCH, 0, 1e15, 1, 0, &epoch) || num(&rx, C_WORLD, 1, 1e9, 1, 0, &w) ||
            num(&rx, C_PARAMS, 0, 1e18, 1, 0, &params) ||
            num(&rx, C_GBATCH, 1, 1e15, 1, 0, &gb) ||
            num(&rx, C_SAMPLES, 0, 1e18, 0, 0, &e.samples) ||
            num(&rx, C_TIME, 0, HUGE_VAL, 0, 0, &e.epoch_time) ||
            num(&rx, C_COMPUTE, 0, HUGE_VAL, 0, 0, &e.compute) ||
            num(&rx, C_COMM, 0, HUGE_VAL, 0, 0, &e.comm) ||
            num(&rx, C_OPTIM, 0, HUGE_VAL, 0, 0, &e.optim) ||
            num(&rx, C_DATA, 0, HUGE_VAL, 0, 0, &e.data) ||
            num(&rx, C_VAL_ACC, 0, 1, 0, 1, &e.val_acc))
            goto fail;
        e.train_examples = NAN;
        if (rx.col[C_TRAIN_EX] >= 0 && num(&rx, C_TRAIN_EX, 0, 1e18, 0, 1, &e.train_examples))
            goto fail;
        e.imbalance = NAN; /* metrics.csv before imbalance_s */
        if (rx.col[C_IMBALANCE] >= 0 && num(&rx, C_IMBALANCE, 0, HUGE_VAL, 0, 1, &e.imbalance))
            goto fail;
        if (rx.col[C_THREADS] >= 0 && num(&rx, C_THREADS, 1, 1e9, 1, 1, &threads)) goto fail;
        static const int strcols[] = { C_CONFIG, C_DATA_ID, C_BACKEND };
        for (size_t k = 0; k < AGN_ARRAY_LEN(strcols); k++)
            if (!*field(&rx, strcols[k])) {
                agn_seterr("%s:%ld: column '%s' is empty", name, rx.line, col_names[strcols[k]]);
                goto fail;
            }
        e.epoch = (long)epoch;
        r.world_size = (long)w;
        r.params = (long)params;
        r.global_batch = (long)gb;
        r.threads = isnan(threads) ? -1 : (long)threads;
        r.config = (char *)field(&rx, C_CONFIG);
        r.data_id = (char *)field(&rx, C_DATA_ID);
        r.backend = (char *)field(&rx, C_BACKEND);
        if (!cur || !same_identity(cur, &r)) {
            s->runs = grow(s->runs, (size_t)s->n_runs, sizeof *s->runs);
            cur = &s->runs[s->n_runs++];
            memset(cur, 0, sizeof *cur);
            cur->path = agn_xstrdup(name);
            cur->line = rx.line;
            cur->world_size = r.world_size;
            cur->params = r.params;
            cur->global_batch = r.global_batch;
            cur->threads = r.threads;
            cur->config = agn_xstrdup(r.config);
            cur->data_id = agn_xstrdup(r.data_id);
            cur->backend = agn_xstrdup(r.backend);
            cur->transport = agn_xstrdup(*field(&rx, C_TRANSPORT) ? field(&rx, C_TRANSPORT) : "-");
            cur->device = agn_xstrdup(*field(&rx, C_DEVICE) ? field(&rx, C_DEVICE) : "-");
        }
        cur->ep = grow(cur->ep, (size_t)cur->n_ep, sizeof *cur->ep);
        cur->ep[cur->n_ep++] = e;
        rows++;
    }
    if (rc < 0) goto fail;
    if (rows == 0) {
        agn_seterr("%s: a header but no rows (did the run finish an epoch?)", name);
        goto fail;
    }
    /* labels: the run directory, with the epochs when one file held several runs */
    char *base = label_of(file);
    for (int i = first_run; i < s->n_runs; i++) {
        agn_sum_run *r = &s->runs[i];
        if (s->n_runs - first_run == 1)
            r->label = agn_xstrdup(base);
        else
            r->label = agn_xasprintf("%s (epochs %ld-%ld)", base, r->ep[0].epoch,
                                 r->ep[r->n_ep - 1].epoch);
    }
    if (s->n_runs - first_run > 1)
        add_note(s, agn_xasprintf("%s holds %d runs (world size, config, batch, data or backend "
                              "changes between epochs, e.g. a resume with another rank "
                              "count): each is summarized on its own",
                              name, s->n_runs - first_run));
    free(base);
    agn_csvread_close(cr);
    return 0;

fail:
    /* drop the runs this file started, so the summary holds whole files only */
    while (s->n_runs > first_run) run_free(&s->runs[--s->n_runs]);
    agn_csvread_close(cr);
    return -1;
}

int agn_summary_read(agn_summary *s, const char *path)
{
    struct stat st;
    if (strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        size_t n = strlen(path);
        while (n > 1 && path[n - 1] == '/') n--;
        char *file = agn_xasprintf("%.*s/metrics.csv", (int)n, path);
        if (stat(file, &st) != 0) {
            agn_seterr_errno("%s: not an agn-train run directory (%s)", path, file);
            free(file);
            return -1;
        }
        int rc = read_file(s, file);
        free(file);
        return rc;
    }
    return read_file(s, path);
}

/* ---- per-run figures ------------------------------------------------------ */

static void derive_run(agn_sum_run *r)
{
    int first = r->n_ep >= FIRST_EPOCH_RULE ? 1 : 0;
    double t = 0, cp = 0, cm = 0, op = 0, da = 0, im = 0;
    r->n_timed = r->n_scaled = 0;
    for (int i = first; i < r->n_ep; i++) {
        const agn_sum_epoch *e = &r->ep[i];
        double k = 1;
        /* an epoch cut short (--max-steps) counts as the full epoch it stands for */
        if (isfinite(e->train_examples) && e->samples > 0 && e->samples < e->train_examples) {
            k = e->train_examples / e->samples;
            r->n_scaled++;
        }
        t += k * e->epoch_time;
        cp += k * e->compute;
        cm += k * e->comm;
        op += k * e->optim;
        da += k * e->data;
        im += k * e->imbalance; /* NAN if one epoch lacks it */
        r->n_timed++;
    }
    double n = r->n_timed;
    r->imbalance = im / n;
    r->epoch_time = t / n;
    r->compute = cp / n;
    r->comm = cm / n;
    r->optim = op / n;
    r->data = da / n;
    r->final_acc = r->best_acc = NAN;
    for (int i = 0; i < r->n_ep; i++) {
        double a = r->ep[i].val_acc;
        if (isnan(a)) continue;
        r->final_acc = a;
        if (isnan(r->best_acc) || a > r->best_acc) r->best_acc = a;
    }
}

static void set_r(double compute, double comm, long w, double *R, int *kind)
{
    *R = NAN;
    if (comm > 0) {
        *R = compute / comm;
        *kind = AGN_R_NUM;
    } else {
        *kind = (w == 1 || compute <= 0) ? AGN_R_NA : AGN_R_INF;
        if (*kind == AGN_R_INF) *R = INFINITY;
    }
}

/* ---- Amdahl ------------------------------------------------------------------ */

static double amdahl_a(double f, double w) { return f + (1 - f) / w; }

static double amdahl_sse(const double *w, const double *S, int n, double w0, double f)
{
    double sse = 0;
    for (int i = 0; i < n; i++) {
        double d = S[i] - amdahl_a(f, w0) / amdahl_a(f, w[i]);
        sse += d * d;
    }
    return sse;
}

/* d SSE / d f, for telling a boundary optimum from a clamped one. */
static double amdahl_dsse(const double *w, const double *S, int n, double w0, double f)
{
    double g = 0;
    for (int i = 0; i < n; i++) {
        double a0 = amdahl_a(f, w0), a = amdahl_a(f, w[i]);
        double da0 = 1 - 1 / w0, da = 1 - 1 / w[i];
        double m = a0 / a, dm = (da0 * a - a0 * da) / (a * a);
        g += -2 * (S[i] - m) * dm;
    }
    return g;
}

double agn_amdahl_fit(const double *w, const double *S, int n, double w0, double *sse,
                      int *clamped)
{
    /* one parameter on a closed interval: a grid finds the basin, golden
     * section polishes it; deterministic and free of starting guesses */
    const int grid = 1000;
    int best = 0;
    double bsse = HUGE_VAL;
    for (int k = 0; k <= grid; k++) {
        double v = amdahl_sse(w, S, n, w0, (double)k / grid);
        if (v < bsse) { bsse = v; best = k; }
    }
    double lo = best > 0 ? (double)(best - 1) / grid : 0;
    double hi = best < grid ? (double)(best + 1) / grid : 1;
    const double g = (sqrt(5.0) - 1) / 2;
    double x1 = hi - g * (hi - lo), x2 = lo + g * (hi - lo);
    double f1 = amdahl_sse(w, S, n, w0, x1), f2 = amdahl_sse(w, S, n, w0, x2);
    for (int it = 0; it < 200 && hi - lo > 1e-13; it++) {
        if (f1 <= f2) {
            hi = x2; x2 = x1; f2 = f1;
            x1 = hi - g * (hi - lo);
            f1 = amdahl_sse(w, S, n, w0, x1);
        } else {
            lo = x1; x1 = x2; f1 = f2;
            x2 = lo + g * (hi - lo);
            f2 = amdahl_sse(w, S, n, w0, x2);
        }
    }
    double f = (lo + hi) / 2;
    /* the ends of the interval are candidates too */
    if (amdahl_sse(w, S, n, w0, 0) <= amdahl_sse(w, S, n, w0, f)) f = 0;
    if (amdahl_sse(w, S, n, w0, 1) < amdahl_sse(w, S, n, w0, f)) f = 1;
    *clamped = 0;
    if (f == 0 && amdahl_dsse(w, S, n, w0, 0) > 1e-12) *clamped = -1;
    if (f == 1 && amdahl_dsse(w, S, n, w0, 1) < -1e-12) *clamped = 1;
    *sse = amdahl_sse(w, S, n, w0, f);
    return f;
}

double agn_amdahl_eff(double f, double w0, double w)
{
    return amdahl_a(f, w0) / amdahl_a(f, w) * w0 / w;
}

/* ---- grouping --------------------------------------------------------------- */

static int same_group(const agn_sum_group *g, const agn_sum_run *r)
{
    return same_str(g->config, r->config) && g->params == r->params &&
           g->global_batch == r->global_batch && same_str(g->data_id, r->data_id) &&
           same_str(g->backend, r->backend);
}

/* Groups, their columns and config names are found by hash (open addressing
 * over tables of twice the runs), so that a file of many runs is summarized
 * in time linear in them: a search through the groups for each run took a
 * minute on 100000 rows of distinct configs. */
#define FNV_BASIS 1469598103934665603ull
static uint64_t hash_str(uint64_t h, const char *p)
{
    for (; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return (h ^ 0xff) * 1099511628211ull; /* ends the string: "ab","c" is not "a","bc" */
}

static uint64_t hash_long(uint64_t h, long v)
{
    for (int i = 0; i < 8; i++) h = (h ^ ((unsigned long)v >> 8 * i & 0xff)) * 1099511628211ull;
    return h;
}

static uint64_t group_hash(const agn_sum_run *r)
{
    uint64_t h = hash_str(hash_str(hash_str(FNV_BASIS, r->config), r->data_id), r->backend);
    return hash_long(hash_long(h, r->params), r->global_batch);
}

typedef struct {
    int g, c; /* group and column index; g < 0: empty */
} col_slot;

/* The first field in which run A's group differs from run B's, in words. */
static char *difference(const agn_sum_run *a, const agn_sum_run *b)
{
    if (!same_str(a->config, b->config))
        return agn_xasprintf("config ('%s' vs '%s')", a->config, b->config);
    if (a->global_batch != b->global_batch)
        return agn_xasprintf("global batch (%ld vs %ld)", a->global_batch, b->global_batch);
    if (a->params != b->params)
        return agn_xasprintf("parameter count (%ld vs %ld)", a->params, b->params);
    if (!same_str(a->data_id, b->data_id))
        return agn_xasprintf("training data (data_id %s vs %s)", a->data_id, b->data_id);
    return agn_xasprintf("backend (%s vs %s)", a->backend, b->backend);
}

static int cmp_long(const void *a, const void *b)
{
    long x = ((const agn_sum_col *)a)->world_size, y = ((const agn_sum_col *)b)->world_size;
    return (x > y) - (x < y);
}

static void fmt_pct(char *buf, size_t n, double v) { snprintf(buf, n, "%.0f%%", 100 * v); }

static void derive_verdict(const agn_summary *s, agn_sum_group *g)
{
    agn_sbuf b = { 0 };
    agn_sb_printf(&b, "%s: ", g->config);
    if (g->n_cols == 1) {
        agn_sb_printf(&b, "only W=%ld was measured, so there is no scaling to judge; run the same "
                      "config with another number of ranks.", g->cols[0].world_size);
        g->verdict = b.s;
        return;
    }
    const agn_sum_col *c0 = &g->cols[0], *c = &g->cols[g->n_cols - 1];
    char base[64], eff[16];
    if (g->base_w == 1) snprintf(base, sizeof base, "1 rank");
    else snprintf(base, sizeof base, "%ld ranks (no 1-rank run)", g->base_w);
    fmt_pct(eff, sizeof eff, c->efficiency);
    double S = c->speedup, E = c->efficiency;
    if (!isfinite(S)) {
        agn_sb_printf(&b, "the epoch times are zero, so no speedup can be computed.");
        g->verdict = b.s;
        return;
    }
    if (E > 1.05) {
        /* more than linear: say so, and what usually causes it */
        long th0 = -1;
        for (int q = 0; q < c0->n_runs; q++) th0 = s->runs[c0->runs[q]].threads;
        agn_sb_printf(&b, "adding ranks pays, beyond linear: %ld ranks ran %.2fx as fast as %s, "
                      "%s parallel efficiency. More than 100%% is not what more ranks alone "
                      "give; it usually means the baseline was slowed by something the "
                      "larger run escaped: ", c->world_size, S, base, eff);
        if (th0 > 1)
            agn_sb_printf(&b, "its %ld threads competing for busy cores, ", th0);
        agn_sb_printf(&b, "cache effects of a smaller per-rank batch, or other work on the "
                      "machine. Measure again on a quiet machine, or with fixed threads per "
                      "rank, before trusting the figure. ");
    } else if (E >= 0.9)
        agn_sb_printf(&b, "adding ranks pays: %ld ranks ran %.2fx as fast as %s, %s parallel "
                      "efficiency, close to ideal. ", c->world_size, S, base, eff);
    else if (S >= 1.1)
        agn_sb_printf(&b, "adding ranks pays, with losses: %ld ranks ran %.2fx as fast as %s, %s "
                      "parallel efficiency. ", c->world_size, S, base, eff);
    else if (S >= 0.95)
        agn_sb_printf(&b, "adding ranks does not pay: %ld ranks ran %.2fx as fast as %s (%s "
                      "efficiency), no real gain for the extra hardware. ",
                  c->world_size, S, base, eff);
    else
        agn_sb_printf(&b, "adding ranks costs time: %ld ranks ran at %.2fx the speed of %s, slower "
                      "than the baseline (%s efficiency). ", c->world_size, S, base, eff);

    double T = c->epoch_time;
    double comm_share = T > 0 ? c->comm / T : 0, serial = c->data + c->optim;
    double serial_share = T > 0 ? serial / T : 0;
    char cs[16], ss[16];
    fmt_pct(cs, sizeof cs, comm_share);
    fmt_pct(ss, sizeof ss, serial_share);
    if (E >= 0.9) {
        agn_sb_printf(&b, "Nothing dominates: at W=%ld exposed communication is %s of the epoch "
                      "and data loading plus the optimizer %s.", c->world_size, cs, ss);
    } else if (comm_share >= serial_share && comm_share >= 0.10) {
        agn_sb_printf(&b, "Communication dominates: at W=%ld the ranks waited %.3g s per epoch on "
                      "communication not hidden behind compute, %s of the epoch",
                  c->world_size, c->comm, cs);
        if (c->r_kind == AGN_R_NUM) agn_sb_printf(&b, " (R = compute/communication = %.2f)", c->R);
        agn_sb_printf(&b, ".");
        double ish = c->comm > 0 ? c->imbalance / c->comm : NAN;
        /* imbalance and the wait are measured apart (the slowest rank's
         * extra compute, rank 0's wait), so the first can exceed the second:
         * then all of the wait is imbalance, never "over 100%" of it */
        if (isfinite(ish) && ish >= 1.0)
            agn_sb_printf(&b, " All of that wait is for the slowest rank to finish its compute "
                          "(%.3g s of imbalance per epoch), not for data to move: uneven work "
                          "between the ranks, or ranks sharing cores with other work.",
                      c->imbalance);
        else if (isfinite(ish) && ish >= 0.5)
            agn_sb_printf(&b, " Most of that wait (%.3g s, %.0f%%) is for the slowest rank to finish "
                          "its compute, not for data to move: uneven work between the ranks, or "
                          "ranks sharing cores with other work.",
                      c->imbalance, 100 * ish);
        else if (c->r_kind == AGN_R_NUM && c->R < 1)
            agn_sb_printf(&b, " With R below 1 the ranks wait longer on the gradients than they "
                          "take to compute them: a larger global batch, a bigger model or a "
                          "faster interconnect would change that, more ranks would not.");
        else
            agn_sb_printf(&b, " Better overlap of the gradient reduction with backward, or fewer, "
                          "larger buckets, would recover most of it.");
    } else if (serial_share >= 0.10) {
        agn_sb_printf(&b, "Serial overhead dominates: data loading and the optimizer step, which "
                      "do not shrink as ranks are added, take %.3g s per epoch at W=%ld (%s of "
                      "the epoch) against %.3g s at W=%ld.",
                  serial, c->world_size, ss, c0->data + c0->optim, c0->world_size);
    } else {
        double ce = c->compute > 0 ? c0->compute * (double)c0->world_size /
                                         ((double)c->world_size * c->compute) : NAN;
        char ces[16];
        fmt_pct(ces, sizeof ces, ce);
        agn_sb_printf(&b, "Neither communication (%s of the epoch) nor data loading and the "
                      "optimizer (%s) explains the loss: compute itself scaled at %s of ideal "
                      "(%.3g s per epoch at W=%ld against %.3g s at W=%ld), as when ranks share "
                      "cores or memory bandwidth.",
                  cs, ss, ces, c->compute, c->world_size, c0->compute, c0->world_size);
    }
    if (g->fit) {
        if (g->clamped > 0)
            agn_sb_printf(&b, " Amdahl's law cannot describe a slowdown: its serial fraction "
                          "is pinned at 1, so it predicts no gain at any rank count.");
        else
            agn_sb_printf(&b, " Amdahl's law fitted to the speedups gives a serial fraction of "
                          "%.3f%s; it predicts %.0f%% efficiency at %ld ranks and %.0f%% at "
                          "%ld.", g->f, g->clamped < 0 ? " (clamped at 0: the speedups are "
                          "at or above linear)" : "",
                      100 * g->pred_eff[0], g->pred_w[0], 100 * g->pred_eff[1], g->pred_w[1]);
    }
    (void)s;
    g->verdict = b.s;
}

int agn_summary_compute(agn_summary *s, int single)
{
    if (s->n_runs == 0) return agn_seterr("no runs to summarize");
    for (int i = 0; i < s->n_runs; i++) derive_run(&s->runs[i]);

    size_t cap = 16;
    while (cap < 2 * (size_t)s->n_runs) cap *= 2;
    int *gslot = agn_xcalloc(cap, sizeof *gslot); /* group index + 1; 0: empty */
    col_slot *cslot = agn_xmalloc(cap * sizeof *cslot);
    for (size_t k = 0; k < cap; k++) cslot[k].g = -1;
    for (int i = 0; i < s->n_runs; i++) {
        agn_sum_run *r = &s->runs[i];
        size_t gk = group_hash(r) & (cap - 1);
        while (gslot[gk] && !same_group(&s->groups[gslot[gk] - 1], r)) gk = (gk + 1) & (cap - 1);
        agn_sum_group *g = gslot[gk] ? &s->groups[gslot[gk] - 1] : NULL;
        if (!g) {
            if (single && s->n_groups > 0) {
                const agn_sum_run *r0 = &s->runs[s->groups[0].runs[0]];
                char *d = difference(r0, r);
                agn_seterr("%s and %s differ in %s: they are not one comparison (drop --single "
                           "to summarize them as separate groups)", r0->label, r->label, d);
                free(d);
                free(gslot);
                free(cslot);
                return -1;
            }
            s->groups = grow(s->groups, (size_t)s->n_groups, sizeof *s->groups);
            g = &s->groups[s->n_groups++];
            memset(g, 0, sizeof *g);
            g->config = agn_xstrdup(r->config);
            g->data_id = agn_xstrdup(r->data_id);
            g->backend = agn_xstrdup(r->backend);
            g->params = r->params;
            g->global_batch = r->global_batch;
            gslot[gk] = s->n_groups;
        }
        g->runs = grow(g->runs, (size_t)g->n_runs, sizeof *g->runs);
        g->runs[g->n_runs++] = i;
        int gi = (int)(g - s->groups);
        size_t ck = hash_long(hash_long(FNV_BASIS, gi), r->world_size) & (cap - 1);
        while (cslot[ck].g >= 0 &&
               !(cslot[ck].g == gi && g->cols[cslot[ck].c].world_size == r->world_size))
            ck = (ck + 1) & (cap - 1);
        agn_sum_col *c = cslot[ck].g >= 0 ? &g->cols[cslot[ck].c] : NULL;
        if (!c) {
            g->cols = grow(g->cols, (size_t)g->n_cols, sizeof *g->cols);
            c = &g->cols[g->n_cols++];
            memset(c, 0, sizeof *c);
            c->world_size = r->world_size;
            cslot[ck].g = gi;
            cslot[ck].c = g->n_cols - 1;
        }
        c->runs = grow(c->runs, (size_t)c->n_runs, sizeof *c->runs);
        c->runs[c->n_runs++] = i;
    }

    /* groups that share a config name but not the rest: say why they are
     * apart, each against the first group of that name (a note for every
     * pair grew with the square of the groups: 2000 rows of one config with
     * 2000 parameter counts made a 390 MB summary); gslot now maps a config
     * name to its first group */
    memset(gslot, 0, cap * sizeof *gslot);
    for (int b = 0; b < s->n_groups; b++) {
        size_t k = hash_str(FNV_BASIS, s->groups[b].config) & (cap - 1);
        while (gslot[k] && !same_str(s->groups[gslot[k] - 1].config, s->groups[b].config))
            k = (k + 1) & (cap - 1);
        if (!gslot[k]) {
            gslot[k] = b + 1;
            continue;
        }
        const agn_sum_run *ra = &s->runs[s->groups[gslot[k] - 1].runs[0]];
        const agn_sum_run *rb = &s->runs[s->groups[b].runs[0]];
        char *d = difference(ra, rb);
        add_note(s, agn_xasprintf("runs of config '%s' differ in %s (%s, %s): summarized as "
                              "separate groups, never compared with each other",
                              ra->config, d, ra->label, rb->label));
        free(d);
    }
    free(gslot);
    free(cslot);

    for (int k = 0; k < s->n_groups; k++) {
        agn_sum_group *g = &s->groups[k];
        qsort(g->cols, (size_t)g->n_cols, sizeof *g->cols, cmp_long);
        for (int j = 0; j < g->n_cols; j++) {
            agn_sum_col *c = &g->cols[j];
            double t = 0, cp = 0, cm = 0, op = 0, da = 0, im = 0, accsum = 0;
            int nacc = 0;
            c->best_acc = NAN;
            c->n_timed = 0;
            for (int q = 0; q < c->n_runs; q++) {
                const agn_sum_run *r = &s->runs[c->runs[q]];
                t += r->epoch_time * r->n_timed;
                cp += r->compute * r->n_timed;
                cm += r->comm * r->n_timed;
                op += r->optim * r->n_timed;
                da += r->data * r->n_timed;
                im += r->imbalance * r->n_timed;
                c->n_timed += r->n_timed;
                if (!isnan(r->final_acc)) { accsum += r->final_acc; nacc++; }
                if (!isnan(r->best_acc) && (isnan(c->best_acc) || r->best_acc > c->best_acc))
                    c->best_acc = r->best_acc;
            }
            c->epoch_time = t / c->n_timed;
            c->compute = cp / c->n_timed;
            c->comm = cm / c->n_timed;
            c->optim = op / c->n_timed;
            c->data = da / c->n_timed;
            c->imbalance = im / c->n_timed;
            c->final_acc = nacc ? accsum / nacc : NAN;
            set_r(c->compute, c->comm, c->world_size, &c->R, &c->r_kind);
            if (c->n_runs > 1) {
                agn_sbuf b = { 0 };
                for (int q = 0; q < c->n_runs; q++)
                    agn_sb_printf(&b, "%s%s", q ? ", " : "", s->runs[c->runs[q]].label);
                add_note(s, agn_xasprintf("config '%s', W=%ld: %d runs pooled (%s)", g->config,
                                      c->world_size, c->n_runs, b.s));
                free(b.s);
            }
        }
        g->base_w = g->cols[0].world_size;
        double t0 = g->cols[0].epoch_time;
        for (int j = 0; j < g->n_cols; j++) {
            agn_sum_col *c = &g->cols[j];
            c->speedup = (c->epoch_time > 0 && t0 > 0) ? t0 / c->epoch_time : NAN;
            c->efficiency = c->speedup * (double)g->base_w / (double)c->world_size;
        }
        if (g->base_w != 1)
            add_note(s, agn_xasprintf("config '%s' has no 1-rank run: speedup and efficiency are "
                                  "relative to W=%ld", g->config, g->base_w));
        /* Amdahl over the measured speedups */
        double *w = agn_xmalloc((size_t)g->n_cols * sizeof *w);
        double *S = agn_xmalloc((size_t)g->n_cols * sizeof *S);
        int n = 0;
        for (int j = 1; j < g->n_cols; j++)
            if (isfinite(g->cols[j].speedup)) {
                w[n] = (double)g->cols[j].world_size;
                S[n] = g->cols[j].speedup;
                n++;
            }
        g->fit = n > 0;
        if (g->fit) {
            g->f = agn_amdahl_fit(w, S, n, (double)g->base_w, &g->sse, &g->clamped);
            long wmax = g->cols[g->n_cols - 1].world_size;
            for (int q = 0; q < 2; q++) {
                g->pred_w[q] = wmax * (q ? 4 : 2);
                g->pred_eff[q] = agn_amdahl_eff(g->f, (double)g->base_w, (double)g->pred_w[q]);
            }
        }
        free(w);
        free(S);
        derive_verdict(s, g);
    }
    for (int i = 0; i < s->n_runs; i++) {
        agn_sum_run *r = &s->runs[i];
        set_r(r->compute, r->comm, r->world_size, &r->R, &r->r_kind);
        if (r->n_scaled)
            add_note(s, agn_xasprintf("%s: %d of its timed epochs stopped early (samples < "
                                  "train_examples); their times are scaled to a full epoch",
                                  r->label, r->n_scaled));
    }
    return 0;
}

void agn_summary_free(agn_summary *s)
{
    for (int i = 0; i < s->n_runs; i++) run_free(&s->runs[i]);
    free(s->runs);
    for (int k = 0; k < s->n_groups; k++) {
        agn_sum_group *g = &s->groups[k];
        for (int j = 0; j < g->n_cols; j++) free(g->cols[j].runs);
        free(g->cols);
        free(g->runs);
        free(g->config); free(g->data_id); free(g->backend);
        free(g->verdict);
    }
    free(s->groups);
    for (int i = 0; i < s->n_notes; i++) free(s->notes[i]);
    free(s->notes);
    free(s->seen);
    memset(s, 0, sizeof *s);
}

/* ---- Markdown ------------------------------------------------------------------ */

/* Table cells: text without '|' or newlines. */
static void md_text(FILE *fp, const char *t)
{
    for (; *t; t++) {
        if (*t == '|') fputs("\\|", fp);
        else if (*t == '\n' || *t == '\r') fputc(' ', fp);
        else fputc(*t, fp);
    }
}

static void md_sec(FILE *fp, double v)
{
    if (!isfinite(v)) fputs("n/a", fp);
    else if (v >= 1 || v == 0) fprintf(fp, "%.3f", v);
    else if (v >= 1e-4) fprintf(fp, "%.4f", v);
    else fprintf(fp, "%.2e", v);
}

/* A speedup (or, with PCT, an efficiency in percent), or "n/a" where it is
 * undefined (a zero epoch time). */
static void md_ratio(FILE *fp, double v, int pct)
{
    if (!isfinite(v)) fputs("n/a", fp);
    else if (pct) fprintf(fp, "%.1f%%", 100 * v);
    else fprintf(fp, "%.3f", v);
}

static void md_acc(FILE *fp, double v)
{
    if (isnan(v)) fputs("-", fp);
    else fprintf(fp, "%.4f", v);
}

static void md_r(FILE *fp, double R, int kind)
{
    if (kind == AGN_R_NA) fputs("n/a", fp);
    else if (kind == AGN_R_INF) fputs("inf", fp);
    else fprintf(fp, "%.2f", R);
}

/* 2847236 -> "2.85M" */
static void fmt_params(char *buf, size_t n, long p)
{
    if (p >= 1000000) snprintf(buf, n, "%.3gM", (double)p / 1e6);
    else if (p >= 1000) snprintf(buf, n, "%.3gk", (double)p / 1e3);
    else snprintf(buf, n, "%ld", p);
}

static void group_title(FILE *fp, const agn_sum_group *g)
{
    char ps[32];
    fmt_params(ps, sizeof ps, g->params);
    md_text(fp, g->config);
    fprintf(fp, ": %s parameters, global batch %ld, data ", ps, g->global_batch);
    md_text(fp, g->data_id);
    fputs(", backend ", fp);
    md_text(fp, g->backend);
}

int agn_summary_write_md(const agn_summary *s, FILE *fp)
{
    fprintf(fp, "# Scaling summary\n\n");
    fprintf(fp, "%d run%s in %d group%s. Epoch time is the mean over a run's epochs, leaving "
                "out the first when the run has %d or more; speedup is the baseline's epoch "
                "time over the epoch time at W ranks, efficiency is speedup / (W / baseline W). "
                "R is compute time over exposed communication time.\n",
            s->n_runs, s->n_runs == 1 ? "" : "s", s->n_groups, s->n_groups == 1 ? "" : "s",
            FIRST_EPOCH_RULE);
    if (s->n_notes) {
        fprintf(fp, "\nNotes:\n\n");
        for (int i = 0; i < s->n_notes; i++) {
            fputs("- ", fp);
            md_text(fp, s->notes[i]);
            fputc('\n', fp);
        }
    }
    for (int k = 0; k < s->n_groups; k++) {
        const agn_sum_group *g = &s->groups[k];
        fputs("\n## ", fp);
        group_title(fp, g);
        fputs("\n\n|  |", fp);
        for (int j = 0; j < g->n_cols; j++) fprintf(fp, " W=%ld |", g->cols[j].world_size);
        fputs("\n|:--|", fp);
        for (int j = 0; j < g->n_cols; j++) fputs("--:|", fp);
        fputc('\n', fp);
#define ROW(title, stmt)                                                     \
    do {                                                                     \
        fputs("| " title " |", fp);                                          \
        for (int j = 0; j < g->n_cols; j++) {                                \
            const agn_sum_col *c = &g->cols[j];                              \
            fputc(' ', fp);                                                  \
            stmt;                                                            \
            fputs(" |", fp);                                                 \
        }                                                                    \
        fputc('\n', fp);                                                     \
    } while (0)
        ROW("runs", fprintf(fp, "%d", c->n_runs));
        ROW("epochs timed", fprintf(fp, "%d", c->n_timed));
        ROW("epoch time (s)", md_sec(fp, c->epoch_time));
        if (g->base_w == 1) ROW("speedup vs W=1", md_ratio(fp, c->speedup, 0));
        else {
            fprintf(fp, "| speedup vs W=%ld (no 1-rank run) |", g->base_w);
            for (int j = 0; j < g->n_cols; j++) {
                fputc(' ', fp);
                md_ratio(fp, g->cols[j].speedup, 0);
                fputs(" |", fp);
            }
            fputc('\n', fp);
        }
        ROW("parallel efficiency", md_ratio(fp, c->efficiency, 1));
        ROW("final val acc", md_acc(fp, c->final_acc));
        ROW("best val acc", md_acc(fp, c->best_acc));
        ROW("compute (s)", md_sec(fp, c->compute));
        ROW("exposed comm (s)", md_sec(fp, c->comm));
        ROW("of which imbalance (s)", md_sec(fp, c->imbalance));
        ROW("data + optimizer (s)", md_sec(fp, c->data + c->optim));
        ROW("R = compute / comm", md_r(fp, c->R, c->r_kind));
#undef ROW
        fputc('\n', fp);
        if (g->fit) {
            fprintf(fp, "Amdahl's law, S(W) = 1 / (f + (1 - f) / W)%s, fitted by least "
                        "squares to the speedups at W =",
                    g->base_w == 1 ? "" : " taken relative to the baseline");
            for (int j = 1; j < g->n_cols; j++) fprintf(fp, "%s %ld", j > 1 ? "," : "",
                                                        g->cols[j].world_size);
            fprintf(fp, ": serial fraction f = %.4f", g->f);
            if (g->clamped < 0) fputs(" (clamped at 0: speedups at or above linear)", fp);
            if (g->clamped > 0) fputs(" (clamped at 1: the runs slowed down)", fp);
            fprintf(fp, ". Predicted efficiency: %.1f%% at W=%ld, %.1f%% at W=%ld.\n\n",
                    100 * g->pred_eff[0], g->pred_w[0], 100 * g->pred_eff[1], g->pred_w[1]);
        } else {
            fputs("Amdahl's law: not fitted (one world size only).\n\n", fp);
        }
        fputs("**Verdict.** ", fp);
        md_text(fp, g->verdict);
        fputs("\n\n### Runs\n\n| run | W | backend | transport | threads | epochs (timed) | "
              "epoch time (s) | compute (s) | comm (s) | optim (s) | data (s) | R | "
              "final val acc |\n|:--|--:|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
              fp);
        for (int q = 0; q < g->n_runs; q++) {
            const agn_sum_run *r = &s->runs[g->runs[q]];
            fputs("| ", fp);
            md_text(fp, r->label);
            fprintf(fp, " | %ld | ", r->world_size);
            md_text(fp, r->backend);
            fputs(" | ", fp);
            md_text(fp, r->transport);
            if (r->threads > 0) fprintf(fp, " | %ld", r->threads);
            else fputs(" | -", fp);
            fprintf(fp, " | %d (%d) | ", r->n_ep, r->n_timed);
            md_sec(fp, r->epoch_time);
            fputs(" | ", fp);
            md_sec(fp, r->compute);
            fputs(" | ", fp);
            md_sec(fp, r->comm);
            fputs(" | ", fp);
            md_sec(fp, r->optim);
            fputs(" | ", fp);
            md_sec(fp, r->data);
            fputs(" | ", fp);
            md_r(fp, r->R, r->r_kind);
            fputs(" | ", fp);
            md_acc(fp, r->final_acc);
            fputs(" |\n", fp);
        }
    }
    return ferror(fp) ? -1 : 0;
}

/* ---- CSV ------------------------------------------------------------------- */

static void csv_text(FILE *fp, const char *t)
{
    if (!strpbrk(t, ",\"\r\n")) {
        fputs(t, fp);
        return;
    }
    fputc('"', fp);
    for (; *t; t++) {
        if (*t == '"') fputc('"', fp);
        fputc(*t, fp);
    }
    fputc('"', fp);
}

static void csv_num(FILE *fp, double v)
{
    if (isnan(v)) return; /* empty field: not recorded or not defined */
    if (isinf(v)) fputs(v > 0 ? "inf" : "-inf", fp);
    else fprintf(fp, "%.10g", v);
}

int agn_summary_write_csv(const agn_summary *s, FILE *fp)
{
    fputs("config,params,global_batch,data_id,backend,world_size,runs,epochs_timed,"
          "epoch_time_s,compute_s,comm_s,optim_s,data_s,R,baseline_world_size,speedup,"
          "efficiency,final_val_acc,best_val_acc,serial_fraction,fit_clamped,"
          "pred_world_size_2x,pred_efficiency_2x,pred_world_size_4x,pred_efficiency_4x,"
          "imbalance_s\n",
          fp);
    for (int k = 0; k < s->n_groups; k++) {
        const agn_sum_group *g = &s->groups[k];
        for (int j = 0; j < g->n_cols; j++) {
            const agn_sum_col *c = &g->cols[j];
            csv_text(fp, g->config);
            fprintf(fp, ",%ld,%ld,", g->params, g->global_batch);
            csv_text(fp, g->data_id);
            fputc(',', fp);
            csv_text(fp, g->backend);
            fprintf(fp, ",%ld,%d,%d,", c->world_size, c->n_runs, c->n_timed);
            double v[] = { c->epoch_time, c->compute, c->comm, c->optim, c->data, c->R };
            for (size_t q = 0; q < AGN_ARRAY_LEN(v); q++) {
                csv_num(fp, v[q]);
                fputc(',', fp);
            }
            fprintf(fp, "%ld,", g->base_w);
            double u[] = { c->speedup, c->efficiency, c->final_acc, c->best_acc,
                           g->fit ? g->f : NAN };
            for (size_t q = 0; q < AGN_ARRAY_LEN(u); q++) {
                csv_num(fp, u[q]);
                fputc(',', fp);
            }
            if (g->fit)
                fprintf(fp, "%s,%ld,%.10g,%ld,%.10g,",
                        g->clamped < 0 ? "0" : g->clamped > 0 ? "1" : "no", g->pred_w[0],
                        g->pred_eff[0], g->pred_w[1], g->pred_eff[1]);
            else
                fputs(",,,,,", fp);
            csv_num(fp, c->imbalance);
            fputc('\n', fp);
        }
    }
    return ferror(fp) ? -1 : 0;
}

/* ---- JSON ------------------------------------------------------------------ */

static void js_str(FILE *fp, const char *t)
{
    fputc('"', fp);
    for (const unsigned char *p = (const unsigned char *)t; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", fp); break;
        case '\\': fputs("\\\\", fp); break;
        case '\n': fputs("\\n", fp); break;
        case '\r': fputs("\\r", fp); break;
        case '\t': fputs("\\t", fp); break;
        default:
            if (*p < 0x20) fprintf(fp, "\\u%04x", *p);
            else fputc(*p, fp);
        }
    }
    fputc('"', fp);
}

static void js_num(FILE *fp, double v)
{
    if (!isfinite(v)) fputs("null", fp);
    else fprintf(fp, "%.10g", v);
}

static void js_r(FILE *fp, double R, int kind)
{
    fputs("\"R\": ", fp);
    js_num(fp, kind == AGN_R_NUM ? R : NAN);
    fputs(", \"R_text\": ", fp);
    if (kind == AGN_R_NUM) {
        char b[32];
        snprintf(b, sizeof b, "%.4g", R);
        js_str(fp, b);
    } else {
        js_str(fp, kind == AGN_R_INF ? "inf" : "n/a");
    }
}

int agn_summary_write_json(const agn_summary *s, FILE *fp)
{
    fprintf(fp, "{\n  \"format\": \"agn-summarize 1\",\n  \"first_epoch_excluded_from\": %d,\n"
                "  \"notes\": [", FIRST_EPOCH_RULE);
    for (int i = 0; i < s->n_notes; i++) {
        fputs(i ? ",\n    " : "\n    ", fp);
        js_str(fp, s->notes[i]);
    }
    fputs(s->n_notes ? "\n  ],\n  \"groups\": [" : "],\n  \"groups\": [", fp);
    for (int k = 0; k < s->n_groups; k++) {
        const agn_sum_group *g = &s->groups[k];
        fputs(k ? ",\n    {" : "\n    {", fp);
        fputs("\n      \"config\": ", fp);
        js_str(fp, g->config);
        fprintf(fp, ", \"params\": %ld, \"global_batch\": %ld, \"data_id\": ", g->params,
                g->global_batch);
        js_str(fp, g->data_id);
        fputs(", \"backend\": ", fp);
        js_str(fp, g->backend);
        fprintf(fp, ",\n      \"baseline_world_size\": %ld,\n      \"world_sizes\": [",
                g->base_w);
        for (int j = 0; j < g->n_cols; j++) {
            const agn_sum_col *c = &g->cols[j];
            fprintf(fp, "%s\n        {\"world_size\": %ld, \"runs\": %d, \"epochs_timed\": %d, "
                        "\"epoch_time_s\": ", j ? "," : "", c->world_size, c->n_runs,
                    c->n_timed);
            js_num(fp, c->epoch_time);
            fputs(", \"compute_s\": ", fp);
            js_num(fp, c->compute);
            fputs(", \"comm_s\": ", fp);
            js_num(fp, c->comm);
            fputs(", \"imbalance_s\": ", fp);
            js_num(fp, c->imbalance);
            fputs(", \"optim_s\": ", fp);
            js_num(fp, c->optim);
            fputs(", \"data_s\": ", fp);
            js_num(fp, c->data);
            fputs(", ", fp);
            js_r(fp, c->R, c->r_kind);
            fputs(", \"speedup\": ", fp);
            js_num(fp, c->speedup);
            fputs(", \"efficiency\": ", fp);
            js_num(fp, c->efficiency);
            fputs(", \"final_val_acc\": ", fp);
            js_num(fp, c->final_acc);
            fputs(", \"best_val_acc\": ", fp);
            js_num(fp, c->best_acc);
            fputc('}', fp);
        }
        fputs("\n      ],\n      \"amdahl\": ", fp);
        if (g->fit) {
            fputs("{\"serial_fraction\": ", fp);
            js_num(fp, g->f);
            fputs(", \"clamped\": ", fp);
            js_str(fp, g->clamped < 0 ? "0" : g->clamped > 0 ? "1" : "no");
            fputs(", \"sse\": ", fp);
            js_num(fp, g->sse);
            fputs(", \"predicted\": [", fp);
            for (int q = 0; q < 2; q++) {
                fprintf(fp, "%s{\"world_size\": %ld, \"efficiency\": ", q ? ", " : "",
                        g->pred_w[q]);
                js_num(fp, g->pred_eff[q]);
                fputc('}', fp);
            }
            fputs("]}", fp);
        } else {
            fputs("null", fp);
        }
        fputs(",\n      \"verdict\": ", fp);
        js_str(fp, g->verdict);
        fputs(",\n      \"runs\": [", fp);
        for (int q = 0; q < g->n_runs; q++) {
            const agn_sum_run *r = &s->runs[g->runs[q]];
            fputs(q ? ",\n        {\"label\": " : "\n        {\"label\": ", fp);
            js_str(fp, r->label);
            fputs(", \"path\": ", fp);
            js_str(fp, r->path);
            fprintf(fp, ", \"line\": %ld, \"world_size\": %ld, \"transport\": ", r->line,
                    r->world_size);
            js_str(fp, r->transport);
            fputs(", \"device\": ", fp);
            js_str(fp, r->device);
            fputs(", \"threads\": ", fp);
            if (r->threads > 0) fprintf(fp, "%ld", r->threads);
            else fputs("null", fp);
            fprintf(fp, ", \"epochs\": %d, \"epochs_timed\": %d, \"epochs_scaled\": %d, "
                        "\"epoch_time_s\": ", r->n_ep, r->n_timed, r->n_scaled);
            js_num(fp, r->epoch_time);
            fputs(", \"compute_s\": ", fp);
            js_num(fp, r->compute);
            fputs(", \"comm_s\": ", fp);
            js_num(fp, r->comm);
            fputs(", \"imbalance_s\": ", fp);
            js_num(fp, r->imbalance);
            fputs(", \"optim_s\": ", fp);
            js_num(fp, r->optim);
            fputs(", \"data_s\": ", fp);
            js_num(fp, r->data);
            fputs(", ", fp);
            js_r(fp, r->R, r->r_kind);
            fputs(", \"final_val_acc\": ", fp);
            js_num(fp, r->final_acc);
            fputs(", \"best_val_acc\": ", fp);
            js_num(fp, r->best_acc);
            fputs(", \"val_acc\": [", fp);
            for (int e = 0; e < r->n_ep; e++) {
                if (e) fputs(", ", fp);
                js_num(fp, r->ep[e].val_acc);
            }
            fputs("]}", fp);
        }
        fputs("\n      ]\n    }", fp);
    }
    fputs(s->n_groups ? "\n  ]\n}\n" : "]\n}\n", fp);
    return ferror(fp) ? -1 : 0;
}

/* ---- gnuplot ----------------------------------------------------------------- */

const char *const agn_summary_plot_names[] = { "epoch_time", "speedup", "efficiency", "val_acc",
                                               NULL };

/* A gnuplot single-quoted string ('' stands for a quote). */
static void gp_str(FILE *fp, const char *t)
{
    fputc('\'', fp);
    for (; *t; t++) {
        if (*t == '\'') fputc('\'', fp);
        if (*t == '\n' || *t == '\r') fputc(' ', fp);
        else fputc(*t, fp);
    }
    fputc('\'', fp);
}

static char *group_key(const agn_summary *s, const agn_sum_group *g)
{
    /* the config name alone when it is unambiguous, else the batch and data too */
    int dup = 0;
    for (int k = 0; k < s->n_groups; k++)
        if (&s->groups[k] != g && same_str(s->groups[k].config, g->config)) dup = 1;
    char ps[32];
    fmt_params(ps, sizeof ps, g->params);
    if (dup)
        return agn_xasprintf("%s (%s params, batch %ld, data %s, %s)", g->config, ps, g->global_batch,
                         g->data_id, g->backend);
    return agn_xasprintf("%s (%s params, batch %ld)", g->config, ps, g->global_batch);
}

/* The opening every script shares: find the folder the script is in, and
 * render the plot body once as PNG and once as SVG. */
void agn_gp_head(FILE *fp, const char *name, const char *what, const char *key)
{
    fprintf(fp,
            "# %s.gp: %s.  Written by agn-summarize with %s.dat beside it;\n"
            "# renders %s.png and %s.svg beside this script:  gnuplot %s.gp\n"
            "# (from any directory).\n"
            "if (!exists(\"suffix\")) suffix = \"\"\n"
            "here = ARG0\n"
            "i = strlen(here)\n"
            "while (i > 0 && here[i:i] ne \"/\") { i = i - 1 }\n"
            "dir = (i > 0) ? here[1:i] : \"\"\n"
            "dat = dir . \"%s.dat\"\n"
            "do for [fmt in \"png svg\"] {\n"
            "  if (fmt eq \"png\") {\n"
            "    if (strstrt(GPVAL_TERMINALS, \"pngcairo\") > 0) {\n"
            "      set terminal pngcairo size 960,600 noenhanced font \",11\"\n"
            "    } else {\n"
            "      set terminal png size 960,600 noenhanced\n"
            "    }\n"
            "  } else {\n"
            "    set terminal svg size 960,600 dynamic noenhanced\n"
            "  }\n"
            "  set output dir . \"%s.\" . fmt . suffix\n"
            "  reset\n"
            "  set grid\n"
            "  set key %s\n",
            name, what, name, name, name, name, name, name, key);
}

static void gp_tail(FILE *fp) { fputs("  unset output\n}\n", fp); }

static const char *const gp_colors[] = { "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                         "#9467bd", "#8c564b", "#e377c2", "#17becf" };
#define N_COLORS ((int)AGN_ARRAY_LEN(gp_colors))

typedef struct {
    agn_out dat, gp;
    int open;
} plotfiles;

static int pf_open(plotfiles *p, const char *dir, const char *name)
{
    char *d = agn_xasprintf("%s/%s.dat", dir, name), *g = agn_xasprintf("%s/%s.gp", dir, name);
    int rc = agn_out_open(&p->dat, d);
    if (rc == 0 && (rc = agn_out_open(&p->gp, g)) != 0) agn_out_abort(&p->dat);
    p->open = rc == 0;
    free(d);
    free(g);
    return rc;
}

static int pf_commit(plotfiles *p)
{
    int rc = 0;
    if (agn_out_commit(&p->dat) != 0) {
        rc = -1;
        agn_out_abort(&p->gp);
    } else if (agn_out_commit(&p->gp) != 0) {
        rc = -1;
    }
    p->open = 0;
    return rc;
}

static void x_range(const agn_summary *s, long *lo, long *hi)
{
    *lo = 0; *hi = 0;
    for (int k = 0; k < s->n_groups; k++)
        for (int j = 0; j < s->groups[k].n_cols; j++) {
            long w = s->groups[k].cols[j].world_size;
            if (*lo == 0 || w < *lo) *lo = w;
            if (w > *hi) *hi = w;
        }
}

/* The distinct world sizes, ascending, as xtics. */
static void gp_xtics(FILE *fp, const agn_summary *s)
{
    long prev = 0;
    int first = 1;
    fputs("  set xtics (", fp);
    for (;;) {
        long next = 0;
        for (int k = 0; k < s->n_groups; k++)
            for (int j = 0; j < s->groups[k].n_cols; j++) {
                long w = s->groups[k].cols[j].world_size;
                if (w > prev && (next == 0 || w < next)) next = w;
            }
        if (next == 0) break;
        fprintf(fp, "%s\"%ld\" %ld", first ? "" : ", ", next, next);
        first = 0;
        prev = next;
    }
    fputs(")\n", fp);
}

static int plot_epoch_time(const agn_summary *s, const char *dir)
{
    plotfiles p;
    if (pf_open(&p, dir, "epoch_time")) return -1;
    FILE *d = p.dat.fp, *g = p.gp.fp;
    fputs("# epoch time by world size, one block per config group\n", d);
    agn_gp_head(g, "epoch_time", "epoch time per config and world size", "top right");
    long lo, hi;
    x_range(s, &lo, &hi);
    fprintf(g, "  set title \"Epoch time by number of ranks\"\n"
               "  set xlabel \"ranks (world size)\"\n  set ylabel \"epoch time (s)\"\n"
               "  set logscale x 2\n  set yrange [0:*]\n  set offsets 0, 0, graph 0.08, 0\n"
               "  set xrange [%g:%g]\n",
            lo / 1.4, hi * 1.4);
    gp_xtics(g, s);
    fputs("  plot \\\n", g);
    for (int k = 0; k < s->n_groups; k++) {
        const agn_sum_group *gr = &s->groups[k];
        char *key = group_key(s, gr);
        fprintf(d, "%s# %s\n# world_size epoch_time_s\n", k ? "\n\n" : "", key);
        for (int j = 0; j < gr->n_cols; j++)
            fprintf(d, "%ld %.10g\n", gr->cols[j].world_size, gr->cols[j].epoch_time);
        fprintf(g, "    dat index %d using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc rgb '%s' "
                   "title ", k, gp_colors[k % N_COLORS]);
        gp_str(g, key);
        fprintf(g, ", \\\n    dat index %d using 1:2:(sprintf('%%.3g s', $2)) with labels "
                   "offset 0, 1 tc rgb '%s' notitle", k, gp_colors[k % N_COLORS]);
        fputs(k + 1 < s->n_groups ? ", \\\n" : "\n", g);
        free(key);
    }
    gp_tail(g);
    return pf_commit(&p);
}

static int plot_speedup(const agn_summary *s, const char *dir)
{
    plotfiles p;
    if (pf_open(&p, dir, "speedup")) return -1;
    FILE *d = p.dat.fp, *g = p.gp.fp;
    fputs("# speedup by world size (over the group's baseline), one block per config group\n",
          d);
    agn_gp_head(g, "speedup", "speedup over the baseline, the ideal line and the region below 1x", "top right");
    long lo, hi;
    x_range(s, &lo, &hi);
    /* log-log: the ideal S = W is a straight line, and so is a constant
     * efficiency below it */
    double ymax = 1, ymin = 0.5;
    for (int k = 0; k < s->n_groups; k++) {
        const agn_sum_group *gr = &s->groups[k];
        double ideal = (double)hi * 1.4 / (double)gr->base_w;
        if (ideal > ymax) ymax = ideal;
        for (int j = 0; j < gr->n_cols; j++) {
            double sp = gr->cols[j].speedup;
            if (!isfinite(sp) || sp <= 0) continue;
            if (sp > ymax) ymax = sp;
            if (sp / 1.4 < ymin) ymin = sp / 1.4;
        }
    }
    fprintf(g, "  set title \"Speedup over the baseline run\"\n"
               "  set xlabel \"ranks (world size)\"\n  set ylabel \"speedup (x)\"\n"
               "  set logscale xy 2\n  set xrange [%g:%g]\n  set yrange [%g:%g]\n"
               "  set format y \"%%gx\"\n  set key top left\n",
            lo / 1.4, hi * 1.4, ymin, ymax * 1.1);
    gp_xtics(g, s);
    fprintf(g, "  plot '+' using 1:(%g):(1) with filledcurves fc rgb '#f4c7c3' fs solid 0.6 "
               "noborder title 'slower than the baseline (below 1x)', \\\n", ymin);
    /* one ideal line per distinct baseline */
    long bases[64];
    int nb = 0;
    for (int k = 0; k < s->n_groups && nb < 64; k++) {
        int seen = 0;
        for (int q = 0; q < nb; q++) seen |= bases[q] == s->groups[k].base_w;
        if (!seen) bases[nb++] = s->groups[k].base_w;
    }
    for (int q = 0; q < nb; q++) {
        if (bases[q] == 1)
            fprintf(g, "    x with lines dt 2 lw 1.5 lc rgb '#555555' title 'ideal (S = W)', \\\n");
        else
            fprintf(g, "    x/%ld. with lines dt 3 lw 1.5 lc rgb '#555555' title 'ideal vs W=%ld "
                       "(S = W/%ld)', \\\n", bases[q], bases[q], bases[q]);
    }
    for (int k = 0; k < s->n_groups; k++) {
        const agn_sum_group *gr = &s->groups[k];
        char *key = group_key(s, gr);
        fprintf(d, "%s# %s, baseline W=%ld\n# world_size speedup\n", k ? "\n\n" : "", key,
                gr->base_w);
        for (int j = 0; j < gr->n_cols; j++) {
            if (isfinite(gr->cols[j].speedup))
                fprintf(d, "%ld %.10g\n", gr->cols[j].world_size, gr->cols[j].speedup);
            else
                fprintf(d, "%ld NaN\n", gr->cols[j].world_size);
        }
        fprintf(g, "    dat index %d using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc rgb '%s' "
                   "title ", k, gp_colors[k % N_COLORS]);
        char *t = gr->base_w == 1 ? agn_xstrdup(key) : agn_xasprintf("%s vs W=%ld", key, gr->base_w);
        gp_str(g, t);
        free(t);
        fprintf(g, ", \\\n    dat index %d using 1:2:(sprintf('%%.2fx', $2)) with labels "
                   "offset 2.5, -0.6 tc rgb '%s' notitle", k, gp_colors[k % N_COLORS]);
        fputs(k + 1 < s->n_groups ? ", \\\n" : "\n", g);
        free(key);
    }
    gp_tail(g);
    return pf_commit(&p);
}

static int plot_efficiency(const agn_summary *s, const char *dir)
{
    plotfiles p;
    if (pf_open(&p, dir, "efficiency")) return -1;
    FILE *d = p.dat.fp, *g = p.gp.fp;
    fputs("# parallel efficiency (%) by world size; one column per config group, '-' where "
          "not measured\n# world_size", d);
    for (int k = 0; k < s->n_groups; k++) fprintf(d, " group%d", k + 1);
    fputc('\n', d);
    long prev = 0;
    for (;;) {
        long next = 0;
        for (int k = 0; k < s->n_groups; k++)
            for (int j = 0; j < s->groups[k].n_cols; j++) {
                long w = s->groups[k].cols[j].world_size;
                if (w > prev && (next == 0 || w < next)) next = w;
            }
        if (next == 0) break;
        fprintf(d, "%ld", next);
        for (int k = 0; k < s->n_groups; k++) {
            const agn_sum_col *c = NULL;
            for (int j = 0; j < s->groups[k].n_cols; j++)
                if (s->groups[k].cols[j].world_size == next) c = &s->groups[k].cols[j];
            if (c && isfinite(c->efficiency)) fprintf(d, " %.6g", 100 * c->efficiency);
            else fputs(" -", d);
        }
        fputc('\n', d);
        prev = next;
    }
    agn_gp_head(g, "efficiency", "parallel efficiency bars per world size and config", "top right");
    double ymax = 115;
    for (int k = 0; k < s->n_groups; k++)
        for (int j = 0; j < s->groups[k].n_cols; j++)
            if (isfinite(s->groups[k].cols[j].efficiency) &&
                115 * s->groups[k].cols[j].efficiency > ymax)
                ymax = 115 * s->groups[k].cols[j].efficiency;
    fprintf(g, "  set title \"Parallel efficiency (speedup / ranks, against each group's baseline)\"\n"
          "  set xlabel \"ranks (world size)\"\n  set ylabel \"efficiency (%%)\"\n"
          "  set datafile missing '-'\n  set style data histograms\n"
          "  set style histogram clustered gap 1\n  set style fill solid 0.8 border -1\n"
          "  set yrange [0:%g]\n  set key top right\n"
          "  set arrow from graph 0, first 100 to graph 1, first 100 nohead dt 2 lc rgb '#555555'\n"
          "  plot \\\n", ymax);
    for (int k = 0; k < s->n_groups; k++) {
        char *key = group_key(s, &s->groups[k]);
        if (k == 0) fprintf(g, "    dat using 2:xtic(1) lc rgb '%s' title ", gp_colors[0]);
        else fprintf(g, "    '' using %d lc rgb '%s' title ", k + 2, gp_colors[k % N_COLORS]);
        gp_str(g, key);
        fputs(k + 1 < s->n_groups ? ", \\\n" : "\n", g);
        free(key);
    }
    gp_tail(g);
    return pf_commit(&p);
}

static int plot_val_acc(const agn_summary *s, const char *dir)
{
    plotfiles p;
    if (pf_open(&p, dir, "val_acc")) return -1;
    FILE *d = p.dat.fp, *g = p.gp.fp;
    fputs("# validation accuracy by epoch, one block per run\n", d);
    agn_gp_head(g, "val_acc", "validation accuracy per epoch, one line per run", "top right");
    fputs("  set title \"Validation accuracy by epoch\"\n"
          "  set xlabel \"epoch\"\n  set ylabel \"validation accuracy\"\n"
          "  set key bottom right\n  set xtics 1\n  set offsets 0.1, 0.1, 0, 0\n", g);
    int blocks = 0;
    for (int k = 0; k < s->n_groups; k++) {
        const agn_sum_group *gr = &s->groups[k];
        for (int q = 0; q < gr->n_runs; q++) {
            const agn_sum_run *r = &s->runs[gr->runs[q]];
            int any = 0;
            for (int e = 0; e < r->n_ep; e++) any |= !isnan(r->ep[e].val_acc);
            if (!any) continue;
            fprintf(d, "%s# %s W=%ld: %s\n# epoch val_acc\n", blocks ? "\n\n" : "", gr->config,
                    r->world_size, r->label);
            for (int e = 0; e < r->n_ep; e++)
                if (!isnan(r->ep[e].val_acc))
                    fprintf(d, "%ld %.10g\n", r->ep[e].epoch, r->ep[e].val_acc);
            fprintf(g, "%s    dat index %d using 1:2 with linespoints lw 2 dt %d pt %d "
                       "lc rgb '%s' title ", blocks ? ", \\\n" : "  plot \\\n", blocks,
                    1 + k % 5, 5 + (q % 4) * 2, gp_colors[blocks % N_COLORS]);
            char *t = agn_xasprintf("%s W=%ld (%s)", gr->config, r->world_size, r->label);
            gp_str(g, t);
            free(t);
            blocks++;
        }
    }
    if (blocks == 0)
        fputs("  set label 'no validation accuracy in these runs (trained without --val?)' at "
              "graph 0.5, graph 0.5 center\n  plot [0:1] [0:1] NaN notitle\n", g);
    else
        fputc('\n', g);
    gp_tail(g);
    return pf_commit(&p);
}

int agn_summary_write_plots(const agn_summary *s, const char *dir)
{
    if (agn_mkdir_p(dir) != 0) return -1;
    if (plot_epoch_time(s, dir) || plot_speedup(s, dir) || plot_efficiency(s, dir) ||
        plot_val_acc(s, dir))
        return -1;
    return 0;
}
