/* input.h: reading bytes and lines from a plain file, a gzip file or stdin,
 * through one large buffer, so that the readers of agn (the CSV parser, line
 * readers) never make a call per byte.
 *
 * A path of "-" is standard input.  Gzip is recognised by its magic bytes
 * (1f 8b), never by the file name, so `agn-tokenize data.csv` works whether
 * or not the file is compressed, and so does a compressed stdin.  Gzip data
 * is inflated with zlib; concatenated members are read one after the other
 * (as gzip -d does).  A truncated or corrupt gzip stream, or bytes after the
 * last member that are not another member, are an error naming the file,
 * never an early, silent end of the data.
 *
 * Memory: one input block and, for gzip, one output block (256 KiB each),
 * plus, for the line reader, a line buffer that grows only to the longest
 * line and is capped by agn_input_set_max_line(). */
#ifndef AGN_INPUT_H
#define AGN_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct agn_input agn_input;

/* Opens PATH ("-" = stdin) and looks at its first bytes to tell gzip from
 * plain data.  NULL with "PATH: reason" on error. */
agn_input *agn_input_open(const char *path);
/* The same with reads (and inflated blocks) of BLOCK bytes, 0 for the
 * default: tests use tiny blocks to put a block edge everywhere. */
agn_input *agn_input_open_block(const char *path, size_t block);
/* Wraps an open file descriptor (not closed by agn_input_close); NAME is
 * used in messages. */
agn_input *agn_input_open_fd(int fd, const char *name);
void agn_input_close(agn_input *in);

/* The name used in messages: the path, or "(stdin)" for "-". */
const char *agn_input_name(const agn_input *in);
/* Whether the data is being inflated from gzip. */
int agn_input_is_gzip(const agn_input *in);
/* Bytes delivered so far (after decompression). */
uint64_t agn_input_bytes(const agn_input *in);

/* The next block of (decompressed) data: *BUF points into the reader's own
 * buffer and stays valid until the next call on IN.  Returns the number of
 * bytes (> 0), 0 at the end of the data, -1 on an error ("NAME: reason":
 * I/O error, truncated or corrupt gzip data). */
ssize_t agn_input_read(agn_input *in, const char **buf);

/* The next line, without its '\n' and without a '\r' just before it.  A
 * last line without '\n' counts as a line.  *LINE stays valid until the
 * next call on IN.  Returns 1 with a line, 0 at the end, -1 on an error
 * (those of agn_input_read), or 2 for a line longer than the limit, which
 * is read to its end and dropped ("NAME:LINE: line longer than N bytes" in
 * agn_errmsg()); reading can go on after 2.
 * Do not mix with agn_input_read on the same reader except that bytes not
 * yet consumed by the line reader are what agn_input_read returns next. */
int agn_input_getline(agn_input *in, const char **line, size_t *len);
/* If FD is a pipe, asks for a pipe buffer of AGN_PIPE_SIZE bytes (Linux;
 * silently nothing elsewhere, or when the system refuses): a pipeline such
 * as agn-tokenize | agn-vocab then moves 1 MiB per wake-up instead of the
 * default 64 KiB.  Readers opened here do it on their input. */
#define AGN_PIPE_SIZE (1 << 20)
void agn_pipe_grow(int fd);

/* Number of the line last returned by agn_input_getline, from 1. */
uint64_t agn_input_lineno(const agn_input *in);
/* Longest line agn_input_getline accepts (default 64 MiB). */
void agn_input_set_max_line(agn_input *in, size_t max);

#endif
