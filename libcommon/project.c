/* project.c: the projection of project.h: links (presets and measured
 * agn-bench-comm CSVs), the model of one step's communication, the
 * prediction per W, the verdict, and the writers (Markdown, CSV, gnuplot). */
#include "config.h"
#include "project.h"
#include "csvread.h"
#include "model.h"
#include "runconfig.h"
#include "shard.h"
#include "summary.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- small helpers ---------------------------------------------------------- */

static void add_note(agn_projection *p, char *note)
{
    p->notes = agn_xrealloc(p->notes, (size_t)(p->n_notes + 1) * sizeof *p->notes);
    p->notes[p->n_notes++] = note;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---- presets ---------------------------------------------------------------- */

/* Bandwidth: one direction of the link, the figure nccl-tests' bus bandwidth
 * is compared with (its doc/PERFORMANCE.md); what a system achieves is
 * lower.  Latency: an assumption, not a datasheet figure (see
 * agn-summarize(1)). */
const agn_link_preset_info agn_link_presets[] = {
    {"pcie3", "PCIe 3.0 x16", 15.75, 10,
     "PCI-SIG, PCI Express Base Specification 3.0: 8 GT/s a lane, 128b/130b encoding; "
     "16 x 8 x 128/130 / 8 = 15.75 GB/s each way"},
    {"pcie4", "PCIe 4.0 x16", 31.5, 10,
     "PCI-SIG, PCI Express Base Specification 4.0: 16 GT/s a lane, 128b/130b; 31.5 GB/s each way"},
    {"pcie5", "PCIe 5.0 x16", 63.0, 10,
     "PCI-SIG, PCI Express Base Specification 5.0: 32 GT/s a lane, 128b/130b; 63 GB/s each way"},
    {"nvlink2", "NVLink 2 (V100 SXM2)", 150, 10,
     "NVIDIA Tesla V100 datasheet: NVLink 300 GB/s (6 links x 25 GB/s each way, both ways counted); "
     "150 GB/s each way"},
    {"nvlink3", "NVLink 3 (A100 SXM)", 300, 10,
     "NVIDIA A100 datasheet: NVLink 600 GB/s (12 links x 25 GB/s each way, both ways counted); "
     "300 GB/s each way"},
    {"nvlink4", "NVLink 4 (H100 SXM)", 450, 10,
     "NVIDIA H100 datasheet: NVLink 900 GB/s (18 links, both ways counted); 450 GB/s each way"},
    {"ib100", "InfiniBand EDR 100 Gb/s", 12.5, 20,
     "InfiniBand Trade Association roadmap: EDR 4x, 100 Gb/s data rate; 12.5 GB/s each way"},
    {"ib200", "InfiniBand HDR 200 Gb/s", 25, 20,
     "InfiniBand Trade Association roadmap: HDR 4x, 200 Gb/s; 25 GB/s each way"},
    {"ib400", "InfiniBand NDR 400 Gb/s", 50, 20,
     "InfiniBand Trade Association roadmap: NDR 4x, 400 Gb/s; 50 GB/s each way"},
    {NULL, NULL, 0, 0, NULL},
};

int agn_link_preset(agn_link *l, const char *name)
{
    memset(l, 0, sizeof *l);
    for (int i = 0; agn_link_presets[i].name; i++) {
        const agn_link_preset_info *p = &agn_link_presets[i];
        if (strcasecmp(name, p->name) != 0) continue;
        l->name = agn_xstrdup(p->name);
        l->desc = agn_xasprintf("%s, %.4g GB/s bus bandwidth, %.3g us a collective (preset)", p->what,
                            p->busbw_gbs, p->latency_us);
        l->busbw = p->busbw_gbs;
        l->latency_s = p->latency_us * 1e-6;
        return 0;
    }
    agn_sbuf b = {0};
    for (int i = 0; agn_link_presets[i].name; i++) agn_sb_printf(&b, "%s%s", i ? ", " : "", agn_link_presets[i].name);
    agn_seterr("'%s' is not a link preset (%s)", name, b.s);
    free(b.s);
    return -1;
}

void agn_link_free(agn_link *l)
{
    free(l->name);
    free(l->desc);
    free(l->pts);
    memset(l, 0, sizeof *l);
}

/* ---- measured links --------------------------------------------------------------- */

static int cmp_pt(const void *a, const void *b)
{
    const agn_link_pt *x = a, *y = b;
    if (x->op != y->op) return (int)x->op - (int)y->op;
    if (x->world != y->world) return x->world - y->world;
    return (x->bytes > y->bytes) - (x->bytes < y->bytes);
}

static int csv_num(const char *file, long line, const char *col, const char *s, double min, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v) || errno == ERANGE)
        return agn_seterr("%s:%ld: column '%s': '%s' is not a number", file, line, col, s);
    if (v < min) return agn_seterr("%s:%ld: column '%s': %s is below %g", file, line, col, s, min);
    *out = v;
    return 0;
}

/* Appends the rows of one CSV to L; *TRANSPORT is the first file's. */
static int read_one(agn_link *l, const char *path, char **transport, int *cap)
{
    agn_csvread *cr = agn_csvread_open(path);
    if (!cr) return -1;
    const char *name = agn_csvread_name(cr);
    enum { K_TRANSPORT, K_IMPL, K_OP, K_WORLD, K_BYTES, K_TIME, K_WRONG, K_N };
    static const char *const cols[K_N] = {"transport", "impl", "op", "world_size", "bytes", "time_us", "wrong"};
    int col[K_N], n0 = l->n_pts;
    char **f;
    int nf, rc = agn_csvread_next(cr, &f, &nf);
    if (rc == 0) rc = agn_seterr("%s: empty file (no header line)", name);
    if (rc < 0) goto out;
    for (int k = 0; k < K_N; k++) {
        col[k] = -1;
        for (int i = 0; i < nf; i++)
            if (strcmp(f[i], cols[k]) == 0 && col[k] < 0) col[k] = i;
        if (col[k] < 0) {
            rc = agn_seterr("%s:%ld: no column '%s' in the header (is this an agn-bench-comm CSV?)", name,
                            agn_csvread_line(cr), cols[k]);
            goto out;
        }
    }
    int ncols = nf;
    while ((rc = agn_csvread_next(cr, &f, &nf)) > 0) {
        long line = agn_csvread_line(cr);
        if (nf != ncols) {
            rc = agn_seterr("%s:%ld: %d fields, the header has %d", name, line, nf, ncols);
            goto out;
        }
        if (strcmp(f[col[K_IMPL]], "agn") != 0) continue; /* MPI_Allreduce rows are not agn's link */
        agn_link_pt pt;
        double w, wrong;
        if (agn_bench_op_parse(f[col[K_OP]], &pt.op) != 0) {
            rc = agn_adderr("%s:%ld: column 'op'", name, line);
            goto out;
        }
        if (csv_num(name, line, "world_size", f[col[K_WORLD]], 1, &w) != 0 || w != floor(w) || w > 1 << 20) {
            rc = agn_seterr("%s:%ld: column 'world_size': '%s' is not a rank count", name, line, f[col[K_WORLD]]);
            goto out;
        }
        if (csv_num(name, line, "bytes", f[col[K_BYTES]], 1, &pt.bytes) != 0 ||
            csv_num(name, line, "time_us", f[col[K_TIME]], 0, &pt.time_s) != 0 ||
            csv_num(name, line, "wrong", f[col[K_WRONG]], -1, &wrong) != 0) {
            rc = -1;
            goto out;
        }
        if (wrong > 0) {
            rc = agn_seterr("%s:%ld: this measurement's check failed (%s wrong elements): a link that "
                            "delivers wrong sums is no link to project with", name, line, f[col[K_WRONG]]);
            goto out;
        }
        if (!*transport) *transport = agn_xstrdup(f[col[K_TRANSPORT]]);
        else if (strcmp(*transport, f[col[K_TRANSPORT]]) != 0) {
            rc = agn_seterr("%s:%ld: transport '%s' after '%s': one link, one transport", name, line,
                            f[col[K_TRANSPORT]], *transport);
            goto out;
        }
        if (w < 2) continue; /* one rank moves nothing */
        pt.world = (int)w;
        pt.time_s *= 1e-6;
        if (l->n_pts == *cap) {
            *cap = *cap ? 2 * *cap : 64;
            l->pts = agn_xrealloc(l->pts, (size_t)*cap * sizeof *l->pts);
        }
        l->pts[l->n_pts++] = pt;
    }
    if (rc == 0 && l->n_pts == n0)
        rc = agn_seterr("%s: no measurement of agn's transport with 2 or more ranks", name);
out:
    agn_csvread_close(cr);
    return rc < 0 ? -1 : 0;
}

int agn_link_read(agn_link *l, const char *paths)
{
    memset(l, 0, sizeof *l);
    char *transport = NULL, *copy = agn_xstrdup(paths), *save = NULL;
    int cap = 0, rc = 0;
    agn_sbuf names = {0};
    for (char *p = strtok_r(copy, ",", &save); p && rc == 0; p = strtok_r(NULL, ",", &save)) {
        rc = read_one(l, p, &transport, &cap);
        agn_sb_printf(&names, "%s%s", names.len ? "," : "", base_name(p));
    }
    if (rc == 0 && l->n_pts == 0) rc = agn_seterr("--link: no file named");
    int have_ar = 0;
    for (int i = 0; i < l->n_pts; i++) have_ar |= l->pts[i].op == AGN_BENCH_ALLREDUCE;
    if (rc == 0 && !have_ar)
        rc = agn_seterr("%s: no all-reduce measured (agn-bench-comm -O all-reduce, or all)", paths);
    if (rc == 0) {
        qsort(l->pts, (size_t)l->n_pts, sizeof *l->pts, cmp_pt);
        for (int i = 1; i < l->n_pts && rc == 0; i++)
            if (cmp_pt(&l->pts[i - 1], &l->pts[i]) == 0)
                rc = agn_seterr("%s: %s of %.0f bytes at %d ranks is measured twice", paths,
                                agn_bench_op_name(l->pts[i].op), l->pts[i].bytes, l->pts[i].world);
    }
    if (rc != 0) {
        free(names.s);
        free(transport);
        free(copy);
        agn_link_free(l);
        return -1;
    }
    l->measured = 1;
    l->shared = strcmp(transport, "local") == 0;
    l->name = names.s;
    agn_sbuf b = {0};
    agn_sb_printf(&b, "measured: agn's %s transport, agn-bench-comm at W =", transport);
    for (int i = 0; i < l->n_pts; i++)
        if (i == 0 || l->pts[i].world != l->pts[i - 1].world || l->pts[i].op != l->pts[i - 1].op) {
            int seen = 0;
            for (int k = 0; k < i; k++) seen |= l->pts[k].world == l->pts[i].world;
            if (!seen) agn_sb_printf(&b, "%s %d", i ? "," : "", l->pts[i].world);
        }
    l->desc = b.s;
    free(transport);
    free(copy);
    return 0;
}

/* The measured points of OP at the world size nearest WORLD (equal, else the
 * closest ratio, the larger on a tie): *N of them from *PTS; 0 if none. */
static int points(const agn_link *l, agn_bench_op op, int world, const agn_link_pt **pts, int *n)
{
    int best = 0;
    double bd = 0;
    for (int i = 0; i < l->n_pts; i++) {
        if (l->pts[i].op != op) continue;
        double d = fabs(log((double)l->pts[i].world / world));
        if (!best || d < bd - 1e-12 || (fabs(d - bd) <= 1e-12 && l->pts[i].world > best)) {
            best = l->pts[i].world;
            bd = d;
        }
    }
    if (!best) return 0;
    int i = 0;
    while (l->pts[i].op != op || l->pts[i].world != best) i++;
    *pts = &l->pts[i];
    *n = 0;
    while (i + *n < l->n_pts && l->pts[i + *n].op == op && l->pts[i + *n].world == best) (*n)++;
    return best;
}

static double interp(const agn_link_pt *p, int n, double bytes)
{
    if (n == 1 || bytes <= p[0].bytes) return p[0].time_s * (n == 1 && bytes > p[0].bytes ? bytes / p[0].bytes : 1);
    for (int i = 1; i < n; i++)
        if (bytes <= p[i].bytes) {
            double a = (bytes - p[i - 1].bytes) / (p[i].bytes - p[i - 1].bytes);
            return p[i - 1].time_s + a * (p[i].time_s - p[i - 1].time_s);
        }
    /* beyond the largest: the last two points' slope (the bandwidth regime) */
    double slope = (p[n - 1].time_s - p[n - 2].time_s) / (p[n - 1].bytes - p[n - 2].bytes);
    if (!(slope > 0)) slope = p[n - 1].time_s / p[n - 1].bytes;
    return p[n - 1].time_s + slope * (bytes - p[n - 1].bytes);
}

double agn_link_time(const agn_link *l, agn_bench_op op, double bytes, int world)
{
    if (world <= 1) return 0;
    if (!l->measured) return l->latency_s + bytes * agn_bench_bus_factor(op, world) / (l->busbw * 1e9);
    const agn_link_pt *p;
    int n;
    double k = 1;
    int wm = points(l, op, world, &p, &n);
    if (!wm) { /* not measured: as half (reduce-scatter, all-gather) or all of an all-reduce */
        wm = points(l, AGN_BENCH_ALLREDUCE, world, &p, &n);
        if (!wm) return NAN;
        k = agn_bench_bus_factor(op, wm) / agn_bench_bus_factor(AGN_BENCH_ALLREDUCE, wm);
    }
    double t = k * interp(p, n, bytes);
    if (wm != world) t *= agn_bench_bus_factor(op, world) / agn_bench_bus_factor(op, wm);
    return t;
}

/* ---- the model of one step --------------------------------------------------------- */

/* One range of agn's sharded reduction (zero.c): reduce-scattered, or the
 * sparse embedding (all-reduced as its rows of the batch). */
typedef struct {
    double bytes;
    int sparse;
} range;

typedef struct {
    range *r;
    int n;
    double *bucket; /* bytes of each trainer bucket, whole */
    int nb;
} ranges;

/* train.c's buckets_plan: ranges of the gradient buffer cut at tensor
 * boundaries from the end, each at least BUCKET bytes unless it is the
 * last; zero.c's plan then cuts the embedding out of its bucket. */
static void plan(const agn_model *m, uint64_t bucket, ranges *out, int *n_buckets)
{
    const agn_tensor *emb = agn_model_tensor(m, "tok_emb");
    size_t e0 = emb ? emb->offset : 0, e1 = emb ? emb->offset + emb->numel : 0;
    size_t want = bucket / sizeof(float), end = m->n_params;
    if (want == 0) want = 1;
    out->r = agn_xcalloc((size_t)m->n_tensors * 3 + 3, sizeof *out->r);
    out->bucket = agn_xcalloc((size_t)m->n_tensors + 1, sizeof *out->bucket);
    out->n = out->nb = 0;
    *n_buckets = 0;
    for (int t = m->n_tensors - 1; t >= 0; t--) {
        size_t s = m->tensors[t].offset;
        if (end - s >= want || t == 0) {
            if (t == 0) s = 0;
            (*n_buckets)++;
            out->bucket[out->nb++] = 4.0 * (double)(end - s);
            if (emb && s <= e0 && e1 <= end) {
                if (s < e0) out->r[out->n++] = (range){4.0 * (double)(e0 - s), 0};
                out->r[out->n++] = (range){4.0 * (double)(e1 - e0), 1};
                if (e1 < end) out->r[out->n++] = (range){4.0 * (double)(end - e1), 0};
            } else {
                out->r[out->n++] = (range){4.0 * (double)(end - s), 0};
            }
            end = s;
        }
    }
}

/* The communication of one step at W over L: *OVER may hide behind
 * backward, *AFTER cannot; *LAT is what the same messages cost with no
 * bytes. */
static void step_comm(const agn_proj_group *g, const ranges *rg, const agn_link *l, int W, double *over,
                      double *after, double *lat)
{
    double o = 0, a = 0, z = 0;
    if (g->dense) { /* every bucket all-reduced whole during backward, nothing after (DDP) */
        for (int i = 0; i < rg->nb; i++) {
            o += agn_link_time(l, AGN_BENCH_ALLREDUCE, rg->bucket[i], W);
            z += agn_link_time(l, AGN_BENCH_ALLREDUCE, 1, W);
        }
        *over = o;
        *after = 0;
        *lat = z;
        return;
    }
    /* (every rank knows the global batch, so the embedding's rows need no
     * collective of their own: zero.h) */
    for (int i = 0; i < rg->n; i++) {
        if (rg->r[i].sparse) {
            o += agn_link_time(l, AGN_BENCH_ALLREDUCE, g->emb_rows * (double)g->dim * 4, W);
            z += agn_link_time(l, AGN_BENCH_ALLREDUCE, 1, W);
        } else {
            o += agn_link_time(l, AGN_BENCH_REDUCE_SCATTER, rg->r[i].bytes, W);
            z += agn_link_time(l, AGN_BENCH_REDUCE_SCATTER, 1, W);
        }
    }
    /* the loss and the stop flag (two doubles, issued after backward) */
    a += agn_link_time(l, AGN_BENCH_ALLREDUCE, 16.0, W);
    z += agn_link_time(l, AGN_BENCH_ALLREDUCE, 1, W);
    /* the norm (and the per-rank stats riding on it) */
    a += agn_link_time(l, AGN_BENCH_ALLREDUCE, 8.0 * (1 + W), W);
    z += agn_link_time(l, AGN_BENCH_ALLREDUCE, 1, W);
    if (l->shared) { /* a barrier publishes the shared parameters */
        a += agn_link_time(l, AGN_BENCH_ALLREDUCE, 1, W);
        z += agn_link_time(l, AGN_BENCH_ALLREDUCE, 1, W);
    } else {
        for (int i = 0; i < rg->n; i++) {
            a += agn_link_time(l, AGN_BENCH_ALLGATHER, rg->r[i].bytes, W);
            z += agn_link_time(l, AGN_BENCH_ALLGATHER, 1, W);
        }
    }
    *over = o;
    *after = a;
    *lat = z;
}

/* ---- reading the run again ------------------------------------------------------------ */

/* Tokens a step, from metrics.csv's tokens and steps columns; NAN if absent. */
static double tokens_per_step(const char *metrics)
{
    agn_csvread *cr = agn_csvread_open(metrics);
    if (!cr) return NAN;
    char **f;
    int nf, ct = -1, cs = -1;
    double tok = 0, steps = 0;
    if (agn_csvread_next(cr, &f, &nf) > 0) {
        for (int i = 0; i < nf; i++) {
            if (strcmp(f[i], "tokens") == 0) ct = i;
            if (strcmp(f[i], "steps") == 0) cs = i;
        }
        while (ct >= 0 && cs >= 0 && agn_csvread_next(cr, &f, &nf) > 0) {
            if (ct >= nf || cs >= nf) break;
            tok += strtod(f[ct], NULL);
            steps += strtod(f[cs], NULL);
        }
    }
    agn_csvread_close(cr);
    return steps > 0 && tok > 0 ? tok / steps : NAN;
}

/* run.bucket_bytes of a run's config.yaml (agn-train writes it), or 0. */
static uint64_t bucket_of(const char *config)
{
    size_t len;
    char *text = agn_read_file(config, &len);
    if (!text) return 0;
    uint64_t v = 0;
    int in_run = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if (line[0] != ' ' && line[0] != '#' && line[0]) in_run = strncmp(line, "run:", 4) == 0;
        else if (in_run && strncmp(line, "  bucket_bytes:", 15) == 0) {
            char *end;
            unsigned long long x = strtoull(line + 15, &end, 10);
            while (*end == ' ') end++;
            if (end != line + 15 && *end == '\0') v = x;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return v;
}

/* The gradient megabytes a step that agn-train logged for a run of several
 * ranks (train.log: "epoch N: gradients reduced X MB a step ..."), the last
 * epoch's; NAN when the log has none. */
static double logged_mb(const char *metrics)
{
    char *dir = agn_dir_of(metrics), *log = agn_xasprintf("%s/train.log", dir);
    free(dir);
    size_t len;
    char *text = agn_read_file(log, &len);
    free(log);
    if (!text) return NAN;
    double mb = NAN;
    static const char key[] = "gradients reduced ";
    for (char *p = strstr(text, key); p; p = strstr(p + 1, key)) {
        char *end;
        double v = strtod(p + sizeof key - 1, &end);
        if (end != p + sizeof key - 1 && strncmp(end, " MB", 3) == 0 && isfinite(v) && v >= 0) mb = v;
    }
    free(text);
    return mb;
}

/* The run's training shards (config.yaml's run.train_data, a flow list of
 * quoted paths as agn-train writes it), each found as written, else beside
 * the run directory or its parent; *N of them (free each and the array). */
static char **train_shards(const char *config, int *n)
{
    *n = 0;
    size_t len;
    char *text = agn_read_file(config, &len);
    if (!text) return NULL;
    char *line = strstr(text, "\n  train_data: [");
    char **v = NULL;
    if (line) {
        char *p = strchr(line + 1, '['), *end = strchr(p, '\n');
        if (end) *end = '\0';
        char *dir = agn_dir_of(config);
        while ((p = strchr(p, '"')) != NULL) {
            char *q = strchr(p + 1, '"');
            if (!q) break;
            *q = '\0';
            const char *path = p + 1;
            char *cand[3] = {agn_xstrdup(path), agn_xasprintf("%s/%s", dir, path), agn_xasprintf("%s/../%s", dir, path)};
            char *found = NULL;
            for (int i = 0; i < 3; i++) {
                if (!found && access(cand[i], R_OK) == 0) found = cand[i];
                else free(cand[i]);
            }
            if (found) {
                v = agn_xrealloc(v, (size_t)(*n + 1) * sizeof *v);
                v[(*n)++] = found;
            }
            p = q + 1;
        }
        free(dir);
    }
    free(text);
    return v;
}

/* The mean number of distinct token ids (the pad, 0, included) of NB
 * batches of B examples drawn at random (a fixed sequence) from the run's
 * training shards; NAN when they cannot be read. */
static double sampled_rows(const char *config, long B, long vocab, const char **which)
{
    int n;
    char **paths = train_shards(config, &n);
    double rows = NAN;
    agn_dataset d;
    memset(&d, 0, sizeof d);
    if (n > 0 && agn_dataset_load(&d, paths, n) == 0 && d.n > 0 && B > 0) {
        uint32_t *seen = agn_xcalloc((size_t)vocab + 1, sizeof *seen);
        const int NB = 200;
        uint64_t x = 0x9e3779b97f4a7c15ULL, total = 0;
        for (int b = 1; b <= NB; b++) {
            uint64_t distinct = 0;
            seen[0] = (uint32_t)b; /* the pad */
            distinct++;
            for (long e = 0; e < B; e++) {
                x = x * 6364136223846793005ULL + 1442695040888963407ULL;
                uint64_t ex = (x >> 33) % d.n;
                for (uint64_t t = d.offsets[ex]; t < d.offsets[ex + 1]; t++) {
                    int32_t id = d.tokens[t];
                    if (id < 0 || id > vocab) continue;
                    if (seen[id] != (uint32_t)b) {
                        seen[id] = (uint32_t)b;
                        distinct++;
                    }
                }
            }
            total += distinct;
        }
        free(seen);
        rows = (double)total / NB;
        if (which) *which = paths[0];
    }
    agn_dataset_free(&d);
    for (int i = 0; i < n; i++)
        if (!which || *which != paths[i]) free(paths[i]);
    free(paths);
    return rows;
}

/* ---- the projection ---------------------------------------------------------------------- */

/* The share of one device's work a step waits for at W: 1/W with a device
 * each; with W ranks on D < W devices, the devices time-slice the ranks (the
 * scheduler moves unbound CPU ranks between cores; a GPU interleaves the
 * kernels of the processes it runs), so the work of a step takes 1/D of one
 * device's time.  (The first quiet run of tests/project-check.sh, 3 ranks
 * on 2 cores, measured 0.76 s an epoch where this gives 0.71 s and a model
 * in which every step waited for a device running ceil(W/D) ranks gave
 * 0.93 s.) */
static double share(const agn_proj_opts *o, long w)
{
    if (o->devices > 0 && w > o->devices) return 1 / (double)o->devices;
    return 1 / (double)w;
}
static long devices_for(const agn_proj_opts *o, long w) { return o->devices > 0 && o->devices < w ? o->devices : w; }

/* One W: every figure per epoch. */
static void predict(const agn_proj_group *g, const ranges *rg, const agn_link *l, const agn_sum_col *c1,
                    const agn_proj_opts *o, long W, agn_proj_pt *pt)
{
    double sc = o->compute_scale > 0 ? o->compute_scale : 1;
    double f = share(o, W);
    pt->world = W;
    pt->compute = c1->compute / sc * f * (W > 1 ? 1 + g->imbalance : 1);
    pt->optim = c1->optim / sc * (W > 1 ? g->optim_serial + (1 - g->optim_serial) * f : 1);
    pt->data = c1->data / sc;
    double over, after, lat;
    step_comm(g, rg, l, (int)W, &over, &after, &lat);
    double N = g->steps;
    double hidden = g->hidden * over * N, cap = o->backward_share * pt->compute;
    if (hidden > cap) hidden = cap;
    pt->comm_total = N * (over + after);
    pt->comm_exposed = pt->comm_total - hidden;
    pt->comm_latency = N * lat;
    if (pt->comm_latency > pt->comm_exposed) pt->comm_latency = pt->comm_exposed;
    pt->epoch_time = pt->compute + pt->optim + pt->data + pt->comm_exposed;
    pt->R = pt->comm_exposed > 0 ? pt->compute / pt->comm_exposed : NAN;
    pt->measured = pt->error = NAN;
}

static void verdict(agn_proj_group *g, agn_proj_link *pl, const agn_proj_opts *o)
{
    agn_sbuf b = {0};
    const agn_proj_pt *p = pl->pts;
    int n = pl->n_pts;
    /* stops paying: the first W whose epoch is not at least 10% shorter than
     * the previous W's, or whose efficiency falls below 50% */
    int stop = -1;
    for (int i = 1; i < n; i++) {
        if (p[i].world <= 1) continue;
        if ((p[i].world > p[i - 1].world && p[i].epoch_time > 0.9 * p[i - 1].epoch_time) ||
            p[i].efficiency < 0.5) {
            stop = i;
            break;
        }
    }
    int best = 0;
    for (int i = 0; i < n; i++)
        if (p[i].speedup > p[best].speedup) best = i;
    agn_sb_printf(&b, "over %s: ", pl->link->name);
    if (p[n - 1].world <= 1) {
        agn_sb_printf(&b, "only one device projected, nothing to judge.");
        pl->verdict = b.s;
        return;
    }
    for (int i = 0; i < n; i++)
        if (p[i].world > 1) agn_sb_printf(&b, "%.2fx at W=%ld (%.0f%%)%s", p[i].speedup, p[i].world,
                                      100 * p[i].efficiency, i + 1 < n ? ", " : ". ");
    if (stop < 0) {
        agn_sb_printf(&b, "Adding devices pays up to W=%ld, the largest projected", p[n - 1].world);
        agn_sb_printf(&b, " (R = %.3g there).", p[n - 1].R);
        pl->verdict = b.s;
        return;
    }
    const agn_proj_pt *s = &p[stop];
    if (s->speedup < 1 && s->world > 1 && stop == 1)
        agn_sb_printf(&b, "Adding devices does not pay at all: W=%ld is slower than one device. ", s->world);
    else
        agn_sb_printf(&b, "Adding devices stops paying at W=%ld (%s); the best is %.2fx at W=%ld. ", s->world,
                  s->efficiency < 0.5 ? "efficiency below 50%" : "less than 10% shorter than the W before",
                  p[best].speedup, p[best].world);
    /* why: the largest of what does not shrink with W */
    double bw = s->comm_exposed - s->comm_latency, lat = s->comm_latency;
    double serial = s->optim - pl->base.optim * share(o, s->world) + s->data +
                    (s->compute - pl->base.compute * share(o, s->world));
    if (serial < 0) serial = 0;
    double T = s->epoch_time;
    if (lat >= bw && lat >= serial)
        agn_sb_printf(&b, "Compute is too small per rank: at W=%ld a rank computes %.3g s an epoch, while the "
                      "%.0f messages a step cost %.3g s in latency alone (%.0f%% of the epoch), whatever the "
                      "bytes; a larger batch per rank, or fewer, larger buckets, would help, a faster link "
                      "hardly.",
                  s->world, s->compute,
                  (double)(g->n_msgs_overlap + (pl->link->shared && !g->dense ? 3 : g->n_msgs_after)), lat, 100 * lat / T);
    else if (bw >= serial)
        agn_sb_printf(&b, "The link is too slow for the gradient bytes: %.3g MB a step to reduce and %.3g MB "
                      "to gather take %.3g s an epoch exposed (%.0f%% of the epoch, R = %.2f) against %.3g s "
                      "of compute.",
                  (g->dense_bytes + g->emb_bytes) / 1e6,
                  pl->link->shared ? 0.0 : g->param_bytes / 1e6, bw, 100 * bw / T, s->R, s->compute);
    else
        agn_sb_printf(&b, "The serial part dominates: the optimizer's unsharded part, data loading and "
                      "imbalance take %.3g s an epoch at W=%ld (%.0f%% of the epoch) and do not shrink "
                      "with more devices.",
                  serial, s->world, 100 * serial / T);
    pl->verdict = b.s;
}

int agn_project(agn_projection *p, const agn_summary *s, const agn_link *links, int n,
                const agn_proj_opts *o)
{
    memset(p, 0, sizeof *p);
    p->o = *o;
    p->o.worlds = agn_xmalloc((size_t)o->n_worlds * sizeof *p->o.worlds);
    memcpy(p->o.worlds, o->worlds, (size_t)o->n_worlds * sizeof *p->o.worlds);
    if (!(p->o.backward_share > 0)) p->o.backward_share = 2.0 / 3;
    p->groups = agn_xcalloc((size_t)s->n_groups, sizeof *p->groups);
    for (int k = 0; k < s->n_groups; k++) {
        const agn_sum_group *sg = &s->groups[k];
        const agn_sum_col *c1 = NULL, *cc = NULL;
        for (int j = 0; j < sg->n_cols; j++)
            if (sg->cols[j].world_size == 1) c1 = &sg->cols[j];
        if (!c1) {
            add_note(p, agn_xasprintf("%s: no 1-rank run, so nothing to project from", sg->config));
            continue;
        }
        for (int j = 0; j < sg->n_cols && o->calibrate >= 0; j++) {
            long w = sg->cols[j].world_size;
            if (w > 1 && (o->calibrate == 0 ? (!cc) : w == o->calibrate)) cc = &sg->cols[j];
        }
        if (o->calibrate > 0 && !cc) {
            agn_seterr("%s: --calibrate %ld: no run with %ld ranks", sg->config, o->calibrate, o->calibrate);
            return -1;
        }
        agn_proj_group *g = &p->groups[p->n_groups];
        memset(g, 0, sizeof *g);
        g->group = k;
        const agn_sum_run *r1 = &s->runs[c1->runs[0]];
        char *dir = agn_dir_of(r1->path);
        g->config_path = agn_xasprintf("%s/config.yaml", dir);
        free(dir);
        agn_config cfg;
        agn_config_defaults(&cfg);
        if (agn_config_load(&cfg, g->config_path) != 0) {
            agn_adderr("the projection needs the 1-rank run's config.yaml");
            agn_config_free(&cfg);
            free(g->config_path);
            return -1;
        }
        if (cfg.vocab_size <= 0) {
            agn_seterr("%s: model.vocab_size is not resolved (a run directory's config.yaml has it)",
                       g->config_path);
            agn_config_free(&cfg);
            free(g->config_path);
            return -1;
        }
        agn_model_config mc = {
            .vocab_size = (int)cfg.vocab_size, .max_len = (int)cfg.max_len, .d_model = (int)cfg.d_model,
            .n_heads = (int)cfg.n_heads, .n_layers = (int)cfg.n_layers, .d_ff = (int)cfg.d_ff,
            .n_classes = (int)cfg.n_classes, .dropout = 0,
        };
        agn_config_free(&cfg);
        agn_model m;
        if (agn_model_create(&m, &mc, 1) != 0) {
            agn_adderr("%s", g->config_path);
            free(g->config_path);
            return -1;
        }
        p->n_groups++;
        if ((long)m.n_params != sg->params)
            add_note(p, agn_xasprintf("%s: the config has %zu parameters, the metrics %ld", g->config_path,
                                  m.n_params, sg->params));
        g->vocab = mc.vocab_size;
        g->dim = mc.d_model;
        g->n_params = (long)m.n_params;
        g->bucket_bytes = o->bucket_bytes ? o->bucket_bytes : bucket_of(g->config_path);
        if (!g->bucket_bytes) {
            g->bucket_bytes = 1u << 20;
            add_note(p, agn_xasprintf("%s: no run.bucket_bytes; taking agn-train's default, 1M", g->config_path));
        }
        ranges rg;
        plan(&m, g->bucket_bytes, &rg, &g->n_buckets);
        agn_model_free(&m);
        g->dense = o->dense;
        g->n_msgs_overlap = 0;
        g->n_msgs_after = 2 + rg.n; /* the loss, the norm, the all-gathers (a barrier where shared) */
        for (int i = 0; i < rg.n; i++) {
            g->param_bytes += rg.r[i].bytes;
            if (!rg.r[i].sparse) g->dense_bytes += rg.r[i].bytes;
            g->n_msgs_overlap++;
        }
        /* the embedding rows a step: given; else what a run of several ranks
         * logged it reduced, less the dense part; else the tokens a step */
        g->tokens_per_step = tokens_per_step(r1->path);
        g->emb_rows = o->emb_rows;
        for (int j = 0; j < sg->n_cols && !(g->emb_rows > 0); j++) {
            if (sg->cols[j].world_size < 2) continue;
            const agn_sum_run *rw = &s->runs[sg->cols[j].runs[0]];
            double mb = logged_mb(rw->path);
            if (!isfinite(mb)) continue;
            double rows = (mb * 1e6 - g->dense_bytes) / ((double)g->dim * 4);
            g->emb_rows = rows < 1 ? 1 : rows > (double)g->vocab ? (double)g->vocab : rows;
            add_note(p, agn_xasprintf("%s: %.0f embedding rows a step, from the %.6g MB a step its train.log "
                                  "says were reduced", rw->label, g->emb_rows, mb));
        }
        if (!(g->emb_rows > 0)) {
            const char *shard = NULL;
            double rows = sampled_rows(g->config_path, sg->global_batch, g->vocab, &shard);
            if (isfinite(rows)) {
                g->emb_rows = fmin((double)g->vocab, rows);
                add_note(p, agn_xasprintf("%s: %.0f embedding rows a step, the distinct tokens of 200 random "
                                      "batches of %ld examples of %s", sg->config, g->emb_rows,
                                      sg->global_batch, shard));
                free((char *)shard);
            }
        }
        if (!(g->emb_rows > 0)) {
            g->emb_rows = isfinite(g->tokens_per_step) ? fmin((double)g->vocab, g->tokens_per_step)
                                                      : (double)g->vocab;
            if (!isfinite(g->tokens_per_step))
                add_note(p, agn_xasprintf("%s: no tokens column; the embedding is taken as reduced whole", r1->path));
        }
        for (int i = 0; i < rg.n; i++)
            if (rg.r[i].sparse) g->emb_bytes = g->emb_rows * (double)g->dim * 4;
        if (g->dense) {
            g->n_msgs_overlap = rg.nb;
            g->n_msgs_after = 0;
        }
        /* steps an epoch */
        double ex = NAN;
        for (int q = 0; q < r1->n_ep; q++)
            if (isfinite(r1->ep[q].train_examples)) ex = r1->ep[q].train_examples;
        if (!isfinite(ex)) ex = r1->ep[r1->n_ep - 1].samples;
        g->steps = ceil(ex / (double)sg->global_batch);

        /* calibration: a measured run at W > 1, with a measured link of its transport */
        g->hidden = 0;
        g->imbalance = 0;
        g->optim_serial = 0;
        if (cc) {
            g->calib_w = cc->world_size;
            double fc = share(o, cc->world_size);
            if (isfinite(cc->imbalance) && cc->compute > 0) g->imbalance = cc->imbalance / cc->compute;
            if (c1->optim > 0 && fc < 1) {
                double sv = (cc->optim / c1->optim - fc) / (1 - fc);
                g->optim_serial = sv < 0 ? 0 : sv > 1 ? 1 : sv;
            }
            const agn_sum_run *rc = &s->runs[cc->runs[0]];
            const agn_link *cl = NULL;
            for (int i = 0; i < n; i++)
                if (links[i].measured && ((links[i].shared && strcmp(rc->transport, "local") == 0) ||
                                          (!links[i].shared && strcmp(rc->transport, "local") != 0)))
                    cl = &links[i];
            if (cl) {
                double over, after, lat;
                step_comm(g, &rg, cl, (int)cc->world_size, &over, &after, &lat);
                double exposed = cc->comm - (isfinite(cc->imbalance) ? cc->imbalance : 0);
                if (exposed < 0) exposed = 0;
                double h = over > 0 ? 1 - (exposed / g->steps - after) / over : 0;
                g->hidden = h < 0 ? 0 : h > 1 ? 1 : h;
            } else {
                add_note(p, agn_xasprintf("%s: no measured link of the %s transport of the W=%ld run: "
                                      "the hidden fraction is taken as 0",
                                      sg->config, rc->transport, cc->world_size));
            }
        }
        if (o->hidden >= 0) g->hidden = o->hidden;

        g->links = agn_xcalloc((size_t)n, sizeof *g->links);
        g->n_links = n;
        for (int i = 0; i < n; i++) {
            agn_proj_link *pl = &g->links[i];
            pl->link = &links[i];
            pl->pts = agn_xcalloc((size_t)o->n_worlds, sizeof *pl->pts);
            pl->n_pts = o->n_worlds;
            for (int j = 0; j < o->n_worlds; j++) predict(g, &rg, &links[i], c1, &p->o, o->worlds[j], &pl->pts[j]);
            agn_proj_pt base;
            predict(g, &rg, &links[i], c1, &p->o, 1, &base);
            pl->base = base;
            for (int j = 0; j < o->n_worlds; j++) {
                agn_proj_pt *pt = &pl->pts[j];
                pt->speedup = pt->epoch_time > 0 ? base.epoch_time / pt->epoch_time : NAN;
                pt->efficiency = pt->speedup / (double)pt->world;
                for (int q = 0; q < sg->n_cols; q++)
                    if (sg->cols[q].world_size == pt->world && o->compute_scale == 1 && !o->dense) {
                        pt->measured = sg->cols[q].epoch_time;
                        pt->error = pt->epoch_time / pt->measured - 1;
                    }
            }
            verdict(g, pl, &p->o);
        }
        free(rg.r);
        free(rg.bucket);
    }
    return 0;
}

void agn_projection_free(agn_projection *p)
{
    for (int k = 0; k < p->n_groups; k++) {
        agn_proj_group *g = &p->groups[k];
        for (int i = 0; i < g->n_links; i++) {
            free(g->links[i].pts);
            free(g->links[i].verdict);
        }
        free(g->links);
        free(g->config_path);
    }
    free(p->groups);
    for (int i = 0; i < p->n_notes; i++) free(p->notes[i]);
    free(p->notes);
    free(p->o.worlds);
    memset(p, 0, sizeof *p);
}

/* ---- writers ------------------------------------------------------------------------------ */

static void md_num(FILE *fp, double v)
{
    if (isfinite(v)) fprintf(fp, "%.4g", v);
    else fputs("-", fp);
}

int agn_projection_write_md(const agn_projection *p, const agn_summary *s, FILE *fp)
{
    const agn_proj_opts *o = &p->o;
    fprintf(fp, "\n# Projection\n\n"
                "Per epoch, from each config's 1-rank run: compute%s divided by W%s, times 1 + the "
                "imbalance; the optimizer's sharded part likewise, data as measured; communication as "
                "agn does it (zero.h): the embedding's rows of the batch all-reduced, "
                "every other bucket reduce-scattered (these may hide behind backward, at most %.0f%% of "
                "compute), the norm all-reduced, then the parameters all-gathered (a barrier where the "
                "ranks share them). Each collective costs what the link gives for its bytes at W: "
                "for a preset, its latency (a fixed cost a message) + bytes x bus factor / bus "
                "bandwidth, where an all-reduce carries 2(W-1)/W of its bytes over each link (a ring, "
                "or a reduce-scatter and an all-gather of (W-1)/W each); for a measured link, the "
                "measured time, interpolated in size and scaled by that factor to W. Exposed "
                "communication is what is not hidden behind backward: the hidden fraction below of "
                "the part that overlaps it.\n",
            o->compute_scale != 1 ? " (made faster by the given factor)" : "",
            o->devices > 0 ? " (with more ranks than devices, by the devices instead: they time-slice "
                             "the ranks)"
                           : " (one device a rank)", 100 * (o->backward_share > 0 ? o->backward_share : 2.0 / 3));
    if (o->compute_scale != 1)
        fprintf(fp, "\nCompute, optimizer and data are taken %.4gx as fast as measured.\n", o->compute_scale);
    for (int i = 0; i < p->n_notes; i++) fprintf(fp, "%s- %s\n", i ? "" : "\nNotes:\n\n", p->notes[i]);
    for (int k = 0; k < p->n_groups; k++) {
        const agn_proj_group *g = &p->groups[k];
        const agn_sum_group *sg = &s->groups[g->group];
        fprintf(fp, "\n## %s (%ld params, batch %ld)\n\n", sg->config, sg->params, sg->global_batch);
        fprintf(fp, "%.0f steps an epoch; per step: %.3g MB reduce-scattered in %d bucket%s of %llu "
                    "bytes, %.0f embedding rows (%.3g MB) all-reduced, %.3g MB of parameters "
                    "all-gathered where not shared; %d messages overlap backward, %d follow it (2 where shared). ",
                g->steps, g->dense_bytes / 1e6, g->n_buckets, g->n_buckets == 1 ? "" : "s",
                (unsigned long long)g->bucket_bytes, g->emb_rows, g->emb_bytes / 1e6, g->param_bytes / 1e6,
                g->n_msgs_overlap, g->n_msgs_after);
        if (g->dense)
            fprintf(fp, "Priced as a dense reduction instead (--reduction dense, PyTorch DDP's scheme): "
                        "%.3g MB all-reduced a step in %d bucket%s during backward, nothing after. ",
                    g->param_bytes / 1e6, g->n_buckets, g->n_buckets == 1 ? "" : "s");
        if (g->calib_w)
            fprintf(fp, "Calibrated on the W=%ld run: %.0f%% of the overlappable communication hidden, "
                        "imbalance %.1f%% of compute, optimizer serial part %.0f%%.\n",
                    g->calib_w, 100 * g->hidden, 100 * g->imbalance, 100 * g->optim_serial);
        else
            fprintf(fp, "Not calibrated (no run at W > 1 used): hidden fraction %.0f%%, no imbalance, the "
                        "optimizer fully sharded.\n",
                    100 * g->hidden);
        for (int i = 0; i < g->n_links; i++) {
            const agn_proj_link *pl = &g->links[i];
            fprintf(fp, "\n### %s\n\n%s.\n\n", pl->link->name, pl->link->desc);
            fputs("| W | compute (s) | optim (s) | comm (s) | exposed (s) | comm a step, all / exposed (ms) | "
                  "epoch (s) | speedup | efficiency | R | measured (s) | error |\n"
                  "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
                  fp);
            for (int j = 0; j < pl->n_pts; j++) {
                const agn_proj_pt *t = &pl->pts[j];
                fprintf(fp, "| %ld | %.4g | %.4g | %.4g | %.4g | %.3g / %.3g | %.4g | %.2fx | %.0f%% | ", t->world,
                        t->compute, t->optim, t->comm_total, t->comm_exposed, 1e3 * t->comm_total / g->steps,
                        1e3 * t->comm_exposed / g->steps, t->epoch_time, t->speedup, 100 * t->efficiency);
                md_num(fp, t->R);
                fputs(" | ", fp);
                md_num(fp, t->measured);
                fputs(" | ", fp);
                if (isfinite(t->error)) fprintf(fp, "%+.1f%%", 100 * t->error);
                else fputs("-", fp);
                fputs(" |\n", fp);
            }
            fprintf(fp, "\n**Verdict** %s\n", pl->verdict);
        }
    }
    return ferror(fp) ? -1 : 0;
}

/* A CSV field, quoted (RFC 4180) when it holds a comma, quote or line end:
 * a link named by several files is "a.csv,b.csv". */
static void csv_field(FILE *fp, const char *t)
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

int agn_projection_write_csv(const agn_projection *p, const agn_summary *s, FILE *fp)
{
    fputs("config,params,global_batch,link,world_size,devices,compute_scale,compute_s,optim_s,data_s,"
          "comm_s,comm_exposed_s,epoch_time_s,speedup,efficiency,R,measured_epoch_time_s,error,steps,"
          "comm_step_s,comm_exposed_step_s\n",
          fp);
    for (int k = 0; k < p->n_groups; k++) {
        const agn_proj_group *g = &p->groups[k];
        const agn_sum_group *sg = &s->groups[g->group];
        for (int i = 0; i < g->n_links; i++)
            for (int j = 0; j < g->links[i].n_pts; j++) {
                const agn_proj_pt *t = &g->links[i].pts[j];
                csv_field(fp, sg->config);
                fprintf(fp, ",%ld,%ld,", sg->params, sg->global_batch);
                csv_field(fp, g->links[i].link->name);
                fprintf(fp, ",%ld,%ld,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,", t->world,
                        devices_for(&p->o, t->world), p->o.compute_scale, t->compute, t->optim, t->data,
                        t->comm_total, t->comm_exposed, t->epoch_time, t->speedup, t->efficiency);
                if (isfinite(t->R)) fprintf(fp, "%.6g", t->R);
                fputc(',', fp);
                if (isfinite(t->measured)) fprintf(fp, "%.6g,%.6g", t->measured, t->error);
                else fputc(',', fp);
                fprintf(fp, ",%.0f,%.6g,%.6g\n", g->steps, t->comm_total / g->steps, t->comm_exposed / g->steps);
            }
    }
    return ferror(fp) ? -1 : 0;
}

/* ---- plots (the look of summary.c's) ------------------------------------------------------ */

const char *const agn_projection_plot_names[] = {"projected_speedup", "projected_efficiency", NULL};

static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                     "#9467bd", "#8c564b", "#e377c2", "#17becf"};

static void gp_str(FILE *fp, const char *t)
{
    fputc('\'', fp);
    for (; *t; t++) {
        if (*t == '\'') fputc('\'', fp);
        fputc(*t == '\n' || *t == '\r' ? ' ' : *t, fp);
    }
    fputc('\'', fp);
}

static int plot_one(const agn_projection *p, const agn_summary *s, const char *dir, int eff)
{
    const char *name = agn_projection_plot_names[eff];
    char *dp = agn_xasprintf("%s/%s.dat", dir, name), *gpp = agn_xasprintf("%s/%s.gp", dir, name);
    agn_out d, g;
    int rc = agn_out_open(&d, dp);
    if (rc == 0 && (rc = agn_out_open(&g, gpp)) != 0) agn_out_abort(&d);
    free(dp);
    free(gpp);
    if (rc != 0) return -1;
    long lo = 0, hi = 1;
    double ymax = 1, ymin = 0.5;
    for (int k = 0; k < p->n_groups; k++)
        for (int i = 0; i < p->groups[k].n_links; i++)
            for (int j = 0; j < p->groups[k].links[i].n_pts; j++) {
                const agn_proj_pt *t = &p->groups[k].links[i].pts[j];
                if (lo == 0 || t->world < lo) lo = t->world;
                if (t->world > hi) hi = t->world;
                if (t->speedup > ymax) ymax = t->speedup;
                if (t->speedup > 0 && t->speedup / 1.4 < ymin) ymin = t->speedup / 1.4;
            }
    if ((double)hi > ymax) ymax = (double)hi;
    agn_gp_head(g.fp, name, eff ? "projected parallel efficiency per link, measured points beside"
                            : "projected speedup per link, measured points beside",
                "top left");
    if (eff)
        fprintf(g.fp, "  set title \"Projected parallel efficiency\"\n"
                      "  set xlabel \"devices (world size)\"\n  set ylabel \"efficiency (%%)\"\n"
                      "  set logscale x 2\n  set xrange [%g:%g]\n  set yrange [0:*]\n"
                      "  set offsets 0, 0, graph 0.08, 0\n"
                      "  set key bottom left\n",
                lo / 1.4, hi * 1.4);
    else
        fprintf(g.fp, "  set title \"Projected speedup over one device\"\n"
                      "  set xlabel \"devices (world size)\"\n  set ylabel \"speedup (x)\"\n"
                      "  set logscale xy 2\n  set xrange [%g:%g]\n  set yrange [%g:%g]\n"
                      "  set format y \"%%gx\"\n",
                lo / 1.4, hi * 1.4, ymin, ymax * 1.1);
    fputs("  set xtics (", g.fp);
    for (int j = 0; p->n_groups && j < p->groups[0].links[0].n_pts; j++)
        fprintf(g.fp, "%s\"%ld\" %ld", j ? ", " : "", p->groups[0].links[0].pts[j].world,
                p->groups[0].links[0].pts[j].world);
    fputs(")\n  plot ", g.fp);
    if (eff)
        fputs("100 with lines dt 2 lw 1.5 lc rgb '#555555' title 'ideal (100%)', \\\n"
              "    50 with lines dt 3 lw 1.5 lc rgb '#d62728' title '50%', \\\n", g.fp);
    else
        fprintf(g.fp, "'+' using 1:(%g):(1) with filledcurves fc rgb '#f4c7c3' fs solid 0.6 noborder "
                      "title 'slower than one device (below 1x)', \\\n"
                      "    x with lines dt 2 lw 1.5 lc rgb '#555555' title 'ideal (S = W)', \\\n", ymin);
    int idx = 0, first = 1;
    for (int k = 0; k < p->n_groups; k++) {
        const agn_proj_group *pg = &p->groups[k];
        const agn_sum_group *sg = &s->groups[pg->group];
        for (int i = 0; i < pg->n_links; i++) {
            const agn_proj_link *pl = &pg->links[i];
            char *key = agn_xasprintf("%s over %s (projected)", sg->config, pl->link->name);
            fprintf(d.fp, "%s# %s\n# world_size %s\n", first ? "" : "\n\n", key, eff ? "efficiency_pct" : "speedup");
            for (int j = 0; j < pl->n_pts; j++)
                fprintf(d.fp, "%ld %.10g\n", pl->pts[j].world, eff ? 100 * pl->pts[j].efficiency : pl->pts[j].speedup);
            fprintf(g.fp, "%s    dat index %d using 1:2 with linespoints lw 2 dt 4 pt 6 ps 1.1 lc rgb '%s' title ",
                    first ? "" : ", \\\n", idx++, colors[(k * 3 + i) % 8]);
            gp_str(g.fp, key);
            free(key);
            first = 0;
        }
        /* the measured points of the group (the summary's columns) */
        char *key = agn_xasprintf("%s measured", sg->config);
        fprintf(d.fp, "\n\n# %s\n# world_size %s\n", key, eff ? "efficiency_pct" : "speedup");
        for (int j = 0; j < sg->n_cols; j++)
            if (isfinite(sg->cols[j].speedup))
                fprintf(d.fp, "%ld %.10g\n", sg->cols[j].world_size,
                        eff ? 100 * sg->cols[j].efficiency : sg->cols[j].speedup);
        fprintf(g.fp, ", \\\n    dat index %d using 1:2 with points pt 7 ps 1.6 lc rgb '%s' title ", idx++,
                colors[(k * 3) % 8]);
        gp_str(g.fp, key);
        free(key);
    }
    fputs("\n  unset output\n}\n", g.fp);
    if (agn_out_commit(&d) != 0) {
        agn_out_abort(&g);
        return -1;
    }
    return agn_out_commit(&g);
}

int agn_projection_write_plots(const agn_projection *p, const agn_summary *s, const char *dir)
{
    if (agn_mkdir_p(dir) != 0) return -1;
    for (int e = 0; e < 2; e++)
        if (plot_one(p, s, dir, e) != 0) return -1;
    return 0;
}
