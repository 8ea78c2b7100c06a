/* strata — the runner behind `strata run`: jobs, workers, progress. */
#include "runner.h"
#include "atomic.h"
#include "context.h"
#include "classifier.h"
#include "param.h"

#include <json-glib/json-glib.h>

#include <glib/gstdio.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum {
  OUTCOME_PENDING,             /* not run (yet): interrupted if still so at the end */
  OUTCOME_WRITTEN,
  OUTCOME_SKIPPED,
  OUTCOME_FAILED,
  OUTCOME_INTERRUPTED,
} Outcome;

typedef struct {
  char *input;                 /* a path, or "-" for standard input */
  char *output;                /* a path, or "-" for standard output */
  StImageFormat format;        /* ST_FORMAT_UNKNOWN: the input's, once decoded */
  gboolean skip;               /* the output exists and --overwrite was not given */
  Outcome outcome;
  float *probabilities;        /* classifiers: one per class, once run */
  gboolean in_strips;          /* ran in strips of rows */
} Job;

static void
job_free (gpointer p)
{
  Job *job = p;
  g_free (job->input);
  g_free (job->output);
  g_free (job->probabilities);
  g_free (job);
}

/* How an input is named in messages. */
static const char *
job_name (const Job *job)
{
  return strcmp (job->input, "-") == 0 ? "standard input" : job->input;
}

static gboolean
is_image_name (const char *name)
{
  return st_image_format_from_name (name) != ST_FORMAT_UNKNOWN;
}

static char *
replace_extension (const char *path, StImageFormat format)
{
  const char *dot = strrchr (path, '.');
  const char *slash = strrchr (path, '/');
  gsize stem = dot && (!slash || dot > slash) ? (gsize) (dot - path) : strlen (path);
  return g_strdup_printf ("%.*s%s", (int) stem, path, format == ST_FORMAT_PNG ? ".png" : ".jpg");
}

/* ---- Planning -------------------------------------------------------------
 * Every job is planned before the first image runs, so that what would
 * destroy or lose data is refused while nothing has happened yet: an output
 * that is an input, two inputs with one output.  Files are compared by
 * identity (device and inode, links followed), never by path text. */

typedef struct {
  dev_t dev;
  ino_t ino;
} FileId;

static guint
file_id_hash (gconstpointer p)
{
  const FileId *id = p;
  return (guint) id->ino ^ (guint) (id->ino >> 32) ^ (guint) id->dev * 31u;
}

static gboolean
file_id_equal (gconstpointer a, gconstpointer b)
{
  const FileId *x = a, *y = b;
  return x->dev == y->dev && x->ino == y->ino;
}

static FileId *
file_id_dup (const GStatBuf *st)
{
  FileId *id = g_new (FileId, 1);
  *id = (FileId) { st->st_dev, st->st_ino };
  return id;
}

typedef struct {
  const StRunOptions *opt;
  GPtrArray *jobs;
  GHashTable *seen_dirs;       /* FileId set: each folder is searched once */
  GArray *chain;               /* FileId of the folders being searched, outermost first */
  GPtrArray *chain_paths;      /* and their paths */
  gboolean has_out_root;       /* the output folder exists: out_root is its identity */
  FileId out_root;
  guint failed;                /* inputs that are missing or cannot be read */
} Plan;

static void
plan_report (Plan *plan, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

/* An input that cannot be used: named on stderr and counted as failed. */
static void
plan_report (Plan *plan, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  fprintf (stderr, "%s\n", msg);
  plan->failed++;
}

static void
add_job (Plan *plan, const char *input, const char *output, StImageFormat format)
{
  const StRunOptions *opt = plan->opt;
  Job *job = g_new0 (Job, 1);
  job->input = g_strdup (input);
  job->format = format;
  if (opt->format && strcmp (output, "-") != 0 && st_image_format_from_name (output) != opt->format)
    job->output = replace_extension (output, opt->format);
  else
    job->output = g_strdup (output);
  g_ptr_array_add (plan->jobs, job);
}

static StImageFormat
folder_job_format (const StRunOptions *opt, const char *input)
{
  return opt->format ? opt->format : st_image_format_from_name (input);
}

/* Searches dir (whose stat is st) for images, mirroring it under out_dir.
 * Symbolic links are followed, but a folder already searched is not
 * searched again: a link back to a folder being searched (a loop) is
 * reported, once, and another path to a folder already seen is passed
 * over.  The output folder, met below an input folder, is left out, so a
 * run into photos/out never reads its own earlier outputs. */
static void
walk_folder (Plan *plan, const char *dir, const char *out_dir, const GStatBuf *st,
             gboolean top)
{
  const FileId id = { st->st_dev, st->st_ino };
  for (guint i = 0; i < plan->chain->len; i++)
    if (file_id_equal (&id, &g_array_index (plan->chain, FileId, i)))
      {
        fprintf (stderr, "%s: symbolic link loop (it leads back to %s); not followed\n", dir,
                 (char *) plan->chain_paths->pdata[i]);
        return;
      }
  if (g_hash_table_contains (plan->seen_dirs, &id))
    return;
  if (!top && plan->has_out_root && file_id_equal (&id, &plan->out_root))
    return;
  g_hash_table_add (plan->seen_dirs, file_id_dup (st));

  g_autoptr (GError) local = NULL;
  g_autoptr (GDir) d = g_dir_open (dir, 0, &local);
  if (!d)
    {
      plan_report (plan, "%s: cannot search the folder: %s", dir, local->message);
      return;
    }
  g_array_append_val (plan->chain, id);
  g_ptr_array_add (plan->chain_paths, (gpointer) dir);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  while ((name = g_dir_read_name (d)))
    g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, st_compare_strings);
  for (guint i = 0; i < names->len; i++)
    {
      const char *n = names->pdata[i];
      if (n[0] == '.')
        continue;
      g_autofree char *path = g_build_filename (dir, n, NULL);
      g_autofree char *out = g_build_filename (out_dir, n, NULL);
      GStatBuf s;
      if (g_stat (path, &s) != 0)
        {
          if (is_image_name (n))
            plan_report (plan, "%s: cannot read: %s", path, g_strerror (errno));
          continue;
        }
      if (S_ISDIR (s.st_mode))
        walk_folder (plan, path, out, &s, FALSE);
      else if (!is_image_name (n))
        continue;
      else if (S_ISREG (s.st_mode))
        add_job (plan, path, out, folder_job_format (plan->opt, path));
      else
        plan_report (plan, "%s: not a regular file; not read", path);
    }
  g_array_set_size (plan->chain, plan->chain->len - 1);
  g_ptr_array_set_size (plan->chain_paths, plan->chain_paths->len - 1);
}

/* Where path is, as the file system sees it: the identity of path when it
 * exists, or of its deepest existing folder followed by the rest of the
 * path, so that two names of one file give one key. */
static char *
output_key (const char *path)
{
  g_autofree char *head = g_strdup (path);
  g_autoptr (GString) rest = g_string_new (NULL);
  for (;;)
    {
      GStatBuf st;
      if (g_stat (head, &st) == 0)
        return g_strdup_printf ("%ju:%ju%s", (uintmax_t) st.st_dev, (uintmax_t) st.st_ino,
                                rest->str);
      g_autofree char *base = g_path_get_basename (head);
      g_autofree char *parent = g_path_get_dirname (head);
      g_string_prepend (rest, base);
      g_string_prepend_c (rest, '/');
      if (strcmp (parent, head) == 0)
        return g_string_free (g_steal_pointer (&rest), FALSE);
      g_free (head);
      head = g_steal_pointer (&parent);
    }
}

/* At most this many lines name the problems found in a plan. */
#define MAX_PLAN_LINES 10

static void
plan_problem (guint *problems, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static void
plan_problem (guint *problems, const char *fmt, ...)
{
  if (++*problems > MAX_PLAN_LINES)
    return;
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  fprintf (stderr, "%s\n", msg);
}

/* Refuses a plan in which an output is an input (whether or not
 * --overwrite was given: an input is never replaced, not even by its own
 * output) or several inputs have one output, naming them on stderr;
 * drops a job planned twice (one file named twice, or a folder and a file
 * in it); marks the jobs whose output exists as skipped unless
 * --overwrite.  A classifier's jobs have no outputs; its predictions file
 * (or NULL: standard output) is checked against the inputs. */
static gboolean
check_plan (Plan *plan, gboolean classify, const char *predictions, GError **error)
{
  GPtrArray *jobs = plan->jobs;
  const guint n = jobs->len;
  g_autoptr (GHashTable) inputs = g_hash_table_new_full (file_id_hash, file_id_equal, g_free, NULL);
  g_autofree FileId *ids = g_new0 (FileId, n);
  g_autofree gboolean *has_id = g_new0 (gboolean, n);
  for (guint i = 0; i < n; i++)
    {
      const Job *job = jobs->pdata[i];
      GStatBuf st;
      if (strcmp (job->input, "-") != 0 && g_stat (job->input, &st) == 0)
        {
          ids[i] = (FileId) { st.st_dev, st.st_ino };
          has_id[i] = TRUE;
          if (!g_hash_table_contains (inputs, &ids[i]))
            g_hash_table_insert (inputs, file_id_dup (&st), jobs->pdata[i]);
        }
    }

  guint problems = 0;
  GStatBuf st;
  if (predictions && g_stat (predictions, &st) == 0)
    {
      const FileId out_id = { st.st_dev, st.st_ino };
      const Job *owner = g_hash_table_lookup (inputs, &out_id);
      if (owner)
        plan_problem (&problems, "%s: an input image; the predictions would replace it",
                      owner->input);
    }

  /* Jobs by output: key -> index + 1 of the first job writing there. */
  g_autoptr (GHashTable) by_output = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autofree guint *next_same = g_new0 (guint, n);  /* index + 1 of the next job writing there */
  g_autofree gboolean *drop = g_new0 (gboolean, n);
  g_autofree gboolean *collides = g_new0 (gboolean, n);
  for (guint i = 0; i < n && !classify; i++)
    {
      Job *job = jobs->pdata[i];
      if (strcmp (job->output, "-") == 0)
        continue;
      g_autofree char *key = output_key (job->output);
      guint first = GPOINTER_TO_UINT (g_hash_table_lookup (by_output, key));
      if (first)
        {
          guint last = first - 1;
          gboolean again = FALSE;
          for (guint j = first - 1;; j = next_same[j] - 1)
            {
              again |= has_id[i] && has_id[j] && file_id_equal (&ids[i], &ids[j]);
              last = j;
              if (!next_same[j])
                break;
            }
          if (again)
            drop[i] = TRUE;  /* the same input planned again for the same output */
          else
            {
              next_same[last] = i + 1;
              collides[first - 1] = TRUE;
            }
          continue;
        }
      g_hash_table_insert (by_output, g_steal_pointer (&key), GUINT_TO_POINTER (i + 1));
      if (g_stat (job->output, &st) != 0)
        continue;
      const FileId out_id = { st.st_dev, st.st_ino };
      const Job *owner = g_hash_table_lookup (inputs, &out_id);
      if (owner == job)
        plan_problem (&problems, "%s: its output %s is the input itself; an input is never "
                      "replaced", job_name (job), job->output);
      else if (owner)
        plan_problem (&problems, "%s: an input; the output of %s would replace it",
                      owner->input, job_name (job));
      else if (!plan->opt->overwrite)
        job->skip = TRUE;
    }

  for (guint i = 0; i < n; i++)
    {
      if (!collides[i])
        continue;
      g_autoptr (GString) names = g_string_new (NULL);
      guint count = 0;
      for (guint j = i;; j = next_same[j] - 1)
        {
          const Job *job = jobs->pdata[j];
          g_string_append_printf (names, "%s%s", count++ ? ", " : "", job_name (job));
          if (!next_same[j])
            break;
        }
      plan_problem (&problems, "%s: the output of %u inputs: %s", ((Job *) jobs->pdata[i])->output,
                    count, names->str);
    }

  if (problems)
    {
      if (problems > MAX_PLAN_LINES)
        fprintf (stderr, "(and %u more)\n", problems - MAX_PLAN_LINES);
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                   "nothing was run: %u planned output%s would replace an input or be "
                   "written from several inputs (choose another -o or --format, or rename "
                   "the inputs)", problems, problems == 1 ? "" : "s");
      return FALSE;
    }
  /* Drop the repeats, keeping the order. */
  gsize len;
  gpointer *all = g_ptr_array_steal (jobs, &len);
  for (gsize i = 0; i < len; i++)
    {
      if (drop[i])
        job_free (all[i]);
      else
        g_ptr_array_add (jobs, all[i]);
    }
  g_free (all);
  return TRUE;
}

/* ---- Progress ---------------------------------------------------------- */

typedef struct {
  GMutex lock;
  GCond gate;                  /* workers wait here until every one has started */
  gboolean go, abandon;
  guint total, done;
  gint64 start_us, last_draw_us;
  gboolean show;
  guint next_job;
  GPtrArray *jobs;
  const StRunOptions *opt;
  gboolean classify;
} Run;

/* ---- Interruption ----------------------------------------------------------
 * SIGINT or SIGTERM during a run stops the handing out of images; each
 * worker finishes or abandons the image it holds (a strip run checks between
 * strips), an abandoned output is discarded (see atomic.h: unfinished files
 * have no name), and the run returns with the rest counted as interrupted.
 * A second signal has its default effect. */

static volatile sig_atomic_t interrupted;

static void
on_interrupt (int sig)
{
  interrupted = 1;
  static const char msg[] = "\nstrata: interrupted: stopping after the images in progress "
                            "(again to stop at once)\n";
  ssize_t written = write (STDERR_FILENO, msg, sizeof msg - 1);
  (void) written;
}

static gboolean
check_interrupted (const Job *job, GError **error)
{
  if (!interrupted)
    return FALSE;
  g_set_error (error, ST_ERROR, ST_ERROR_INTERRUPTED, "%s: interrupted", job_name (job));
  return TRUE;
}

static void
clear_line (Run *run)
{
  if (run->show)
    fputs ("\r\033[K", stderr);
}

static void
draw_progress (Run *run, gboolean force)
{
  gint64 now = g_get_monotonic_time ();
  if (!run->show || (!force && now - run->last_draw_us < 100000))
    return;
  run->last_draw_us = now;
  double elapsed = (now - run->start_us) / 1e6;
  double rate = elapsed > 0 ? run->done / elapsed : 0;
  int width = 30, filled = run->total ? (int) ((double) width * run->done / run->total) : 0;
  char bar[64];
  for (int i = 0; i < width; i++)
    bar[i] = i < filled ? '#' : '-';
  bar[width] = '\0';
  double left = rate > 0 ? (run->total - run->done) / rate : 0;
  fprintf (stderr, "\r\033[K[%s] %u/%u  %.1f img/s  %d:%02d left", bar, run->done,
           run->total, rate, (int) left / 60, (int) left % 60);
  fflush (stderr);
}

static void
report_failure (Run *run, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static void
report_failure (Run *run, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  clear_line (run);
  fprintf (stderr, "%s\n", msg);
}

/* ---- One image --------------------------------------------------------- */

/* Splits off the alpha channel so that filters see colour only. */
static StTensor *
split_alpha (StTensor **image)
{
  StTensor *in = *image;
  int c = in->shape.c - 1;
  gsize plane = (gsize) in->shape.h * in->shape.w;
  StTensor *colour = st_tensor_new0 (1, c, in->shape.h, in->shape.w);
  StTensor *alpha = st_tensor_new0 (1, 1, in->shape.h, in->shape.w);
  memcpy (colour->data, in->data, plane * c * sizeof (float));
  memcpy (alpha->data, in->data + plane * c, plane * sizeof (float));
  st_tensor_free (in);
  *image = colour;
  return alpha;
}

static StTensor *
join_alpha (StTensor *colour, const StTensor *alpha)
{
  gsize plane = (gsize) colour->shape.h * colour->shape.w;
  StTensor *out = st_tensor_new0 (1, colour->shape.c + 1, colour->shape.h, colour->shape.w);
  memcpy (out->data, colour->data, plane * colour->shape.c * sizeof (float));
  memcpy (out->data + plane * colour->shape.c, alpha->data, plane * sizeof (float));
  return out;
}

static gboolean
classify_one (StPipeline *p, StRunContext *ctx, Job *job, StTensor *image, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (StTensor) scores = st_pipeline_forward (p, ctx, image, FALSE, &local);
  if (!scores)
    {
      g_set_error (error, ST_ERROR, local->code, "%s: %s", job_name (job), local->message);
      return FALSE;
    }
  st_scores_to_probabilities (p, scores);
  job->probabilities = g_memdup2 (scores->data, sizeof (float) * scores->shape.c);
  return TRUE;
}

/* Images run in strips whenever the pipeline allows: even a 1024x768 JPEG
 * goes twice as fast, its tensors a few hundred kilobytes that stay in the
 * caches and the heap instead of megabytes that are page-faulted in afresh
 * for every image (the kernel's time then exceeds the filters').  Only at
 * this size and below is the whole image as quick. */
#define STRIP_MIN_PIXELS G_GUINT64_CONSTANT (65536)
/* Output rows a strip: 16 to 64 measure alike on a 3x3 filter; more fall
 * out of L2.  Wide halos get taller strips, so the rows filtered twice stay
 * at most as many as the rows kept. */
#define STRIP_ROWS 32

/* Where the output goes; created before the first row is written. */
static gboolean
make_output_folder (const Job *job, GError **error)
{
  if (strcmp (job->output, "-") == 0)
    return TRUE;
  g_autofree char *dir = g_path_get_dirname (job->output);
  if (g_mkdir_with_parents (dir, 0777) != 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: cannot create folder: %s", dir,
                   g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_output_channels (const Job *job, const StTensor *out, GError **error)
{
  if (out->shape.c == 1 || out->shape.c == 3)
    return TRUE;
  g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
               "%s: the pipeline's output has %d channels; an image needs 1 or 3",
               job_name (job), out->shape.c);
  return FALSE;
}

/* The rows of input around every output row that a strip must carry, when
 * p can run on strips of an image of this shape: every stage local (a halo,
 * not ST_HALO_WHOLE) and of the image's height and width, and an image out.
 * Summing every stage's halo bounds the deepest path through the graph.
 * -1 when p needs the whole image. */
static int
strip_halo (StPipeline *p, StShape shape)
{
  /* Shapes only: the whole image may pass the memory bound where strips do not. */
  if (!st_pipeline_infer_shapes (p, shape, NULL))
    return -1;
  int total = 0;
  for (int i = 0; i < st_pipeline_n_stages (p); i++)
    {
      const StStage *stage = st_pipeline_stage (p, i);
      StShape out = stage->out_shape;
      if (stage->halo < 0 || out.n != 1 || out.h != shape.h || out.w != shape.w)
        return -1;
      total += stage->halo;
      if (total >= shape.h)
        return -1;
    }
  int c = st_pipeline_output_shape (p).c;
  return c == 1 || c == 3 ? total : -1;
}

/* Strips of input, decoded ahead of the filters.  Strip k covers output
 * rows [k * rows, (k + 1) * rows) and is held in buffer k % FEED_BUFFERS with
 * `halo` rows either side (fewer at the image's top and bottom).  Its first
 * rows are the last ones of strip k - 1, copied over rather than decoded
 * again.  On a machine with a core to spare a thread of its own decodes
 * while the caller filters and encodes the strip before: decoding and
 * encoding each take about as long as everything else together. */
#define FEED_BUFFERS 3

/* A worker's strip buffers, kept from one image to the next: freed, they
 * would go back to the kernel and be page-faulted in again for the next. */
typedef struct {
  StTensor *buffers[FEED_BUFFERS];
} Scratch;

static void
scratch_clear (Scratch *s)
{
  for (int i = 0; i < FEED_BUFFERS; i++)
    g_clear_pointer (&s->buffers[i], st_tensor_free);
}

typedef struct {
  StImageReader *reader;
  int width, height, channels, rows, halo;
  int n_strips;
  StTensor *buffers[FEED_BUFFERS]; /* the scratch's */
  StTensor strips[FEED_BUFFERS];   /* views of the buffers, as filled */
  int firsts[FEED_BUFFERS];        /* the image row each view starts at */
  GThread *thread;
  GMutex lock;
  GCond cond;
  int filled;                      /* strips decoded */
  int released;                    /* strips the consumer is done with */
  gboolean cancel;
  GError *error;                   /* the decoder's, once it stopped */
} Feed;

/* Copies n rows of every plane of src, from row src_row on, to dst's rows
 * from dst_row on. */
static void
copy_rows (const StTensor *src, int src_row, StTensor *dst, int dst_row, int n)
{
  const gsize w = src->shape.w;
  for (int c = 0; c < src->shape.c; c++)
    memcpy (dst->data + ((gsize) c * dst->shape.h + dst_row) * w,
            src->data + ((gsize) c * src->shape.h + src_row) * w,
            sizeof (float) * w * n);
}

/* Decodes strip k; strip k - 1 must still be held. */
static gboolean
feed_fill (Feed *f, int k, GError **error)
{
  const int y0 = k * f->rows, y1 = MIN (f->height, y0 + f->rows);
  const int first = MAX (0, y0 - f->halo), last = MIN (f->height, y1 + f->halo);
  const int slot = k % FEED_BUFFERS;
  StTensor *in = &f->strips[slot];
  *in = (StTensor) { { 1, f->channels, last - first, f->width }, f->buffers[slot]->data };
  f->firsts[slot] = first;
  int read_from = first;
  if (k > 0)
    {
      const int prev = (k - 1) % FEED_BUFFERS;
      const int held_last = f->firsts[prev] + f->strips[prev].shape.h;
      if (held_last > first)
        copy_rows (&f->strips[prev], first - f->firsts[prev], in, 0, held_last - first);
      read_from = MAX (held_last, first);
    }
  return st_image_reader_read (f->reader, in, read_from - first, last - read_from, error);
}

static gpointer
feed_thread (gpointer data)
{
  Feed *f = data;
  for (int k = 0; k < f->n_strips; k++)
    {
      g_mutex_lock (&f->lock);
      /* Strip k reuses the buffer of strip k - FEED_BUFFERS. */
      while (!f->cancel && k - f->released >= FEED_BUFFERS)
        g_cond_wait (&f->cond, &f->lock);
      gboolean cancel = f->cancel;
      g_mutex_unlock (&f->lock);
      if (cancel)
        break;
      GError *error = NULL;
      gboolean ok = feed_fill (f, k, &error);
      g_mutex_lock (&f->lock);
      if (ok)
        f->filled = k + 1;
      else
        f->error = error;
      g_cond_broadcast (&f->cond);
      g_mutex_unlock (&f->lock);
      if (!ok)
        break;
    }
  return NULL;
}

static void
feed_init (Feed *f, Scratch *scratch, StImageReader *reader, int width, int height,
           int channels, int rows, int halo, gboolean threaded)
{
  *f = (Feed) { .reader = reader, .width = width, .height = height, .channels = channels,
                .rows = rows, .halo = halo, .n_strips = (height + rows - 1) / rows };
  const StShape shape = { 1, channels, MIN (height, rows + 2 * halo), width };
  for (int i = 0; i < FEED_BUFFERS; i++)
    {
      if (!scratch->buffers[i]
          || st_tensor_numel (scratch->buffers[i]) < st_shape_numel (shape))
        {
          st_tensor_free (scratch->buffers[i]);
          scratch->buffers[i] = st_tensor_new0 (shape.n, shape.c, shape.h, shape.w);
        }
      f->buffers[i] = scratch->buffers[i];
    }
  g_mutex_init (&f->lock);
  g_cond_init (&f->cond);
  if (threaded)
    f->thread = g_thread_try_new ("strata-decode", feed_thread, f, NULL);
}

/* Strip k, decoded; NULL with error set when decoding failed. */
static const StTensor *
feed_get (Feed *f, int k, int *first, GError **error)
{
  if (!f->thread)
    {
      if (!feed_fill (f, k, error))
        return NULL;
    }
  else
    {
      g_mutex_lock (&f->lock);
      while (f->filled <= k && !f->error)
        g_cond_wait (&f->cond, &f->lock);
      gboolean ok = f->filled > k;
      if (!ok)
        g_propagate_error (error, g_steal_pointer (&f->error));
      g_mutex_unlock (&f->lock);
      if (!ok)
        return NULL;
    }
  *first = f->firsts[k % FEED_BUFFERS];
  return &f->strips[k % FEED_BUFFERS];
}

static void
feed_release (Feed *f, int k)
{
  g_mutex_lock (&f->lock);
  f->released = k + 1;
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->lock);
}

static void
feed_clear (Feed *f)
{
  if (f->thread)
    {
      g_mutex_lock (&f->lock);
      f->cancel = TRUE;
      g_cond_broadcast (&f->cond);
      g_mutex_unlock (&f->lock);
      g_thread_join (f->thread);
    }
  g_clear_error (&f->error);
  g_mutex_clear (&f->lock);
  g_cond_clear (&f->cond);
}

/* Runs p a strip at a time.  Each strip's input carries `halo` rows either
 * side of its output rows, so those are exactly what the whole image gives
 * them: interior strip edges fall only in rows that are thrown away, while
 * the image's own top and bottom see the stages' border handling as
 * before.  Memory stays at a few strips whatever the image's size. */
static gboolean
run_strips (Run *run, StPipeline *p, StRunContext *ctx, Scratch *scratch, Job *job,
            StImageReader *reader, const StImageInfo *info, int width, int height,
            int channels, int halo, GError **error)
{
  const int colour = info->has_alpha ? channels - 1 : channels;
  const int rows = run->opt->strip_rows > 0 ? run->opt->strip_rows : MAX (STRIP_ROWS, 2 * halo);
  Feed feed;
  /* A worker with one thread shares the machine with other workers, which
   * keep the cores busy already. */
  feed_init (&feed, scratch, reader, width, height, channels, rows, halo,
             st_parallel_threads (ctx) > 1);
  StImageWriter *writer = NULL;
  gboolean ok = TRUE;

  for (int k = 0; ok && k < feed.n_strips; k++)
    {
      const int y0 = k * rows, y1 = MIN (height, y0 + rows);
      int first;
      if (check_interrupted (job, error))
        {
          ok = FALSE;
          break;
        }
      const StTensor *in = feed_get (&feed, k, &first, error);
      if (!in)
        {
          ok = FALSE;
          break;
        }
      /* Alpha, the last plane, stays out of the filters, as in run_one. */
      const StTensor picture = { { 1, colour, in->shape.h, width }, in->data };
      g_autoptr (GError) local = NULL;
      g_autoptr (StTensor) out = st_pipeline_forward (p, ctx, &picture, FALSE, &local);
      if (!out)
        {
          g_set_error (error, ST_ERROR, local->code, "%s: %s", job_name (job), local->message);
          ok = FALSE;
          break;
        }
      if (out->shape.h != in->shape.h || out->shape.w != width)
        {
          g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                       "%s: the pipeline made a strip of %dx%d pixels %dx%d", job_name (job),
                       width, in->shape.h, out->shape.w, out->shape.h);
          ok = FALSE;
          break;
        }
      if (!writer)
        {
          if (!check_output_channels (job, out, error) || !make_output_folder (job, error))
            {
              ok = FALSE;
              break;
            }
          const int depth = job->format == ST_FORMAT_PNG ? info->bit_depth : 8;
          writer = st_image_writer_open (job->output, job->format, width, height,
                                         out->shape.c + (info->has_alpha ? 1 : 0), depth,
                                         run->opt->jpeg_quality, error);
          if (!writer)
            {
              ok = FALSE;
              break;
            }
        }
      const float *planes[4];
      const gsize skip = (gsize) (y0 - first) * width;
      for (int c = 0; c < out->shape.c; c++)
        planes[c] = out->data + (gsize) c * out->shape.h * width + skip;
      if (info->has_alpha)
        planes[out->shape.c] = in->data + (gsize) colour * in->shape.h * width + skip;
      ok = st_image_writer_write_planes (writer, planes, y1 - y0, error);
      feed_release (&feed, k);
    }

  feed_clear (&feed);
  if (ok)
    ok = st_image_writer_finish (writer, error);
  else
    st_image_writer_abort (writer);
  job->in_strips = ok;
  return ok;
}

static gboolean
run_one (Run *run, StPipeline *p, StRunContext *ctx, Scratch *scratch, Job *job,
         GError **error)
{
  if (run->classify)
    {
      StImageInfo info;
      g_autoptr (StTensor) image = st_image_load (job->input, run->opt->max_pixels, &info, error);
      if (!image)
        return FALSE;
      g_autoptr (StTensor) alpha = info.has_alpha ? split_alpha (&image) : NULL;
      return classify_one (p, ctx, job, image, error);
    }

  StImageInfo info;
  int width, height, channels;
  g_autoptr (StImageReader) reader = st_image_reader_open (job->input, run->opt->max_pixels,
                                                           &info, &width, &height, &channels,
                                                           error);
  if (!reader)
    return FALSE;
  /* Standard input (or a name without an image extension) to standard
   * output keeps the format it came in. */
  if (job->format == ST_FORMAT_UNKNOWN)
    job->format = info.format;
  const guint64 min_pixels = run->opt->strip_min_pixels ? run->opt->strip_min_pixels
                                                        : STRIP_MIN_PIXELS;
  if ((guint64) width * (guint64) height > min_pixels)
    {
      const int colour = info.has_alpha ? channels - 1 : channels;
      const int halo = strip_halo (p, (StShape) { 1, colour, height, width });
      if (halo >= 0)
        return run_strips (run, p, ctx, scratch, job, reader, &info, width, height, channels,
                           halo, error);
    }

  g_autoptr (StTensor) image = st_image_reader_read_all (reader, error);
  if (!image)
    return FALSE;
  g_clear_pointer (&reader, st_image_reader_close);
  g_autoptr (StTensor) alpha = info.has_alpha ? split_alpha (&image) : NULL;

  g_autoptr (GError) local = NULL;
  g_autoptr (StTensor) out = st_pipeline_forward (p, ctx, image, FALSE, &local);
  if (!out)
    {
      g_set_error (error, ST_ERROR, local->code, "%s: %s", job_name (job), local->message);
      return FALSE;
    }
  if (!check_output_channels (job, out, error))
    return FALSE;
  /* Alpha passes through unchanged when the picture keeps its size. */
  if (alpha && out->shape.h == alpha->shape.h && out->shape.w == alpha->shape.w)
    {
      StTensor *joined = join_alpha (out, alpha);
      st_tensor_free (out);
      out = joined;
    }

  if (check_interrupted (job, error) || !make_output_folder (job, error))
    return FALSE;
  int depth = job->format == ST_FORMAT_PNG ? info.bit_depth : 8;
  return st_image_save (out, job->output, job->format, depth, run->opt->jpeg_quality, error);
}

/* One worker's own pipeline copy and context, made before any thread
 * starts so that a failure stops the run before any image is read. */
typedef struct {
  Run *run;
  StPipeline *pipeline;
  StRunContext *ctx;
  GThread *thread;
} Worker;

static gpointer
worker (gpointer data)
{
  Worker *self = data;
  Run *run = self->run;
  Scratch scratch = { { NULL } };

  g_mutex_lock (&run->lock);
  while (!run->go && !run->abandon)
    g_cond_wait (&run->gate, &run->lock);
  gboolean abandon = run->abandon;
  g_mutex_unlock (&run->lock);

  while (!abandon && !interrupted)
    {
      g_mutex_lock (&run->lock);
      guint index = run->next_job++;
      g_mutex_unlock (&run->lock);
      if (index >= run->jobs->len)
        break;
      Job *job = run->jobs->pdata[index];

      Outcome outcome;
      g_autoptr (GError) local = NULL;
      if (job->skip)
        outcome = OUTCOME_SKIPPED;
      else if (run_one (run, self->pipeline, self->ctx, &scratch, job, &local))
        outcome = OUTCOME_WRITTEN;
      else if (g_error_matches (local, ST_ERROR, ST_ERROR_INTERRUPTED))
        outcome = OUTCOME_INTERRUPTED;
      else
        outcome = OUTCOME_FAILED;

      g_mutex_lock (&run->lock);
      job->outcome = outcome;
      run->done++;
      if (outcome == OUTCOME_FAILED)
        report_failure (run, "%s", local->message);
      draw_progress (run, FALSE);
      g_mutex_unlock (&run->lock);
    }
  scratch_clear (&scratch);
  return NULL;
}

static void
workers_free (Worker *workers, int n)
{
  for (int i = 0; i < n; i++)
    {
      st_run_context_free (workers[i].ctx);
      st_pipeline_free (workers[i].pipeline);
    }
  g_free (workers);
}

/* Runs the planned jobs on n_workers workers (the calling thread is one)
 * of threads_per_worker threads each, with SIGINT and SIGTERM caught
 * meanwhile.  FALSE with error set when a worker cannot be started; no
 * image has been read then. */
static gboolean
run_jobs (Run *run, StPipeline *pipeline, int n_workers, int threads_per_worker,
          GError **error)
{
  Worker *workers = g_new0 (Worker, n_workers);
  for (int i = 0; i < n_workers; i++)
    {
      workers[i].run = run;
      workers[i].pipeline = st_pipeline_copy (pipeline, error);
      if (!workers[i].pipeline)
        {
          workers_free (workers, n_workers);
          return FALSE;
        }
      workers[i].ctx = st_run_context_try_new (threads_per_worker, 0, error);
      if (!workers[i].ctx)
        {
          workers_free (workers, n_workers);
          return FALSE;
        }
    }

  interrupted = 0;
  /* SA_RESTART: a read from a pipe that the signal breaks into goes on,
   * so the image is abandoned as interrupted, not failed as unreadable. */
  struct sigaction action = { .sa_handler = on_interrupt, .sa_flags = SA_RESETHAND | SA_RESTART };
  sigemptyset (&action.sa_mask);
  struct sigaction old_int, old_term;
  sigaction (SIGINT, &action, &old_int);
  sigaction (SIGTERM, &action, &old_term);

  int started = 1;
  g_autoptr (GError) local = NULL;
  for (; started < n_workers; started++)
    {
      workers[started].thread = g_thread_try_new ("strata-run", worker, &workers[started], &local);
      if (!workers[started].thread)
        break;
    }
  g_mutex_lock (&run->lock);
  run->go = started == n_workers;
  run->abandon = !run->go;
  g_cond_broadcast (&run->gate);
  g_mutex_unlock (&run->lock);
  if (run->go)
    worker (&workers[0]);
  for (int i = 1; i < started; i++)
    g_thread_join (workers[i].thread);

  sigaction (SIGINT, &old_int, NULL);
  sigaction (SIGTERM, &old_term, NULL);
  workers_free (workers, n_workers);
  if (local)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_FAILED,
                   "cannot start worker thread %d of %d: %s (ask for fewer with -j)",
                   started + 1, n_workers, local->message);
      return FALSE;
    }
  return TRUE;
}

/* CSV fields with commas, quotes or line breaks are quoted (RFC 4180). */
static void
append_csv_field (GString *s, const char *field)
{
  if (!strpbrk (field, ",\"\r\n"))
    {
      g_string_append (s, field);
      return;
    }
  g_string_append_c (s, '"');
  for (const char *c = field; *c; c++)
    {
      if (*c == '"')
        g_string_append_c (s, '"');
      g_string_append_c (s, *c);
    }
  g_string_append_c (s, '"');
}

/* One JSON object on one line: {"path", "label", "probability", "top": [...]}. */
static void
append_json_line (GString *s, const char *path, char **names, const float *probs,
                  const int *order, int k)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "path");
  json_builder_add_string_value (b, path);
  json_builder_set_member_name (b, "label");
  json_builder_add_string_value (b, names[order[0]]);
  json_builder_set_member_name (b, "probability");
  json_builder_add_double_value (b, probs[order[0]]);
  json_builder_set_member_name (b, "top");
  json_builder_begin_array (b);
  for (int i = 0; i < k; i++)
    {
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "label");
      json_builder_add_string_value (b, names[order[i]]);
      json_builder_set_member_name (b, "probability");
      json_builder_add_double_value (b, probs[order[i]]);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  g_autofree char *text = json_generator_to_data (gen, NULL);
  g_string_append (s, text);
  g_string_append_c (s, '\n');
}

/* One row per image that ran, in input order: the path, the best label and
 * its probability, then the top k labels with theirs. */
static gboolean
write_predictions (const StPipeline *p, GPtrArray *jobs, const StRunOptions *opt,
                   const char *path, GError **error)
{
  int n_classes = st_pipeline_output_shape (p).c;
  int k = MIN (opt->top_k > 0 ? opt->top_k : 5, n_classes);
  g_auto (GStrv) names = st_pipeline_class_names (p, NULL);
  g_autoptr (GString) out = g_string_new (NULL);
  if (!opt->jsonl)
    {
      g_string_append (out, "path,label,probability");
      for (int i = 2; i <= k; i++)
        g_string_append_printf (out, ",label_%d,probability_%d", i, i);
      g_string_append_c (out, '\n');
    }
  g_autofree int *order = g_new (int, n_classes);
  for (guint j = 0; j < jobs->len; j++)
    {
      Job *job = jobs->pdata[j];
      if (!job->probabilities)
        continue;
      for (int c = 0; c < n_classes; c++)
        order[c] = c;
      /* Top k by probability; ties keep class order. */
      for (int a = 0; a < k; a++)
        for (int b = a + 1; b < n_classes; b++)
          if (job->probabilities[order[b]] > job->probabilities[order[a]])
            {
              int t = order[a];
              order[a] = order[b];
              order[b] = t;
            }
      if (opt->jsonl)
        append_json_line (out, job->input, names, job->probabilities, order, k);
      else
        {
          append_csv_field (out, job->input);
          for (int i = 0; i < k; i++)
            {
              g_string_append_c (out, ',');
              append_csv_field (out, names[order[i]]);
              g_string_append_printf (out, ",%.6f", job->probabilities[order[i]]);
            }
          g_string_append_c (out, '\n');
        }
    }
  if (!path)
    {
      fputs (out->str, stdout);
      fflush (stdout);
      return TRUE;
    }
  StAtomicFile *file = st_atomic_file_new (path, ST_ERROR_IO, ST_ATOMIC_FILE_SYNC, error);
  if (!file)
    return FALSE;
  /* A short write leaves the stream's error indicator set: commit reports it. */
  fwrite (out->str, 1, out->len, st_atomic_file_stream (file));
  return st_atomic_file_commit (file, error);
}

static gboolean
ends_with_slash (const char *path)
{
  gsize len = strlen (path);
  return len > 0 && path[len - 1] == G_DIR_SEPARATOR;
}

/* Makes folder (and its parents) and checks that files can be created in
 * it, before any image is read: an output that cannot be written is
 * reported once, not once per image. */
static gboolean
prepare_output_folder (const char *folder, GError **error)
{
  if (g_mkdir_with_parents (folder, 0777) != 0)
    {
      int saved = errno;
      g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: cannot create the output folder: %s",
                   folder, g_strerror (saved));
      return FALSE;
    }
  return st_atomic_check_folder (folder, ST_ERROR_IO, error);
}

gboolean
st_run_images (StPipeline *pipeline, const char *const *inputs,
               const StRunOptions *opt, StRunSummary *summary, GError **error)
{
  memset (summary, 0, sizeof *summary);
  const gboolean classify = st_pipeline_is_classifier (pipeline);
  const int n_inputs = inputs ? g_strv_length ((char **) inputs) : 0;
  if (n_inputs == 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE, "no input images given");
      return FALSE;
    }
  if (opt->jobs > ST_MAX_THREADS)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE, "%d threads asked for; at most %d are allowed",
                   opt->jobs, ST_MAX_THREADS);
      return FALSE;
    }
  int n_stdin = 0;
  gboolean any_folder = FALSE;
  for (int i = 0; i < n_inputs; i++)
    {
      n_stdin += strcmp (inputs[i], "-") == 0;
      any_folder |= g_file_test (inputs[i], G_FILE_TEST_IS_DIR);
    }

  /* Where the outputs go.  Images: -o - is standard output (one image);
   * -o names a folder when it is one, ends in '/', or there are several
   * inputs or a folder among them; otherwise it names the output image and
   * must end in .png, .jpg or .jpeg. */
  const char *predictions = NULL;  /* a classifier's file; NULL: stdout */
  const char *out_root = NULL;     /* the folder mirrored under, for folder runs */
  const char *out_file = NULL;     /* the one output, otherwise */
  const char *o = opt->output;
  if (classify)
    {
      if (o && strcmp (o, "-") != 0)
        {
          if (g_file_test (o, G_FILE_TEST_IS_DIR) || ends_with_slash (o))
            {
              g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                           "%s: is a folder; a classifier writes one predictions file (-o FILE.csv)",
                           o);
              return FALSE;
            }
          if (!opt->overwrite && g_file_test (o, G_FILE_TEST_EXISTS))
            {
              g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                           "%s: exists (use --overwrite to replace it)", o);
              return FALSE;
            }
          predictions = o;
        }
      out_root = ".";
    }
  else if (!o)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                   "no output given (expected -o FILE, -o FOLDER/ or -o - for standard output)");
      return FALSE;
    }
  else if (strcmp (o, "-") == 0)
    {
      if (n_inputs != 1 || any_folder)
        {
          g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                       "-o -: standard output takes one image, not a folder or several");
          return FALSE;
        }
      if (isatty (STDOUT_FILENO))
        {
          g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                       "-o -: standard output is a terminal; redirect it to a file or a pipe");
          return FALSE;
        }
      out_file = o;
    }
  else if (g_file_test (o, G_FILE_TEST_IS_DIR) || ends_with_slash (o) || n_inputs > 1
           || any_folder)
    {
      if (!g_file_test (o, G_FILE_TEST_IS_DIR) && g_file_test (o, G_FILE_TEST_EXISTS))
        {
          g_set_error (error, ST_ERROR, ST_ERROR_USAGE, "%s: exists and is not a folder; "
                       "several inputs or a folder need an output folder", o);
          return FALSE;
        }
      if (!g_file_test (o, G_FILE_TEST_IS_DIR) && !ends_with_slash (o) && is_image_name (o))
        {
          g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                       "%s: several inputs or a folder need an output folder, not an image "
                       "name (end it with '/' to make a folder of that name)", o);
          return FALSE;
        }
      if (n_stdin)
        {
          g_set_error (error, ST_ERROR, ST_ERROR_USAGE, "-: standard input needs -o FILE or "
                       "-o -; an output folder has no name for it");
          return FALSE;
        }
      out_root = o;
    }
  else
    {
      StImageFormat named = st_image_format_from_name (o);
      if (named == ST_FORMAT_UNKNOWN)
        {
          g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                       "%s: not a .png, .jpg or .jpeg name (to write into a folder of that "
                       "name, end it with '/')", o);
          return FALSE;
        }
      if (opt->format && opt->format != named)
        {
          g_set_error (error, ST_ERROR, ST_ERROR_USAGE, "%s: the name says %s but --format says %s",
                       o, named == ST_FORMAT_PNG ? "PNG" : "JPEG",
                       opt->format == ST_FORMAT_PNG ? "PNG" : "JPEG");
          return FALSE;
        }
      out_file = o;
    }

  /* Every job, before any image is read. */
  g_autoptr (GPtrArray) jobs = g_ptr_array_new_with_free_func (job_free);
  g_autoptr (GHashTable) seen_dirs = g_hash_table_new_full (file_id_hash, file_id_equal, g_free, NULL);
  g_autoptr (GArray) chain = g_array_new (FALSE, FALSE, sizeof (FileId));
  g_autoptr (GPtrArray) chain_paths = g_ptr_array_new ();
  Plan plan = { .opt = opt, .jobs = jobs, .seen_dirs = seen_dirs, .chain = chain,
                .chain_paths = chain_paths };
  GStatBuf st;
  if (out_root && !classify && g_stat (out_root, &st) == 0 && S_ISDIR (st.st_mode))
    {
      plan.has_out_root = TRUE;
      plan.out_root = (FileId) { st.st_dev, st.st_ino };
    }
  for (int i = 0; i < n_inputs; i++)
    {
      const char *in = inputs[i];
      if (strcmp (in, "-") == 0)
        add_job (&plan, in, out_file ? out_file : "-", out_file && strcmp (out_file, "-") != 0
                 ? st_image_format_from_name (out_file) : opt->format);
      else if (g_stat (in, &st) != 0)
        plan_report (&plan, "%s: no such file or folder", in);
      else if (S_ISDIR (st.st_mode))
        walk_folder (&plan, in, out_root, &st, TRUE);
      else if (out_file)
        add_job (&plan, in, out_file, strcmp (out_file, "-") != 0
                 ? st_image_format_from_name (out_file) : folder_job_format (opt, in));
      else
        {
          /* A file named on the command line is read whatever it is (a pipe
           * from <(...) too); folders are searched for image names only. */
          g_autofree char *base = g_path_get_basename (in);
          g_autofree char *out = g_build_filename (out_root, base, NULL);
          add_job (&plan, in, out, folder_job_format (opt, in));
        }
    }
  if (!check_plan (&plan, classify, predictions, error))
    return FALSE;
  if (jobs->len == 0)
    {
      summary->failed = plan.failed;
      if (plan.failed)
        return TRUE;
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                   "no images found (expected .png, .jpg or .jpeg files)");
      return FALSE;
    }

  /* The outputs can be written, before any image is read. */
  gboolean writes = FALSE;
  for (guint i = 0; i < jobs->len; i++)
    writes |= !((Job *) jobs->pdata[i])->skip;
  if (writes || predictions)
    {
      g_autofree char *parent = out_file ? g_path_get_dirname (out_file)
                                : predictions ? g_path_get_dirname (predictions) : NULL;
      if (out_file && strcmp (out_file, "-") == 0)
        ;
      else if (!prepare_output_folder (parent ? parent : out_root, error))
        return FALSE;
    }

  int threads = opt->jobs > 0 ? opt->jobs : MIN ((int) g_get_num_processors (), ST_MAX_THREADS);
  int workers = MAX (1, MIN (threads, (int) jobs->len));
  Run run = {
    .total = jobs->len,
    .jobs = jobs,
    .opt = opt,
    .show = !opt->quiet && isatty (STDERR_FILENO),
    .start_us = g_get_monotonic_time (),
    .classify = classify,
  };
  g_mutex_init (&run.lock);
  g_cond_init (&run.gate);
  /* Fewer images than threads: the spare threads work inside each image. */
  gboolean ok = run_jobs (&run, pipeline, workers, MAX (1, threads / workers), error);
  g_mutex_clear (&run.lock);
  g_cond_clear (&run.gate);
  if (!ok)
    return FALSE;
  draw_progress (&run, TRUE);
  clear_line (&run);

  for (guint i = 0; i < jobs->len; i++)
    {
      const Job *job = jobs->pdata[i];
      switch (job->outcome)
        {
        case OUTCOME_WRITTEN:
          summary->written++;
          summary->in_strips += job->in_strips;
          break;
        case OUTCOME_SKIPPED:
          summary->skipped++;
          break;
        case OUTCOME_FAILED:
          summary->failed++;
          break;
        case OUTCOME_PENDING:
        case OUTCOME_INTERRUPTED:
          summary->interrupted++;
          break;
        }
    }
  summary->failed += plan.failed;
  /* Predictions of an interrupted run are not written: a table that
   * looks complete would mislead. */
  if (classify && !summary->interrupted)
    return write_predictions (pipeline, jobs, opt, predictions, error);
  return TRUE;
}
