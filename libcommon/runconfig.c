/* runconfig.c: the YAML run configuration (runconfig.h).  One table lists every
 * key with its section, type, place in the struct and range; the reader, the
 * command-line override, the checker and the writer all walk it, so a key is
 * added in one place. */
#include "config.h"
#include "runconfig.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ---- the key table -------------------------------------------------------- */

typedef enum { T_LONG, T_U64, T_DOUBLE, T_STR, T_LIST } key_type;

typedef struct {
    const char *section, *name;
    key_type type;
    size_t off;
    double min, max;    /* inclusive range for numbers */
    int min_open;       /* 1: the minimum itself is out of range */
    const char *help;   /* range in words, for messages */
} key_def;

#define OFF(f) offsetof(agn_config, f)
static const key_def keys[AGN_K_COUNT] = {
    [AGN_K_VOCAB_SIZE] = {"model", "vocab_size", T_LONG, OFF(vocab_size), 3, 1 << 30, 0, NULL},
    [AGN_K_MAX_LEN] = {"model", "max_len", T_LONG, OFF(max_len), 1, 1 << 16, 0, NULL},
    [AGN_K_D_MODEL] = {"model", "d_model", T_LONG, OFF(d_model), 1, 1 << 16, 0, NULL},
    [AGN_K_N_HEADS] = {"model", "n_heads", T_LONG, OFF(n_heads), 1, 1024, 0, NULL},
    [AGN_K_N_LAYERS] = {"model", "n_layers", T_LONG, OFF(n_layers), 1, 1024, 0, NULL},
    [AGN_K_D_FF] = {"model", "d_ff", T_LONG, OFF(d_ff), 1, 1 << 20, 0, NULL},
    [AGN_K_DROPOUT] = {"model", "dropout", T_DOUBLE, OFF(dropout), 0, 1, 0, "in [0, 1)"},
    [AGN_K_N_CLASSES] = {"model", "n_classes", T_LONG, OFF(n_classes), 2, AGN_MAX_CLASSES, 0, NULL},
    [AGN_K_CLASS_NAMES] = {"model", "class_names", T_LIST, OFF(class_names), 0, 0, 0, NULL},
    [AGN_K_EPOCHS] = {"train", "epochs", T_LONG, OFF(epochs), 1, 1000000, 0, NULL},
    [AGN_K_GLOBAL_BATCH] = {"train", "global_batch", T_LONG, OFF(global_batch), 1, 1 << 20, 0, NULL},
    [AGN_K_LR] = {"train", "lr", T_DOUBLE, OFF(lr), 0, 1e9, 0, NULL},
    [AGN_K_WARMUP] = {"train", "warmup", T_LONG, OFF(warmup), 0, 1e12, 0, NULL},
    [AGN_K_WEIGHT_DECAY] = {"train", "weight_decay", T_DOUBLE, OFF(weight_decay), 0, 100, 0, NULL},
    [AGN_K_GRAD_CLIP] = {"train", "grad_clip", T_DOUBLE, OFF(grad_clip), 0, 1e9, 0, NULL},
    [AGN_K_BETA1] = {"train", "beta1", T_DOUBLE, OFF(beta1), 0, 1, 0, "in [0, 1)"},
    [AGN_K_BETA2] = {"train", "beta2", T_DOUBLE, OFF(beta2), 0, 1, 0, "in [0, 1)"},
    [AGN_K_EPS] = {"train", "eps", T_DOUBLE, OFF(eps), 0, 1, 1, "in (0, 1]"},
    [AGN_K_SEED] = {"train", "seed", T_U64, OFF(seed), 0, 0, 0, NULL},
    [AGN_K_PRECISION] = {"train", "precision", T_STR, OFF(precision), 0, 0, 0, NULL},
    [AGN_K_LOG_EVERY] = {"train", "log_every", T_LONG, OFF(log_every), 1, 1e12, 0, NULL},
    [AGN_K_EVAL_EVERY] = {"train", "eval_every", T_LONG, OFF(eval_every), 0, 1e12, 0, NULL},
    [AGN_K_MAX_EXAMPLES] = {"train", "max_examples", T_LONG, OFF(max_examples), 0, 1e15, 0, NULL},
};

static const char *const ag_news_classes[] = {"World", "Sports", "Business", "Sci/Tech"};

const char *agn_config_key_name(int key)
{
    static char names[AGN_K_COUNT][40];
    if (key < 0 || key >= AGN_K_COUNT) return "?";
    if (!names[key][0]) snprintf(names[key], sizeof names[key], "%s.%s", keys[key].section, keys[key].name);
    return names[key];
}

static void set_class_names(agn_config *c, const char *const *names, int n)
{
    for (int i = 0; i < c->n_class_names; i++) free(c->class_names[i]);
    free(c->class_names);
    c->class_names = n ? agn_xcalloc((size_t)n, sizeof *c->class_names) : NULL;
    for (int i = 0; i < n; i++) c->class_names[i] = agn_xstrdup(names[i]);
    c->n_class_names = n;
}

void agn_config_defaults(agn_config *c)
{
    memset(c, 0, sizeof *c);
    c->path = agn_xstrdup("(defaults)");
    c->name = agn_xstrdup("default");
    c->vocab_size = 0; /* auto: the shards' */
    c->max_len = 128;
    c->d_model = 128;
    c->n_heads = 4;
    c->n_layers = 2;
    c->d_ff = 512;
    c->dropout = 0.1;
    c->n_classes = 4;
    set_class_names(c, ag_news_classes, 4);
    c->epochs = 4;
    c->global_batch = 32;
    c->lr = 1e-3;
    c->warmup = 100;
    c->weight_decay = 0.01;
    c->grad_clip = 1.0;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-8;
    c->seed = 1;
    strcpy(c->precision, "auto");
    c->log_every = 10;
    c->eval_every = 0;
    c->max_examples = 0;
}

void agn_config_free(agn_config *c)
{
    if (!c) return;
    set_class_names(c, NULL, 0);
    for (int k = 0; k < AGN_K_COUNT; k++) free(c->cli[k]);
    free(c->path);
    free(c->name);
    memset(c, 0, sizeof *c);
}

const char *agn_config_where(const agn_config *c, int key, char *buf, size_t n)
{
    if (c->line[key] > 0)
        snprintf(buf, n, "%s:%d: %s", c->path, c->line[key], agn_config_key_name(key));
    else if (c->line[key] < 0)
        snprintf(buf, n, "command line: %s", c->cli[key] ? c->cli[key] : agn_config_key_name(key));
    else
        snprintf(buf, n, "%s: %s (default)", c->path, agn_config_key_name(key));
    return buf;
}

/* ---- values ------------------------------------------------------------- */

/* Parses VALUE into key K of C; -1 with a message (without the place). */
static int set_value(agn_config *c, int k, const char *value)
{
    const key_def *d = &keys[k];
    char *p = (char *)c + d->off;
    char *end;
    switch (d->type) {
    case T_LONG: {
        /* vocab_size: auto takes the size of the shards' vocabulary (0 here
         * until the data is read) */
        if (k == AGN_K_VOCAB_SIZE && strcmp(value, "auto") == 0) {
            *(long *)p = 0;
            return 0;
        }
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (end == value || *end != '\0') {
            /* accept an integral float such as 1e4 */
            double dv = strtod(value, &end);
            if (end == value || *end != '\0' || !isfinite(dv) || dv != floor(dv))
                return agn_seterr("'%s' is not an integer", value);
            if (dv < d->min || dv > d->max)
                return agn_seterr("%s is out of range [%.0f, %.0f]", value, d->min, d->max);
            v = (long long)dv;
        }
        if (errno == ERANGE || (double)v < d->min || (double)v > d->max)
            return agn_seterr("%s is out of range [%.0f, %.0f]", value, d->min, d->max);
        *(long *)p = (long)v;
        return 0;
    }
    case T_U64: {
        if (value[0] == '-') return agn_seterr("'%s' is negative", value);
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (end == value || *end != '\0') return agn_seterr("'%s' is not an integer", value);
        if (errno == ERANGE) return agn_seterr("%s is too large", value);
        *(uint64_t *)p = (uint64_t)v;
        return 0;
    }
    case T_DOUBLE: {
        errno = 0;
        double v = strtod(value, &end);
        if (end == value || *end != '\0' || isnan(v)) return agn_seterr("'%s' is not a number", value);
        int bad = errno == ERANGE || !isfinite(v) || v < d->min || v > d->max ||
                  (d->min_open && v == d->min);
        /* [0, 1) ranges: the maximum itself is out */
        if (d->help && strstr(d->help, "1)") && v >= d->max) bad = 1;
        if (bad) {
            if (d->help) return agn_seterr("%s is out of range: must be %s", value, d->help);
            return agn_seterr("%s is out of range [%g, %g]", value, d->min, d->max);
        }
        *(double *)p = v;
        return 0;
    }
    case T_STR:
        if (k == AGN_K_PRECISION) {
            if (strcmp(value, "auto") && strcmp(value, "fp32") && strcmp(value, "bf16"))
                return agn_seterr("'%s' is not one of auto, fp32, bf16", value);
            snprintf(c->precision, sizeof c->precision, "%s", value);
        }
        return 0;
    case T_LIST: { /* from the command line: comma-separated */
        int n = 1;
        for (const char *s = value; *s; s++) n += *s == ',';
        char **names = agn_xcalloc((size_t)n, sizeof *names);
        const char *s = value;
        for (int i = 0; i < n; i++) {
            const char *e = strchr(s, ',');
            size_t len = e ? (size_t)(e - s) : strlen(s);
            names[i] = agn_xmalloc(len + 1);
            memcpy(names[i], s, len);
            names[i][len] = '\0';
            s = e ? e + 1 : s + len;
        }
        set_class_names(c, (const char *const *)names, n);
        for (int i = 0; i < n; i++) free(names[i]);
        free(names);
        return 0;
    }
    }
    return 0;
}

static int find_key(const char *section, const char *name)
{
    for (int k = 0; k < AGN_K_COUNT; k++)
        if ((!section || strcmp(keys[k].section, section) == 0) && strcmp(keys[k].name, name) == 0)
            return k;
    return -1;
}

int agn_config_set(agn_config *c, const char *key, const char *value, const char *opt)
{
    int k;
    const char *dot = strchr(key, '.');
    if (dot) {
        char sec[32];
        size_t n = (size_t)(dot - key);
        if (n >= sizeof sec) return agn_seterr("%s: unknown key '%s'", opt, key);
        memcpy(sec, key, n);
        sec[n] = '\0';
        k = find_key(sec, dot + 1);
    } else {
        k = find_key(NULL, key);
    }
    if (k < 0) return agn_seterr("%s: unknown config key '%s'", opt, key);
    if (set_value(c, k, value) != 0) return agn_adderr("command line: %s", opt);
    c->line[k] = -1;
    free(c->cli[k]);
    c->cli[k] = agn_xstrdup(opt);
    return 0;
}

/* ---- YAML reading ----------------------------------------------------------- */

static int node_line(const yaml_node_t *n) { return (int)n->start_mark.line + 1; }

static int load_section(agn_config *c, yaml_document_t *doc, yaml_node_t *sec, const char *secname)
{
    int seen[AGN_K_COUNT] = {0};
    if (sec->type != YAML_MAPPING_NODE)
        return agn_seterr("%s:%d: %s: expected a mapping of keys", c->path, node_line(sec), secname);
    for (yaml_node_pair_t *pr = sec->data.mapping.pairs.start; pr < sec->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(doc, pr->value);
        if (!kn || !vn) return agn_seterr("%s: malformed YAML", c->path);
        if (kn->type != YAML_SCALAR_NODE)
            return agn_seterr("%s:%d: %s: a key must be a plain name", c->path, node_line(kn), secname);
        const char *name = (const char *)kn->data.scalar.value;
        int k = find_key(secname, name);
        if (k < 0) {
            int other = find_key(NULL, name);
            if (other >= 0)
                return agn_seterr("%s:%d: %s.%s: unknown key (it belongs in the %s: section)", c->path,
                                  node_line(kn), secname, name, keys[other].section);
            return agn_seterr("%s:%d: %s.%s: unknown key", c->path, node_line(kn), secname, name);
        }
        if (seen[k])
            return agn_seterr("%s:%d: %s: given twice (first at line %d)", c->path, node_line(kn),
                              agn_config_key_name(k), seen[k]);
        seen[k] = node_line(kn);
        if (keys[k].type == T_LIST) {
            if (vn->type != YAML_SEQUENCE_NODE)
                return agn_seterr("%s:%d: %s: expected a list of names", c->path, node_line(vn),
                                  agn_config_key_name(k));
            int n = (int)(vn->data.sequence.items.top - vn->data.sequence.items.start);
            if (n > AGN_MAX_CLASSES)
                return agn_seterr("%s:%d: %s: more than %d names", c->path, node_line(vn),
                                  agn_config_key_name(k), AGN_MAX_CLASSES);
            const char **names = agn_xcalloc((size_t)n + 1, sizeof *names);
            for (int i = 0; i < n; i++) {
                yaml_node_t *it = yaml_document_get_node(doc, vn->data.sequence.items.start[i]);
                if (!it || it->type != YAML_SCALAR_NODE || it->data.scalar.length == 0) {
                    free(names);
                    return agn_seterr("%s:%d: %s: item %d is not a non-empty name", c->path,
                                      it ? node_line(it) : node_line(vn), agn_config_key_name(k), i + 1);
                }
                const char *s = (const char *)it->data.scalar.value;
                if (strpbrk(s, "\t\n\r") || strlen(s) != it->data.scalar.length) {
                    free(names);
                    return agn_seterr("%s:%d: %s: item %d holds a tab, newline or NUL", c->path,
                                      node_line(it), agn_config_key_name(k), i + 1);
                }
                names[i] = s;
            }
            set_class_names(c, names, n);
            free(names);
        } else {
            if (vn->type != YAML_SCALAR_NODE)
                return agn_seterr("%s:%d: %s: expected a single value, not a %s", c->path, node_line(vn),
                                  agn_config_key_name(k),
                                  vn->type == YAML_SEQUENCE_NODE ? "list" : "mapping");
            if (set_value(c, k, (const char *)vn->data.scalar.value) != 0)
                return agn_adderr("%s:%d: %s", c->path, node_line(vn), agn_config_key_name(k));
        }
        c->line[k] = node_line(kn);
        free(c->cli[k]);
        c->cli[k] = NULL;
    }
    return 0;
}

static void set_name(agn_config *c, const char *path);

/* libyaml's loader takes time quadratic in the nesting of flow collections
 * (a 200 KB line of '[' took a minute, a megabyte would take half an hour)
 * and in the number of anchors and aliases.  A config is small and shallow:
 * a first pass over the parser's events, which takes linear time, refuses
 * one nested deeper or holding more anchors than any config needs before
 * the loader sees it.  A syntax error is left for the loader to report. */
#define YAML_MAX_DEPTH 32
#define YAML_MAX_ANCHORS 1000

static int check_shape(agn_config *c, const char *text, size_t len)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return agn_seterr("%s: cannot initialise the YAML parser", c->path);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int depth = 0, anchors = 0, rc = 0;
    yaml_event_t e;
    while (rc == 0 && yaml_parser_parse(&parser, &e)) {
        yaml_event_type_t t = e.type;
        int line = (int)e.start_mark.line + 1;
        anchors += t == YAML_ALIAS_EVENT || (t == YAML_SCALAR_EVENT && e.data.scalar.anchor) ||
                   (t == YAML_SEQUENCE_START_EVENT && e.data.sequence_start.anchor) ||
                   (t == YAML_MAPPING_START_EVENT && e.data.mapping_start.anchor);
        yaml_event_delete(&e);
        if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) depth++;
        if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT) depth--;
        if (depth > YAML_MAX_DEPTH)
            rc = agn_seterr("%s:%d: lists and mappings nested more than %d deep", c->path, line,
                            YAML_MAX_DEPTH);
        else if (anchors > YAML_MAX_ANCHORS)
            rc = agn_seterr("%s:%d: more than %d anchors and aliases", c->path, line, YAML_MAX_ANCHORS);
        else if (t == YAML_DOCUMENT_END_EVENT || t == YAML_STREAM_END_EVENT)
            break; /* the loader reads the first document only */
    }
    yaml_parser_delete(&parser);
    return rc;
}

static int load_doc(agn_config *c, yaml_parser_t *parser)
{
    yaml_document_t doc;
    if (!yaml_parser_load(parser, &doc)) {
        int line = (int)parser->problem_mark.line + 1;
        return agn_seterr("%s:%d: YAML syntax error: %s%s%s", c->path, line,
                          parser->problem ? parser->problem : "?",
                          parser->context ? " " : "", parser->context ? parser->context : "");
    }
    int rc = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        rc = 0; /* an empty file: all defaults */
    } else if (root->type != YAML_MAPPING_NODE) {
        rc = agn_seterr("%s:%d: expected sections model: and train:", c->path, node_line(root));
    } else {
        /* a section given twice is an error, as a key given twice is: the
         * second would silently override values of the first */
        int seen_line[3] = {0, 0, 0}; /* model, train, run */
        for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; rc == 0 && pr < root->data.mapping.pairs.top;
             pr++) {
            yaml_node_t *kn = yaml_document_get_node(&doc, pr->key);
            yaml_node_t *vn = yaml_document_get_node(&doc, pr->value);
            const char *name = kn && kn->type == YAML_SCALAR_NODE ? (const char *)kn->data.scalar.value : "";
            int si = strcmp(name, "model") == 0 ? 0 : strcmp(name, "train") == 0 ? 1
                     : strcmp(name, "run") == 0 ? 2 : -1;
            if (si >= 0 && seen_line[si]) {
                rc = agn_seterr("%s:%d: %s: section given twice (first at line %d)", c->path,
                                node_line(kn), name, seen_line[si]);
                break;
            }
            if (si >= 0) seen_line[si] = node_line(kn);
            if (strcmp(name, "model") == 0 || strcmp(name, "train") == 0) {
                rc = load_section(c, &doc, vn, name);
            } else if (strcmp(name, "run") == 0) {
                /* written by agn-train into a run directory: information
                 * only, but for the config's name, which the run keeps */
                if (vn && vn->type == YAML_MAPPING_NODE)
                    for (yaml_node_pair_t *q = vn->data.mapping.pairs.start; q < vn->data.mapping.pairs.top; q++) {
                        yaml_node_t *k2 = yaml_document_get_node(&doc, q->key);
                        yaml_node_t *v2 = yaml_document_get_node(&doc, q->value);
                        if (k2 && v2 && k2->type == YAML_SCALAR_NODE && v2->type == YAML_SCALAR_NODE &&
                            strcmp((const char *)k2->data.scalar.value, "config") == 0 && v2->data.scalar.length)
                            set_name(c, (const char *)v2->data.scalar.value);
                    }
            } else {
                int k = find_key(NULL, name);
                if (k >= 0)
                    rc = agn_seterr("%s:%d: %s: unknown top-level key (put it under %s:)", c->path,
                                    node_line(kn), name, keys[k].section);
                else
                    rc = agn_seterr("%s:%d: %s: unknown section (expected model:, train:)", c->path,
                                    kn ? node_line(kn) : 0, name);
            }
        }
    }
    yaml_document_delete(&doc);
    return rc;
}

static void set_name(agn_config *c, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    free(c->name);
    c->name = agn_xstrdup(base);
    char *dot = strrchr(c->name, '.');
    if (dot && dot != c->name) *dot = '\0';
    /* the name goes into CSV and YAML unquoted: keep it to a safe alphabet */
    for (char *p = c->name; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-", *p)) *p = '_';
}

/* The whole file is read first: check_shape and the loader each take a pass. */
int agn_config_load(agn_config *c, const char *path)
{
    size_t len;
    char *text = agn_read_file(path, &len);
    if (!text) return -1;
    int rc = agn_config_parse(c, text, len, path);
    free(text);
    return rc;
}

int agn_config_parse(agn_config *c, const char *text, size_t len, const char *name)
{
    free(c->path);
    c->path = agn_xstrdup(name);
    set_name(c, name);
    if (check_shape(c, text, len) != 0) return -1;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return agn_seterr("%s: cannot initialise the YAML parser", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int rc = load_doc(c, &parser);
    yaml_parser_delete(&parser);
    return rc;
}

/* ---- checks ------------------------------------------------------------------- */

int agn_config_check(const agn_config *c)
{
    char w[512];
    if (c->d_model % c->n_heads != 0)
        return agn_seterr("%s: %ld heads do not divide d_model %ld", agn_config_where(c, AGN_K_N_HEADS, w, sizeof w),
                          c->n_heads, c->d_model);
    if (c->n_class_names != c->n_classes)
        return agn_seterr("%s: %d names for %ld classes (n_classes)",
                          agn_config_where(c, AGN_K_CLASS_NAMES, w, sizeof w), c->n_class_names, c->n_classes);
    if ((double)c->max_len * (double)c->d_model > 1e9)
        return agn_seterr("%s: max_len x d_model is too large", agn_config_where(c, AGN_K_MAX_LEN, w, sizeof w));
    return 0;
}

int agn_config_check_data(const agn_config *c, uint32_t vocab_size, uint32_t max_len, uint32_t n_classes,
                          const char *what)
{
    char w[512];
    if (c->vocab_size != 0 && (uint32_t)c->vocab_size != vocab_size)
        return agn_seterr("%s: %ld, but %s %s built with a vocabulary of %u", agn_config_where(c, AGN_K_VOCAB_SIZE, w, sizeof w),
                          c->vocab_size, what, strchr(what, ' ') ? "were" : "was", vocab_size);
    if ((uint32_t)c->max_len > max_len)
        return agn_seterr("%s: %ld is above the length %u that %s %s truncated to (rebuild them with -L %ld, or lower max_len)",
                          agn_config_where(c, AGN_K_MAX_LEN, w, sizeof w), c->max_len, max_len, what,
                          strchr(what, ' ') ? "were" : "was", c->max_len);
    if ((uint32_t)c->n_classes != n_classes)
        return agn_seterr("%s: %ld, but %s %s %u classes", agn_config_where(c, AGN_K_N_CLASSES, w, sizeof w),
                          c->n_classes, what, strchr(what, ' ') ? "have" : "has", n_classes);
    return 0;
}

agn_model_config agn_config_model(const agn_config *c)
{
    agn_model_config m = {
        .vocab_size = (int)c->vocab_size,
        .max_len = (int)c->max_len,
        .d_model = (int)c->d_model,
        .n_heads = (int)c->n_heads,
        .n_layers = (int)c->n_layers,
        .d_ff = (int)c->d_ff,
        .n_classes = (int)c->n_classes,
        .dropout = (float)c->dropout,
    };
    return m;
}

/* ---- writing ---------------------------------------------------------------------- */

const char *agn_fmt_double(double v, char *buf, size_t n)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    /* keep it a float to a YAML reader: 1 -> 1.0 */
    if (!strpbrk(buf, ".eEn") && strlen(buf) + 3 < n) strcat(buf, ".0");
    return buf;
}

/* The length of the UTF-8 sequence at P (at most N bytes) and its code
 * point in *CP; 0 when it is not one (bad lead or continuation bytes,
 * overlong, a surrogate, above U+10FFFF, cut short). */
static size_t utf8_char(const unsigned char *p, size_t n, unsigned *cp)
{
    size_t len;
    unsigned c = p[0], min;
    if (c < 0x80) { *cp = c; return 1; }
    if ((c & 0xe0) == 0xc0) { len = 2; min = 0x80; c &= 0x1f; }
    else if ((c & 0xf0) == 0xe0) { len = 3; min = 0x800; c &= 0x0f; }
    else if ((c & 0xf8) == 0xf0) { len = 4; min = 0x10000; c &= 0x07; }
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        c = c << 6 | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
    *cp = c;
    return len;
}

/* Characters go out as they are only where a YAML reader takes them back as
 * they are: libyaml refuses the C0 and C1 controls, DEL, U+FEFF and the
 * noncharacters U+FFFE and U+FFFF, and folds the line breaks NEL (U+0085),
 * U+2028 and U+2029 inside a quoted scalar; all of those are escaped.  A
 * byte that is not UTF-8 goes out as \xNN, which reads back as U+00NN: the
 * output stays readable YAML, if not the same bytes. */
void agn_yaml_quote(FILE *fp, const char *s)
{
    fputc('"', fp);
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n) {
        unsigned cp;
        size_t len = utf8_char(p, n, &cp);
        if (len == 0) {
            fprintf(fp, "\\x%02x", *p);
            p++;
            n--;
            continue;
        }
        if (cp == '"' || cp == '\\') fprintf(fp, "\\%c", (int)cp);
        else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) fprintf(fp, "\\x%02x", cp);
        else if (cp == 0x2028 || cp == 0x2029 || cp == 0xfeff || cp == 0xfffe || cp == 0xffff)
            fprintf(fp, "\\u%04x", cp);
        else fwrite(p, 1, len, fp);
        p += len;
        n -= len;
    }
    fputc('"', fp);
}

int agn_config_write(const agn_config *c, FILE *fp)
{
    const char *section = "";
    char num[64];
    for (int k = 0; k < AGN_K_COUNT; k++) {
        const key_def *d = &keys[k];
        const char *p = (const char *)c + d->off;
        if (strcmp(section, d->section) != 0) {
            section = d->section;
            fprintf(fp, "%s:\n", section);
        }
        fprintf(fp, "  %s: ", d->name);
        switch (d->type) {
        case T_LONG:
            if (k == AGN_K_VOCAB_SIZE && *(const long *)p == 0) fputs("auto\n", fp);
            else fprintf(fp, "%ld\n", *(const long *)p);
            break;
        case T_U64: fprintf(fp, "%llu\n", (unsigned long long)*(const uint64_t *)p); break;
        case T_DOUBLE: fprintf(fp, "%s\n", agn_fmt_double(*(const double *)p, num, sizeof num)); break;
        case T_STR: fprintf(fp, "%s\n", c->precision); break;
        case T_LIST:
            fputc('[', fp);
            for (int i = 0; i < c->n_class_names; i++) {
                if (i) fputs(", ", fp);
                agn_yaml_quote(fp, c->class_names[i]);
            }
            fputs("]\n", fp);
            break;
        }
    }
    return ferror(fp) ? -1 : 0;
}

char *agn_config_to_string(const agn_config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    if (!fp) return NULL;
    agn_config_write(c, fp);
    fclose(fp);
    return buf;
}
