/* util.h: what every part of agn shares: error reporting that returns up
 * the stack, checked number parsing, atomic output files, and small helpers.
 *
 * Error convention.  A libcommon function that can fail returns int (0 ok,
 * -1 error) or a pointer (NULL on error) and, on error, leaves a message in a
 * thread-local buffer with agn_seterr().  The message names the place:
 * "FILE:LINE: what is wrong" for data, "FILE: strerror" for I/O.  Only the
 * programs under tools/ print it (agn_errmsg()) and exit.  The one exception
 * is memory exhaustion: agn_xmalloc() and friends print and abort(), as there
 * is nothing sensible to return to. */
#ifndef AGN_UTIL_H
#define AGN_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define AGN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Exit statuses of every program (DESIGN.md, Behaviour). */
enum { AGN_EXIT_OK = 0, AGN_EXIT_ERROR = 1, AGN_EXIT_USAGE = 2 };

/* ---- errors ------------------------------------------------------------ */

/* The program's name for messages, set by agn_set_progname() from argv[0]. */
extern const char *agn_progname;
void agn_set_progname(const char *argv0);

/* Records a printf-formatted message as the current error; returns -1 so a
 * caller can write `return agn_seterr(...)`. */
int agn_seterr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Like agn_seterr, with ": strerror(errno)" appended (errno read on entry). */
int agn_seterr_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prefixes the current error with "PREFIX: " (for adding context). */
int agn_adderr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *agn_errmsg(void);

/* "agn-PROG: message\n" on stderr. */
void agn_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* agn_warn(agn_errmsg()). */
void agn_warn_err(void);

/* ---- memory ------------------------------------------------------------ */

void *agn_xmalloc(size_t n);
void *agn_xcalloc(size_t n, size_t size);
void *agn_xrealloc(void *p, size_t n);
char *agn_xstrdup(const char *s);
/* 64-byte aligned, zeroed; free with free(). */
void *agn_xalloc_aligned(size_t n);
/* Asks for transparent huge pages over [P, P + N) when N is at least 4 MiB
 * (agn_xalloc_aligned does it for its blocks); a hint, never an error. */
void agn_advise_huge(void *p, size_t n);

/* ---- numbers ----------------------------------------------------------- */

/* Parse a whole string as a number in [min, max]; -1 with a message naming
 * WHAT (e.g. "--epochs") on junk, overflow or range errors. */
int agn_parse_long(const char *s, long min, long max, const char *what, long *out);
int agn_parse_double(const char *s, double min, double max, const char *what, double *out);
/* Sizes with an optional k/M/G suffix (powers of 1024): "4M" = 4194304. */
int agn_parse_size(const char *s, const char *what, uint64_t *out);

/* ---- atomic output ----------------------------------------------------- */

/* An output file that appears under its name only when complete: writes go
 * to "NAME.tmp.XXXXXX" in the same directory; agn_out_commit() flushes,
 * fsyncs, renames and fsyncs the directory; agn_out_abort() removes the
 * temporary.  "-" means stdout, and an existing device or FIFO (/dev/null,
 * a named pipe) is written in place: neither can be replaced by a rename. */
typedef struct {
    FILE *fp;
    int fd;     /* its descriptor (fileno() is -1 under fault injection) */
    char *path; /* final name */
    char *tmp;  /* temporary name, NULL for stdout and direct writes */
    int direct; /* a device or FIFO, written in place */
} agn_out;

int agn_out_open(agn_out *o, const char *path);
int agn_out_open_mode(agn_out *o, const char *path, int binary);
int agn_out_commit(agn_out *o);
void agn_out_abort(agn_out *o);
/* The two halves of agn_out_commit, for a set of files that must appear
 * together: agn_out_finish() flushes, fsyncs and closes the temporary (which
 * stays, and is still removed on a fatal signal); agn_out_publish() renames
 * it to its final name and fsyncs the directory.  agn_out_abort() removes a
 * finished temporary too. */
int agn_out_finish(agn_out *o);
int agn_out_publish(agn_out *o);

/* Removes "NAME.tmp.PID.*" temporaries of NAME left by processes that no
 * longer exist (killed with SIGKILL, or by a power cut); returns how many. */
int agn_remove_stale_tmp(const char *name);

/* Temporary files not yet committed, removed on a fatal signal: tools call
 * agn_cleanup_on_signals() once so that SIGINT/SIGTERM never leave a
 * half-written "*.tmp.*" behind. */
void agn_cleanup_on_signals(void);

/* Writes a whole buffer with write(2), retrying on EINTR and short writes. */
int agn_write_all(int fd, const void *buf, size_t n);

/* ---- fault injection ---------------------------------------------------- */

/* Every write, fsync and rename of agn's outputs and every agn_x*alloc goes
 * through these, so that a test can make the Nth of them fail, or kill the
 * process there (AGN_FAULT, agn(7) FAULT INJECTION).  Without AGN_FAULT in
 * the environment they are the plain calls. */
enum { AGN_FAULT_WRITE, AGN_FAULT_FSYNC, AGN_FAULT_RENAME, AGN_FAULT_ALLOC, AGN_FAULT_KINDS };
/* 1 when this call of KIND must fail (errno is then set), else 0; kills the
 * process when AGN_FAULT=kill:N and this is the Nth call of any kind. */
int agn_fault(int kind);
/* fopen/fdopen whose writes are agn_write(); fileno() of the result is -1
 * under fault injection, so keep the descriptor where it is needed. */
FILE *agn_fopen(const char *path, const char *mode);
FILE *agn_fdopen(int fd, const char *mode);
ssize_t agn_write(int fd, const void *buf, size_t n);
int agn_fsync(int fd);
int agn_rename(const char *from, const char *to);

/* ---- paths and time ---------------------------------------------------- */

/* The whole of PATH in a buffer of *LEN bytes and a NUL after them (free
 * it); NULL with "PATH: reason" on an error.  agn_read_stream reads FP to
 * its end the same way, NAME naming it in the message. */
char *agn_read_file(const char *path, size_t *len);
char *agn_read_stream(FILE *fp, const char *name, size_t *len);
/* Locks the directory DIR (made when missing) for this process and its
 * children: an exclusive flock on DIR/.lock, which holds the pid of the
 * holder.  Returns the descriptor (keep it open while the directory is in
 * use), or -1 with "DIR: in use by another PROGRAM (pid N) ..." when another
 * process holds it, or an I/O error. */
int agn_lock_dir(const char *dir);
/* 1 when A and B both exist and are the same file (device and inode). */
int agn_same_file(const char *a, const char *b);
/* mkdir -p; 0 if it exists already as a directory. */
int agn_mkdir_p(const char *path);
/* DIR/NAME, allocated. */
char *agn_path_join(const char *dir, const char *name);
/* The folder of PATH ("." when it has none), allocated. */
char *agn_dir_of(const char *path);
/* A printf-formatted string, allocated (exits on out of memory). */
char *agn_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A string that grows by appending; {0} is the empty one, S stays NULL
 * until something is appended, and the caller frees S. */
typedef struct {
    char *s;
    size_t len, cap;
} agn_sbuf;
void agn_sb_printf(agn_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Seconds from a monotonic clock. */
double agn_now(void);
/* The data folder: $AGN_DATA, else DEFAULT. */
const char *agn_data_dir(const char *dflt);
/* Whether stderr is a terminal (progress lines are shown only then). */
int agn_stderr_is_tty(void);

/* ---- little-endian helpers ---------------------------------------------- */

static inline void agn_put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}
static inline void agn_put_u64(unsigned char *p, uint64_t v)
{
    agn_put_u32(p, (uint32_t)v);
    agn_put_u32(p + 4, (uint32_t)(v >> 32));
}
static inline uint32_t agn_get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t agn_get_u64(const unsigned char *p)
{
    return (uint64_t)agn_get_u32(p) | (uint64_t)agn_get_u32(p + 4) << 32;
}

/* ---- tool boilerplate ----------------------------------------------------- */

/* Prints "PROG (agn) VERSION" and the build and machine (buildinfo.h) to
 * stdout for --version; defined in buildinfo.c. */
void agn_print_version(void);
/* "Try 'PROG --help' for more information." on stderr; returns 2. */
int agn_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Closes stdout and reports a write error (e.g. a full disk); returns 0/-1. */
int agn_close_stdout(void);
/* The exit status after --help or --version: closes stdout and, on a write
 * error, prints it ("write error on stdout: No space left on device"): 0/1. */
int agn_stdout_status(void);

#endif
