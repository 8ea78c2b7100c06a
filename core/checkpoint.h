/* strata — training checkpoints: parameters, optimiser state and the
 * position in the data, so that a resumed run matches an uninterrupted one
 * bit for bit. */
#pragma once

#include "context.h"
#include "optimizer.h"

G_BEGIN_DECLS

/* Where training is. */
typedef struct {
  int epoch;                   /* the epoch in progress */
  int batch;                   /* the next batch of it */
  gint64 step;                 /* optimiser steps taken */
  double loss_sum;             /* this epoch so far */
  gint64 correct, seen;
} StTrainPosition;

/* Writes opt->checkpoint (safetensors): p's parameters, the slots' state
 * and, as metadata, pos and ctx's generator. */
gboolean st_checkpoint_save (StPipeline *p, GArray *slots, const StTrainOptions *opt,
                             const StRunContext *ctx, const StTrainPosition *pos, GError **error);
/* Reads opt->resume into p, the slots, ctx's generator and pos, and the
 * settings a resumed run keeps into opt: label smoothing (refused when
 * opt gives another), and the schedule (refused when not opt's). */
gboolean st_checkpoint_load (StPipeline *p, GArray *slots, StTrainOptions *opt,
                             StRunContext *ctx, StTrainPosition *pos, GError **error);

G_END_DECLS
