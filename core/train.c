/* strata — the training loop: batches, softmax cross-entropy, epochs,
 * interruption, logs. */
#include "train.h"
#include "checkpoint.h"
#include "context.h"
#include "dist.h"
#include "dist-train.h"
#include "evaluate.h"
#include "jsontext.h"
#include "optimizer.h"
#include "plot.h"
#include "prepare.h"
#include "stage.h"
#include "weights.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* path, with its folder's links resolved (the file itself may not exist
 * yet), or NULL with error set when the folder cannot take a new file. */
static char *
writable_path (const char *what, const char *path, GError **error)
{
  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: cannot write the %s there: it is a folder",
                   path, what);
      return NULL;
    }
  g_autofree char *dir = g_path_get_dirname (path);
  char resolved[PATH_MAX];
  if (!realpath (dir, resolved) || !g_file_test (resolved, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: cannot write the %s: folder '%s' %s",
                   path, what, dir, g_file_test (dir, G_FILE_TEST_EXISTS) ? "is not a folder"
                                                                         : "does not exist");
      return NULL;
    }
  /* Files are written under a temporary name in the folder and renamed. */
  if (access (resolved, W_OK | X_OK) != 0)
    {
      int saved = errno;
      g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: cannot write the %s in folder '%s': %s",
                   path, what, dir, g_strerror (saved));
      return NULL;
    }
  g_autofree char *base = g_path_get_basename (path);
  return g_build_filename (resolved, base, NULL);
}

gboolean
st_train_check_outputs (const StTrainOptions *opt, GError **error)
{
  const char *whats[] = { "weights", "checkpoint", "log", "plot" };
  const char *paths[] = { opt->weights_out, opt->checkpoint, opt->log_csv,
                          opt->log_csv ? opt->plot_png : NULL };
  char *resolved[G_N_ELEMENTS (paths)] = { NULL };
  gboolean ok = TRUE;
  for (guint i = 0; ok && i < G_N_ELEMENTS (paths); i++)
    {
      if (!paths[i])
        continue;
      resolved[i] = writable_path (whats[i], paths[i], error);
      ok = resolved[i] != NULL;
      /* One file for two outputs: the later would overwrite the earlier. */
      for (guint j = 0; ok && j < i; j++)
        if (resolved[j] && strcmp (resolved[i], resolved[j]) == 0)
          {
            g_set_error (error, ST_ERROR, ST_ERROR_USAGE, "%s: named for both the %s and the %s",
                         paths[i], whats[j], whats[i]);
            ok = FALSE;
          }
    }
  for (guint i = 0; i < G_N_ELEMENTS (paths); i++)
    g_free (resolved[i]);
  return ok;
}

gboolean
st_train_check_pipeline (StPipeline *p, int n_classes, GError **error)
{
  g_autoptr (GPtrArray) weights = st_pipeline_weights (p);
  guint trainable = 0;
  for (guint i = 0; i < weights->len; i++)
    trainable += ((StWeight *) weights->pdata[i])->trainable;
  if (!trainable)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                   "%s: nothing to train: no stage has trainable parameters", st_pipeline_name (p));
      return FALSE;
    }
  StShape out = st_pipeline_output_shape (p);
  if (out.h != 1 || out.w != 1 || out.c < 2)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                   "%s: the output is %dx%dx%d, expected class scores (Cx1x1 with C >= 2, e.g. "
                   "from a dense stage)", st_pipeline_name (p), out.c, out.h, out.w);
      return FALSE;
    }
  if (n_classes > out.c)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_DATA,
                   "%s: the data has labels up to %d but the pipeline scores only %d classes",
                   st_pipeline_name (p), n_classes - 1, out.c);
      return FALSE;
    }
  const char *const *labels = st_pipeline_labels (p);
  if (labels && (int) g_strv_length ((char **) labels) != out.c)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                   "%s: group 'pipeline': key 'labels': expected %d labels (one per class score), found %u",
                   st_pipeline_name (p), out.c, g_strv_length ((char **) labels));
      return FALSE;
    }
  return TRUE;
}

/* ---- Batches ------------------------------------------------------------ */

/* Cross-entropy of softmax(logits) against labels smoothed by E, summed
 * over the batch: for target t = (1 - E) one-hot + E / K over K scores,
 * logsumexp(x) - sum_j t_j x_j.  Writes its gradient with respect to the
 * logits, (softmax - t) / B, fused as frameworks do so that no log of a
 * tiny probability is ever taken.  At E = 0 the arithmetic is that of the
 * plain loss, bit for bit. */
double
st_softmax_cross_entropy (const StTensor *logits, const int *labels, double label_smoothing,
                          StTensor *grad, int *correct)
{
  int n = logits->shape.n, c = logits->shape.c;
  double off = label_smoothing / c;
  float on_target = (float) (1.0 - label_smoothing + off), off_target = (float) off;
  double loss = 0;
  for (int b = 0; b < n; b++)
    {
      const float *x = logits->data + (gsize) b * c;
      float *g = grad->data + (gsize) b * c;
      int best = 0;
      double sum = 0;
      for (int j = 0; j < c; j++)
        {
          best = x[j] > x[best] ? j : best;
          sum += x[j];
        }
      loss += st_softmax_channels (x, g, c, 1) - (1.0 - label_smoothing) * x[labels[b]];
      if (label_smoothing > 0)
        loss -= off * sum;
      for (int j = 0; j < c; j++)
        g[j] = (g[j] - (j == labels[b] ? on_target : off_target)) / n;
      *correct += best == labels[b];
    }
  return loss;
}

/* ---- The loop ------------------------------------------------------------ */

/* One call of st_train: what its steps share. */
typedef struct {
  StPipeline *p;
  StDataset *train, *test;
  const StTrainOptions *opt;
  int first, last;             /* run per batch: after the cached stages, before a fused softmax */
  int n_batches, n_classes;
  StRunContext *ctx;
  GPtrArray *weights;           /* st_pipeline_weights */
  StGradBuckets *buckets;      /* several ranks: the gradients summed during backward */
  GArray *slots;               /* the optimiser's */
  StTrainPosition pos;
  int *labels;                 /* of the batch */
  double lr;                   /* of the step last taken */
  gint64 epoch_start_us, last_progress_us;
  int epoch_start_batch;
  StProgress *progress;        /* the epoch's line */
  int *epochs_run;
} Run;

static volatile sig_atomic_t interrupted;

static void
on_interrupt (int sig)
{
  interrupted = 1;
}

typedef struct {
  struct sigaction interrupt, terminate;
} Signals;

/* SIGINT and SIGTERM set a flag the loop checks between batches. */
static Signals
catch_interrupts (void)
{
  struct sigaction action = { .sa_handler = on_interrupt };
  Signals previous;
  sigemptyset (&action.sa_mask);
  interrupted = 0;
  sigaction (SIGINT, &action, &previous.interrupt);
  sigaction (SIGTERM, &action, &previous.terminate);
  return previous;
}

static void
restore_signals (const Signals *previous)
{
  sigaction (SIGINT, &previous->interrupt, NULL);
  sigaction (SIGTERM, &previous->terminate, NULL);
}

static int *
epoch_order (int n, guint64 seed, int epoch, gboolean shuffle)
{
  int *order = g_new (int, n);
  for (int i = 0; i < n; i++)
    order[i] = i;
  if (!shuffle)
    return order;
  /* Each epoch's order depends only on the seed and the epoch, so a resumed
   * run sees the same batches as an uninterrupted one. */
  StRng *rng = st_rng_new (seed * G_GUINT64_CONSTANT (0x9e3779b97f4a7c15) + epoch + 1);
  for (int i = n - 1; i > 0; i--)
    {
      int j = (int) (st_rng_next (rng) % (guint64) (i + 1));
      int t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
  st_rng_free (rng);
  return order;
}

static gboolean
append_log (const char *path, const StTrainReport *r, GError **error)
{
  gboolean fresh = !g_file_test (path, G_FILE_TEST_EXISTS) || r->epoch == 1;
  FILE *f = fopen (path, fresh ? "w" : "a");
  if (!f)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: cannot write the log: %s", path,
                   g_strerror (errno));
      return FALSE;
    }
  if (fresh)
    fprintf (f, "epoch,lr,train_loss,train_accuracy,test_loss,test_accuracy,seconds\n");
  if (r->test_accuracy >= 0)
    fprintf (f, "%d,%g,%.6f,%.6f,%.6f,%.6f,%.2f\n", r->epoch, r->lr, r->loss, r->accuracy,
             r->test_loss, r->test_accuracy, r->seconds);
  else
    fprintf (f, "%d,%g,%.6f,%.6f,,,%.2f\n", r->epoch, r->lr, r->loss, r->accuracy, r->seconds);
  return fclose (f) == 0;
}

/* The class names for the weights file: the data's, then the index of
 * each class score the data has none for, as a JSON array of strings. */
static char *
labels_json (const char *const *names, int n_scores)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_array (b);
  guint n_names = g_strv_length ((char **) names);
  for (int c = 0; c < n_scores; c++)
    {
      g_autofree char *index = g_strdup_printf ("%d", c);
      json_builder_add_string_value (b, c < (int) n_names ? names[c] : index);
    }
  json_builder_end_array (b);
  return st_json_builder_to_text (b);
}

/* The stages to run per batch: after those the dataset caches (random
 * ones run every epoch), and before a final softmax, which the loss
 * computes itself. */
static gboolean
find_trained_stages (Run *run, GError **error)
{
  int n_stages = st_pipeline_n_stages (run->p);
  run->first = st_dataset_cached_stages (run->p);
  run->last = st_pipeline_ends_in_probabilities (run->p) ? n_stages - 2 : n_stages - 1;
  if (run->last < run->first)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE, "%s: nothing to train before the softmax",
                   st_pipeline_name (run->p));
      return FALSE;
    }
  return TRUE;
}

/* Gradients and the optimiser's state come on top of the parameters that
 * loading the pipeline counted: refused before they are allocated. */
static gboolean
check_training_memory (Run *run, GError **error)
{
  guint64 weights = 0;
  for (guint i = 0; i < run->weights->len; i++)
    weights += st_tensor_numel (((StWeight *) run->weights->pdata[i])->value) * sizeof (float);
  guint64 state = st_optimizer_state_bytes (run->weights, run->opt->optimizer);
  guint64 limit = st_memory_limit ();
  if (weights * 2 + state <= limit)
    return TRUE;
  g_autofree char *grads_text = st_format_bytes (weights);
  g_autofree char *state_text = st_format_bytes (state);
  g_autofree char *total_text = st_format_bytes (weights * 2 + state);
  g_autofree char *limit_text = st_format_bytes (limit);
  g_set_error (error, ST_ERROR, ST_ERROR_MEMORY,
               "%s: training needs %s for the gradients and %s for the %s optimizer's state, "
               "%s with the parameters; the limit is %s (--max-memory)",
               st_pipeline_name (run->p), grads_text, state_text,
               st_optimizer_name (run->opt->optimizer), total_text, limit_text);
  return FALSE;
}

/* Fresh weights from the seed, gradients, the optimiser's state, and
 * where a checkpoint left off when resuming, with the settings it keeps
 * (run->opt is settled). */
static gboolean
start_run (Run *run, StTrainOptions *settled, GError **error)
{
  const StTrainOptions *opt = run->opt;
  run->ctx = st_run_context_new (opt->threads, opt->seed);
  for (int i = 0; i < st_pipeline_n_stages (run->p); i++)
    {
      st_stage_reset_weights (st_pipeline_stage (run->p, i), opt->seed);
      st_stage_enable_grads (st_pipeline_stage (run->p, i));
    }
  run->slots = st_optimizer_collect_slots (run->weights, opt);
  run->n_batches = (run->train->n + opt->batch_size - 1) / opt->batch_size;
  run->n_classes = st_pipeline_output_shape (run->p).c;
  run->labels = g_new (int, opt->batch_size);
  if (opt->resume && !st_checkpoint_load (run->p, run->slots, settled, run->ctx, &run->pos, error))
    return FALSE;
  run->buckets = st_grad_buckets_new (run->p, run->weights);
  settled->label_smoothing = MAX (settled->label_smoothing, 0.0);
  return TRUE;
}

static void
end_run (Run *run)
{
  /* An error is printed next: on a line of its own. */
  if (run->progress)
    st_progress_clear (run->progress);
  g_clear_pointer (&run->progress, st_progress_free);
  if (run->slots)
    st_optimizer_free_slots (run->slots);
  g_clear_pointer (&run->ctx, st_run_context_free);
  g_clear_pointer (&run->buckets, st_grad_buckets_free);
  g_clear_pointer (&run->labels, g_free);
}

static void
report (const Run *run, const StTrainReport *r)
{
  if (run->opt->report)
    run->opt->report (r, run->opt->report_data);
}

/* Images trained on in this epoch by this call (not before a resume). */
static gint64
epoch_images (const Run *run)
{
  return run->pos.seen - (gint64) run->epoch_start_batch * run->opt->batch_size;
}

static StTrainReport
report_for (const Run *run, StTrainEvent event, int epoch, int batch)
{
  double seconds = (g_get_monotonic_time () - run->epoch_start_us) / 1e6;
  gint64 images = epoch_images (run);
  return (StTrainReport) {
    .event = event, .epoch = epoch + 1, .epochs = run->opt->epochs, .batch = batch,
    .n_batches = run->n_batches, .lr = run->lr, .test_loss = -1, .test_accuracy = -1,
    .seconds = seconds, .images_per_second = seconds > 0 ? images / seconds : 0,
  };
}

/* The epoch's progress line, from where a checkpoint left off. */
static void
start_progress_line (Run *run, int epoch)
{
  run->progress = st_progress_new (run->n_batches, "img", run->opt->progress,
                                   run->opt->progress_data);
  g_autofree char *prefix = g_strdup_printf ("epoch %d/%d", epoch + 1, run->opt->epochs);
  st_progress_set_prefix (run->progress, prefix);
  st_progress_start_at (run->progress, run->epoch_start_batch);
}

/* The progress line (it draws at most ten times a second), and the
 * report at most ten times a second and at the end of an epoch. */
static void
report_progress (Run *run, int epoch, int batch)
{
  double loss = run->pos.loss_sum / run->pos.seen;
  double accuracy = (double) run->pos.correct / run->pos.seen;
  if (run->opt->progress)
    {
      g_autofree char *note = g_strdup_printf ("loss %.4f  acc %.2f%%", loss, 100 * accuracy);
      st_progress_update (run->progress, batch, epoch_images (run), note);
    }
  gint64 now = g_get_monotonic_time ();
  if (!run->opt->report || (now - run->last_progress_us <= 100000 && batch != run->n_batches))
    return;
  run->last_progress_us = now;
  StTrainReport r = report_for (run, ST_TRAIN_PROGRESS, epoch, batch);
  r.loss = loss;
  r.accuracy = accuracy;
  report (run, &r);
}

/* A signal arrived: a checkpoint where the epoch stands, then stop. */
static void
stop_on_interrupt (Run *run, int epoch, int batch, GError **error)
{
  run->pos.epoch = epoch;
  run->pos.batch = batch;
  g_autoptr (GError) local = NULL;
  st_progress_clear (run->progress);
  StTrainReport r = report_for (run, ST_TRAIN_INTERRUPTED, epoch, batch);
  /* Several MPI ranks: rank 0 writes it. */
  if (st_dist_rank () != 0
      || st_checkpoint_save (run->p, run->slots, run->opt, run->ctx, &run->pos, &local))
    r.checkpoint = run->opt->checkpoint;
  r.checkpoint_error = local;
  report (run, &r);
  g_set_error (error, ST_ERROR, ST_ERROR_INTERRUPTED, "interrupted");
}

/* Forward, loss, backward and one optimiser step. */
static gboolean
train_batch (Run *run, const int *order, int epoch, int b, GError **error)
{
  const StTrainOptions *opt = run->opt;
  int start = b * opt->batch_size;
  int count = MIN (opt->batch_size, run->train->n - start);
  /* Several MPI ranks: each runs its part of the batch (dist-train.h). */
  const int batch_count = count;
  const double share = st_dist_batch_part (&start, &count);
  g_autoptr (StTensor) batch = st_dataset_gather_batch (run->train, order, start, count,
                                                        run->labels);
  for (int i = 0; i < st_pipeline_n_stages (run->p); i++)
    st_stage_zero_grads (st_pipeline_stage (run->p, i));
  /* Random stages draw for each sample from its own seed. */
  g_autofree guint64 *seeds = g_new (guint64, count);
  for (int i = 0; i < count; i++)
    seeds[i] = st_item_seed (opt->seed, epoch, order[start + i]);
  run->ctx->item_seeds = seeds;
  g_autoptr (StTensor) logits = st_pipeline_forward_range (run->p, run->ctx, batch, run->first,
                                                           run->last, TRUE, error);
  run->ctx->item_seeds = NULL;
  if (!logits)
    return FALSE;
  g_autoptr (StTensor) grad = st_tensor_new (logits->shape, NULL);
  int correct = 0;
  double batch_loss = st_softmax_cross_entropy (logits, run->labels, opt->label_smoothing, grad,
                                                &correct);
  st_dist_batch_sums (&batch_loss, &correct, grad, share);
  /* Past this, every weight turns NaN: a file no load would take. */
  if (!isfinite (batch_loss))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_FAILED,
                   "%s: training diverged in epoch %d, batch %d: the loss is not "
                   "finite (try a smaller --lr); no weights written",
                   st_pipeline_name (run->p), epoch + 1, b + 1);
      return FALSE;
    }
  run->pos.loss_sum += batch_loss;
  run->pos.correct += correct;
  run->pos.seen += batch_count;
  if (!st_pipeline_backward_range (run->p, run->ctx, grad, run->last, error))
    return FALSE;
  if (run->buckets)
    st_grad_buckets_finish (run->buckets);
  else
    st_dist_sum_gradients (run->weights);
  run->lr = st_schedule_lr (opt, run->pos.step, run->n_batches);
  run->pos.step++;
  st_optimizer_step (run->slots, opt, run->lr, run->pos.step, run->ctx);
  return TRUE;
}

/* The batches of one epoch, from where a checkpoint left off. */
static gboolean
train_epoch (Run *run, int epoch, GError **error)
{
  /* Set again before every step; here for a report before the first. */
  run->lr = st_schedule_lr (run->opt, run->pos.step, run->n_batches);
  g_autofree int *order = epoch_order (run->train->n, run->opt->seed, epoch, run->opt->shuffle);
  run->epoch_start_us = g_get_monotonic_time ();
  run->last_progress_us = 0;
  run->epoch_start_batch = epoch == run->pos.epoch ? run->pos.batch : 0;
  if (epoch != run->pos.epoch)
    run->pos.loss_sum = 0, run->pos.correct = 0, run->pos.seen = 0;
  run->ctx->training = TRUE;
  start_progress_line (run, epoch);
  for (int b = run->epoch_start_batch; b < run->n_batches; b++)
    {
      /* Every MPI rank stops at the same batch. */
      if (st_dist_any (interrupted))
        {
          stop_on_interrupt (run, epoch, b, error);
          return FALSE;
        }
      if (!train_batch (run, order, epoch, b, error))
        return FALSE;
      report_progress (run, epoch, b + 1);
    }
  run->ctx->training = FALSE;
  return TRUE;
}

/* Test loss and accuracy (< 0 without test data). */
static gboolean
test_epoch (Run *run, double *loss, double *accuracy, GError **error)
{
  *loss = *accuracy = -1;
  if (!run->test || run->test->n == 0)
    return TRUE;
  g_autoptr (StEvaluation) ev = st_evaluate (run->p, run->test, run->ctx, 256, error);
  if (!ev)
    return FALSE;
  *loss = ev->loss;
  *accuracy = ev->accuracy;
  return TRUE;
}

/* Test, report, log, plot and checkpoint an epoch just trained. */
static gboolean
finish_epoch (Run *run, int epoch, GError **error)
{
  const StTrainOptions *opt = run->opt;
  /* The final count, then the epoch's line takes the bar's place. */
  st_progress_finish (run->progress);
  g_clear_pointer (&run->progress, st_progress_free);
  StTrainReport r = report_for (run, ST_TRAIN_EPOCH, epoch, run->n_batches);
  if (!test_epoch (run, &r.test_loss, &r.test_accuracy, error))
    return FALSE;
  r.loss = run->pos.loss_sum / MAX (run->pos.seen, 1);
  r.accuracy = (double) run->pos.correct / MAX (run->pos.seen, 1);
  report (run, &r);
  if (opt->log_csv && !append_log (opt->log_csv, &r, error))
    return FALSE;
  if (opt->log_csv && opt->plot_png && !st_plot_training_log (opt->log_csv, opt->plot_png, error))
    return FALSE;
  run->pos = (StTrainPosition) { epoch + 1, 0, run->pos.step, 0, 0, 0 };
  if (run->epochs_run)
    (*run->epochs_run)++;
  return !opt->checkpoint || st_dist_rank () != 0
         || st_checkpoint_save (run->p, run->slots, opt, run->ctx, &run->pos, error);
}

/* The final weights, with the seed, the epochs and the data's class names. */
static gboolean
save_trained_weights (Run *run, GError **error)
{
  const StTrainOptions *opt = run->opt;
  g_autoptr (GHashTable) meta = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  g_hash_table_insert (meta, "strata.seed", g_strdup_printf ("%" G_GUINT64_FORMAT, opt->seed));
  g_hash_table_insert (meta, "strata.epochs", g_strdup_printf ("%d", opt->epochs));
  if (opt->class_names)
    g_hash_table_insert (meta, "strata.labels", labels_json (opt->class_names, run->n_classes));
  return st_pipeline_save_weights (run->p, opt->weights_out, meta, error);
}

gboolean
st_train (StPipeline *p, StDataset *train, StDataset *test, const StTrainOptions *opt,
          int *epochs_run, GError **error)
{
  if (epochs_run)
    *epochs_run = 0;
  StTrainOptions settled = *opt;
  st_train_options_finish (&settled);
  st_dist_train_outputs (&settled);
  opt = &settled;
  Run run = { .p = p, .train = train, .test = test, .opt = opt, .epochs_run = epochs_run };
  g_autoptr (GPtrArray) weights = run.weights = st_pipeline_weights (p);
  if (!st_train_options_check (opt, error) || !find_trained_stages (&run, error)
      || !check_training_memory (&run, error))
    return FALSE;
  gboolean ok = start_run (&run, &settled, error)
                && st_dist_check_start (run.weights, train->n, error);
  if (ok)
    {
      Signals previous = catch_interrupts ();
      for (int epoch = run.pos.epoch; ok && epoch < opt->epochs; epoch++)
        ok = train_epoch (&run, epoch, error) && finish_epoch (&run, epoch, error)
             && st_dist_check_replicas (run.weights, epoch, error);
      restore_signals (&previous);
    }
  end_run (&run);
  return ok && (!opt->weights_out || save_trained_weights (&run, error));
}
