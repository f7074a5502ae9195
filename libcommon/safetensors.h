/* safetensors.h: a reader and a writer of the safetensors format, the file
 * layout of agn's checkpoints (DESIGN.md, Formats: Checkpoint), so that
 * PyTorch, NumPy and the safetensors library load agn's weights as they are.
 *
 * The format: an 8-byte little-endian header length N, N bytes of JSON (a
 * flat object: "__metadata__" maps to an object of string values; every
 * other key is a tensor name mapping to {"dtype", "shape", "data_offsets":
 * [begin, end]}, offsets relative to the data section), then the data
 * section: the raw little-endian tensors, back to back, no holes.
 *
 * agn's additions, still plain safetensors: the writer pads the header with
 * spaces so that the data section starts at a multiple of 8 bytes, and puts
 * the CRC-32 (zlib) of the whole data section into __metadata__ under
 * "data_crc" as 8 lower-case hex digits.  The reader checks it when present.
 *
 * The reader trusts nothing: the header length against the file size, the
 * JSON (a strict parser: RFC 8259 strings, escapes and UTF-8, integers
 * without sign, fraction or exponent, no duplicate keys, nothing after the
 * object but spaces), every dtype, shape and offset (each tensor's byte size
 * equals its span, spans tile the data section exactly), and the CRC.  Any
 * violation is an error "PATH: what is wrong", never a crash.
 *
 * Strings (names, metadata keys and values) must be valid UTF-8 without
 * NUL: the JSON header must be, for other readers.  The writer refuses
 * anything else, so a caller storing arbitrary bytes must escape them. */
#ifndef AGN_SAFETENSORS_H
#define AGN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define AGN_ST_MAX_DIMS 8
/* The largest header accepted (the safetensors library's own limit). */
#define AGN_ST_MAX_HEADER (100u << 20)

typedef enum {
    AGN_ST_F64, AGN_ST_F32, AGN_ST_F16, AGN_ST_BF16,
    AGN_ST_I64, AGN_ST_I32, AGN_ST_I16, AGN_ST_I8,
    AGN_ST_U64, AGN_ST_U32, AGN_ST_U16, AGN_ST_U8, AGN_ST_BOOL,
    AGN_ST_NDTYPES
} agn_st_dtype;

/* "F32" etc., and the size of one element in bytes. */
const char *agn_st_dtype_name(agn_st_dtype t);
size_t agn_st_dtype_size(agn_st_dtype t);

/* ---- writer -------------------------------------------------------------------
 *
 *   agn_st_writer *w = agn_st_writer_new();
 *   agn_st_add_f32(w, "tok_emb", params + off, 2, (int64_t[]){V, D});
 *   agn_st_add_meta(w, "format", "agn-checkpoint");
 *   if (agn_st_write(w, "run/last.safetensors") != 0) ... agn_errmsg() ...
 *   agn_st_writer_free(w);
 *
 * Tensors are written in the order added; their data is NOT copied and must
 * stay valid until agn_st_write() returns.  Keys and values are copied. */
typedef struct agn_st_writer agn_st_writer;

agn_st_writer *agn_st_writer_new(void);
void agn_st_writer_free(agn_st_writer *w);
/* Adds a tensor; -1 with a message on a duplicate or invalid name ("" or
 * "__metadata__", not UTF-8), a bad dtype or shape (ndim 0..8, dims >= 0). */
int agn_st_add(agn_st_writer *w, const char *name, agn_st_dtype dtype, int ndim,
               const int64_t *shape, const void *data);
int agn_st_add_f32(agn_st_writer *w, const char *name, const float *data, int ndim,
                   const int64_t *shape);
/* Adds (or replaces) a metadata string; "data_crc" is reserved. */
int agn_st_add_meta(agn_st_writer *w, const char *key, const char *value);
/* Writes the file atomically (util.h agn_out: temporary, fsync, rename);
 * "-" writes to stdout.  -1 with "PATH: reason"; no file appears then. */
int agn_st_write(agn_st_writer *w, const char *path);

/* ---- reader ----------------------------------------------------------------------- */

typedef struct {
    const char *name;
    agn_st_dtype dtype;
    int ndim;
    int64_t shape[AGN_ST_MAX_DIMS];
    size_t numel, nbytes;
    const unsigned char *data; /* inside the file image; not aligned in general */
} agn_st_tensor;

typedef struct agn_st_file agn_st_file;

/* Reads the whole file and checks it (see the top of this file).  NULL with
 * "PATH: reason".  "-" reads stdin. */
agn_st_file *agn_st_open(const char *path);
/* The same on a buffer in memory (copied); NAME is used in messages. */
agn_st_file *agn_st_open_mem(const void *buf, size_t len, const char *name);
void agn_st_close(agn_st_file *f);

/* Tensors in file order (the order of the header). */
int agn_st_count(const agn_st_file *f);
const agn_st_tensor *agn_st_tensor_at(const agn_st_file *f, int i);
/* NULL when absent (no error set). */
const agn_st_tensor *agn_st_find(const agn_st_file *f, const char *name);
/* Copies the F32 tensor NAME, which must have exactly the shape
 * (NDIM, SHAPE), into DST.  -1 with "PATH: tensor NAME: reason" when it is
 * absent, of another dtype or of another shape. */
int agn_st_read_f32(const agn_st_file *f, const char *name, float *dst, int ndim,
                    const int64_t *shape);

/* Metadata: the value of KEY, NULL when absent; all of them in file order. */
const char *agn_st_meta(const agn_st_file *f, const char *key);
int agn_st_meta_count(const agn_st_file *f);
void agn_st_meta_at(const agn_st_file *f, int i, const char **key, const char **value);
/* Whether the file carried a data_crc (which then matched: open checks it). */
int agn_st_has_crc(const agn_st_file *f);
/* The path (or name) given to open, for messages. */
const char *agn_st_path(const agn_st_file *f);

#endif
