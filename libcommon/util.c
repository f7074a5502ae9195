/* util.c: error messages, checked parsing, atomic output files and the small
 * helpers every program shares.  See util.h for the conventions. */
#include "config.h"
#include "util.h"

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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- errors ------------------------------------------------------------ */

const char *agn_progname = "agn";
static _Thread_local char errbuf[1024];

void agn_set_progname(const char *argv0)
{
    const char *slash = argv0 ? strrchr(argv0, '/') : NULL;
    if (argv0) agn_progname = slash ? slash + 1 : argv0;
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

static void oom(size_t n)
{
    fprintf(stderr, "%s: out of memory allocating %zu bytes\n", agn_progname, n);
    abort();
}

void *agn_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *agn_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *agn_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *agn_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(agn_xmalloc(n), s, n);
}

void *agn_xalloc_aligned(size_t n)
{
    void *p = NULL;
    size_t rounded = (n + 63) / 64 * 64;
    if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) oom(n);
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

/* ---- atomic output ----------------------------------------------------- */

/* Temporaries that a fatal signal must remove.  A small fixed table: a
 * program has at most a handful of outputs open at once. */
#define MAX_PENDING 64
static char *pending[MAX_PENDING];
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;

static void pending_add(char *tmp)
{
    pthread_mutex_lock(&pending_lock);
    for (int i = 0; i < MAX_PENDING; i++)
        if (!pending[i]) { pending[i] = tmp; break; }
    pthread_mutex_unlock(&pending_lock);
}

static void pending_del(const char *tmp)
{
    pthread_mutex_lock(&pending_lock);
    for (int i = 0; i < MAX_PENDING; i++)
        if (pending[i] == tmp) pending[i] = NULL;
    pthread_mutex_unlock(&pending_lock);
}

static void cleanup_handler(int sig)
{
    /* async-signal-safe: unlink only, then re-raise with the default action */
    for (int i = 0; i < MAX_PENDING; i++)
        if (pending[i]) unlink(pending[i]);
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
    if (strcmp(path, "-") == 0) {
        o->fp = stdout;
        o->path = agn_xstrdup("(stdout)");
        return 0;
    }
    /* A device or a FIFO (/dev/null, /dev/stdout, a named pipe) cannot be
     * replaced by a rename: write to it directly. */
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        if (S_ISDIR(st.st_mode)) return agn_seterr("%s: is a directory", path);
        o->fp = fopen(path, "wb");
        if (!o->fp) return agn_seterr_errno("%s", path);
        o->path = agn_xstrdup(path);
        o->direct = 1;
        return 0;
    }
    size_t n = strlen(path);
    o->path = agn_xstrdup(path);
    o->tmp = agn_xmalloc(n + 16);
    snprintf(o->tmp, n + 16, "%s.tmp.XXXXXX", path);
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
    fchmod(fd, 0666 & ~um);
    o->fp = fdopen(fd, "wb");
    if (!o->fp) {
        agn_seterr_errno("%s", path);
        close(fd);
        unlink(o->tmp);
        free(o->tmp); free(o->path);
        o->tmp = o->path = NULL;
        return -1;
    }
    pending_add(o->tmp);
    return 0;
}

int agn_out_open(agn_out *o, const char *path) { return agn_out_open_mode(o, path, 0); }

static void fsync_dir_of(const char *path)
{
    char *copy = agn_xstrdup(path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
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
    if (fflush(o->fp) != 0 || ferror(o->fp)) rc = agn_seterr_errno("%s", o->path);
    if (rc == 0 && fsync(fileno(o->fp)) != 0) rc = agn_seterr_errno("%s: fsync", o->path);
    if (fclose(o->fp) != 0 && rc == 0) rc = agn_seterr_errno("%s", o->path);
    o->fp = NULL;
    if (rc == 0 && rename(o->tmp, o->path) != 0) rc = agn_seterr_errno("%s: rename", o->path);
    if (rc == 0) fsync_dir_of(o->path);
    else unlink(o->tmp);
    pending_del(o->tmp);
    free(o->tmp); free(o->path);
    memset(o, 0, sizeof *o);
    return rc;
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

int agn_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
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

void agn_print_version(void)
{
    printf("%s (%s) %s\n", agn_progname, PACKAGE_NAME, PACKAGE_VERSION);
}

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

int agn_close_stdout(void)
{
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
