/* strata — stage instances: a kind, its validated config and its weights.
 *
 * Naming: a "param" is a config key (StParamSpec, param.c, the keys of a
 * pipeline file); a "weight" is a learnable or saved tensor (StWeight,
 * weights.c, the tensors of a weights file), biases and running statistics
 * included.  The SDK's st_stage_declare_param(), st_stage_param() and
 * st_stage_param_grad() declare and read weights: their names predate this
 * split and stay for API and ABI stability. */
#pragma once

#include <strata/strata.h>
#include "param.h"

G_BEGIN_DECLS

/* A stage's weight, stored by the core. */
typedef struct {
  char *full_name;             /* "<stage>.<name>" */
  int rank;
  int dims[4];
  gboolean trainable;
  StTensor *value;
  StTensor *grad;              /* NULL until st_stage_enable_grads() */
  StInit init;                 /* how it was initialised, for st_stage_reset_weights() */
  double init_arg;
  gint64 fan_in;
} StWeight;

/* A stage of the given kind whose config comes from parallel arrays of
 * keys and values (as text); n_keys may be 0.  Every key is checked against
 * the kind's specs and every value against its type and range.  The error
 * message is "stage 'NAME': key 'KEY': expected ..., found ...", without a
 * file name (the caller adds it). */
StStage *st_stage_new (const StKind *kind, const char *name,
                       const char *const *keys, const char *const *values,
                       int n_keys, GError **error);
void     st_stage_free (StStage *stage);

/* Runs kind->infer for these input shapes; the error names the stage. */
gboolean st_stage_infer (StStage *stage, const StShape *in_shapes,
                         int n_inputs, GError **error);

/* The data bytes of the stage's weights. */
guint64  st_stage_weight_bytes (const StStage *stage);
/* The bytes other stages' weights hold: declaring a weight fails with
 * ST_ERROR_MEMORY when this stage's and the others' together would pass
 * st_memory_limit().  0 (a stage on its own) until set. */
void     st_stage_set_other_weight_bytes (StStage *stage, guint64 bytes);

/* Weights by index, in declaration order. */
int      st_stage_n_weights (const StStage *stage);
StWeight *st_stage_get_weight (const StStage *stage, int index);
/* Allocates (zeroed) gradients for every weight. */
void     st_stage_enable_grads (StStage *stage);
void     st_stage_zero_grads (StStage *stage);
/* Seeds the generator used by weight initialisation (per stage, from the
 * pipeline seed and the stage name, so initial weights do not depend on the
 * order stages are declared). */
void     st_stage_set_seed (StStage *stage, guint64 seed);
/* Re-initialises every weight as declared, from a generator seeded with
 * seed and the stage name: what `strata train --seed` starts from. */
void     st_stage_reset_weights (StStage *stage, guint64 seed);

G_END_DECLS
