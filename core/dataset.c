/* strata — labelled datasets: image folders with one subfolder per class,
 * and what every dataset has (split, truncate, free); IDX files are read
 * by idx.c.
 *
 * A dataset with n == 0 (only what st_dataset_split or st_dataset_truncate
 * can leave) has x == NULL and labels == NULL. */
#include "dataset.h"
#include "context.h"
#include "image.h"
#include "param.h"

#include <stdio.h>
#include <string.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

/* Folders nested deeper than this inside a class folder are not searched
 * (links are followed, and loops are caught by inode, but a tree this deep
 * is no image collection). */
#define FOLDER_MAX_DEPTH 32

/* ---- Image folders ----------------------------------------------------- */

char *
st_dataset_folder_name (const char *label)
{
  GString *out = g_string_new (NULL);
  for (const guchar *c = (const guchar *) label; *c; c++)
    g_string_append_c (out, *c < 0x20 || *c == 0x7f || strchr ("/\\:*?\"<>|", *c) ? '_' : (char) *c);
  /* Hidden folders are skipped, and "." and ".." are not folders of their own. */
  if (out->len == 0 || out->str[0] == '.')
    g_string_prepend_c (out, '_');
  return g_string_free (out, FALSE);
}

/* Subfolder names of dir (hidden ones skipped), sorted. */
static GPtrArray *
list_subfolders (const char *dir, GError **error)
{
  GError *local = NULL;
  g_autoptr (GDir) d = g_dir_open (dir, 0, &local);
  if (!d)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: cannot open folder: %s", dir,
                   local->message);
      g_error_free (local);
      return NULL;
    }
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  while ((name = g_dir_read_name (d)))
    {
      if (name[0] == '.')
        continue;
      g_autofree char *path = g_build_filename (dir, name, NULL);
      if (g_file_test (path, G_FILE_TEST_IS_DIR))
        g_ptr_array_add (names, g_strdup (name));
    }
  g_ptr_array_sort (names, st_compare_strings);
  return names;
}

/* Marks dir as searched; FALSE when it already was (a link back up the
 * tree, or a second link to one folder).  visited: "dev:ino" strings. */
static gboolean
first_visit (const char *dir, GHashTable *visited)
{
  GStatBuf st;
  if (g_stat (dir, &st) != 0)
    return TRUE;                 /* g_dir_open reports it */
  char *key = g_strdup_printf ("%" G_GUINT64_FORMAT ":%" G_GUINT64_FORMAT,
                               (guint64) st.st_dev, (guint64) st.st_ino);
  return g_hash_table_add (visited, key);
}

/* One st_dataset_load_folder call: what it was given and what it found. */
typedef struct {
  const char *dir;
  StSampleFunc convert;
  StMessageFunc message;
  gpointer user_data;
  guint64 max_pixels;
  char **classes;              /* the class names, in label order */
  GPtrArray *class_folders;    /* where each class's images are (NULL: none) */
  GPtrArray *paths;            /* every image, class by class */
  GArray *path_class;          /* the label of each path */
  guint n_skipped;
} FolderLoad;

static void
folder_load_clear (FolderLoad *load)
{
  g_strfreev (load->classes);
  g_clear_pointer (&load->class_folders, g_ptr_array_unref);
  g_clear_pointer (&load->paths, g_ptr_array_unref);
  g_clear_pointer (&load->path_class, g_array_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (FolderLoad, folder_load_clear)

static void
folder_say (const FolderLoad *load, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

/* A file or folder passed over, said through load->message. */
static void
folder_say (const FolderLoad *load, const char *fmt, ...)
{
  if (!load->message)
    return;
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *line = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  load->message (line, load->user_data);
}

/* Appends every PNG or JPEG under dir (recursively) to load->paths,
 * searching each folder once however many links lead to it; dir itself
 * (depth 0, a class folder) is marked by the caller.  A folder that cannot
 * be listed is reported like an unreadable image. */
static void
collect_images (FolderLoad *load, const char *dir, int depth, GHashTable *visited)
{
  if (depth > 0 && !first_visit (dir, visited))
    {
      folder_say (load, "%s: a folder already searched (a link loop?); not searched again", dir);
      return;
    }
  GError *local = NULL;
  g_autoptr (GDir) d = g_dir_open (dir, 0, &local);
  if (!d)
    {
      folder_say (load, "%s: cannot open folder: %s", dir, local->message);
      g_error_free (local);
      load->n_skipped++;
      return;
    }
  const char *name;
  while ((name = g_dir_read_name (d)))
    {
      if (name[0] == '.')
        continue;
      char *path = g_build_filename (dir, name, NULL);
      if (g_file_test (path, G_FILE_TEST_IS_DIR))
        {
          if (depth < FOLDER_MAX_DEPTH)
            collect_images (load, path, depth + 1, visited);
          g_free (path);
        }
      else if (st_image_format_from_name (name) != ST_FORMAT_UNKNOWN)
        g_ptr_array_add (load->paths, path);
      else
        g_free (path);
    }
}

/* The classes are class_names, in that order: each subfolder of the
 * top folder must be one of them (by st_dataset_folder_name), and no two
 * may be the same class. */
static gboolean
map_listed_classes (FolderLoad *load, GPtrArray *folders, const char *const *class_names,
                    GError **error)
{
  const char *dir = load->dir;
  char **classes = load->classes = g_strdupv ((char **) class_names);
  guint n = g_strv_length (classes);
  g_ptr_array_set_size (load->class_folders, n);
  g_autoptr (GHashTable) by_folder = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint c = 0; c < n; c++)
    {
      char *safe = st_dataset_folder_name (classes[c]);
      gpointer other;
      if (g_hash_table_lookup_extended (by_folder, safe, NULL, &other))
        {
          g_set_error (error, ST_ERROR, ST_ERROR_DATA,
                       "%s: classes '%s' and '%s' both have the folder name '%s'", dir,
                       classes[GPOINTER_TO_UINT (other)], classes[c], safe);
          g_free (safe);
          return FALSE;
        }
      g_hash_table_insert (by_folder, safe, GUINT_TO_POINTER (c));
    }
  /* Folder names are mapped too, so that a folder named exactly as the
   * label (where the file system allows it) matches as well. */
  for (guint i = 0; i < folders->len; i++)
    {
      const char *folder = folders->pdata[i];
      g_autofree char *safe = st_dataset_folder_name (folder);
      gpointer value;
      if (!g_hash_table_lookup_extended (by_folder, safe, NULL, &value))
        {
          g_autofree char *path = g_build_filename (dir, folder, NULL);
          g_autoptr (GString) list = g_string_new (NULL);
          for (guint c = 0; c < n; c++)
            {
              g_autofree char *name = st_dataset_folder_name (classes[c]);
              g_string_append_printf (list, "%s'%s'", c ? ", " : "", name);
            }
          g_set_error (error, ST_ERROR, ST_ERROR_DATA,
                       "%s: folder '%s' is not one of the %u classes (%s); a label's "
                       "folder has '_' for each of / \\ : * ? \" < > | and control "
                       "characters", path, folder, n, list->str);
          return FALSE;
        }
      guint c = GPOINTER_TO_UINT (value);
      if (load->class_folders->pdata[c])
        {
          g_set_error (error, ST_ERROR, ST_ERROR_DATA,
                       "%s: folders '%s' and '%s' both hold class '%s'", dir,
                       (const char *) load->class_folders->pdata[c], folder, classes[c]);
          return FALSE;
        }
      load->class_folders->pdata[c] = g_strdup (folder);
    }
  return TRUE;
}

/* The classes are the subfolders, sorted. */
static gboolean
map_found_classes (FolderLoad *load, GPtrArray *folders, GError **error)
{
  if (folders->len == 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_DATA,
                   "%s: no class subfolders (expected DIR/CLASS/image.png ...)", load->dir);
      return FALSE;
    }
  load->classes = g_new0 (char *, folders->len + 1);
  for (guint i = 0; i < folders->len; i++)
    {
      load->classes[i] = g_strdup (folders->pdata[i]);
      g_ptr_array_add (load->class_folders, g_strdup (folders->pdata[i]));
    }
  return TRUE;
}

/* Every path, class by class, sorted within each class. */
static gboolean
collect_class_images (FolderLoad *load, GError **error)
{
  const char *dir = load->dir;
  /* The top folder and every class folder are marked first: a link to
   * one of them from inside a class would search it again or give its
   * images to the wrong class. */
  g_autoptr (GHashTable) visited = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  first_visit (dir, visited);
  for (guint c = 0; c < load->class_folders->len; c++)
    if (load->class_folders->pdata[c])
      {
        g_autofree char *sub = g_build_filename (dir, load->class_folders->pdata[c], NULL);
        first_visit (sub, visited);
      }
  GPtrArray *paths = load->paths;
  for (int c = 0; c < (int) load->class_folders->len; c++)
    {
      if (!load->class_folders->pdata[c])
        continue;            /* a listed class without a folder: no samples */
      g_autofree char *sub = g_build_filename (dir, load->class_folders->pdata[c], NULL);
      guint first = paths->len;
      collect_images (load, sub, 0, visited);
      if (paths->len > first)
        qsort (paths->pdata + first, paths->len - first, sizeof (gpointer), st_compare_strings);
      for (guint i = first; i < paths->len; i++)
        g_array_append_val (load->path_class, c);
    }
  if (paths->len == 0)
    {
      g_autofree char *names = st_image_extension_list ("*.", ", ");
      g_set_error (error, ST_ERROR, ST_ERROR_DATA, "%s: no images (%s) in its class folders",
                   dir, names);
      return FALSE;
    }
  if (paths->len > G_MAXINT)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_DATA, "%s: %u images, too many", dir, paths->len);
      return FALSE;
    }
  return TRUE;
}

/* The sample of one image: NULL with error unset when the file cannot be
 * read (said and skipped), NULL with error set when the data is wrong. */
static StTensor *
read_sample (FolderLoad *load, const char *path, GError **error)
{
  GError *local = NULL;
  g_autoptr (StTensor) image = st_image_load (path, load->max_pixels, NULL, &local);
  if (!image)
    {
      /* st_image_load's messages already start with the path. */
      folder_say (load, "%s", local->message);
      g_error_free (local);
      load->n_skipped++;
      return NULL;
    }
  g_autoptr (StTensor) sample = NULL;
  if (load->convert)
    {
      sample = load->convert (image, load->user_data, &local);
      if (!sample)
        {
          if (g_str_has_prefix (local->message, path))
            g_propagate_error (error, local);
          else
            {
              g_set_error (error, local->domain, local->code, "%s: %s", path, local->message);
              g_error_free (local);
            }
          return NULL;
        }
    }
  else
    sample = g_steal_pointer (&image);
  if (sample->shape.n != 1)
    {
      char got[64];
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "%s: sample shape %s is not one image (expected 1xCxHxW)", path,
                   st_shape_format (sample->shape, got, sizeof got));
      return NULL;
    }
  return g_steal_pointer (&sample);
}

/* x for every path, sized by the first sample, within the memory limit. */
static StTensor *
new_samples (const FolderLoad *load, const StTensor *sample, GError **error)
{
  StShape s = sample->shape;
  const guint n = load->paths->len;
  s.n = (int) n;
  guint64 bytes = 0;
  if (!g_uint64_checked_mul (&bytes, st_tensor_numel (sample) * sizeof (float), n)
      || bytes > st_memory_limit ())
    {
      char got[64];
      g_set_error (error, ST_ERROR, ST_ERROR_MEMORY,
                   "%s: %u images of samples %s would take %" G_GUINT64_FORMAT " bytes, "
                   "more than the limit of %" G_GUINT64_FORMAT " bytes (--max-memory)",
                   load->dir, n, st_shape_format (sample->shape, got, sizeof got),
                   bytes, st_memory_limit ());
      return NULL;
    }
  return st_tensor_new (s, error);
}

/* Reads every path into a dataset.  x is sized for every file once the
 * first sample fixes the shape, and shrunk at the end if some were
 * skipped: one copy of the data at most. */
static StDataset *
read_samples (FolderLoad *load, GError **error)
{
  GPtrArray *paths = load->paths;
  g_autoptr (StTensor) x = NULL;
  g_autofree int *labels = g_new (int, paths->len);
  gsize sample_numel = 0;
  int n = 0;
  for (guint i = 0; i < paths->len; i++)
    {
      const char *path = paths->pdata[i];
      GError *local = NULL;
      g_autoptr (StTensor) sample = read_sample (load, path, &local);
      if (!sample && local)
        {
          g_propagate_error (error, local);
          return NULL;
        }
      if (!sample)
        continue;
      if (!x)
        {
          x = new_samples (load, sample, error);
          if (!x)
            return NULL;
          sample_numel = st_tensor_numel (sample);
        }
      else if (sample->shape.c != x->shape.c || sample->shape.h != x->shape.h
               || sample->shape.w != x->shape.w)
        {
          StShape first = x->shape;
          first.n = 1;
          char got[64], want[64];
          g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                       "%s: sample shape %s differs from the first image's %s", path,
                       st_shape_format (sample->shape, got, sizeof got),
                       st_shape_format (first, want, sizeof want));
          return NULL;
        }
      memcpy (x->data + (gsize) n * sample_numel, sample->data, sample_numel * sizeof (float));
      labels[n++] = g_array_index (load->path_class, int, i);
    }
  if (n == 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_DATA,
                   "%s: none of the %u images found could be read", load->dir, paths->len);
      return NULL;
    }
  if (n < x->shape.n)
    {
      StTensor *small = st_tensor_new0 (n, x->shape.c, x->shape.h, x->shape.w);
      memcpy (small->data, x->data, (gsize) n * sample_numel * sizeof (float));
      st_tensor_free (x);
      x = small;
    }
  StDataset *ds = g_new0 (StDataset, 1);
  ds->x = g_steal_pointer (&x);
  ds->labels = g_steal_pointer (&labels);
  ds->n = n;
  return ds;
}

StDataset *
st_dataset_load_folder (const char *dir, const char *const *class_names,
                        StSampleFunc convert, StMessageFunc message, gpointer user_data,
                        guint64 max_pixels, GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);

  if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IO,
                   g_file_test (dir, G_FILE_TEST_EXISTS) ? "%s: not a folder" : "%s: no such folder",
                   dir);
      return NULL;
    }
  g_autoptr (GPtrArray) folders = list_subfolders (dir, error);
  if (!folders)
    return NULL;
  g_auto (FolderLoad) load = {
    .dir = dir, .convert = convert, .message = message, .user_data = user_data,
    .max_pixels = max_pixels,
    .class_folders = g_ptr_array_new_with_free_func (g_free),
    .paths = g_ptr_array_new_with_free_func (g_free),
    .path_class = g_array_new (FALSE, FALSE, sizeof (int)),
  };
  if (!(class_names ? map_listed_classes (&load, folders, class_names, error)
                    : map_found_classes (&load, folders, error))
      || !collect_class_images (&load, error))
    return NULL;
  StDataset *ds = read_samples (&load, error);
  if (!ds)
    return NULL;
  ds->n_classes = (int) g_strv_length (load.classes);
  ds->class_names = g_steal_pointer (&load.classes);
  ds->n_skipped = load.n_skipped;
  return ds;
}

/* ---- Split, truncate, free ----------------------------------------------- */

/* splitmix64: a fixed, local generator, so a seed names the same split in
 * every version whatever the core's own generator becomes. */
static guint64
splitmix64 (guint64 *state)
{
  guint64 z = (*state += G_GUINT64_CONSTANT (0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * G_GUINT64_CONSTANT (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * G_GUINT64_CONSTANT (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* Uniform in [0, bound), without modulo bias: values below 2^64 mod bound
 * are rejected (as OpenBSD's arc4random_uniform). */
static guint64
bounded (guint64 *state, guint64 bound)
{
  guint64 threshold = -bound % bound;
  for (;;)
    {
      guint64 r = splitmix64 (state);
      if (r >= threshold)
        return r % bound;
    }
}

/* The samples of ds whose keep[i] == want, in order, as a new tensor and
 * label array (NULL for none). */
static void
gather (const StDataset *ds, const gboolean *keep, gboolean want, int count,
        StTensor **x, int **labels)
{
  *x = NULL;
  *labels = NULL;
  if (count == 0)
    return;
  const StShape s = ds->x->shape;
  gsize numel = (gsize) s.c * s.h * s.w;
  *x = st_tensor_new0 (count, s.c, s.h, s.w);
  *labels = g_new (int, count);
  int k = 0;
  for (int i = 0; i < ds->n; i++)
    if (keep[i] == want)
      {
        memcpy ((*x)->data + (gsize) k * numel, ds->x->data + (gsize) i * numel,
                numel * sizeof (float));
        (*labels)[k++] = ds->labels[i];
      }
}

StDataset *
st_dataset_split (StDataset *ds, double fraction, guint64 seed)
{
  g_return_val_if_fail (ds != NULL, NULL);
  g_return_val_if_fail (fraction >= 0.0 && fraction <= 1.0, NULL);

  int n = ds->n;
  int k = (int) (fraction * n + 0.5);
  /* A proper fraction of two or more samples leaves both sides non-empty,
   * so a validation split of a small set is never silently empty. */
  if (fraction > 0.0 && fraction < 1.0 && n >= 2)
    k = CLAMP (k, 1, n - 1);

  StDataset *out = g_new0 (StDataset, 1);
  out->n_classes = ds->n_classes;
  out->class_names = g_strdupv (ds->class_names);
  if (k == 0)
    return out;

  /* The first k of a seeded Fisher–Yates shuffle are moved; both parts keep
   * their original order. */
  g_autofree int *order = g_new (int, n);
  for (int i = 0; i < n; i++)
    order[i] = i;
  guint64 state = seed;
  for (int i = 0; i < k; i++)
    {
      int j = i + (int) bounded (&state, (guint64) (n - i));
      int t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
  g_autofree gboolean *moved = g_new0 (gboolean, n);
  for (int i = 0; i < k; i++)
    moved[order[i]] = TRUE;

  StTensor *keep_x, *out_x;
  int *keep_labels, *out_labels;
  gather (ds, moved, TRUE, k, &out_x, &out_labels);
  gather (ds, moved, FALSE, n - k, &keep_x, &keep_labels);
  out->x = out_x;
  out->labels = out_labels;
  out->n = k;
  st_tensor_free (ds->x);
  g_free (ds->labels);
  ds->x = keep_x;
  ds->labels = keep_labels;
  ds->n = n - k;
  return out;
}

void
st_dataset_truncate (StDataset *ds, int n)
{
  g_return_if_fail (ds != NULL);
  if (n >= ds->n)
    return;
  n = MAX (n, 0);
  StTensor *x = NULL;
  if (n > 0)
    {
      const StShape s = ds->x->shape;
      /* A copy rather than a smaller shape on the same block, so the
       * memory of the dropped samples is given back. */
      x = st_tensor_new0 (n, s.c, s.h, s.w);
      memcpy (x->data, ds->x->data, st_tensor_numel (x) * sizeof (float));
    }
  st_tensor_free (ds->x);
  ds->x = x;
  if (n > 0)
    ds->labels = g_renew (int, ds->labels, n);
  else
    g_clear_pointer (&ds->labels, g_free);
  ds->n = n;
}

void
st_dataset_free (StDataset *ds)
{
  if (!ds)
    return;
  st_tensor_free (ds->x);
  g_free (ds->labels);
  g_strfreev (ds->class_names);
  g_free (ds);
}
