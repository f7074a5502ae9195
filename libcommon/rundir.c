/* rundir.c: the run directory of agn-train (rundir.h). */
#include "config.h"
#include "rundir.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char metrics_header[] =
    "epoch,world_size,backend,transport,device,threads,config,params,global_batch,train_examples,data_id,"
    "steps,samples,tokens,epoch_time_s,compute_s,comm_s,optim_s,data_s,samples_per_s,tokens_per_s,"
    "train_loss,val_loss,val_acc,val_f1,lr,imbalance_s,step";
static const char steps_header[] =
    "step,epoch,samples,loss,lr,grad_norm,step_time_s,compute_s,comm_s,optim_s,data_s,imbalance_s";

/* Records the first failed write of the run directory: NAME's, errno's. */
static void wrecord(agn_rundir *rd, const char *name)
{
    if (!rd->err[0]) {
        int e = errno ? errno : EIO;
        snprintf(rd->err, sizeof rd->err, "%s/%s: %s", rd->dir, name, strerror(e));
    }
}

static int wfail(agn_rundir *rd, const char *name)
{
    wrecord(rd, name);
    return agn_seterr("%s", rd->err);
}

/* After writing to FP (named NAME): flushed, else the error is recorded. */
static int wcheck(agn_rundir *rd, FILE *fp, const char *name)
{
    errno = 0;
    if (fflush(fp) != 0 || ferror(fp)) return wfail(rd, name);
    return rd->err[0] ? agn_seterr("%s", rd->err) : 0;
}

void agn_rundir_log(agn_rundir *rd, int to_stderr, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char prefix[32] = "";
    if (rd->world > 1) snprintf(prefix, sizeof prefix, "rank %d: ", rd->rank);
    if (rd->log) {
        fprintf(rd->log, "%s%s\n", prefix, msg);
        errno = 0;
        /* reported by the next row or the close; the current error message,
         * which this line may be logging, stays as it is */
        if (fflush(rd->log) != 0 || ferror(rd->log)) wrecord(rd, "train.log");
    }
    if (to_stderr && !rd->quiet) {
        if (rd->tty && rd->last_progress > 0) fputs("\r\033[K", stderr);
        fprintf(stderr, "%s: %s%s\n", agn_progname, prefix, msg);
    }
}

/* A CSV continued by a resume whose header is not HEADER: when it is a
 * prefix of HEADER (a run of an agn-train that wrote fewer columns, new ones
 * being added at the end), rewrites it with HEADER and the missing fields
 * empty on every row; anything else is refused. */
static int migrate_csv(const char *p, const char *header)
{
    FILE *in = fopen(p, "r");
    if (!in) return agn_seterr_errno("%s", p);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, in);
    int rc = 0;
    if (n <= 0) goto done; /* empty: the header is written on open */
    if (line[n - 1] == '\n') line[--n] = '\0';
    if (strcmp(line, header) == 0) goto done;
    size_t hl = strlen(header);
    if ((size_t)n >= hl || strncmp(line, header, (size_t)n) != 0 || header[n] != ',') {
        rc = agn_seterr("%s:1: the header is not the one this agn-train writes; resume into a new run "
                        "directory, or move the file away", p);
        goto done;
    }
    int missing = 0;
    for (const char *c = header + n; *c; c++) missing += *c == ',';
    agn_out o;
    if (agn_out_open(&o, p) != 0) {
        rc = -1;
        goto done;
    }
    fprintf(o.fp, "%s\n", header);
    while ((n = getline(&line, &cap, in)) > 0) {
        if (line[n - 1] == '\n') line[--n] = '\0';
        fputs(line, o.fp);
        for (int k = 0; k < missing; k++) fputc(',', o.fp);
        fputc('\n', o.fp);
    }
    rc = ferror(in) ? agn_seterr_errno("%s", p) : 0;
    if (rc == 0) rc = agn_out_commit(&o);
    else agn_out_abort(&o);
done:
    free(line);
    fclose(in);
    return rc;
}

/* Opens a CSV for appending (TRUNCATE: afresh); writes HEADER when the file
 * is new or empty. */
static FILE *open_csv(const char *dir, const char *name, const char *header, int truncate, int *fdp)
{
    char *p = agn_path_join(dir, name);
    if (!truncate && access(p, F_OK) == 0 && migrate_csv(p, header) != 0) {
        free(p);
        return NULL;
    }
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : O_APPEND), 0666);
    FILE *fp = fd >= 0 ? agn_fdopen(fd, "a") : NULL;
    if (!fp) {
        agn_seterr_errno("%s", p);
        if (fd >= 0) close(fd);
        free(p);
        return NULL;
    }
    if (lseek(fd, 0, SEEK_END) == 0) fprintf(fp, "%s\n", header);
    if (fflush(fp) != 0 || ferror(fp)) {
        agn_seterr_errno("%s", p);
        fclose(fp);
        free(p);
        return NULL;
    }
    if (fdp) *fdp = fd;
    free(p);
    return fp;
}

int agn_rundir_open(agn_rundir *rd, const char *dir, const char *resume, int force, int rank,
                    int world, int quiet)
{
    memset(rd, 0, sizeof *rd);
    rd->dir = dir;
    rd->rank = rank;
    rd->world = world;
    rd->quiet = quiet;
    rd->tty = agn_stderr_is_tty();
    if (rank != 0) return 0;
    if (agn_mkdir_p(dir) != 0) return -1;
    rd->path_last = agn_path_join(dir, "last.safetensors");
    rd->path_best = agn_path_join(dir, "best.safetensors");
    char *pm = agn_path_join(dir, "metrics.csv");
    struct stat st;
    int exists = stat(rd->path_last, &st) == 0 || stat(pm, &st) == 0;
    free(pm);
    /* resuming into the run directory the checkpoint came from continues its
     * files; anything else starts them afresh, and will not overwrite a
     * previous run without --force */
    int append = 0;
    if (exists && resume) {
        char *a = realpath(resume, NULL), *b = realpath(dir, NULL);
        char *ad = a ? agn_dir_of(a) : NULL;
        append = ad && b && strcmp(ad, b) == 0;
        free(a);
        free(b);
        free(ad);
    }
    if (exists && !append && !force)
        return agn_seterr("%s: holds a previous run (use --force to overwrite it, or --resume %s/last.safetensors)",
                          dir, dir);
    char *pl = agn_path_join(dir, "train.log");
    rd->append = append;
    rd->log = agn_fopen(pl, append ? "ae" : "we");
    if (!rd->log) {
        agn_seterr_errno("%s", pl);
        free(pl);
        return -1;
    }
    free(pl);
    if (!append) {
        unlink(rd->path_best);
        if (!resume) unlink(rd->path_last);
    }
    rd->steps_csv = open_csv(dir, "steps.csv", steps_header, !append, NULL);
    if (!rd->steps_csv) return -1;
    rd->metrics_csv = open_csv(dir, "metrics.csv", metrics_header, !append, &rd->metrics_fd);
    if (!rd->metrics_csv) return -1;
    return 0;
}

static void yaml_list(FILE *fp, const char *key, char **items, int n)
{
    fprintf(fp, "  %s: [", key);
    for (int i = 0; i < n; i++) {
        if (i) fputs(", ", fp);
        agn_yaml_quote(fp, items[i]);
    }
    fputs("]\n", fp);
}

int agn_rundir_write_config(agn_rundir *rd, const agn_run_info *ri)
{
    if (rd->rank != 0) return 0;
    char *p = agn_path_join(rd->dir, "config.yaml");
    agn_out out;
    if (agn_out_open(&out, p) != 0) {
        free(p);
        return -1;
    }
    free(p);
    FILE *fp = out.fp;
    const agn_config *cfg = ri->cfg;
    fprintf(fp, "# agn-train resolved config: feed it back with agn-train -c (the run: section is ignored)\n");
    agn_config_write(cfg, fp);
    fprintf(fp, "run:\n  config: ");
    agn_yaml_quote(fp, cfg->name);
    fprintf(fp, "\n  config_file: ");
    agn_yaml_quote(fp, cfg->path);
    fprintf(fp, "\n  world_size: %d\n  transport: %s\n  backend: %s\n  device: ", ri->world, ri->transport,
            ri->backend);
    agn_yaml_quote(fp, ri->device);
    fprintf(fp, "\n  threads: %d\n  bound_cpus: %d\n", ri->threads, ri->bound_cpus);
    yaml_list(fp, "train_data", ri->train_paths, ri->n_train);
    yaml_list(fp, "val_data", ri->val_paths, ri->n_val);
    fprintf(fp, "  train_examples: %llu\n  data_id: \"%08x\"\n", (unsigned long long)ri->train_examples, ri->data_id);
    fprintf(fp, "  steps_per_epoch: %ld\n  total_steps: %llu\n", ri->steps_per_epoch,
            (unsigned long long)ri->total_steps);
    fprintf(fp, "  params: %zu\n  pad_to_max: %s\n  bucket_bytes: %llu\n", ri->params,
            ri->pad_to_max ? "true" : "false", (unsigned long long)ri->bucket_bytes);
    if (ri->max_steps) fprintf(fp, "  max_steps: %ld\n", ri->max_steps);
    if (ri->resume) {
        fprintf(fp, "  resume: ");
        agn_yaml_quote(fp, ri->resume);
        fputc('\n', fp);
    }
    if (ferror(fp)) {
        agn_seterr_errno("%s", out.path);
        agn_out_abort(&out);
        return -1;
    }
    return agn_out_commit(&out);
}

int agn_rundir_step_row(agn_rundir *rd, const agn_step_row *r)
{
    if (rd->rank != 0 || !rd->steps_csv) return 0;
    fprintf(rd->steps_csv, "%llu,%u,%llu,%.6f,%.6g,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f\n",
            (unsigned long long)r->step, r->epoch, (unsigned long long)r->samples, r->loss, r->lr,
            r->grad_norm, r->time, r->compute, r->comm, r->optim, r->data, r->imbalance);
    return wcheck(rd, rd->steps_csv, "steps.csv");
}

int agn_rundir_metrics_row(agn_rundir *rd, const agn_run_info *ri, uint32_t epoch,
                           const agn_epoch_stats *a, const agn_metrics *vm, int have_val)
{
    if (rd->rank != 0 || !rd->metrics_csv) return 0;
    FILE *fp = rd->metrics_csv;
    const agn_config *cfg = ri->cfg;
    fprintf(fp, "%u,%d,%s,%s,%s,%d,%s,%zu,%ld,%llu,%08x,%ld,%.0f,%.0f,%.4f,%.4f,%.4f,%.4f,%.4f,%.2f,%.1f,%.6f,",
            epoch + 1, ri->world, ri->backend, ri->transport, ri->device, ri->threads, cfg->name, ri->params,
            cfg->global_batch, (unsigned long long)ri->train_examples, ri->data_id, a->steps, a->samples,
            a->tokens, a->time, a->compute, a->comm, a->optim, a->data, a->time > 0 ? a->samples / a->time : 0,
            a->time > 0 ? a->tokens / a->time : 0, a->samples > 0 ? a->loss_sum / a->samples : NAN);
    if (have_val) fprintf(fp, "%.6f,%.6f,%.6f,", vm->loss, vm->accuracy, vm->macro_f1);
    else fprintf(fp, ",,,");
    fprintf(fp, "%.6g,%.4f,%llu\n", a->lr, a->imbalance, (unsigned long long)a->end_step);
    if (wcheck(rd, fp, "metrics.csv") != 0) return -1;
    errno = 0;
    if (agn_fsync(rd->metrics_fd) != 0) return wfail(rd, "metrics.csv");
    return 0;
}

/* ---- resume: the CSVs cut back to the checkpoint ----------------------------------------- */

/* The byte offset in TEXT (LEN bytes, a CSV with a header) after the last
 * row to keep: rows whose column COL (the step at the row's end) is at most
 * STEP; a row without it (written by an older agn-train) counts STEPS_COL's
 * value onto the step of the row before; a torn last row (no newline) goes. */
static size_t csv_cut(const char *text, size_t len, const char *colname, const char *steps_col,
                      uint64_t step, size_t *dropped)
{
    const char *nl = memchr(text, '\n', len);
    if (!nl) return 0;
    int col = -1, scol = -1, k = 0;
    for (const char *f = text; f < nl; k++) {
        const char *e = memchr(f, ',', (size_t)(nl - f));
        if (!e) e = nl;
        size_t fl = (size_t)(e - f);
        if (fl == strlen(colname) && memcmp(f, colname, fl) == 0) col = k;
        if (steps_col && fl == strlen(steps_col) && memcmp(f, steps_col, fl) == 0) scol = k;
        f = e + 1;
    }
    size_t keep = (size_t)(nl + 1 - text);
    uint64_t at = 0;
    *dropped = 0;
    int cut = 0;
    for (const char *r = nl + 1; r < text + len;) {
        const char *re = memchr(r, '\n', (size_t)(text + len - r));
        if (!re) { /* torn */
            (*dropped)++;
            break;
        }
        uint64_t v = 0, sv = 0;
        int have = 0;
        k = 0;
        for (const char *f = r; f <= re && k <= (col > scol ? col : scol); k++) {
            const char *e = memchr(f, ',', (size_t)(re - f));
            if (!e) e = re;
            if (k == col && e > f) v = strtoull(f, NULL, 10), have = 1;
            if (k == scol && e > f) sv = strtoull(f, NULL, 10);
            f = e + 1;
        }
        at = have ? v : at + sv;
        if (cut || at > step) {
            cut = 1;
            (*dropped)++;
        } else {
            keep = (size_t)(re + 1 - text);
        }
        r = re + 1;
    }
    return keep;
}

static int trim_csv(agn_rundir *rd, FILE *fp, const char *name, const char *col, const char *steps_col,
                    uint64_t step, size_t *dropped)
{
    *dropped = 0;
    char *p = agn_path_join(rd->dir, name);
    size_t len;
    char *text = agn_read_file(p, &len);
    int rc = text ? 0 : -1;
    if (rc == 0) {
        size_t keep = csv_cut(text, len, col, steps_col, step, dropped);
        if (keep > 0 && keep < len && (fflush(fp) != 0 || truncate(p, (off_t)keep) != 0))
            rc = agn_seterr_errno("%s: cutting it back to step %llu", p, (unsigned long long)step);
    }
    free(text);
    free(p);
    return rc;
}

int agn_rundir_trim(agn_rundir *rd, uint64_t step)
{
    if (rd->rank != 0 || !rd->append) return 0;
    size_t ds = 0, dm = 0;
    if (trim_csv(rd, rd->steps_csv, "steps.csv", "step", NULL, step, &ds) != 0 ||
        trim_csv(rd, rd->metrics_csv, "metrics.csv", "step", "steps", step, &dm) != 0)
        return -1;
    if (ds || dm)
        agn_rundir_log(rd, 0, "resume: removed %zu row(s) of steps.csv and %zu of metrics.csv written "
                       "after the checkpoint's step %llu (they are done again)", ds, dm,
                       (unsigned long long)step);
    return rd->err[0] ? agn_seterr("%s", rd->err) : 0;
}

static void fmt_eta(double s, char *buf, size_t n)
{
    if (!isfinite(s) || s < 0) snprintf(buf, n, "?");
    else if (s >= 3600) snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

void agn_rundir_progress(agn_rundir *rd, const agn_config *cfg, uint64_t epoch, uint64_t step,
                         uint64_t total_steps, double loss, double rate, long steps_left)
{
    if (!rd->tty || rd->quiet || rd->rank != 0) return;
    double now = agn_now();
    if (now - rd->last_progress < 0.25 && steps_left > 0) return;
    rd->last_progress = now;
    char eta[32];
    fmt_eta(rate > 0 ? (double)steps_left * (double)cfg->global_batch / rate : NAN, eta, sizeof eta);
    fprintf(stderr, "\r\033[Kepoch %llu/%ld  step %llu/%llu  loss %.4f  %.0f samples/s  ETA %s",
            (unsigned long long)epoch + 1, cfg->epochs, (unsigned long long)step,
            (unsigned long long)total_steps, loss, rate, eta);
    fflush(stderr);
}

void agn_rundir_progress_clear(agn_rundir *rd)
{
    if (rd->tty && !rd->quiet && rd->rank == 0 && rd->last_progress > 0) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    rd->last_progress = 0;
}

int agn_rundir_close(agn_rundir *rd)
{
    int rc = rd->err[0] ? agn_seterr("%s", rd->err) : 0;
    if (rd->log && fclose(rd->log) != 0 && rc == 0) rc = agn_seterr_errno("%s/train.log", rd->dir);
    if (rd->steps_csv && fclose(rd->steps_csv) != 0 && rc == 0) rc = agn_seterr_errno("%s/steps.csv", rd->dir);
    if (rd->metrics_csv && fclose(rd->metrics_csv) != 0 && rc == 0)
        rc = agn_seterr_errno("%s/metrics.csv", rd->dir);
    free(rd->path_last);
    free(rd->path_best);
    rd->log = rd->steps_csv = rd->metrics_csv = NULL;
    rd->path_last = rd->path_best = NULL;
    return rc;
}
