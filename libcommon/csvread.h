/* csvread.h: a small reader of comma-separated records (RFC 4180: quoted
 * fields, doubled quotes, CRLF or LF line ends, newlines inside quotes) for
 * the metrics files agn-train writes.  It keeps the line number where each
 * record starts, so that a caller can name FILE:LINE in its messages.  It is
 * not the tokenizer's AG News reader (csv.c), which is tuned for the corpus;
 * this one favours plain, strict reading of small files. */
#ifndef AGN_CSVREAD_H
#define AGN_CSVREAD_H

#include <stdio.h>

typedef struct agn_csvread agn_csvread;

/* Opens PATH ("-" is stdin); NULL with a message on error. */
agn_csvread *agn_csvread_open(const char *path);

/* Reads the next record: 1 with *fields (valid until the next call) and
 * *n set, 0 at the end of the file, -1 with "FILE:LINE: reason" on an
 * unterminated quote, a NUL byte, junk after a closing quote or a read
 * error.  Empty lines are skipped. */
int agn_csvread_next(agn_csvread *r, char ***fields, int *n);

/* The line where the last record returned started (1-based). */
long agn_csvread_line(const agn_csvread *r);
/* The name used in messages. */
const char *agn_csvread_name(const agn_csvread *r);

void agn_csvread_close(agn_csvread *r);

#endif
