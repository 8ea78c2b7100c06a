/* strata — the settings of a training run. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum { ST_OPTIM_SGD, ST_OPTIM_ADAM, ST_OPTIM_ADAMW } StOptimKind;
typedef enum { ST_SCHEDULE_CONSTANT, ST_SCHEDULE_STEP, ST_SCHEDULE_COSINE } StScheduleKind;

typedef struct {
  StOptimKind optimizer;
  double lr;
  double momentum;             /* SGD */
  gboolean nesterov;           /* SGD */
  double beta1, beta2, eps;    /* Adam, AdamW */
  double weight_decay;         /* L2 for SGD and Adam, decoupled for AdamW */
  StScheduleKind schedule;
  int step_epochs;             /* step schedule: multiply by gamma every step_epochs */
  double gamma;
  int batch_size;
  int epochs;
  gboolean shuffle;
  guint64 seed;
  int threads;                 /* <= 0: one per core */
  const char *weights_out;     /* final weights (safetensors) */
  const char *checkpoint;      /* written after every epoch and on interrupt */
  const char *resume;          /* a checkpoint to continue from, or NULL */
  const char *log_csv;         /* per-epoch figures, appended; NULL: none */
  const char *plot_png;        /* training curves; NULL: none */
  gboolean quiet;              /* no progress bar, no per-epoch lines */
  /* The data's class names (NULL-terminated, or NULL): stored in the
   * weights file's metadata as "strata.labels", so that a pipeline
   * without labels= names its classes after training on folders. */
  const char *const *class_names;
} StTrainOptions;

void st_train_options_init (StTrainOptions *opt);

G_END_DECLS
