/* runconfig.h: the run configuration of agn-train (DESIGN.md, Config): a YAML
 * file with a `model:` and a `train:` section, read through libyaml, checked
 * key by key, overridden from the command line, and written back resolved.
 *
 * Every key remembers where its value came from (a line of the file, the
 * command line, or the default), so that an error found later (heads not
 * dividing d_model, max_len above the shards') still names FILE:LINE and the
 * key.  A `run:` section, as agn-train writes into a run directory's
 * config.yaml, is accepted and ignored, so a run's config.yaml can be fed back
 * to agn-train as it is. */
#ifndef AGN_RUNCONFIG_H
#define AGN_RUNCONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "model.h"

/* The keys, in the order they are written.  Keep in sync with the table in
 * config.c and man/agn-train.1. */
enum {
    AGN_K_VOCAB_SIZE, AGN_K_MAX_LEN, AGN_K_D_MODEL, AGN_K_N_HEADS, AGN_K_N_LAYERS,
    AGN_K_D_FF, AGN_K_DROPOUT, AGN_K_N_CLASSES, AGN_K_CLASS_NAMES,
    AGN_K_EPOCHS, AGN_K_GLOBAL_BATCH, AGN_K_LR, AGN_K_WARMUP, AGN_K_WEIGHT_DECAY,
    AGN_K_GRAD_CLIP, AGN_K_BETA1, AGN_K_BETA2, AGN_K_EPS, AGN_K_SEED, AGN_K_PRECISION,
    AGN_K_LOG_EVERY, AGN_K_EVAL_EVERY, AGN_K_MAX_EXAMPLES,
    AGN_K_COUNT
};

#define AGN_MAX_CLASSES 255

typedef struct {
    char *path; /* the file read, or "(defaults)" */
    char *name; /* basename of the file without its extension: the config's name */

    /* model: */
    long vocab_size, max_len, d_model, n_heads, n_layers, d_ff, n_classes;
    double dropout;
    char **class_names; /* [n_class_names] */
    int n_class_names;

    /* train: */
    long epochs, global_batch, warmup, log_every, eval_every, max_examples;
    uint64_t seed;
    double lr, weight_decay, grad_clip, beta1, beta2, eps;
    char precision[8]; /* "auto", "fp32" or "bf16" */

    /* where each key was set: > 0 a line of PATH, 0 the default, -1 the
     * command line (then cli[key] holds the option) */
    int line[AGN_K_COUNT];
    char *cli[AGN_K_COUNT];
} agn_config;

/* The defaults (DESIGN.md's small model with AG News' four classes). */
void agn_config_defaults(agn_config *c);
/* Reads a YAML file over the defaults; -1 with "FILE:LINE: KEY: reason". */
int agn_config_load(agn_config *c, const char *path);
/* Parses YAML text held in memory (a checkpoint's config); NAME is used in
 * messages and as the config's name. */
int agn_config_parse(agn_config *c, const char *text, size_t len, const char *name);
void agn_config_free(agn_config *c);

/* Sets KEY ("train.lr", or just "lr") to VALUE from the command line; OPT
 * names the option in messages ("--lr").  -1 with a message on an unknown
 * key or a bad value. */
int agn_config_set(agn_config *c, const char *key, const char *value, const char *opt);

/* Checks ranges and relations between keys (heads divide d_model, as many
 * class names as classes); -1 with "FILE:LINE: KEY: reason". */
int agn_config_check(const agn_config *c);
/* Checks the config against the data: vocab_size equal to the shards' (or
 * 0, "auto", which the trainer then sets from them),
 * max_len not above what they were built with, n_classes equal.  WHAT names
 * the data in messages. */
int agn_config_check_data(const agn_config *c, uint32_t vocab_size, uint32_t max_len,
                          uint32_t n_classes, const char *what);

/* Where KEY was set, for messages: "FILE:LINE: model.n_heads",
 * "command line: --lr", or "FILE: model.n_heads (default)". */
const char *agn_config_where(const agn_config *c, int key, char *buf, size_t n);
/* The section-qualified name of KEY ("train.lr"). */
const char *agn_config_key_name(int key);

agn_model_config agn_config_model(const agn_config *c);

/* Writes the resolved config as YAML (model: and train: sections). */
int agn_config_write(const agn_config *c, FILE *fp);
/* The same, into a malloc'ed string. */
char *agn_config_to_string(const agn_config *c);
/* Writes a YAML double-quoted scalar. */
void agn_yaml_quote(FILE *fp, const char *s);
/* Formats a double so that it reads back to the same value, shortest form. */
const char *agn_fmt_double(double v, char *buf, size_t n);

#endif
