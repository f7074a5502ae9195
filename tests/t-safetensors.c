/* t-safetensors.c: the safetensors writer and reader.  A round trip (tensor
 * values, shapes, dtypes, metadata with quotes, newlines and non-ASCII text,
 * the header padded to 8 bytes, the CRC), then damaged and hostile input:
 * every truncation of a good file, a flipped byte in the data (CRC error)
 * and at every header position (an error or a consistent file, never a
 * crash), a text file, a header length beyond the file, and a list of
 * hand-written bad headers, each of which must be refused with a message
 * naming the problem. */
#include "config.h"
#include "safetensors.h"
#include "util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAIL line %d: ", __LINE__);                                                    \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, fp);
    fclose(fp);
    return b;
}

/* A file image: 8-byte length, JSON, then DLEN bytes of data (0x11...). */
static unsigned char *image(const char *json, size_t dlen, size_t *n)
{
    size_t h = strlen(json);
    *n = 8 + h + dlen;
    unsigned char *b = malloc(*n + 1);
    agn_put_u64(b, h);
    memcpy(b + 8, json, h);
    for (size_t i = 0; i < dlen; i++) b[8 + h + i] = (unsigned char)(0x11 + i);
    return b;
}

/* JSON must be refused with a message containing WANT. */
static void bad_header(const char *json, size_t dlen, const char *want)
{
    size_t n;
    unsigned char *b = image(json, dlen, &n);
    agn_st_file *f = agn_st_open_mem(b, n, "bad.safetensors");
    EXPECT(!f, "accepted bad header %s", json);
    if (!f) {
        EXPECT(strstr(agn_errmsg(), want) != NULL, "header %s: message '%s' lacks '%s'", json,
               agn_errmsg(), want);
        EXPECT(strncmp(agn_errmsg(), "bad.safetensors: ", 17) == 0, "message '%s' lacks the name",
               agn_errmsg());
    }
    agn_st_close(f);
    free(b);
}

static void good_header(const char *json, size_t dlen)
{
    size_t n;
    unsigned char *b = image(json, dlen, &n);
    agn_st_file *f = agn_st_open_mem(b, n, "good.safetensors");
    EXPECT(f != NULL, "refused good header %s: %s", json, agn_errmsg());
    agn_st_close(f);
    free(b);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char m[] = "FAIL: a header of 400000 names took over 30 s to read\n";
    if (write(1, m, sizeof m - 1) < 0) _exit(1);
    _exit(1);
}

/* A header of many names (metadata keys and empty tensors), read in time
 * that grows with their number, not its square (each name compared with all
 * before it took minutes), the last a duplicate or not; lookups find them. */
static void many_names(void)
{
    enum { N = 200000 };
    const char *tensor = "\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]";
    char *j = malloc((size_t)N * 80 + 256);
    size_t len = (size_t)sprintf(j, "{\"__metadata__\":{");
    for (int i = 0; i < N; i++) len += (size_t)sprintf(j + len, "%s\"k%d\":\"v%d\"", i ? "," : "", i, i);
    len += (size_t)sprintf(j + len, "}");
    for (int i = 0; i < N; i++) len += (size_t)sprintf(j + len, ",\"t%d\":{%s}", i, tensor);
    signal(SIGALRM, on_alarm);
    alarm(30);
    sprintf(j + len, "}");
    size_t n;
    unsigned char *b = image(j, 0, &n);
    agn_st_file *f = agn_st_open_mem(b, n, "many.safetensors");
    EXPECT(f != NULL, "refused a header of many names: %s", agn_errmsg());
    if (f) {
        const agn_st_tensor *t = agn_st_find(f, "t123456");
        EXPECT(agn_st_count(f) == N && t == agn_st_tensor_at(f, 123456), "tensor t123456 not found");
        const char *v = agn_st_meta(f, "k199999");
        EXPECT(v && strcmp(v, "v199999") == 0, "metadata k199999 is %s", v ? v : "absent");
        EXPECT(!agn_st_find(f, "t200000") && !agn_st_meta(f, "k200000"), "found names not there");
    }
    agn_st_close(f);
    free(b);
    sprintf(j + len, ",\"t%d\":{%s}}", N - 1, tensor);
    bad_header(j, 0, "duplicate tensor name");
    alarm(0);
    free(j);
}

int main(void)
{
    char dir[] = "/tmp/agn-st.XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char path[256];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);

    /* ---- round trip ---- */
    float w[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
    int64_t steps[1] = {1234567890123LL};
    agn_st_writer *wr = agn_st_writer_new();
    EXPECT(agn_st_add_f32(wr, "blocks.0.w", w, 2, (int64_t[]){2, 3}) == 0, "add");
    EXPECT(agn_st_add_f32(wr, "empty", NULL, 1, (int64_t[]){0}) == 0, "add empty");
    EXPECT(agn_st_add(wr, "step", AGN_ST_I64, 0, NULL, steps) == 0, "add scalar");
    EXPECT(agn_st_add_f32(wr, "blocks.0.w", w, 1, (int64_t[]){6}) != 0, "duplicate name accepted");
    EXPECT(agn_st_add_f32(wr, "__metadata__", w, 1, (int64_t[]){6}) != 0, "reserved name accepted");
    EXPECT(agn_st_add_f32(wr, "neg", w, 1, (int64_t[]){-1}) != 0, "negative dim accepted");
    EXPECT(agn_st_add_meta(wr, "config", "model:\n  d_model: 128\n\"quoted\" \\ tab\tend") == 0, "meta");
    EXPECT(agn_st_add_meta(wr, "vocab", "caf\xc3\xa9\t3\n\xe2\x82\xac\t2\n\x01\x1f") == 0, "meta utf8");
    EXPECT(agn_st_add_meta(wr, "bad", "caf\xe9") != 0, "invalid UTF-8 accepted");
    EXPECT(agn_st_add_meta(wr, "data_crc", "00000000") != 0, "reserved key accepted");
    EXPECT(agn_st_add_meta(wr, "format", "old") == 0 && agn_st_add_meta(wr, "format", "agn") == 0,
           "replace meta");
    EXPECT(agn_st_write(wr, path) == 0, "write: %s", agn_errmsg());
    snprintf(path + strlen(dir), sizeof path - strlen(dir), "/no/such/dir/x.safetensors");
    EXPECT(agn_st_write(wr, path) != 0, "write into a missing directory succeeded");
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    agn_st_writer_free(wr);

    agn_st_file *f = agn_st_open(path);
    EXPECT(f != NULL, "open: %s", agn_errmsg());
    if (f) {
        EXPECT(agn_st_count(f) == 3, "count %d", agn_st_count(f));
        EXPECT(agn_st_has_crc(f), "no CRC");
        const agn_st_tensor *t = agn_st_find(f, "blocks.0.w");
        EXPECT(t && t->dtype == AGN_ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3,
               "tensor shape");
        float back[6];
        EXPECT(agn_st_read_f32(f, "blocks.0.w", back, 2, (int64_t[]){2, 3}) == 0 &&
                   memcmp(back, w, sizeof w) == 0, "values differ");
        EXPECT(agn_st_read_f32(f, "blocks.0.w", back, 2, (int64_t[]){3, 2}) != 0 &&
                   strstr(agn_errmsg(), "shape [2,3], expected [3,2]"), "shape mismatch: %s", agn_errmsg());
        EXPECT(agn_st_read_f32(f, "step", back, 0, NULL) != 0 && strstr(agn_errmsg(), "is I64"),
               "dtype mismatch: %s", agn_errmsg());
        EXPECT(agn_st_read_f32(f, "nope", back, 0, NULL) != 0 && strstr(agn_errmsg(), "missing"),
               "missing: %s", agn_errmsg());
        t = agn_st_find(f, "step");
        int64_t s;
        EXPECT(t && t->ndim == 0 && t->nbytes == 8, "scalar");
        if (t) memcpy(&s, t->data, 8);
        EXPECT(t && s == steps[0], "scalar value");
        t = agn_st_find(f, "empty");
        EXPECT(t && t->numel == 0 && t->ndim == 1 && t->shape[0] == 0, "empty tensor");
        EXPECT(agn_st_meta(f, "config") &&
                   !strcmp(agn_st_meta(f, "config"), "model:\n  d_model: 128\n\"quoted\" \\ tab\tend"),
               "config metadata");
        EXPECT(agn_st_meta(f, "vocab") &&
                   !strcmp(agn_st_meta(f, "vocab"), "caf\xc3\xa9\t3\n\xe2\x82\xac\t2\n\x01\x1f"),
               "vocab metadata");
        EXPECT(agn_st_meta(f, "format") && !strcmp(agn_st_meta(f, "format"), "agn"), "replaced");
        EXPECT(agn_st_meta(f, "absent") == NULL, "absent key found");
        agn_st_close(f);
    }

    /* the raw file: header padded so the data starts at a multiple of 8 */
    size_t n;
    unsigned char *good = slurp(path, &n);
    uint64_t hlen = agn_get_u64(good);
    EXPECT((8 + hlen) % 8 == 0, "data section at %llu", (unsigned long long)(8 + hlen));
    EXPECT(n == 8 + hlen + 24 + 8, "file size %zu", n);

    /* ---- every truncation fails cleanly ---- */
    int accepted = 0;
    for (size_t k = 0; k < n; k++) {
        agn_st_file *g = agn_st_open_mem(good, k, "trunc");
        if (g) accepted++;
        agn_st_close(g);
    }
    EXPECT(accepted == 0, "%d truncations accepted", accepted);
    {
        agn_st_file *g = agn_st_open_mem(good, n - 3, "trunc");
        EXPECT(!g && (strstr(agn_errmsg(), "truncated") || strstr(agn_errmsg(), "cover")),
               "truncated data: %s", agn_errmsg());
        agn_st_close(g);
    }

    /* ---- a flipped data byte is a CRC error ---- */
    good[n - 5] ^= 0x40;
    f = agn_st_open_mem(good, n, "flip");
    EXPECT(!f && strstr(agn_errmsg(), "CRC error"), "flipped data byte: %s", f ? "accepted" : agn_errmsg());
    agn_st_close(f);
    good[n - 5] ^= 0x40;

    /* ---- a flipped bit anywhere in the header: refused or consistent ---- */
    int refused = 0;
    for (size_t k = 0; k < 8 + hlen; k++) {
        for (int bit = 0; bit < 8; bit += 3) {
            good[k] ^= (unsigned char)(1 << bit);
            agn_st_file *g = agn_st_open_mem(good, n, "flip");
            if (!g) refused++;
            else
                for (int i = 0; i < agn_st_count(g); i++) { /* data must lie inside the image */
                    const agn_st_tensor *t = agn_st_tensor_at(g, i);
                    volatile unsigned char sink = 0;
                    for (size_t j = 0; j < t->nbytes; j++) sink ^= t->data[j];
                    (void)sink;
                }
            agn_st_close(g);
            good[k] ^= (unsigned char)(1 << bit);
        }
    }
    printf("header bit flips refused: %d of %d\n", refused, (int)(8 + hlen) * 3);
    EXPECT(refused > (int)(8 + hlen), "too few header flips refused (%d)", refused);

    /* ---- not a safetensors file, header length beyond the file ---- */
    const char *text = "class,title,description\n3,\"Wall St.\",\"Bears claw back\"\n";
    f = agn_st_open_mem(text, strlen(text), "text.csv");
    EXPECT(!f && strstr(agn_errmsg(), "not a safetensors file"), "text: %s", agn_errmsg());
    agn_st_close(f);
    f = agn_st_open_mem("", 0, "empty");
    EXPECT(!f && strstr(agn_errmsg(), "not a safetensors file"), "empty: %s", agn_errmsg());
    agn_st_close(f);
    agn_put_u64(good, n - 8 + 1);
    f = agn_st_open_mem(good, n, "long");
    EXPECT(!f && strstr(agn_errmsg(), "exceeds"), "long header: %s", agn_errmsg());
    agn_st_close(f);
    agn_put_u64(good, UINT64_MAX);
    f = agn_st_open_mem(good, n, "huge");
    EXPECT(!f, "huge header length accepted");
    agn_st_close(f);
    free(good);
    f = agn_st_open("/nonexistent/x.safetensors");
    EXPECT(!f && strstr(agn_errmsg(), "No such file"), "missing file: %s", agn_errmsg());

    /* ---- hand-written headers ---- */
    const char *T4 = "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}";
    char j[512];
    snprintf(j, sizeof j, "{%s}", T4);
    good_header(j, 4);
    snprintf(j, sizeof j, "{%s}    ", T4);
    good_header(j, 4);
    good_header("{}", 0);
    good_header("{\"__metadata__\":{}}", 0);
    good_header("{\"x\\u00e9\\ud83d\\ude00\":{\"shape\":[2],\"data_offsets\":[0,2],\"dtype\":\"U8\"}}", 2);
    snprintf(j, sizeof j, "{%s", T4);
    bad_header(j, 4, "expected '}'");
    snprintf(j, sizeof j, "{%s,}", T4);
    bad_header(j, 4, "expected '\"'");
    snprintf(j, sizeof j, "{%s} x", T4);
    bad_header(j, 4, "trailing bytes");
    snprintf(j, sizeof j, "{%s}", T4);
    bad_header(j, 5, "cover 4 bytes of the 5");
    bad_header(j, 3, "beyond");
    snprintf(j, sizeof j, "{%s,%s}", T4, T4);
    bad_header(j, 8, "duplicate tensor name");
    bad_header("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype");
    bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "need 8");
    bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "backwards");
    bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", 8, "overlap");
    bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "hole");
    bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "non-negative integer");
    bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, "expected an integer");
    bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4, "leading zero");
    bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", 4, "too large");
    bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, "shape too large");
    bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "too many");
    bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "lacks data_offsets");
    bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "unknown key");
    bad_header("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "duplicate key");
    bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "two integers");
    bad_header("{\"a\":[1]}", 0, "expected '{'");
    bad_header("{\"a\":{}}", 0, "empty tensor entry");
    bad_header("{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "empty tensor name");
    bad_header("{\"__metadata__\":{\"k\":1}}", 0, "not a string");
    bad_header("{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0, "duplicate metadata key");
    bad_header("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate key __metadata__");
    bad_header("{\"__metadata__\":{\"k\":\"a\nb\"}}", 0, "control character");
    bad_header("{\"__metadata__\":{\"k\":\"\\x\"}}", 0, "invalid escape");
    bad_header("{\"__metadata__\":{\"k\":\"\\ud800\"}}", 0, "unpaired surrogate");
    bad_header("{\"__metadata__\":{\"k\":\"\\u0000\"}}", 0, "NUL");
    bad_header("{\"__metadata__\":{\"k\":\"\\u12\"}}", 0, "invalid \\u escape");
    bad_header("{\"__metadata__\":{\"k\":\"\xc3\x28\"}}", 0, "invalid UTF-8");
    bad_header("{\"__metadata__\":{\"k\":\"unterminated}}", 0, "unterminated");
    bad_header("{\"__metadata__\":{\"data_crc\":\"xyz\"}}", 0, "not 8 hex digits");
    bad_header("{\"__metadata__\":{\"data_crc\":\"00000001\"}}", 0, "CRC error");
    bad_header("[]", 0, "does not start with '{'");
    many_names();

    unlink(path);
    rmdir(dir);
    if (failures) {
        printf("%d failures\n", failures);
        return 1;
    }
    printf("safetensors: all checks passed\n");
    return 0;
}
