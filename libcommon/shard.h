/* shard.h: the binary shard format (.agns), the token stream and the
 * in-memory dataset the trainer and the evaluator read.  Every byte of the
 * format is in man/agn-formats.5.
 *
 * Header (64 bytes, little-endian):
 *   0  char[8] magic "AGNSHRD1"
 *   8  u32     format version (1)
 *  12  u32     flags: bit 0 = token ids are u32 (else u16); bit 1 = payload zlib
 *  16  u64     n_examples
 *  24  u64     n_tokens (sum of example lengths)
 *  32  u32     vocab_size
 *  36  u32     max_len (truncation length the shard was built with)
 *  40  u32     n_classes
 *  44  u32     vocab_crc (agn_vocab_crc of the vocabulary)
 *  48  u64     payload_bytes (bytes after the header, as stored)
 *  56  u32     payload_crc (CRC-32 of the stored payload)
 *  60  u32     header_crc (CRC-32 of bytes 0..59)
 * Payload (after inflating when bit 1 is set):
 *   u64 offsets[n_examples + 1]   token index where each example starts
 *   u8  labels[n_examples]        class, 255 = unknown; zero-padded to 8 bytes
 *   u16|u32 tokens[n_tokens]
 */
#ifndef AGN_SHARD_H
#define AGN_SHARD_H

#include <stddef.h>
#include <stdint.h>

#define AGN_SHARD_MAGIC "AGNSHRD1"
#define AGN_SHARD_VERSION 1
#define AGN_SHARD_HEADER_SIZE 64
#define AGN_SHARD_FLAG_U32 1u
#define AGN_SHARD_FLAG_ZLIB 2u
#define AGN_LABEL_UNKNOWN 255

/* A set of examples in memory: one shard, or the concatenation of several. */
typedef struct {
    uint64_t n;           /* examples */
    uint64_t n_tokens;
    uint32_t vocab_size, max_len, n_classes, vocab_crc;
    uint64_t *offsets;    /* [n+1] */
    uint8_t *labels;      /* [n] */
    int32_t *tokens;      /* [n_tokens], widened on load */
} agn_dataset;

/* Reads and validates one shard (magic, version, sizes against the file
 * length, header and payload CRCs) into D; -1 with "FILE: reason". */
int agn_shard_read(agn_dataset *d, const char *path);
/* Reads several shards and concatenates them; all must agree on vocabulary
 * (size and CRC) and class count; max_len is the largest. */
int agn_dataset_load(agn_dataset *d, char *const *paths, int n_paths);
void agn_dataset_free(agn_dataset *d);

/* The header fields of a shard as stored (for agn-shard --info). */
typedef struct {
    uint32_t version, flags;
    uint64_t n_examples, n_tokens;
    uint32_t vocab_size, max_len, n_classes, vocab_crc;
    uint64_t payload_bytes;
    uint32_t payload_crc, header_crc;
} agn_shard_header;

/* agn_shard_read, also returning the header (H may be NULL). */
int agn_shard_read_ex(agn_dataset *d, agn_shard_header *h, const char *path);

/* ---- writing ----------------------------------------------------------- */

/* Buffers the examples of one shard in their stored form (ids already u16
 * or u32), then writes them atomically; memory is one shard's worth. */
typedef struct {
    uint32_t vocab_size, max_len, n_classes, vocab_crc;
    int zlevel;       /* 0 = stored raw, 1..9 = zlib level of the payload */
    int wide;         /* ids are u32 (vocab_size > 65536) */
    uint64_t n, n_tokens;
    uint64_t *offsets; /* [n+1] */
    uint8_t *labels;   /* [n] */
    void *tokens;      /* u16 or u32 [n_tokens] */
    size_t cap_ex, cap_tok;
} agn_shard_writer;

void agn_shard_writer_init(agn_shard_writer *w, uint32_t vocab_size, uint32_t max_len,
                           uint32_t n_classes, uint32_t vocab_crc, int zlevel);
/* Appends one example: LABEL below n_classes or AGN_LABEL_UNKNOWN, N ids
 * with 1 <= N <= max_len, each below vocab_size; -1 (with a message) when
 * one of these does not hold. */
int agn_shard_writer_add(agn_shard_writer *w, int label, const int32_t *ids, size_t n);
/* Writes the buffered examples as one shard at PATH (temporary file, fsync,
 * rename) and empties the buffer; -1 with "PATH: reason". */
int agn_shard_writer_flush(agn_shard_writer *w, const char *path);
void agn_shard_writer_free(agn_shard_writer *w);

/* ---- shard sets ---------------------------------------------------------- */

/* The shards of one agn-shard run, PREFIX-00000.agns ..., are one set, and
 * a set is a transaction: each shard is written and fsync'd under a
 * temporary name; then the manifest PREFIX.agnset, listing every shard's
 * name, example count and header CRC, replaces the previous one (the commit
 * point); then the shards are renamed into place and shards of an earlier,
 * longer set removed.  A run that fails or is stopped before the commit
 * leaves the previous set as it was.  Readers (agn_shard_read) check a
 * shard whose name is PREFIX-NNNNN.agns against PREFIX.agnset when there is
 * one, and the whole set on disk against it, so an incomplete or mixed set
 * is refused (agn-formats(5), SHARD SETS). */
#define AGN_SHARDSET_SUFFIX ".agnset"

typedef struct {
    char *prefix;
    size_t n, cap;
    struct agn_shardset_entry {
        void *out;      /* the finished, unpublished agn_out */
        char *name;     /* final path */
        uint64_t n_examples;
        uint32_t header_crc;
    } *e;
} agn_shardset;

/* Starts a set under PREFIX; removes temporaries of writers that died. */
void agn_shardset_begin(agn_shardset *s, const char *prefix);
/* Writes the buffered examples of W as the next shard of the set (under a
 * temporary name, fsync'd) and empties W; -1 with "PATH: reason". */
int agn_shardset_add(agn_shardset *s, agn_shard_writer *w);
/* Commits the set (see above) and frees it; *STALE gets the number of
 * shards of an earlier set removed.  On failure a message and -1 when it
 * came before the commit point (the previous set is untouched), -2 after it
 * (the new set is committed but not all in place: readers refuse it). */
int agn_shardset_commit(agn_shardset *s, unsigned long *stale);
/* Removes the temporaries of an uncommitted set and frees it. */
void agn_shardset_abort(agn_shardset *s);
/* The manifest path of the set PATH's name places it in (PREFIX.agnset for
 * PREFIX-NNNNN.agns), or NULL when the name is not of that form (free it). */
char *agn_shardset_manifest_of(const char *path);

#endif
