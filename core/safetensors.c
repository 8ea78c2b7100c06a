/* strata — safetensors files: reading and writing named tensors.
 *
 * The format (Hugging Face's safetensors): an 8-byte little-endian header
 * length N, N bytes of JSON
 *
 *     {"__metadata__": {"format": "pt"},
 *      "conv1.weight": {"dtype": "F32", "shape": [32, 1, 3, 3], "data_offsets": [0, 1152]}, ...}
 *
 * then the data section, whose offsets are relative to its first byte.
 * Reading makes the reference reader's checks and a few of its own (strict
 * JSON, no duplicate keys, no unknown keys in a tensor's entry), then converts
 * every tensor to float32 in a freshly allocated, aligned StTensor: nothing
 * points into the file. */
#include "safetensors.h"
#include "safetensors-header.h"
#include "atomic.h"
#include "context.h"

#include <json-glib/json-glib.h>
#include <glib/gstdio.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reference reader allows 100 MB of header, but json-glib takes some
 * 40 bytes of memory per byte of JSON: 8 MiB is far above any real
 * model's header (a few hundred KB for thousands of tensors) and bounds
 * the parse to a few hundred MB. */
#define MAX_HEADER_BYTES (8u << 20)

/* ---- Errors -------------------------------------------------------------- */

/* A name from a file, safe to put in a one-line message: control
 * characters (a JSON "\n" escape decodes to a real newline) become \xNN. */
char *
st_printable (const char *s)
{
  GString *out = g_string_new (NULL);
  for (const guchar *c = (const guchar *) s; *c; c++)
    if (*c < 0x20 || *c == 0x7f)
      g_string_append_printf (out, "\\x%02x", *c);
    else
      g_string_append_c (out, (char) *c);
  return g_string_free (out, FALSE);
}

void
st_file_error (GError **error, const char *path, const char *format, ...)
                          {
                          va_list ap;
  va_start (ap, format);
  g_autofree char *what = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error (error, ST_ERROR, ST_ERROR_WEIGHTS, "%s: %s", path, what);
}

void
st_file_tensor_error (GError **error, const char *path, const char *name, const char *format, ...)
                                 {
                                 va_list ap;
  va_start (ap, format);
  g_autofree char *what = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_autofree char *shown = st_printable (name);
  g_set_error (error, ST_ERROR, ST_ERROR_WEIGHTS, "%s: tensor '%s': %s", path, shown, what);
}

/* "[32, 1, 3, 3]"; "[]" for a scalar. */
char *
st_format_dims64 (const guint64 *dims, int rank)
{
  GString *s = g_string_new ("[");
  for (int i = 0; i < rank; i++)
    g_string_append_printf (s, "%s%" G_GUINT64_FORMAT, i ? ", " : "", dims[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

char *
st_format_dims (const int *dims, int rank)
{
  guint64 d[4];
  for (int i = 0; i < rank; i++)
    d[i] = (guint64) dims[i];
  return st_format_dims64 (d, rank);
}

/* ---- Reading ---------------------------------------------------------------- */

static void
named_tensor_free (gpointer data)
{
  StNamedTensor *t = data;
  g_free (t->name);
  st_tensor_free (t->value);
  g_free (t);
}

void
st_tensor_file_free (StTensorFile *file)
{
  if (!file)
    return;
  g_ptr_array_unref (file->tensors);
  g_hash_table_unref (file->metadata);
  g_clear_pointer (&file->by_name, g_hash_table_unref);
  g_free (file);
}

const StNamedTensor *
st_tensor_file_find (const StTensorFile *file, const char *name)
{
  /* A lookup per parameter: linear scans would make loading quadratic. */
  if (file->by_name)
    return g_hash_table_lookup (file->by_name, name);
  for (guint i = 0; i < file->tensors->len; i++)
    {
      const StNamedTensor *t = file->tensors->pdata[i];
      if (strcmp (t->name, name) == 0)
        return t;
    }
  return NULL;
}

static GMappedFile *
map_file (const char *path, GError **error)
{
  int fd = g_open (path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0)
    {
      int saved = errno;
      st_file_error (error, path, "cannot open: %s", g_strerror (saved));
      return NULL;
    }
  /* A directory or a FIFO would not map, or map as nothing. */
  struct stat st;
  if (fstat (fd, &st) != 0)
    {
      int saved = errno;
      st_file_error (error, path, "cannot read: %s", g_strerror (saved));
      g_close (fd, NULL);
      return NULL;
    }
  if (!S_ISREG (st.st_mode))
    {
      st_file_error (error, path, "cannot read: %s", S_ISDIR (st.st_mode) ? "it is a directory"
                     : "not a regular file");
      g_close (fd, NULL);
      return NULL;
    }
  g_autoptr (GError) local = NULL;
  GMappedFile *map = g_mapped_file_new_from_fd (fd, FALSE, &local);
  g_close (fd, NULL);
  if (!map)
    st_file_error (error, path, "cannot read: %s", local->message);
  return map;
}

/* The header length at the start of a file of size bytes: within the
 * file and strata's limit. */
static gboolean
read_header_length (const char *path, const guint8 *bytes, gsize size, guint64 *length,
                    GError **error)
{
  if (size < 8)
    {
      if (size == 0)
        st_file_error (error, path, "file is empty");
      else
        st_file_error (error, path, "file is %" G_GSIZE_FORMAT " bytes, too short for the 8-byte "
                       "header length of a safetensors file", size);
      return FALSE;
    }
  guint64 n;
  memcpy (&n, bytes, 8);
  n = *length = GUINT64_FROM_LE (n);
  if (n > MAX_HEADER_BYTES)
    {
      st_file_error (error, path, "header length %" G_GUINT64_FORMAT " is over strata's limit of "
                     "%u bytes (8 MiB, far more than any real model's header needs: not a "
                     "safetensors file?)", n, MAX_HEADER_BYTES);
      return FALSE;
    }
  if (n > size - 8)
    {
      st_file_error (error, path, "header length %" G_GUINT64_FORMAT " runs past the end of the "
                     "file (%" G_GSIZE_FORMAT " bytes)", n, size);
      return FALSE;
    }
  return TRUE;
}

/* The tensors as float32 against st_memory_limit(), before allocating. */
static gboolean
check_float_memory (const char *path, GArray *entries, GError **error)
{
  /* As float32 the data may take twice its bytes in the file (F16, BF16). */
  guint64 memory = 0;
  for (guint i = 0; i < entries->len; i++)
    {
      const StHeaderEntry *e = &g_array_index (entries, StHeaderEntry, i);
      memory += (e->end - e->begin) / e->dtype->size * sizeof (float);
    }
  if (memory > st_memory_limit ())
    {
      g_set_error (error, ST_ERROR, ST_ERROR_MEMORY, "%s: its tensors take %" G_GUINT64_FORMAT
                   " bytes as float32, more than the limit of %" G_GUINT64_FORMAT " bytes "
                   "(--max-memory)", path, memory, st_memory_limit ());
      return FALSE;
    }

  return TRUE;
}

/* Every entry's data into file->tensors as float32. */
static gboolean
convert_tensors (const char *path, GArray *entries, const guint8 *data, StTensorFile *file,
                 GError **error)
{
  for (guint i = 0; i < entries->len; i++)
    {
      const StHeaderEntry *e = &g_array_index (entries, StHeaderEntry, i);
      if (!st_safetensors_check_supported (path, e, error))
        return FALSE;
      StNamedTensor *t = g_new0 (StNamedTensor, 1);
      t->name = g_strdup (e->name);
      t->rank = e->rank;
      for (int d = 0; d < 4; d++)
        t->dims[d] = d < e->rank ? (int) e->shape[d] : 1;
      g_ptr_array_add (file->tensors, t);
      /* The dims are checked; this fails only past st_tensor_new's size limit. */
      t->value = st_tensor_new ((StShape) { t->dims[0], t->dims[1], t->dims[2], t->dims[3] },
                                NULL);
      if (!t->value)
        {
          g_autofree char *s = st_format_dims64 (e->shape, e->rank);
          st_file_tensor_error (error, path, e->name, "shape %s is too large", s);
          return FALSE;
        }
      st_safetensors_convert (e->dtype->conv, data + e->begin,
                              st_tensor_numel (t->value), t->value->data);
    }
  return TRUE;
}

StTensorFile *
st_tensor_file_read (const char *path, GError **error)
{
  g_autoptr (GMappedFile) map = map_file (path, error);
  if (!map)
    return NULL;
  const guint8 *bytes = (const guint8 *) g_mapped_file_get_contents (map);
  gsize size = g_mapped_file_get_length (map);

  guint64 n;
  if (!read_header_length (path, bytes, size, &n, error))
    return NULL;
  const char *header = (const char *) bytes + 8;
  const guint8 *data = bytes + 8 + n;
  guint64 data_len = size - 8 - n;

  g_autoptr (StTensorFile) file = g_new0 (StTensorFile, 1);
  file->tensors = g_ptr_array_new_with_free_func (named_tensor_free);
  file->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_auto (StSafetensorsHeader) parsed = { NULL, NULL };
  if (!st_safetensors_header_parse (path, header, n, data_len, file->metadata, &parsed, error))
    return NULL;
  if (!check_float_memory (path, parsed.entries, error)
      || !convert_tensors (path, parsed.entries, data, file, error))
    return NULL;
  /* Names are unique: the header's duplicates were refused. */
  file->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < file->tensors->len; i++)
    {
      StNamedTensor *t = file->tensors->pdata[i];
      g_hash_table_insert (file->by_name, t->name, t);
    }
  return g_steal_pointer (&file);
}

/* ---- Writing ------------------------------------------------------------------ */

/* A JSON string literal; the text is valid UTF-8 (checked by the caller). */
static void
append_json_string (GString *out, const char *s)
{
  g_string_append_c (out, '"');
  for (const guchar *c = (const guchar *) s; *c; c++)
    {
      if (*c == '"' || *c == '\\')
        {
          g_string_append_c (out, '\\');
          g_string_append_c (out, (char) *c);
        }
      else if (*c < 0x20)
        g_string_append_printf (out, "\\u%04x", *c);
      else
        g_string_append_c (out, (char) *c);
    }
  g_string_append_c (out, '"');
}

static gboolean
check_tensors (const char *path, const StNamedTensor *const *tensors, int n_tensors,
               GHashTable *metadata, GError **error)
{
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  for (int i = 0; i < n_tensors; i++)
    {
      const StNamedTensor *t = tensors[i];
      if (!t->name || !*t->name || !g_utf8_validate (t->name, -1, NULL)
          || strcmp (t->name, "__metadata__") == 0)
        {
          st_file_error (error, path, "cannot write tensor %d: its name is empty, not UTF-8 or "
                         "__metadata__", i);
          return FALSE;
        }
      if (!g_hash_table_add (seen, t->name))
        {
          st_file_tensor_error (error, path, t->name, "given twice");
          return FALSE;
        }
      gsize numel = 1;
      gboolean ok = t->rank >= 0 && t->rank <= 4 && t->value;
      for (int d = 0; ok && d < t->rank; d++)
        ok = t->dims[d] > 0 && g_size_checked_mul (&numel, numel, (gsize) t->dims[d]);
      if (!ok || numel != st_tensor_numel (t->value))
        {
          g_autofree char *s = st_format_dims (t->dims, CLAMP (t->rank, 0, 4));
          st_file_tensor_error (error, path, t->name,
                                "rank %d, dims %s do not describe its value of %"
                                G_GSIZE_FORMAT " elements", t->rank, s,
                                t->value ? st_tensor_numel (t->value) : 0);
          return FALSE;
        }
    }
  if (metadata)
    {
      GHashTableIter iter;
      gpointer key, value;
      g_hash_table_iter_init (&iter, metadata);
      while (g_hash_table_iter_next (&iter, &key, &value))
        if (!key || !*(const char *) key || !g_utf8_validate (key, -1, NULL)
            || !value || !g_utf8_validate (value, -1, NULL))
          {
            st_file_error (error, path, "cannot write metadata: a key is empty, or a key or "
                           "value is not UTF-8 text");
            return FALSE;
          }
    }
  return TRUE;
}


static int
compare_strings (const void *a, const void *b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* {"__metadata__":{...},"name":{"dtype":"F32","shape":[...],"data_offsets":[b,e]},...}
 * padded with spaces to a multiple of 8 bytes, so that the data starts
 * 8-aligned in the file, as the reference writer does. */
void
st_metadata_merge (GHashTable *into, GHashTable *from)
{
  if (!from)
    return;
  GHashTableIter iter;
  gpointer key, value;
  g_hash_table_iter_init (&iter, from);
  while (g_hash_table_iter_next (&iter, &key, &value))
    g_hash_table_insert (into, key, value);
}

static GString *
build_header (const StNamedTensor *const *tensors, int n_tensors, GHashTable *metadata)
{
  /* Hugging Face's loaders look for "format": "pt"; the caller may say otherwise. */
  g_autoptr (GHashTable) meta = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (meta, "format", "pt");
  st_metadata_merge (meta, metadata);
  /* Sorted keys: the same weights make the same bytes. */
  guint n_keys;
  g_autofree gpointer *keys = g_hash_table_get_keys_as_array (meta, &n_keys);
  qsort (keys, n_keys, sizeof *keys, compare_strings);

  GString *h = g_string_new ("{\"__metadata__\":{");
  for (guint i = 0; i < n_keys; i++)
    {
      if (i)
        g_string_append_c (h, ',');
      append_json_string (h, keys[i]);
      g_string_append_c (h, ':');
      append_json_string (h, g_hash_table_lookup (meta, keys[i]));
    }
  g_string_append_c (h, '}');

  guint64 offset = 0;
  for (int i = 0; i < n_tensors; i++)
    {
      const StNamedTensor *t = tensors[i];
      guint64 bytes = (guint64) st_tensor_numel (t->value) * sizeof (float);
      g_string_append_c (h, ',');
      append_json_string (h, t->name);
      g_string_append (h, ":{\"dtype\":\"F32\",\"shape\":[");
      for (int d = 0; d < t->rank; d++)
        g_string_append_printf (h, "%s%d", d ? "," : "", t->dims[d]);
      g_string_append_printf (h, "],\"data_offsets\":[%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT
                              "]}", offset, offset + bytes);
      offset += bytes;
    }
  g_string_append_c (h, '}');
  while (h->len % 8)
    g_string_append_c (h, ' ');
  return h;
}

static gboolean
write_floats (FILE *f, const float *data, gsize n)
{
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
  return fwrite (data, sizeof (float), n, f) == n;
#else
  guint32 buf[1024];
  for (gsize done = 0; done < n;)
    {
      gsize k = MIN (n - done, G_N_ELEMENTS (buf));
      for (gsize i = 0; i < k; i++)
        {
          guint32 u;
          memcpy (&u, &data[done + i], 4);
          buf[i] = GUINT32_TO_LE (u);
        }
      if (fwrite (buf, sizeof (float), k, f) != k)
        return FALSE;
      done += k;
    }
  return TRUE;
#endif
}

gboolean
st_tensor_file_write (const char *path, const StNamedTensor *const *tensors,
                      int n_tensors, GHashTable *metadata, GError **error)
{
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (n_tensors >= 0 && (tensors || n_tensors == 0), FALSE);
  if (!check_tensors (path, tensors, n_tensors, metadata, error))
    return FALSE;
  g_autoptr (GString) header = build_header (tensors, n_tensors, metadata);
  guint64 n = GUINT64_TO_LE ((guint64) header->len);

  StAtomicFile *file = st_atomic_file_new (path, ST_ERROR_WEIGHTS, ST_ATOMIC_FILE_SYNC, error);
  if (!file)
    return FALSE;
  FILE *f = st_atomic_file_stream (file);
  errno = 0;
  gboolean ok = fwrite (&n, sizeof n, 1, f) == 1
                && fwrite (header->str, 1, header->len, f) == header->len;
  for (int i = 0; ok && i < n_tensors; i++)
    ok = write_floats (f, tensors[i]->value->data, st_tensor_numel (tensors[i]->value));
  if (!ok)
    {
      int saved = errno;
      st_atomic_file_abort (file);
      st_file_error (error, path, "cannot write: %s", saved ? g_strerror (saved) : "write failed");
      return FALSE;
    }
  /* Synced before the rename makes it the file: a crash leaves the old
   * weights or the new ones, never an empty file. */
  return st_atomic_file_commit (file, error);
}

gboolean
st_tensor_file_check_finite (const StTensorFile *file, const char *path, GError **error)
{
  for (guint i = 0; i < file->tensors->len; i++)
    {
      const StNamedTensor *t = file->tensors->pdata[i];
      gsize n = st_tensor_numel (t->value), bad = 0;
      for (gsize k = 0; k < n; k++)
        bad += !isfinite (t->value->data[k]);
      if (bad)
        {
          st_file_tensor_error (error, path, t->name, "%" G_GSIZE_FORMAT " of its %" G_GSIZE_FORMAT
                                " values %s not finite (NaN or infinity): the weights are unusable "
                                "(a training run that diverged?)", bad, n, bad == 1 ? "is" : "are");
          return FALSE;
        }
    }
  return TRUE;
}
