/* strata — planning a run: jobs, identity checks, collisions. */
#include "plan.h"
#include "atomic.h"
#include "param.h"

#include <glib/gstdio.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void
st_job_free (gpointer p)
{
  StJob *job = p;
  g_free (job->input);
  g_free (job->output);
  g_free (job->probabilities);
  g_free (job);
}

const char *
st_job_name (const StJob *job)
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
  /* PNM's first extension is .pgm; a converted file is named .pnm, which
   * fits gray and color alike. */
  const char *ext = format == ST_FORMAT_PNM ? "pnm" : st_image_format_extension (format);
  return g_strdup_printf ("%.*s.%s", (int) stem, path, ext);
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
  guint ignored;               /* files in folders that are not images strata reads */
} Plan;

static void
say_v (const StRunOptions *opt, const char *fmt, va_list ap)
{
  if (!opt->message)
    return;
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  opt->message (msg, opt->user_data);
}

void
st_run_message (const StRunOptions *opt, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  say_v (opt, fmt, ap);
  va_end (ap);
}

static void
plan_report (Plan *plan, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

/* An input that cannot be used: said, and counted as failed. */
static void
plan_report (Plan *plan, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  say_v (plan->opt, fmt, ap);
  va_end (ap);
  plan->failed++;
}

static void
add_job (Plan *plan, const char *input, const char *output, StImageFormat format)
{
  StJob *job = g_new0 (StJob, 1);
  job->input = g_strdup (input);
  job->format = format;
  if (format != ST_FORMAT_UNKNOWN && strcmp (output, "-") != 0
      && st_image_format_from_name (output) != format)
    job->output = replace_extension (output, format);
  else
    job->output = g_strdup (output);
  g_ptr_array_add (plan->jobs, job);
}

/* A file in a folder with no image format's extension: counted, and
 * named with --verbose, so that nothing a folder holds passes unsaid. */
static void
ignore_file (Plan *plan, const char *path)
{
  plan->ignored++;
  if (plan->opt->verbose)
    st_run_message (plan->opt, "%s: not an image format strata reads; ignored", path);
}

/* The format a regular file is read as: the one its first bytes say,
 * whatever its name (a note tells a name that says another, unless
 * --quiet); else the one its name says (the reader then says what is
 * wrong with it), or ST_FORMAT_UNKNOWN, not an image. */
static StImageFormat
input_format (const StRunOptions *opt, const char *path)
{
  const StImageFormat named = st_image_format_from_name (path);
  const StImageFormat found = st_image_format_from_content (path);
  if (found == ST_FORMAT_UNKNOWN)
    return named;
  if (named != ST_FORMAT_UNKNOWN && named != found && !opt->quiet)
    st_run_message (opt, "%s: a %s named %s; read as %s", path, st_image_format_label (found),
                    strrchr (path, '.'), st_image_format_label (found));
  return found;
}

/* The format an input read as format is written in. */
static StImageFormat
job_format (const StRunOptions *opt, StImageFormat format)
{
  return opt->format ? opt->format : st_image_output_format (format);
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
        st_run_message (plan->opt, "%s: symbolic link loop (it leads back to %s); not followed",
                        dir, (char *) plan->chain_paths->pdata[i]);
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
  g_autoptr (GPtrArray) names = st_dir_sorted_names (d);
  for (guint i = 0; i < names->len; i++)
    {
      const char *n = names->pdata[i];
      g_autofree char *path = g_build_filename (dir, n, NULL);
      g_autofree char *out = g_build_filename (out_dir, n, NULL);
      GStatBuf s;
      if (g_stat (path, &s) != 0)
        {
          if (is_image_name (n))
            plan_report (plan, "%s: cannot read: %s", path, g_strerror (errno));
          else
            ignore_file (plan, path);
          continue;
        }
      if (S_ISDIR (s.st_mode))
        walk_folder (plan, path, out, &s, FALSE);
      else if (S_ISREG (s.st_mode))
        {
          /* Taken by content, or by name when the content is not one
           * strata knows (a damaged image is then reported, not ignored). */
          const StImageFormat format = input_format (plan->opt, path);
          if (format == ST_FORMAT_UNKNOWN)
            ignore_file (plan, path);
          else
            add_job (plan, path, out, job_format (plan->opt, format));
        }
      else if (!is_image_name (n))
        ignore_file (plan, path);
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
plan_problem (const StRunOptions *opt, guint *problems, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static void
plan_problem (const StRunOptions *opt, guint *problems, const char *fmt, ...)
{
  if (++*problems > MAX_PLAN_LINES)
    return;
  va_list ap;
  va_start (ap, fmt);
  say_v (opt, fmt, ap);
  va_end (ap);
}

/* What check_plan knows of the jobs, index by index. */
typedef struct {
  Plan *plan;
  guint n;
  FileId *ids;                 /* each input's identity, where has_id */
  gboolean *has_id;
  GHashTable *inputs;          /* FileId -> the first job reading that file */
  guint *next_same;            /* index + 1 of the next job writing the same output */
  gboolean *drop;              /* the same input planned again for the same output */
  gboolean *collides;          /* the first of several inputs with one output */
  guint problems;
} Check;

static void
check_clear (Check *c)
{
  g_free (c->ids);
  g_free (c->has_id);
  g_clear_pointer (&c->inputs, g_hash_table_unref);
  g_free (c->next_same);
  g_free (c->drop);
  g_free (c->collides);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Check, check_clear)

/* Every input's identity, and the first job of each. */
static void
identify_inputs (Check *c)
{
  GPtrArray *jobs = c->plan->jobs;
  for (guint i = 0; i < c->n; i++)
    {
      const StJob *job = jobs->pdata[i];
      GStatBuf st;
      if (strcmp (job->input, "-") != 0 && g_stat (job->input, &st) == 0)
        {
          c->ids[i] = (FileId) { st.st_dev, st.st_ino };
          c->has_id[i] = TRUE;
          if (!g_hash_table_contains (c->inputs, &c->ids[i]))
            g_hash_table_insert (c->inputs, file_id_dup (&st), jobs->pdata[i]);
        }
    }
}

/* Job i writes where an earlier job does (first: index + 1 of the first
 * one there): the same input again is dropped, another one collides. */
static void
note_same_output (Check *c, guint i, guint first)
{
  guint last = first - 1;
  gboolean again = FALSE;
  for (guint j = first - 1;; j = c->next_same[j] - 1)
    {
      again |= c->has_id[i] && c->has_id[j] && file_id_equal (&c->ids[i], &c->ids[j]);
      last = j;
      if (!c->next_same[j])
        break;
    }
  if (again)
    c->drop[i] = TRUE;
  else
    {
      c->next_same[last] = i + 1;
      c->collides[first - 1] = TRUE;
    }
}

/* Outputs that are inputs are problems; outputs planned twice are noted;
 * existing outputs are skipped unless --overwrite. */
static void
check_outputs (Check *c)
{
  GPtrArray *jobs = c->plan->jobs;
  const StRunOptions *opt = c->plan->opt;
  /* Jobs by output: key -> index + 1 of the first job writing there. */
  g_autoptr (GHashTable) by_output = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < c->n; i++)
    {
      StJob *job = jobs->pdata[i];
      if (strcmp (job->output, "-") == 0)
        continue;
      g_autofree char *key = output_key (job->output);
      guint first = GPOINTER_TO_UINT (g_hash_table_lookup (by_output, key));
      if (first)
        {
          note_same_output (c, i, first);
          continue;
        }
      g_hash_table_insert (by_output, g_steal_pointer (&key), GUINT_TO_POINTER (i + 1));
      GStatBuf st;
      if (g_stat (job->output, &st) != 0)
        continue;
      const FileId out_id = { st.st_dev, st.st_ino };
      const StJob *owner = g_hash_table_lookup (c->inputs, &out_id);
      if (owner == job)
        plan_problem (opt, &c->problems, "%s: its output %s is the input itself; an input is "
                      "never replaced", st_job_name (job), job->output);
      else if (owner)
        plan_problem (opt, &c->problems, "%s: an input; the output of %s would replace it",
                      owner->input, st_job_name (job));
      else if (!opt->overwrite)
        job->skip = TRUE;
    }
}

/* One line for each output that several inputs would write. */
static void
report_collisions (Check *c)
{
  GPtrArray *jobs = c->plan->jobs;
  for (guint i = 0; i < c->n; i++)
    {
      if (!c->collides[i])
        continue;
      g_autoptr (GString) names = g_string_new (NULL);
      guint count = 0;
      for (guint j = i;; j = c->next_same[j] - 1)
        {
          const StJob *job = jobs->pdata[j];
          g_string_append_printf (names, "%s%s", count++ ? ", " : "", st_job_name (job));
          if (!c->next_same[j])
            break;
        }
      plan_problem (c->plan->opt, &c->problems, "%s: the output of %u inputs: %s",
                    ((StJob *) jobs->pdata[i])->output, count, names->str);
    }
}

/* Drops the repeats, keeping the order. */
static void
drop_repeats (Check *c)
{
  GPtrArray *jobs = c->plan->jobs;
  gsize len;
  gpointer *all = g_ptr_array_steal (jobs, &len);
  for (gsize i = 0; i < len; i++)
    {
      if (c->drop[i])
        st_job_free (all[i]);
      else
        g_ptr_array_add (jobs, all[i]);
    }
  g_free (all);
}

/* Refuses a plan in which an output is an input (whether or not
 * --overwrite was given: an input is never replaced, not even by its own
 * output) or several inputs have one output, naming them through
 * opt->message; drops a job planned twice (one file named twice, or a
 * folder and a file in it); marks the jobs whose output exists as skipped
 * unless --overwrite.  A classifier's jobs have no outputs; its
 * predictions file (or NULL: standard output) is checked against the
 * inputs. */
static gboolean
check_plan (Plan *plan, gboolean classify, const char *predictions, GError **error)
{
  const guint n = plan->jobs->len;
  g_auto (Check) c = {
    .plan = plan, .n = n, .ids = g_new0 (FileId, n), .has_id = g_new0 (gboolean, n),
    .inputs = g_hash_table_new_full (file_id_hash, file_id_equal, g_free, NULL),
    .next_same = g_new0 (guint, n), .drop = g_new0 (gboolean, n),
    .collides = g_new0 (gboolean, n),
  };
  identify_inputs (&c);
  GStatBuf st;
  if (predictions && g_stat (predictions, &st) == 0)
    {
      const FileId out_id = { st.st_dev, st.st_ino };
      const StJob *owner = g_hash_table_lookup (c.inputs, &out_id);
      if (owner)
        plan_problem (plan->opt, &c.problems,
                      "%s: an input image; the predictions would replace it", owner->input);
    }
  if (!classify)
    {
      check_outputs (&c);
      report_collisions (&c);
    }
  if (c.problems)
    {
      if (c.problems > MAX_PLAN_LINES)
        st_run_message (plan->opt, "(and %u more)", c.problems - MAX_PLAN_LINES);
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                   "nothing was run: %u planned output%s would replace an input or be "
                   "written from several inputs (choose another -o or --format, or rename "
                   "the inputs)", c.problems, c.problems == 1 ? "" : "s");
      return FALSE;
    }
  drop_repeats (&c);
  return TRUE;
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

/* Where the outputs go.  Images: -o - is standard output (one image);
 * -o names a folder when it is one, ends in '/', or there are several
 * inputs or a folder among them; otherwise it names the output image and
 * must end in an image extension (.png, .jpg, .tif, .webp...). */
typedef struct {
  const char *predictions;     /* a classifier's file; NULL: the predictions callback */
  const char *out_root;        /* the folder mirrored under, for folder runs */
  const char *out_file;        /* the one output, otherwise */
} Outputs;

/* A classifier writes one predictions file: -o FILE, or standard output. */
static gboolean
resolve_predictions (const StRunOptions *opt, Outputs *outputs, GError **error)
{
  const char *o = opt->output;
  *outputs = (Outputs) { .out_root = "." };
  if (!o || strcmp (o, "-") == 0)
    return TRUE;
  if (g_file_test (o, G_FILE_TEST_IS_DIR) || ends_with_slash (o))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                   "%s: is a folder; a classifier writes one predictions file (-o FILE.csv)", o);
      return FALSE;
    }
  if (!opt->overwrite && g_file_test (o, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE, "%s: exists (use --overwrite to replace it)", o);
      return FALSE;
    }
  outputs->predictions = o;
  return TRUE;
}

static gboolean
resolve_outputs (const char *const *inputs, int n_inputs, const StRunOptions *opt,
                 gboolean classify, Outputs *outputs, GError **error)
{
  if (classify)
    return resolve_predictions (opt, outputs, error);
  int n_stdin = 0;
  gboolean any_folder = FALSE;
  for (int i = 0; i < n_inputs; i++)
    {
      n_stdin += strcmp (inputs[i], "-") == 0;
      any_folder |= g_file_test (inputs[i], G_FILE_TEST_IS_DIR);
    }

  const char *out_root = NULL;     /* the folder mirrored under, for folder runs */
  const char *out_file = NULL;     /* the one output, otherwise */
  const char *o = opt->output;
  if (!o)
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
          g_autofree char *names = st_image_extension_list (".", " or ");
          g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                       "%s: not a %s name (to write into a folder of that name, end it with '/')",
                       o, names);
          return FALSE;
        }
      if (opt->format && opt->format != named)
        {
          g_set_error (error, ST_ERROR, ST_ERROR_USAGE, "%s: the name says %s but --format says %s",
                       o, st_image_format_label (named), st_image_format_label (opt->format));
          return FALSE;
        }
      out_file = o;
    }

  *outputs = (Outputs) { NULL, out_root, out_file };
  return TRUE;
}

gboolean
st_plan_jobs (const char *const *inputs, const StRunOptions *opt, gboolean classify,
              StJobPlan *result, GError **error)
{
  const int n_inputs = g_strv_length ((char **) inputs);
  Outputs outputs;
  if (!resolve_outputs (inputs, n_inputs, opt, classify, &outputs, error))
    return FALSE;
  const char *predictions = outputs.predictions;
  const char *out_root = outputs.out_root;
  const char *out_file = outputs.out_file;

  /* Every job, before any image is read. */
  g_autoptr (GPtrArray) jobs = g_ptr_array_new_with_free_func (st_job_free);
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
      else
        {
          /* A file named on the command line is read whatever it is (a pipe
           * from <(...) too, whose bytes are not looked at before); its
           * format, when its content tells it, names the output. */
          const StImageFormat format = S_ISREG (st.st_mode)
            ? input_format (opt, in) : st_image_format_from_name (in);
          if (out_file)
            add_job (&plan, in, out_file, strcmp (out_file, "-") != 0
                     ? st_image_format_from_name (out_file) : job_format (opt, format));
          else
            {
              g_autofree char *base = g_path_get_basename (in);
              g_autofree char *out = g_build_filename (out_root, base, NULL);
              add_job (&plan, in, out, job_format (opt, format));
            }
        }
    }
  if (!check_plan (&plan, classify, predictions, error))
    return FALSE;
  if (jobs->len == 0)
    {
      result->jobs = g_steal_pointer (&jobs);
      result->failed = plan.failed;
      result->ignored = plan.ignored;
      if (plan.failed)
        return TRUE;
      st_job_plan_clear (result);
      g_autofree char *ignored = plan.ignored
        ? g_strdup_printf ("; %u other files ignored (--verbose names them)", plan.ignored)
        : g_strdup ("");
      g_autofree char *names = st_image_extension_list (".", " or ");
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE, "no images found (expected %s files)%s",
                   names, ignored);
      return FALSE;
    }

  /* The outputs can be written, before any image is read. */
  gboolean writes = FALSE;
  for (guint i = 0; i < jobs->len; i++)
    writes |= !((StJob *) jobs->pdata[i])->skip;
  if (writes || predictions)
    {
      g_autofree char *parent = out_file ? g_path_get_dirname (out_file)
                                : predictions ? g_path_get_dirname (predictions) : NULL;
      if (out_file && strcmp (out_file, "-") == 0)
        ;
      else if (!prepare_output_folder (parent ? parent : out_root, error))
        return FALSE;
    }

  result->jobs = g_steal_pointer (&jobs);
  result->predictions = predictions;
  result->failed = plan.failed;
  result->ignored = plan.ignored;
  return TRUE;
}

void
st_job_plan_clear (StJobPlan *plan)
{
  g_clear_pointer (&plan->jobs, g_ptr_array_unref);
}

/* Where the output goes; created before the first row is written. */
gboolean
st_job_make_output_folder (const StJob *job, GError **error)
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

gboolean
st_job_check_output_channels (const StJob *job, const StTensor *out, GError **error)
{
  if (out->shape.c == 1 || out->shape.c == 3)
    return TRUE;
  g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
               "%s: the pipeline's output has %d channels; an image needs 1 or 3",
               st_job_name (job), out->shape.c);
  return FALSE;
}

