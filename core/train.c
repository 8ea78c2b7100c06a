/* strata — the training loop: batches, softmax cross-entropy, epochs,
 * interruption, logs. */
#include "train.h"
#include "checkpoint.h"
#include "context.h"
#include "evaluate.h"
#include "optimizer.h"
#include "plot.h"
#include "stage.h"
#include "weights.h"

#include <json-glib/json-glib.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void
st_train_options_init (StTrainOptions *opt)
{
  *opt = (StTrainOptions) {
    .optimizer = ST_OPTIM_ADAM, .lr = 1e-3, .momentum = 0.9, .beta1 = 0.9,
    .beta2 = 0.999, .eps = 1e-8, .schedule = ST_SCHEDULE_CONSTANT,
    .step_epochs = 10, .gamma = 0.1, .batch_size = 64, .epochs = 10,
    .shuffle = TRUE, .seed = 1,
  };
}

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

static gboolean
ends_in_softmax (const StPipeline *p)
{
  int n = st_pipeline_n_stages (p);
  return strcmp (st_pipeline_stage (p, n - 1)->kind->name, "softmax") == 0;
}

gboolean
st_train_check_pipeline (StPipeline *p, int n_classes, GError **error)
{
  g_autoptr (GPtrArray) params = st_pipeline_params (p);
  guint trainable = 0;
  for (guint i = 0; i < params->len; i++)
    trainable += ((StParam *) params->pdata[i])->trainable;
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

gboolean
st_dataset_apply_prefix (StDataset *ds, StPipeline *p, int threads, GError **error)
{
  int k = st_pipeline_prefix_length (p);
  if (k == 0)
    return TRUE;
  g_autoptr (StRunContext) ctx = st_run_context_new (threads, 0);
  StShape s = ds->x->shape;
  gsize per = (gsize) s.c * s.h * s.w;
  const int chunk = 512;
  StTensor *result = NULL;
  gsize per_out = 0;
  for (int start = 0; start < s.n; start += chunk)
    {
      int count = MIN (chunk, s.n - start);
      g_autoptr (StTensor) in = st_tensor_new0 (count, s.c, s.h, s.w);
      memcpy (in->data, ds->x->data + start * per, count * per * sizeof (float));
      g_autoptr (StTensor) out = st_pipeline_forward_range (p, ctx, in, 0, k - 1, FALSE, error);
      if (!out)
        {
          st_tensor_free (result);
          return FALSE;
        }
      if (!result)
        {
          result = st_tensor_new0 (s.n, out->shape.c, out->shape.h, out->shape.w);
          per_out = (gsize) out->shape.c * out->shape.h * out->shape.w;
        }
      memcpy (result->data + start * per_out, out->data, count * per_out * sizeof (float));
    }
  st_tensor_free (ds->x);
  ds->x = result;
  return TRUE;
}

void
st_scores_to_probabilities (const StPipeline *p, StTensor *scores)
{
  if (ends_in_softmax (p))
    return;
  int n = scores->shape.n, c = scores->shape.c;
  for (int b = 0; b < n; b++)
    {
      float *x = scores->data + (gsize) b * c;
      float max = x[0];
      for (int j = 1; j < c; j++)
        max = MAX (max, x[j]);
      double sum = 0;
      for (int j = 0; j < c; j++)
        sum += x[j] = expf (x[j] - max);
      for (int j = 0; j < c; j++)
        x[j] = (float) (x[j] / sum);
    }
}

/* ---- Batches ------------------------------------------------------------ */

/* Mean cross-entropy of softmax(logits) against labels; writes its gradient
 * with respect to the logits, (softmax - onehot) / B, fused as frameworks
 * do so that no log of a tiny probability is ever taken. */
static double
softmax_cross_entropy (const StTensor *logits, const int *labels, StTensor *grad, int *correct)
{
  int n = logits->shape.n, c = logits->shape.c;
  double loss = 0;
  for (int b = 0; b < n; b++)
    {
      const float *x = logits->data + (gsize) b * c;
      float *g = grad->data + (gsize) b * c;
      int best = 0;
      float max = x[0];
      for (int j = 1; j < c; j++)
        if (x[j] > max)
          max = x[j], best = j;
      double sum = 0;
      for (int j = 0; j < c; j++)
        sum += exp ((double) x[j] - max);
      double log_sum = log (sum);
      loss += -((double) x[labels[b]] - max - log_sum);
      for (int j = 0; j < c; j++)
        g[j] = (float) ((exp ((double) x[j] - max - log_sum) - (j == labels[b])) / n);
      *correct += best == labels[b];
    }
  return loss;
}

/* ---- The loop ------------------------------------------------------------ */

static volatile sig_atomic_t interrupted;

static void
on_interrupt (int sig)
{
  interrupted = 1;
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

static void
draw_progress (int epoch, int epochs, int batch, int n_batches, double loss, double acc,
               double rate)
{
  int width = 24, filled = n_batches ? width * batch / n_batches : 0;
  char bar[32];
  for (int i = 0; i < width; i++)
    bar[i] = i < filled ? '#' : '-';
  bar[width] = '\0';
  fprintf (stderr, "\r\033[Kepoch %d/%d [%s] %d/%d  loss %.4f  acc %.2f%%  %.0f img/s",
           epoch, epochs, bar, batch, n_batches, loss, 100 * acc, rate);
  fflush (stderr);
}

static gboolean
append_log (const char *path, int epoch, double lr, double train_loss, double train_acc,
            double test_loss, double test_acc, double seconds, GError **error)
{
  gboolean fresh = !g_file_test (path, G_FILE_TEST_EXISTS) || epoch == 1;
  FILE *f = fopen (path, fresh ? "w" : "a");
  if (!f)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: cannot write the log: %s", path,
                   g_strerror (errno));
      return FALSE;
    }
  if (fresh)
    fprintf (f, "epoch,lr,train_loss,train_accuracy,test_loss,test_accuracy,seconds\n");
  if (test_acc >= 0)
    fprintf (f, "%d,%g,%.6f,%.6f,%.6f,%.6f,%.2f\n", epoch, lr, train_loss, train_acc,
             test_loss, test_acc, seconds);
  else
    fprintf (f, "%d,%g,%.6f,%.6f,,,%.2f\n", epoch, lr, train_loss, train_acc, seconds);
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
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_root (gen, root);
  return json_generator_to_data (gen, NULL);
}

gboolean
st_train (StPipeline *p, StDataset *train, StDataset *test, const StTrainOptions *opt,
          int *epochs_run, GError **error)
{
  if (epochs_run)
    *epochs_run = 0;
  int first = st_pipeline_prefix_length (p);
  int n_stages = st_pipeline_n_stages (p);
  int last = ends_in_softmax (p) ? n_stages - 2 : n_stages - 1;
  if (last < first)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE, "%s: nothing to train before the softmax",
                   st_pipeline_name (p));
      return FALSE;
    }

  g_autoptr (StRunContext) ctx = st_run_context_new (opt->threads, opt->seed);
  for (int i = 0; i < n_stages; i++)
    st_stage_reset_params (st_pipeline_stage (p, i), opt->seed);
  g_autoptr (GPtrArray) params = st_pipeline_params (p);
  for (int i = 0; i < n_stages; i++)
    st_stage_enable_grads (st_pipeline_stage (p, i));
  GArray *slots = st_optimizer_collect_slots (params, opt);
  StTrainPosition pos = { 0 };
  if (opt->resume && !st_checkpoint_load (p, slots, opt, ctx, &pos, error))
    {
      st_optimizer_free_slots (slots);
      return FALSE;
    }

  struct sigaction action = { .sa_handler = on_interrupt }, previous_int, previous_term;
  sigemptyset (&action.sa_mask);
  interrupted = 0;
  sigaction (SIGINT, &action, &previous_int);
  sigaction (SIGTERM, &action, &previous_term);

  gboolean show = !opt->quiet && isatty (STDERR_FILENO);
  int n_batches = (train->n + opt->batch_size - 1) / opt->batch_size;
  g_autofree int *labels = g_new (int, opt->batch_size);
  g_autofree guint64 *confusion = NULL;
  int n_classes = st_pipeline_output_shape (p).c;
  gboolean ok = TRUE;

  for (int epoch = pos.epoch; epoch < opt->epochs && ok; epoch++)
    {
      double lr = st_schedule_lr (opt, epoch);
      g_autofree int *order = epoch_order (train->n, opt->seed, epoch, opt->shuffle);
      gint64 start_us = g_get_monotonic_time (), last_draw = 0;
      int start_batch = epoch == pos.epoch ? pos.batch : 0;
      if (epoch != pos.epoch)
        pos.loss_sum = 0, pos.correct = 0, pos.seen = 0;
      ctx->training = TRUE;
      for (int b = start_batch; b < n_batches && ok; b++)
        {
          if (interrupted)
            {
              pos.epoch = epoch;
              pos.batch = b;
              if (show)
                fputs ("\r\033[K", stderr);
              g_autoptr (GError) local = NULL;
              if (!st_checkpoint_save (p, slots, opt, ctx, &pos, &local))
                fprintf (stderr, "strata: %s\n", local->message);
              else
                fprintf (stderr, "interrupted: checkpoint written to %s (continue with --resume %s)\n",
                         opt->checkpoint, opt->checkpoint);
              g_set_error (error, ST_ERROR, ST_ERROR_INTERRUPTED, "interrupted");
              ok = FALSE;
              break;
            }
          int start = b * opt->batch_size;
          int count = MIN (opt->batch_size, train->n - start);
          g_autoptr (StTensor) batch = st_dataset_gather_batch (train, order, start, count, labels);
          for (int i = 0; i < n_stages; i++)
            st_stage_zero_grads (st_pipeline_stage (p, i));
          g_autoptr (StTensor) logits = st_pipeline_forward_range (p, ctx, batch, first, last, TRUE, error);
          if (!logits)
            {
              ok = FALSE;
              break;
            }
          g_autoptr (StTensor) grad = st_tensor_new (logits->shape, NULL);
          int correct = 0;
          double batch_loss = softmax_cross_entropy (logits, labels, grad, &correct);
          /* Past this, every weight turns NaN: a file no load would take. */
          if (!isfinite (batch_loss))
            {
              g_set_error (error, ST_ERROR, ST_ERROR_FAILED,
                           "%s: training diverged in epoch %d, batch %d: the loss is not "
                           "finite (try a smaller --lr); no weights written",
                           st_pipeline_name (p), epoch + 1, b + 1);
              ok = FALSE;
              break;
            }
          pos.loss_sum += batch_loss;
          pos.correct += correct;
          pos.seen += count;
          if (!st_pipeline_backward_range (p, ctx, grad, last, error))
            {
              ok = FALSE;
              break;
            }
          pos.step++;
          st_optimizer_step (slots, opt, lr, pos.step);
          gint64 now = g_get_monotonic_time ();
          if (show && (now - last_draw > 100000 || b == n_batches - 1))
            {
              last_draw = now;
              double secs = (now - start_us) / 1e6;
              draw_progress (epoch + 1, opt->epochs, b + 1, n_batches, pos.loss_sum / pos.seen,
                             (double) pos.correct / pos.seen,
                             secs > 0 ? (pos.seen - (gint64) start_batch * opt->batch_size) / secs : 0);
            }
        }
      if (!ok)
        break;
      double seconds = (g_get_monotonic_time () - start_us) / 1e6;
      if (show)
        fputs ("\r\033[K", stderr);

      ctx->training = FALSE;
      double test_loss = -1, test_acc = -1;
      if (test && test->n > 0)
        {
          confusion = g_renew (guint64, confusion, (gsize) n_classes * n_classes);
          test_loss = st_evaluate (p, test, ctx, 256, confusion, error);
          if (test_loss < 0)
            {
              ok = FALSE;
              break;
            }
          guint64 right = 0;
          for (int c = 0; c < n_classes; c++)
            right += confusion[c * n_classes + c];
          test_acc = (double) right / test->n;
        }
      double train_loss = pos.loss_sum / MAX (pos.seen, 1);
      double train_acc = (double) pos.correct / MAX (pos.seen, 1);
      if (!opt->quiet)
        {
          if (test_acc >= 0)
            fprintf (stderr, "epoch %d/%d  lr %g  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  %.1f s\n",
                     epoch + 1, opt->epochs, lr, train_loss, 100 * train_acc, test_loss,
                     100 * test_acc, seconds);
          else
            fprintf (stderr, "epoch %d/%d  lr %g  train loss %.4f acc %.2f%%  %.1f s\n",
                     epoch + 1, opt->epochs, lr, train_loss, 100 * train_acc, seconds);
        }
      if (opt->log_csv
          && !append_log (opt->log_csv, epoch + 1, lr, train_loss, train_acc, test_loss, test_acc,
                          seconds, error))
        {
          ok = FALSE;
          break;
        }
      if (opt->log_csv && opt->plot_png && !st_plot_training_log (opt->log_csv, opt->plot_png, error))
        {
          ok = FALSE;
          break;
        }
      pos = (StTrainPosition) { epoch + 1, 0, pos.step, 0, 0, 0 };
      if (epochs_run)
        (*epochs_run)++;
      if (opt->checkpoint && !st_checkpoint_save (p, slots, opt, ctx, &pos, error))
        {
          ok = FALSE;
          break;
        }
    }

  sigaction (SIGINT, &previous_int, NULL);
  sigaction (SIGTERM, &previous_term, NULL);
  st_optimizer_free_slots (slots);
  if (ok && opt->weights_out)
    {
      g_autoptr (GHashTable) meta = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
      g_hash_table_insert (meta, "strata.seed", g_strdup_printf ("%" G_GUINT64_FORMAT, opt->seed));
      g_hash_table_insert (meta, "strata.epochs", g_strdup_printf ("%d", opt->epochs));
      if (opt->class_names)
        g_hash_table_insert (meta, "strata.labels", labels_json (opt->class_names, n_classes));
      ok = st_pipeline_save_weights (p, opt->weights_out, meta, error);
    }
  return ok;
}

