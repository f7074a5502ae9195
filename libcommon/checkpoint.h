/* checkpoint.h: the agn checkpoint (DESIGN.md, Formats: Checkpoint), a
 * safetensors file that PyTorch, NumPy and the safetensors library load as
 * it is: the parameters in fp32 under the model's table names, optionally the
 * Adam moments as optim.m.NAME / optim.v.NAME, and in __metadata__ (all
 * values strings):
 *
 *   format          "agn-checkpoint"      version   "1"
 *   config          the resolved config as YAML (runconfig.h)
 *   class_names     the class names, one per line
 *   vocab           the vocabulary file text (absent when training had none)
 *   vocab_crc       8 hex digits, agn_vocab_crc of the vocabulary the shards
 *                   were built with
 *   epoch, step, cursor, seed, total_steps, epoch_examples, best_val_acc,
 *   data_id, world_size
 *                   the training position, for an exact --resume
 *   data_crc        8 hex digits, CRC-32 of the data section
 *
 * Written to a temporary file, fsync'd and renamed (util.h agn_out). */
#ifndef AGN_CHECKPOINT_H
#define AGN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* Where training stands after the last completed step. */
typedef struct {
    uint32_t epoch;          /* epoch of the next batch (0-based) */
    uint64_t step;           /* optimizer steps done */
    uint64_t cursor;         /* examples of that epoch already consumed */
    uint64_t seed;
    uint64_t total_steps;    /* length of the lr schedule */
    uint64_t epoch_examples; /* examples per epoch (after --max-examples) */
    double best_val_acc;     /* -1: none yet */
    uint32_t data_id;        /* identifies the training data */
    int world_size;
} agn_train_pos;

/* What a checkpoint holds besides the parameters. */
typedef struct {
    char *config_yaml;      /* resolved config */
    char **class_names;     /* [n_classes] */
    int n_classes;
    char *vocab_text;       /* NULL when absent */
    size_t vocab_len;
    uint32_t vocab_crc;
    int has_pos;
    agn_train_pos pos;
} agn_ckpt_meta;

/* A checkpoint read into memory. */
typedef struct agn_ckpt agn_ckpt;

/* Writes M's parameters (and ADAM_M/ADAM_V when not NULL) with META to PATH,
 * atomically. */
int agn_checkpoint_save(const char *path, const agn_model *m, const float *adam_m, const float *adam_v,
                        const agn_ckpt_meta *meta);

/* Reads and checks a checkpoint: the safetensors layout, sizes against the
 * file length, the data CRC, the format tag.  -1 with "PATH: reason". */
agn_ckpt *agn_checkpoint_load(const char *path);
void agn_checkpoint_free(agn_ckpt *ck);
const agn_ckpt_meta *agn_checkpoint_meta(const agn_ckpt *ck);
/* Whether the checkpoint holds the Adam moments. */
int agn_checkpoint_has_optim(const agn_ckpt *ck);
/* Copies the parameters into M (created with the checkpoint's config); every
 * tensor of M's table must be present with its shape.  ADAM_M/ADAM_V, when
 * not NULL, receive the moments (the checkpoint must hold them). */
int agn_checkpoint_restore(const agn_ckpt *ck, agn_model *m, float *adam_m, float *adam_v);

void agn_ckpt_meta_free(agn_ckpt_meta *meta);

#endif
