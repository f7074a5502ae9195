/* util.c: error messages, checked parsing, atomic output files and the small
 * helpers every program shares.  See util.h for the conventions. */
#define _GNU_SOURCE 1 /* fopencookie */
#include "config.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void fault_wrap_stdout(void);

/* ---- errors ------------------------------------------------------------ */

const char *agn_progname = "agn";
static _Thread_local char errbuf[1024];

void agn_set_progname(const char *argv0)
{
    const char *slash = argv0 ? strrchr(argv0, '/') : NULL;
    if (argv0) agn_progname = slash ? slash + 1 : argv0;
    fault_wrap_stdout();
}

int agn_seterr(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    return -1;
}

int agn_seterr_errno(const char *fmt, ...)
{
    int e = errno;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof errbuf)
        snprintf(errbuf + n, sizeof errbuf - (size_t)n, ": %s", strerror(e));
    return -1;
}

int agn_adderr(const char *fmt, ...)
{
    char prefix[512], old[sizeof errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, errbuf, sizeof old);
    size_t np = strnlen(prefix, sizeof prefix), no = strnlen(old, sizeof old - 1);
    if (np > sizeof errbuf - 3) np = sizeof errbuf - 3;
    if (no > sizeof errbuf - 3 - np) no = sizeof errbuf - 3 - np;
    memcpy(errbuf, prefix, np);
    memcpy(errbuf + np, ": ", 2);
    memcpy(errbuf + np + 2, old, no);
    errbuf[np + 2 + no] = '\0';
    return -1;
}

const char *agn_errmsg(void) { return errbuf[0] ? errbuf : "unknown error"; }

void agn_warn(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", agn_progname, msg);
}

void agn_warn_err(void) { agn_warn("%s", agn_errmsg()); }

/* ---- memory ------------------------------------------------------------ */

static void pending_unlink_all(void);

static void oom(size_t n)
{
    fprintf(stderr, "%s: out of memory allocating %zu bytes\n", agn_progname, n);
    pending_unlink_all(); /* no half-written temporary outlives the abort */
    abort();
}

void *agn_xmalloc(size_t n)
{
    void *p = agn_fault(AGN_FAULT_ALLOC) ? NULL : malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *agn_xcalloc(size_t n, size_t size)
{
    void *p = agn_fault(AGN_FAULT_ALLOC) ? NULL : calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *agn_xrealloc(void *p, size_t n)
{
    void *q = agn_fault(AGN_FAULT_ALLOC) ? NULL : realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *agn_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(agn_xmalloc(n), s, n);
}

/* Blocks of at least this size (the model's weights, gradients, optimizer
 * state and activations) are offered to the kernel as transparent huge
 * pages (Debian's default THP mode is "madvise": only regions that ask get
 * them): the elementwise passes and AdamW stream through tens of megabytes
 * a step, more than the 4 KiB pages the TLB covers. */
#define HUGE_MIN ((size_t)4 << 20)
#define HUGE_ALIGN ((size_t)2 << 20)

void agn_advise_huge(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
    if (n >= HUGE_MIN) (void)madvise(p, n, MADV_HUGEPAGE); /* a hint: failure is harmless */
#else
    (void)p, (void)n;
#endif
}

void *agn_xalloc_aligned(size_t n)
{
    void *p = NULL;
    size_t rounded = (n + 63) / 64 * 64, align = 64;
    if (rounded >= HUGE_MIN) { /* whole 2 MiB pages */
        align = HUGE_ALIGN;
        rounded = (rounded + HUGE_ALIGN - 1) / HUGE_ALIGN * HUGE_ALIGN;
    }
    if (agn_fault(AGN_FAULT_ALLOC) || posix_memalign(&p, align, rounded ? rounded : 64) != 0) oom(n);
    agn_advise_huge(p, rounded);
    memset(p, 0, rounded ? rounded : 64);
    return p;
}

/* ---- numbers ----------------------------------------------------------- */

int agn_parse_long(const char *s, long min, long max, const char *what, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0')
        return agn_seterr("%s: '%s' is not an integer", what, s);
    if (errno == ERANGE || v < min || v > max)
        return agn_seterr("%s: %s is out of range [%ld, %ld]", what, s, min, max);
    *out = v;
    return 0;
}

int agn_parse_double(const char *s, double min, double max, const char *what, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || isnan(v))
        return agn_seterr("%s: '%s' is not a number", what, s);
    if (errno == ERANGE || v < min || v > max)
        return agn_seterr("%s: %s is out of range [%g, %g]", what, s, min, max);
    *out = v;
    return 0;
}

int agn_parse_size(const char *s, const char *what, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s == '-') return agn_seterr("%s: '%s' is negative", what, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s) return agn_seterr("%s: '%s' is not a size", what, s);
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    }
    if (*end != '\0') return agn_seterr("%s: '%s' is not a size (N, Nk, NM or NG)", what, s);
    if (errno == ERANGE || (shift && v > (ULLONG_MAX >> shift)))
        return agn_seterr("%s: '%s' is too large", what, s);
    *out = (uint64_t)v << shift;
    return 0;
}

/* ---- fault injection ---------------------------------------------------- */

/* AGN_FAULT=KIND:N makes the Nth call of KIND fail once (KIND:N+ : the Nth
 * and every later one, a disk that stays full); kill:N sends SIGKILL to the
 * process at the Nth call of any kind; "count" prints, at exit, how many
 * calls of each kind the process made, "trace" also each call as it comes
 * (its number, kind, number of its kind, and the file of a rename) (agn(7),
 * FAULT INJECTION). */
static struct {
    int active, count, trace, kill, persist, kind;
    long n;
} fault;
static long fault_calls[AGN_FAULT_KINDS], fault_any;
static pthread_once_t fault_once = PTHREAD_ONCE_INIT;
static const char *const fault_names[AGN_FAULT_KINDS] = {"write", "fsync", "rename", "alloc"};

static void fault_report(void)
{
    fprintf(stderr, "agn-fault: %s write %ld fsync %ld rename %ld alloc %ld\n", agn_progname,
            fault_calls[AGN_FAULT_WRITE], fault_calls[AGN_FAULT_FSYNC],
            fault_calls[AGN_FAULT_RENAME], fault_calls[AGN_FAULT_ALLOC]);
}

static void fault_init(void)
{
    const char *e = getenv("AGN_FAULT");
    if (!e || !*e) return;
    fault.active = 1;
    if (strcmp(e, "count") == 0 || strcmp(e, "trace") == 0) {
        fault.count = 1;
        fault.trace = e[0] == 't';
        atexit(fault_report);
        return;
    }
    const char *colon = strchr(e, ':');
    char *end = NULL;
    fault.kind = -1;
    if (colon) {
        size_t k = (size_t)(colon - e);
        if (k == 4 && strncmp(e, "kill", 4) == 0) fault.kill = 1;
        for (int i = 0; i < AGN_FAULT_KINDS; i++)
            if (strlen(fault_names[i]) == k && strncmp(e, fault_names[i], k) == 0) fault.kind = i;
        fault.n = strtol(colon + 1, &end, 10);
        if (end && *end == '+' && !fault.kill) fault.persist = 1, end++;
    }
    if (!colon || (fault.kind < 0 && !fault.kill) || end == colon + 1 || *end || fault.n < 1) {
        fprintf(stderr, "%s: AGN_FAULT='%s' is not count, trace, kill:N or "
                        "write|fsync|rename|alloc:N[+]\n", agn_progname, e);
        exit(AGN_EXIT_USAGE);
    }
}

/* The Nth call of KIND; WHAT names the file for a trace, where known. */
static int fault_hit(int kind, const char *what)
{
    pthread_once(&fault_once, fault_init);
    if (!fault.active) return 0;
    long k = __atomic_add_fetch(&fault_calls[kind], 1, __ATOMIC_RELAXED);
    long any = __atomic_add_fetch(&fault_any, 1, __ATOMIC_RELAXED);
    if (fault.trace)
        fprintf(stderr, "agn-fault: %ld %s %ld%s%s\n", any, fault_names[kind], k, what ? " " : "",
                what ? what : "");
    if (fault.count) return 0;
    if (fault.kill) {
        if (any == fault.n) raise(SIGKILL);
        return 0;
    }
    if (kind != fault.kind || !(k == fault.n || (fault.persist && k > fault.n))) return 0;
    errno = kind == AGN_FAULT_WRITE ? ENOSPC : kind == AGN_FAULT_ALLOC ? ENOMEM : EIO;
    return 1;
}

int agn_fault(int kind) { return fault_hit(kind, NULL); }

ssize_t agn_write(int fd, const void *buf, size_t n)
{
    if (agn_fault(AGN_FAULT_WRITE)) return -1;
    return write(fd, buf, n);
}

int agn_fsync(int fd)
{
    if (agn_fault(AGN_FAULT_FSYNC)) return -1;
    return fsync(fd);
}

int agn_rename(const char *from, const char *to)
{
    if (fault_hit(AGN_FAULT_RENAME, to)) return -1;
    return rename(from, to);
}

/* A stdio stream over a descriptor whose writes go through agn_write. */
static ssize_t ck_read(void *c, char *buf, size_t n)
{
    ssize_t r;
    do r = read(*(int *)c, buf, n);
    while (r < 0 && errno == EINTR);
    return r;
}

static ssize_t ck_write(void *c, const char *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = agn_write(*(int *)c, buf + done, n - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        done += (size_t)w;
    }
    return (ssize_t)n;
}

static int ck_seek(void *c, off64_t *pos, int whence)
{
    off_t r = lseek(*(int *)c, (off_t)*pos, whence);
    if (r < 0) return -1;
    *pos = r;
    return 0;
}

static int ck_close(void *c)
{
    int rc = close(*(int *)c);
    free(c);
    return rc;
}

FILE *agn_fdopen(int fd, const char *mode)
{
    pthread_once(&fault_once, fault_init);
    if (!fault.active || !strpbrk(mode, "wa+")) return fdopen(fd, mode);
    int *c = malloc(sizeof *c);
    if (!c) return NULL;
    *c = fd;
    cookie_io_functions_t io = {ck_read, ck_write, ck_seek, ck_close};
    FILE *fp = fopencookie(c, mode, io);
    if (!fp) free(c);
    return fp;
}

FILE *agn_fopen(const char *path, const char *mode)
{
    pthread_once(&fault_once, fault_init);
    if (!fault.active || !strpbrk(mode, "wa+")) return fopen(path, mode);
    int flags = strchr(mode, '+') ? O_RDWR : O_WRONLY;
    if (mode[0] == 'w') flags |= O_CREAT | O_TRUNC;
    else if (mode[0] == 'a') flags |= O_CREAT | O_APPEND;
    else if (mode[0] == 'r' && !strchr(mode, '+')) flags = O_RDONLY;
    if (strchr(mode, 'e')) flags |= O_CLOEXEC;
    int fd = open(path, flags, 0666);
    if (fd < 0) return NULL;
    FILE *fp = agn_fdopen(fd, mode);
    if (!fp) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return fp;
}

/* Under fault injection stdout is a stream of the same kind, so that what a
 * program prints counts too; closed at exit unless the program closed it. */
static FILE *wrapped_stdout;

static void close_wrapped_stdout(void)
{
    if (wrapped_stdout && stdout == wrapped_stdout) fclose(wrapped_stdout);
    wrapped_stdout = NULL;
}

static void fault_wrap_stdout(void)
{
    pthread_once(&fault_once, fault_init);
    if (!fault.active) return;
    int fd = dup(STDOUT_FILENO);
    if (fd < 0) return;
    FILE *fp = agn_fdopen(fd, "w");
    if (!fp) {
        close(fd);
        return;
    }
    if (isatty(fd)) setvbuf(fp, NULL, _IOLBF, 0);
    fflush(stdout);
    stdout = wrapped_stdout = fp;
    atexit(close_wrapped_stdout);
}

/* ---- atomic output ----------------------------------------------------- */

/* Temporaries that a fatal signal must remove.  The handler walks the list
 * without locking: nodes are only ever added at the head, fully written
 * before they are published, and reused rather than freed. */
typedef struct pending_node {
    struct pending_node *next;
    volatile sig_atomic_t used;
    char path[PATH_MAX];
} pending_node;
static pending_node *volatile pending_head;
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;

static void pending_add(const char *tmp)
{
    pthread_mutex_lock(&pending_lock);
    pending_node *n = pending_head;
    while (n && n->used) n = n->next;
    if (!n) {
        n = calloc(1, sizeof *n);
        if (!n) { /* then the temporary is not removed on a signal */
            pthread_mutex_unlock(&pending_lock);
            return;
        }
        snprintf(n->path, sizeof n->path, "%s", tmp);
        n->used = 1;
        n->next = pending_head;
        __atomic_store_n(&pending_head, n, __ATOMIC_RELEASE);
    } else {
        snprintf(n->path, sizeof n->path, "%s", tmp);
        __atomic_store_n(&n->used, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&pending_lock);
}

static void pending_del(const char *tmp)
{
    pthread_mutex_lock(&pending_lock);
    for (pending_node *n = pending_head; n; n = n->next)
        if (n->used && strcmp(n->path, tmp) == 0) n->used = 0;
    pthread_mutex_unlock(&pending_lock);
}

static void pending_unlink_all(void)
{
    /* async-signal-safe: unlink only */
    for (pending_node *n = __atomic_load_n(&pending_head, __ATOMIC_ACQUIRE); n; n = n->next)
        if (n->used) unlink(n->path);
}

static void cleanup_handler(int sig)
{
    pending_unlink_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

void agn_cleanup_on_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cleanup_handler;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
    for (size_t i = 0; i < AGN_ARRAY_LEN(sigs); i++) {
        struct sigaction old;
        /* keep an inherited "ignore" (nohup, background jobs) */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        sigaction(sigs[i], &sa, NULL);
    }
}

int agn_out_open_mode(agn_out *o, const char *path, int binary)
{
    (void)binary; /* POSIX makes no difference; kept for readability at call sites */
    memset(o, 0, sizeof *o);
    o->fd = -1;
    if (strcmp(path, "-") == 0) {
        o->fp = stdout;
        o->fd = STDOUT_FILENO;
        o->path = agn_xstrdup("(stdout)");
        return 0;
    }
    /* A device or a FIFO (/dev/null, /dev/stdout, a named pipe) cannot be
     * replaced by a rename: write to it directly. */
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        if (S_ISDIR(st.st_mode)) return agn_seterr("%s: is a directory", path);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        if (fd < 0) return agn_seterr_errno("%s", path);
        o->fp = agn_fdopen(fd, "wb");
        if (!o->fp) {
            agn_seterr_errno("%s", path);
            close(fd);
            return -1;
        }
        o->fd = fd;
        o->path = agn_xstrdup(path);
        o->direct = 1;
        return 0;
    }
    /* NAME.tmp.PID.XXXXXX: the PID tells agn_remove_stale_tmp whether the
     * writer is still alive */
    size_t n = strlen(path) + 48;
    o->path = agn_xstrdup(path);
    o->tmp = agn_xmalloc(n);
    snprintf(o->tmp, n, "%s.tmp.%ld.XXXXXX", path, (long)getpid());
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        agn_seterr_errno("%s", path);
        free(o->tmp); free(o->path);
        o->tmp = o->path = NULL;
        return -1;
    }
    /* mkstemp makes 0600; an output file should get the usual umask mode */
    mode_t um = umask(0);
    umask(um);
    if (fchmod(fd, 0666 & ~um) != 0) { /* keeps 0600: not worth failing for */ }
    o->fp = agn_fdopen(fd, "wb");
    if (!o->fp) {
        agn_seterr_errno("%s", path);
        close(fd);
        unlink(o->tmp);
        free(o->tmp); free(o->path);
        o->tmp = o->path = NULL;
        return -1;
    }
    o->fd = fd;
    pending_add(o->tmp);
    return 0;
}

int agn_out_open(agn_out *o, const char *path) { return agn_out_open_mode(o, path, 0); }

/* No allocation here: it runs inside the commit of a shard set, where an
 * abort would leave the set half renamed. */
static void fsync_dir_of(const char *path)
{
    char copy[PATH_MAX];
    if (snprintf(copy, sizeof copy, "%s", path) >= (int)sizeof copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        if (fsync(fd) != 0) { /* the rename is done; durability is best effort here */ }
        close(fd);
    }
}

int agn_out_finish(agn_out *o)
{
    int rc = 0;
    if (!o->fp || !o->tmp) return agn_seterr("%s: output not open", o->path ? o->path : "?");
    if (fflush(o->fp) != 0 || ferror(o->fp)) rc = agn_seterr_errno("%s", o->path);
    if (rc == 0 && agn_fsync(o->fd) != 0) rc = agn_seterr_errno("%s: fsync", o->path);
    if (fclose(o->fp) != 0 && rc == 0) rc = agn_seterr_errno("%s", o->path);
    o->fp = NULL;
    o->fd = -1;
    return rc;
}

int agn_out_publish(agn_out *o)
{
    int rc = 0;
    if (o->fp || !o->tmp) return agn_seterr("%s: output not finished", o->path ? o->path : "?");
    if (agn_rename(o->tmp, o->path) != 0) rc = agn_seterr_errno("%s: rename", o->path);
    if (rc == 0) fsync_dir_of(o->path);
    else unlink(o->tmp);
    pending_del(o->tmp);
    free(o->tmp); free(o->path);
    memset(o, 0, sizeof *o);
    return rc;
}

int agn_out_commit(agn_out *o)
{
    int rc = 0;
    if (!o->fp) return agn_seterr("%s: output not open", o->path ? o->path : "?");
    if (o->direct) {
        if (fflush(o->fp) != 0 || ferror(o->fp)) rc = agn_seterr_errno("%s", o->path);
        if (fclose(o->fp) != 0 && rc == 0) rc = agn_seterr_errno("%s", o->path);
        free(o->path);
        memset(o, 0, sizeof *o);
        return rc;
    }
    if (!o->tmp) { /* stdout */
        if (fflush(o->fp) != 0 || ferror(o->fp)) rc = agn_seterr_errno("write error on stdout");
        free(o->path);
        memset(o, 0, sizeof *o);
        return rc;
    }
    if (agn_out_finish(o) != 0) {
        agn_out_abort(o);
        return -1;
    }
    return agn_out_publish(o);
}

void agn_out_abort(agn_out *o)
{
    if (o->tmp) {
        if (o->fp) fclose(o->fp);
        unlink(o->tmp);
        pending_del(o->tmp);
    } else if (o->direct && o->fp) {
        fclose(o->fp);
    } else if (o->fp) {
        fflush(o->fp);
    }
    free(o->tmp); free(o->path);
    memset(o, 0, sizeof *o);
}

int agn_remove_stale_tmp(const char *name)
{
    char *c1 = agn_xstrdup(name), *c2 = agn_xstrdup(name);
    const char *dir = dirname(c1), *base = basename(c2);
    size_t bl = strlen(base);
    int removed = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, base, bl) != 0 || strncmp(e->d_name + bl, ".tmp.", 5) != 0)
            continue;
        char *end;
        long pid = strtol(e->d_name + bl + 5, &end, 10);
        if (end == e->d_name + bl + 5 || *end != '.' || pid <= 0 || pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to tell */
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *p = agn_xmalloc(n);
        snprintf(p, n, "%s/%s", dir, e->d_name);
        if (unlink(p) == 0) removed++;
        free(p);
    }
    if (d) closedir(d);
    free(c1);
    free(c2);
    return removed;
}

int agn_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = agn_write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- paths and time ---------------------------------------------------- */

char *agn_read_stream(FILE *fp, const char *name, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = agn_xmalloc(cap);
    errno = 0; /* a read error without one is reported as EIO */
    for (;;) {
        if (n + 1 >= cap) buf = agn_xrealloc(buf, cap *= 2);
        size_t k = fread(buf + n, 1, cap - 1 - n, fp);
        n += k;
        if (k == 0) break;
    }
    if (ferror(fp)) {
        int e = errno;
        free(buf);
        errno = e ? e : EIO;
        return agn_seterr_errno("%s", name), NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

char *agn_read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return agn_seterr_errno("%s", path), NULL;
    char *buf = agn_read_stream(fp, path, len);
    fclose(fp);
    return buf;
}

int agn_lock_dir(const char *dir)
{
    if (agn_mkdir_p(dir) != 0) return -1;
    size_t n = strlen(dir) + 8;
    char *p = agn_xmalloc(n);
    snprintf(p, n, "%s/.lock", dir);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        agn_seterr_errno("%s", p);
        free(p);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char buf[32] = "";
        ssize_t k = pread(fd, buf, sizeof buf - 1, 0);
        long pid = k > 0 ? strtol(buf, NULL, 10) : 0;
        close(fd);
        free(p);
        if (e != EWOULDBLOCK) {
            errno = e;
            return agn_seterr_errno("%s: cannot lock it", dir);
        }
        if (pid > 0)
            return agn_seterr("%s: in use by another %s (pid %ld); wait for it to end, or give "
                              "another directory", dir, agn_progname, pid);
        return agn_seterr("%s: in use by another process; wait for it to end, or give another "
                          "directory", dir);
    }
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
        /* the pid is for the message of a second run only: not worth failing */
    }
    free(p);
    return fd;
}

int agn_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

int agn_mkdir_p(const char *path)
{
    char *p = agn_xstrdup(path);
    for (char *s = p + 1; ; s++) {
        char c = *s;
        if (c == '/' || c == '\0') {
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                agn_seterr_errno("%s", p);
                free(p);
                return -1;
            }
            *s = c;
        }
        if (c == '\0') break;
    }
    struct stat st;
    int rc = 0;
    if (stat(path, &st) != 0) rc = agn_seterr_errno("%s", path);
    else if (!S_ISDIR(st.st_mode)) rc = agn_seterr("%s: exists and is not a directory", path);
    free(p);
    return rc;
}

double agn_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *agn_data_dir(const char *dflt)
{
    const char *e = getenv("AGN_DATA");
    return e && *e ? e : dflt;
}

int agn_stderr_is_tty(void) { return isatty(STDERR_FILENO); }

/* ---- tool boilerplate ----------------------------------------------------- */

int agn_usage_error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\nTry '%s --help' for more information.\n", agn_progname, msg,
            agn_progname);
    return AGN_EXIT_USAGE;
}

int agn_stdout_status(void)
{
    if (agn_close_stdout() == 0) return AGN_EXIT_OK;
    agn_warn_err();
    return AGN_EXIT_ERROR;
}

int agn_close_stdout(void)
{
    if (stdout == wrapped_stdout) wrapped_stdout = NULL; /* closed here */
    int bad = ferror(stdout);
    if (fclose(stdout) != 0 || bad) {
        if (errno == EBADF) return 0; /* already closed by the program */
        return agn_seterr_errno("write error on stdout");
    }
    return 0;
}

char *agn_path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = agn_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

char *agn_dir_of(const char *path)
{
    const char *s = strrchr(path, '/');
    if (!s) return agn_xstrdup(".");
    size_t n = (size_t)(s - path);
    if (n == 0) n = 1;
    char *d = agn_xmalloc(n + 1);
    memcpy(d, path, n);
    d[n] = '\0';
    return d;
}

char *agn_xasprintf(const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n < sizeof small) return agn_xstrdup(small);
    char *s = agn_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

void agn_sb_printf(agn_sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0) return;
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = 2 * (b->len + (size_t)n + 1);
        b->s = agn_xrealloc(b->s, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}
