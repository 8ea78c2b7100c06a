/* strata — optimisers (SGD, Adam, AdamW) and learning-rate schedules. */
#pragma once

#include "pipeline.h"
#include "stage.h"
#include "train-options.h"

G_BEGIN_DECLS

/* A trainable parameter and the optimiser's state for it. */
typedef struct {
  StWeight *weight;
  StTensor *m;                 /* momentum buffer (SGD) or first moment (Adam) */
  StTensor *v;                 /* second moment (Adam) */
} StOptimizerSlot;

/* One slot per trainable tensor of weights (st_pipeline_weights), with the
 * state opt's optimiser keeps. */
GArray     *st_optimizer_collect_slots (GPtrArray *weights, const StTrainOptions *opt);
/* The bytes of that state: what the slots will allocate. */
guint64     st_optimizer_state_bytes (GPtrArray *weights, StOptimKind kind);
void        st_optimizer_free_slots (GArray *slots);
/* One update of every slot's parameter from its gradient; step counts from
 * 1.  Shared among ctx's threads; the result does not depend on how. */
void        st_optimizer_step (GArray *slots, const StTrainOptions *opt, double lr, gint64 step,
                               const StRunContext *ctx);
/* The learning rate of the optimiser step after `step` steps (from 0)
 * under opt's schedule, with steps_per_epoch batches an epoch and
 * opt->epochs epochs in all: per epoch for constant, step and cosine, per
 * step for one-cycle and warmup-cosine. */
double      st_schedule_lr (const StTrainOptions *opt, gint64 step, int steps_per_epoch);
/* warmup-cosine's warm-up in steps: --warmup-steps, or --warmup epochs. */
gint64      st_schedule_warmup_steps (const StTrainOptions *opt, int steps_per_epoch);
/* "constant", "step", "cosine", "one-cycle" or "warmup-cosine". */
const char *st_schedule_name (StScheduleKind kind);
/* "sgd", "adam" or "adamw". */
const char *st_optimizer_name (StOptimKind kind);

G_END_DECLS
