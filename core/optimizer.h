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
/* One update of every slot's parameter from its gradient; step counts from 1. */
void        st_optimizer_step (GArray *slots, const StTrainOptions *opt, double lr, gint64 step);
/* The learning rate of an epoch (from 0) under opt's schedule. */
double      st_schedule_lr (const StTrainOptions *opt, int epoch);
/* "sgd", "adam" or "adamw". */
const char *st_optimizer_name (StOptimKind kind);

G_END_DECLS
