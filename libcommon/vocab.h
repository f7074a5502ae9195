/* vocab.h: the vocabulary (DESIGN.md, Formats): "token<TAB>count" per line,
 * id = line number from 0 after any '#' header lines; id 0 "<pad>", id 1
 * "<unk>".  Loaded into a hash table for token -> id, kept as text too so a
 * checkpoint can carry it. */
#ifndef AGN_VOCAB_H
#define AGN_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#define AGN_PAD_ID 0
#define AGN_UNK_ID 1
#define AGN_PAD_TOKEN "<pad>"
#define AGN_UNK_TOKEN "<unk>"

typedef struct agn_vocab agn_vocab;

/* Loads a vocabulary file; -1 with "FILE:LINE: reason" (duplicate token, bad
 * count, missing tab, specials not at ids 0 and 1, ...). */
agn_vocab *agn_vocab_load(const char *path);
/* Parses a vocabulary held in memory (e.g. inside a checkpoint); NAME is
 * used in messages. */
agn_vocab *agn_vocab_parse(const char *buf, size_t len, const char *name);
void agn_vocab_free(agn_vocab *v);

uint32_t agn_vocab_size(const agn_vocab *v);
/* Id of a token (LEN bytes), AGN_UNK_ID when absent.  The text "<pad>"
 * also gives AGN_UNK_ID: id 0 only ever means padding, so a stream token
 * that happens to spell it is an unknown word, in every program alike. */
int32_t agn_vocab_lookup(const agn_vocab *v, const char *tok, size_t len);
/* Token text of ID (NUL-terminated), NULL when out of range. */
const char *agn_vocab_token(const agn_vocab *v, int32_t id);
/* CRC-32 of the token list: zlib crc32 over "token\n" for ids 0..V-1 in
 * order.  Counts and header lines do not enter it, so it identifies the
 * id mapping.  Stored in shards and checkpoints. */
uint32_t agn_vocab_crc(const agn_vocab *v);
/* The vocabulary as file text (header lines included), for checkpoints. */
const char *agn_vocab_text(const agn_vocab *v, size_t *len);

/* ---- counting tokens (agn-vocab) ---------------------------------------- */

/* A token -> count table: open addressing over an arena of token bytes, so
 * its memory grows with the number of distinct tokens only. */
typedef struct agn_tokcount agn_tokcount;

typedef struct {
    const char *tok; /* not NUL-terminated; points into the table's arena */
    uint32_t len;
    uint64_t count;
} agn_tokcount_entry;

agn_tokcount *agn_tokcount_new(void);
void agn_tokcount_free(agn_tokcount *t);
/* Adds N to the count of the token TOK (LEN bytes, LEN > 0). */
void agn_tokcount_add(agn_tokcount *t, const char *tok, size_t len, uint64_t n);
/* Adds 1 to the count of each token of TEXT (LEN bytes): the tokens are
 * separated by spaces and tabs, as agn_stream_next_token splits them, so
 * this is the loop over agn_stream_next_token and agn_tokcount_add, faster
 * (no call per token).  Returns the number of tokens. */
uint64_t agn_tokcount_add_text(agn_tokcount *t, const char *text, size_t len);
size_t agn_tokcount_distinct(const agn_tokcount *t);
/* All entries in the vocabulary order: count descending, then bytes
 * ascending (memcmp; a prefix sorts first).  The array is malloc'd (free
 * it); its pointers are valid while the table lives. */
agn_tokcount_entry *agn_tokcount_sorted(const agn_tokcount *t, size_t *n);
/* The same, built in the memory of the table's index, which it consumes:
 * no second copy at the peak; the table is empty afterwards (free it only
 * after the entries, which point into its arena). */
agn_tokcount_entry *agn_tokcount_take_sorted(agn_tokcount *t, size_t *n);

/* A 64-bit hash of LEN bytes (used by both tables; not cryptographic). */
uint64_t agn_hash_bytes(const void *p, size_t len);

#endif
