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

/* A header is an object of objects holding arrays: 3 levels.  json-glib
 * recurses once per level, so deep nesting is refused before it parses. */
#define MAX_HEADER_DEPTH 3

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
st_tensor_file_set_error (GError **error, const char *path, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  g_autofree char *what = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error (error, ST_ERROR, ST_ERROR_WEIGHTS, "%s: %s", path, what);
}

void
st_tensor_file_set_tensor_error (GError **error, const char *path, const char *name, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  g_autofree char *what = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_autofree char *shown = st_printable (name);
  g_set_error (error, ST_ERROR, ST_ERROR_WEIGHTS, "%s: tensor '%s': %s", path, shown, what);
}

/* "[32, 1, 3, 3]"; "[]" for a scalar. */
static char *
format_dims64 (const guint64 *dims, int rank)
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
  return format_dims64 (d, rank);
}

/* ---- Data types ----------------------------------------------------------- */

typedef enum {
  CONV_NONE,                   /* a valid safetensors dtype strata does not read */
  CONV_F32,
  CONV_F16,
  CONV_BF16,
  CONV_F64,
} Conversion;

typedef struct {
  const char *name;
  guint64 size;
  Conversion conv;
} DType;

/* Every byte-sized dtype of the format, so that the layout of a file with
 * an unsupported one is still checked and the message says "not supported"
 * rather than "unknown". */
static const DType dtypes[] = {
  { "F32", 4, CONV_F32 }, { "F16", 2, CONV_F16 }, { "BF16", 2, CONV_BF16 },
  { "F64", 8, CONV_F64 },
  { "BOOL", 1, CONV_NONE }, { "U8", 1, CONV_NONE }, { "I8", 1, CONV_NONE },
  { "F8_E5M2", 1, CONV_NONE }, { "F8_E4M3", 1, CONV_NONE }, { "F8_E8M0", 1, CONV_NONE },
  { "I16", 2, CONV_NONE }, { "U16", 2, CONV_NONE }, { "I32", 4, CONV_NONE },
  { "U32", 4, CONV_NONE }, { "I64", 8, CONV_NONE }, { "U64", 8, CONV_NONE },
  { "C64", 8, CONV_NONE },
};

static const DType *
dtype_lookup (const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (dtypes); i++)
    if (strcmp (dtypes[i].name, name) == 0)
      return &dtypes[i];
  return NULL;
}

/* IEEE half to float, exactly: subnormals are mant × 2^-24, infinities and
 * NaNs (payload kept) map to theirs. */
static float
half_to_float (guint16 h)
{
  guint32 sign = (guint32) (h & 0x8000u) << 16;
  guint32 exponent = (h >> 10) & 0x1fu;
  guint32 mantissa = h & 0x3ffu;
  guint32 bits;
  if (exponent == 0)
    {
      float f = (float) mantissa * 0x1p-24f;
      return sign ? -f : f;
    }
  if (exponent == 31)
    bits = sign | 0x7f800000u | (mantissa << 13);
  else
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  float f;
  memcpy (&f, &bits, sizeof f);
  return f;
}

/* Converts n little-endian values at src (any alignment) to float. */
static void
convert (Conversion conv, const guint8 *src, gsize n, float *dst)
{
  switch (conv)
    {
    case CONV_F32:
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
      memcpy (dst, src, n * sizeof (float));
#else
      for (gsize i = 0; i < n; i++)
        {
          guint32 u;
          memcpy (&u, src + 4 * i, 4);
          u = GUINT32_FROM_LE (u);
          memcpy (&dst[i], &u, 4);
        }
#endif
      break;
    case CONV_F16:
      for (gsize i = 0; i < n; i++)
        {
          guint16 u;
          memcpy (&u, src + 2 * i, 2);
          dst[i] = half_to_float (GUINT16_FROM_LE (u));
        }
      break;
    case CONV_BF16:
      /* bfloat16 is the top half of a float32. */
      for (gsize i = 0; i < n; i++)
        {
          guint16 u;
          memcpy (&u, src + 2 * i, 2);
          guint32 bits = (guint32) GUINT16_FROM_LE (u) << 16;
          memcpy (&dst[i], &bits, 4);
        }
      break;
    case CONV_F64:
      for (gsize i = 0; i < n; i++)
        {
          guint64 u;
          double d;
          memcpy (&u, src + 8 * i, 8);
          u = GUINT64_FROM_LE (u);
          memcpy (&d, &u, 8);
          dst[i] = (float) d;
        }
      break;
    case CONV_NONE:
    default:
      g_assert_not_reached ();
    }
}

/* ---- The header ------------------------------------------------------------- */

/* json-glib is lenient where the reference reader (serde_json) is not: it
 * takes comments, single-quoted strings, raw control characters in strings
 * and a second top-level value.  This pass refuses those, so that a file
 * strata reads is one every safetensors reader reads. */
static gboolean
check_header_text (const char *path, const char *text, gsize n, GError **error)
{
  if (n == 0 || text[0] != '{')
    {
      st_tensor_file_set_error (error, path, "header does not start with '{' (not a safetensors file?)");
      return FALSE;
    }
  /* Also refuses NUL bytes. */
  if (!g_utf8_validate_len (text, n, NULL))
    {
      st_tensor_file_set_error (error, path, "header is not valid UTF-8 text");
      return FALSE;
    }
  int depth = 0;
  gboolean in_string = FALSE;
  for (gsize i = 0; i < n; i++)
    {
      guchar c = (guchar) text[i];
      if (in_string)
        {
          if (c == '\\' && i + 1 < n)
            {
              /* A NUL would cut a name short in C. */
              if (text[i + 1] == 'u' && i + 5 < n && strncmp (text + i + 2, "0000", 4) == 0)
                {
                  st_tensor_file_set_error (error, path, "header is not valid: a string holds \\u0000 (byte %"
                              G_GSIZE_FORMAT ")", 8 + i);
                  return FALSE;
                }
              i++;
            }
          else if (c == '"')
            in_string = FALSE;
          else if (c < 0x20)
            {
              st_tensor_file_set_error (error, path, "header is not valid JSON: control character 0x%02x "
                          "inside a string (byte %" G_GSIZE_FORMAT ")", c, 8 + i);
              return FALSE;
            }
          continue;
        }
      gboolean space = c == ' ' || c == '\t' || c == '\n' || c == '\r';
      if (depth == 0 && i > 0 && !space)
        {
          st_tensor_file_set_error (error, path, "header is not valid JSON: more after the object ends "
                      "(byte %" G_GSIZE_FORMAT ")", 8 + i);
          return FALSE;
        }
      if (c == '"')
        in_string = TRUE;
      else if (c == '{' || c == '[')
        {
          if (++depth > MAX_HEADER_DEPTH)
            {
              st_tensor_file_set_error (error, path, "header is not valid: brackets nest more than %d levels "
                          "deep (byte %" G_GSIZE_FORMAT "); a safetensors header needs %d",
                          MAX_HEADER_DEPTH, 8 + i, MAX_HEADER_DEPTH);
              return FALSE;
            }
        }
      else if (c == '}' || c == ']')
        depth--;
      /* What numbers, true, false and null are made of. */
      else if (!space && (c == 0 || !strchr (",:0123456789+-.eEaflnrstu", c)))
        {
          if (c >= 0x20 && c < 0x7f)
            st_tensor_file_set_error (error, path, "header is not valid JSON: unexpected '%c' (byte %"
                        G_GSIZE_FORMAT ")", c, 8 + i);
          else
            st_tensor_file_set_error (error, path, "header is not valid JSON: unexpected byte 0x%02x (byte %"
                        G_GSIZE_FORMAT ")", c, 8 + i);
          return FALSE;
        }
      if (depth < 0)
        break;                   /* json-glib says what is unbalanced */
    }
  return TRUE;
}

/* Duplicate keys, seen while json-glib parses: it keeps the last of them
 * silently, but then an object's size stops growing with its members. */
typedef struct {
  GArray *counts;              /* members seen, per open object */
  char *name;                  /* the first duplicate key, or NULL */
  JsonObject *object;          /* the object that has it (borrowed) */
  guint depth;                 /* 1: the root object */
} DupScan;

static void
dup_object_start (JsonParser *parser, gpointer data)
{
  DupScan *scan = data;
  guint zero = 0;
  g_array_append_val (scan->counts, zero);
}

static void
dup_object_member (JsonParser *parser, JsonObject *object, const char *name, gpointer data)
{
  DupScan *scan = data;
  if (scan->counts->len == 0)
    return;
  guint *count = &g_array_index (scan->counts, guint, scan->counts->len - 1);
  (*count)++;
  if (*count != json_object_get_size (object) && !scan->name)
    {
      scan->name = g_strdup (name);
      scan->object = object;
      scan->depth = scan->counts->len;
    }
}

static void
dup_object_end (JsonParser *parser, JsonObject *object, gpointer data)
{
  DupScan *scan = data;
  if (scan->counts->len > 0)
    g_array_set_size (scan->counts, scan->counts->len - 1);
}

/* Reports a duplicate key found by the scan, naming the tensor it is in. */
static void
duplicate_error (GError **error, const char *path, JsonObject *root, const DupScan *scan)
{
  g_autofree char *key = st_printable (scan->name);
  if (scan->depth == 1)
    {
      if (strcmp (scan->name, "__metadata__") == 0)
        st_tensor_file_set_error (error, path, "__metadata__ appears twice in the header");
      else
        st_tensor_file_set_tensor_error (error, path, scan->name, "the name appears twice in the header");
      return;
    }
  JsonObjectIter iter;
  const char *member;
  JsonNode *node;
  json_object_iter_init (&iter, root);
  while (json_object_iter_next (&iter, &member, &node))
    if (JSON_NODE_HOLDS_OBJECT (node) && json_node_get_object (node) == scan->object)
      {
        if (strcmp (member, "__metadata__") == 0)
          st_tensor_file_set_error (error, path, "__metadata__: key '%s' appears twice", key);
        else
          st_tensor_file_set_tensor_error (error, path, member, "key '%s' appears twice in its entry", key);
        return;
      }
  st_tensor_file_set_error (error, path, "header is not valid: key '%s' appears twice in one object", key);
}

/* A JSON integer >= 0.  json-glib turns integers beyond gint64 into
 * negative ones, so those are refused here too. */
static gboolean
node_get_count (JsonNode *node, guint64 *value)
{
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  gint64 v = json_node_get_int (node);
  if (v < 0)
    return FALSE;
  *value = (guint64) v;
  return TRUE;
}

/* One tensor's entry in the header, checked on its own. */
typedef struct {
  const char *name;            /* borrowed from the JSON tree */
  const DType *dtype;
  int rank;
  guint64 *shape;
  guint64 begin, end;          /* relative to the data section */
} Entry;

static void
entry_clear (gpointer data)
{
  Entry *e = data;
  g_free (e->shape);
}

static gboolean
parse_entry (const char *path, const char *name, JsonNode *node, Entry *e, GError **error)
{
  e->name = name;
  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      st_tensor_file_set_tensor_error (error, path, name, "entry is not an object {dtype, shape, data_offsets}");
      return FALSE;
    }
  JsonObject *info = json_node_get_object (node);
  JsonObjectIter iter;
  const char *key;
  JsonNode *value;
  json_object_iter_init (&iter, info);
  while (json_object_iter_next (&iter, &key, &value))
    if (strcmp (key, "dtype") != 0 && strcmp (key, "shape") != 0
        && strcmp (key, "data_offsets") != 0)
      {
        /* A key strata does not know may change the meaning of the data. */
        g_autofree char *shown = st_printable (key);
        st_tensor_file_set_tensor_error (error, path, name, "unknown key '%s' (expected dtype, shape and data_offsets)",
                      shown);
        return FALSE;
      }

  JsonNode *dtype = json_object_get_member (info, "dtype");
  if (!dtype || !JSON_NODE_HOLDS_VALUE (dtype) || json_node_get_value_type (dtype) != G_TYPE_STRING)
    {
      st_tensor_file_set_tensor_error (error, path, name, dtype ? "dtype is not a string" : "dtype is missing");
      return FALSE;
    }
  e->dtype = dtype_lookup (json_node_get_string (dtype));
  if (!e->dtype)
    {
      g_autofree char *shown = st_printable (json_node_get_string (dtype));
      st_tensor_file_set_tensor_error (error, path, name, "unknown dtype '%s'", shown);
      return FALSE;
    }

  JsonNode *shape = json_object_get_member (info, "shape");
  if (!shape || !JSON_NODE_HOLDS_ARRAY (shape))
    {
      st_tensor_file_set_tensor_error (error, path, name, shape ? "shape is not a list of integers"
                                             : "shape is missing");
      return FALSE;
    }
  JsonArray *dims = json_node_get_array (shape);
  guint rank = json_array_get_length (dims);
  if (rank > 1024)
    {
      st_tensor_file_set_tensor_error (error, path, name, "shape has %u dimensions", rank);
      return FALSE;
    }
  e->rank = (int) rank;
  e->shape = g_new (guint64, MAX (rank, 1));
  for (guint i = 0; i < rank; i++)
    if (!node_get_count (json_array_get_element (dims, i), &e->shape[i]))
      {
        st_tensor_file_set_tensor_error (error, path, name, "shape is not a list of non-negative integers");
        return FALSE;
      }

  JsonNode *offsets = json_object_get_member (info, "data_offsets");
  if (!offsets || !JSON_NODE_HOLDS_ARRAY (offsets)
      || json_array_get_length (json_node_get_array (offsets)) != 2
      || !node_get_count (json_array_get_element (json_node_get_array (offsets), 0), &e->begin)
      || !node_get_count (json_array_get_element (json_node_get_array (offsets), 1), &e->end))
    {
      st_tensor_file_set_tensor_error (error, path, name, offsets ? "data_offsets is not a pair [begin, end] of "
                    "non-negative integers" : "data_offsets is missing");
      return FALSE;
    }
  if (e->end < e->begin)
    {
      st_tensor_file_set_tensor_error (error, path, name, "data_offsets [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
                    "] end before they begin", e->begin, e->end);
      return FALSE;
    }

  guint64 bytes = e->dtype->size;
  for (int i = 0; i < e->rank; i++)
    if (!g_uint64_checked_mul (&bytes, bytes, e->shape[i]))
      {
        g_autofree char *s = format_dims64 (e->shape, e->rank);
        st_tensor_file_set_tensor_error (error, path, name, "shape %s is too large: its size in bytes overflows", s);
        return FALSE;
      }
  if (bytes != e->end - e->begin)
    {
      g_autofree char *s = format_dims64 (e->shape, e->rank);
      st_tensor_file_set_tensor_error (error, path, name, "shape %s of %s takes %" G_GUINT64_FORMAT " bytes, "
                    "data_offsets [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT "] hold %"
                    G_GUINT64_FORMAT, s, e->dtype->name, bytes, e->begin, e->end,
                    e->end - e->begin);
      return FALSE;
    }
  return TRUE;
}

static gboolean
parse_metadata (const char *path, JsonNode *node, GHashTable *metadata, GError **error)
{
  /* An absent Option in the reference writer is null. */
  if (JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      st_tensor_file_set_error (error, path, "__metadata__ is not an object of strings");
      return FALSE;
    }
  JsonObjectIter iter;
  const char *key;
  JsonNode *value;
  json_object_iter_init_ordered (&iter, json_node_get_object (node));
  while (json_object_iter_next_ordered (&iter, &key, &value))
    {
      if (!JSON_NODE_HOLDS_VALUE (value) || json_node_get_value_type (value) != G_TYPE_STRING)
        {
          g_autofree char *shown = st_printable (key);
          st_tensor_file_set_error (error, path, "__metadata__: the value of '%s' is not a string", shown);
          return FALSE;
        }
      g_hash_table_insert (metadata, g_strdup (key), g_strdup (json_node_get_string (value)));
    }
  return TRUE;
}

static int
compare_entries (gconstpointer a, gconstpointer b)
{
  const Entry *x = *(const Entry *const *) a, *y = *(const Entry *const *) b;
  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return 0;
}

/* The ranges, sorted, must tile [0, data_len) exactly, as the reference
 * reader requires: no byte belongs to two tensors or to none. */
static gboolean
check_coverage (const char *path, GArray *entries, guint64 data_len, GError **error)
{
  g_autoptr (GPtrArray) sorted = g_ptr_array_sized_new (entries->len);
  for (guint i = 0; i < entries->len; i++)
    g_ptr_array_add (sorted, &g_array_index (entries, Entry, i));
  g_ptr_array_sort (sorted, compare_entries);

  guint64 expected = 0;
  const Entry *prev = NULL;
  for (guint i = 0; i < sorted->len; i++)
    {
      const Entry *e = sorted->pdata[i];
      if (e->begin < expected)
        {
          g_autofree char *other = st_printable (prev->name);
          st_tensor_file_set_tensor_error (error, path, e->name, "data_offsets [%" G_GUINT64_FORMAT ", %"
                        G_GUINT64_FORMAT "] overlap those of tensor '%s' [%" G_GUINT64_FORMAT
                        ", %" G_GUINT64_FORMAT "]", e->begin, e->end, other, prev->begin,
                        prev->end);
          return FALSE;
        }
      if (e->begin > expected)
        {
          st_tensor_file_set_tensor_error (error, path, e->name, "data_offsets [%" G_GUINT64_FORMAT ", %"
                        G_GUINT64_FORMAT "] leave a hole: bytes %" G_GUINT64_FORMAT " to %"
                        G_GUINT64_FORMAT " of the data belong to no tensor", e->begin, e->end,
                        expected, e->begin);
          return FALSE;
        }
      expected = e->end;
      prev = e;
    }
  if (expected > data_len)
    {
      for (guint i = 0; i < sorted->len; i++)
        {
          const Entry *e = sorted->pdata[i];
          if (e->end > data_len)
            {
              st_tensor_file_set_tensor_error (error, path, e->name, "data_offsets [%" G_GUINT64_FORMAT ", %"
                            G_GUINT64_FORMAT "] run past the end of the file, whose data "
                            "section has %" G_GUINT64_FORMAT " bytes (truncated file?)",
                            e->begin, e->end, data_len);
              return FALSE;
            }
        }
    }
  if (expected < data_len)
    {
      st_tensor_file_set_error (error, path, "%" G_GUINT64_FORMAT " bytes after the last tensor's data "
                  "belong to no tensor", data_len - expected);
      return FALSE;
    }
  return TRUE;
}

/* What strata cannot hold, in a file that is otherwise valid. */
static gboolean
check_supported (const char *path, const Entry *e, GError **error)
{
  g_autofree char *s = format_dims64 (e->shape, e->rank);
  if (e->dtype->conv == CONV_NONE)
    {
      st_tensor_file_set_tensor_error (error, path, e->name, "dtype %s is not supported (strata reads F32, F16, "
                    "BF16 and F64)", e->dtype->name);
      return FALSE;
    }
  if (e->rank > 4)
    {
      st_tensor_file_set_tensor_error (error, path, e->name, "shape %s has %d dimensions, strata's tensors at "
                    "most 4", s, e->rank);
      return FALSE;
    }
  for (int i = 0; i < e->rank; i++)
    if (e->shape[i] == 0 || e->shape[i] > G_MAXINT)
      {
        st_tensor_file_set_tensor_error (error, path, e->name, e->shape[i] == 0
                      ? "shape %s is empty: strata has no empty tensors"
                      : "shape %s has a dimension too large for strata", s);
        return FALSE;
      }
  return TRUE;
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
      st_tensor_file_set_error (error, path, "cannot open: %s", g_strerror (saved));
      return NULL;
    }
  /* A directory or a FIFO would not map, or map as nothing. */
  struct stat st;
  if (fstat (fd, &st) != 0)
    {
      int saved = errno;
      st_tensor_file_set_error (error, path, "cannot read: %s", g_strerror (saved));
      g_close (fd, NULL);
      return NULL;
    }
  if (!S_ISREG (st.st_mode))
    {
      st_tensor_file_set_error (error, path, "cannot read: %s", S_ISDIR (st.st_mode) ? "it is a directory"
                                                                     : "not a regular file");
      g_close (fd, NULL);
      return NULL;
    }
  g_autoptr (GError) local = NULL;
  GMappedFile *map = g_mapped_file_new_from_fd (fd, FALSE, &local);
  g_close (fd, NULL);
  if (!map)
    st_tensor_file_set_error (error, path, "cannot read: %s", local->message);
  return map;
}

StTensorFile *
st_tensor_file_read (const char *path, GError **error)
{
  g_autoptr (GMappedFile) map = map_file (path, error);
  if (!map)
    return NULL;
  const guint8 *bytes = (const guint8 *) g_mapped_file_get_contents (map);
  gsize size = g_mapped_file_get_length (map);

  if (size < 8)
    {
      if (size == 0)
        st_tensor_file_set_error (error, path, "file is empty");
      else
        st_tensor_file_set_error (error, path, "file is %" G_GSIZE_FORMAT " bytes, too short for the 8-byte "
                    "header length of a safetensors file", size);
      return NULL;
    }
  guint64 n;
  memcpy (&n, bytes, 8);
  n = GUINT64_FROM_LE (n);
  if (n > MAX_HEADER_BYTES)
    {
      st_tensor_file_set_error (error, path, "header length %" G_GUINT64_FORMAT " is over strata's limit of "
                  "%u bytes (8 MiB, far more than any real model's header needs: not a "
                  "safetensors file?)", n, MAX_HEADER_BYTES);
      return NULL;
    }
  if (n > size - 8)
    {
      st_tensor_file_set_error (error, path, "header length %" G_GUINT64_FORMAT " runs past the end of the "
                  "file (%" G_GSIZE_FORMAT " bytes)", n, size);
      return NULL;
    }
  const char *header = (const char *) bytes + 8;
  const guint8 *data = bytes + 8 + n;
  guint64 data_len = size - 8 - n;

  if (!check_header_text (path, header, n, error))
    return NULL;

  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  DupScan scan = { g_array_new (FALSE, FALSE, sizeof (guint)), NULL, NULL, 0 };
  g_signal_connect (parser, "object-start", G_CALLBACK (dup_object_start), &scan);
  g_signal_connect (parser, "object-member", G_CALLBACK (dup_object_member), &scan);
  g_signal_connect (parser, "object-end", G_CALLBACK (dup_object_end), &scan);
  g_autoptr (GError) local = NULL;
  gboolean parsed = json_parser_load_from_data (parser, header, (gssize) n, &local);
  g_array_unref (scan.counts);
  g_autofree char *dup_name = scan.name;
  if (!parsed)
    {
      /* json-glib says "<data>:LINE:COL: Parse error: ..." */
      const char *msg = local->message;
      if (g_str_has_prefix (msg, "<data>:"))
        msg += strlen ("<data>:");
      g_autofree char *shown = st_printable (msg);
      st_tensor_file_set_error (error, path, "header is not valid JSON: %s", shown);
      return NULL;
    }
  JsonNode *root_node = json_parser_get_root (parser);
  if (!root_node || !JSON_NODE_HOLDS_OBJECT (root_node))
    {
      st_tensor_file_set_error (error, path, "header is not a JSON object");
      return NULL;
    }
  JsonObject *root = json_node_get_object (root_node);
  if (dup_name)
    {
      duplicate_error (error, path, root, &scan);
      return NULL;
    }

  g_autoptr (StTensorFile) file = g_new0 (StTensorFile, 1);
  file->tensors = g_ptr_array_new_with_free_func (named_tensor_free);
  file->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  g_autoptr (GArray) entries = g_array_new (FALSE, TRUE, sizeof (Entry));
  g_array_set_clear_func (entries, entry_clear);
  JsonObjectIter iter;
  const char *name;
  JsonNode *node;
  json_object_iter_init_ordered (&iter, root);
  while (json_object_iter_next_ordered (&iter, &name, &node))
    {
      if (strcmp (name, "__metadata__") == 0)
        {
          if (!parse_metadata (path, node, file->metadata, error))
            return NULL;
          continue;
        }
      if (!*name)
        {
          st_tensor_file_set_error (error, path, "header has a tensor with an empty name");
          return NULL;
        }
      g_array_set_size (entries, entries->len + 1);
      if (!parse_entry (path, name, node, &g_array_index (entries, Entry, entries->len - 1), error))
        return NULL;
    }
  if (!check_coverage (path, entries, data_len, error))
    return NULL;
  /* As float32 the data may take twice its bytes in the file (F16, BF16). */
  guint64 memory = 0;
  for (guint i = 0; i < entries->len; i++)
    {
      const Entry *e = &g_array_index (entries, Entry, i);
      memory += (e->end - e->begin) / e->dtype->size * sizeof (float);
    }
  if (memory > st_memory_limit ())
    {
      g_set_error (error, ST_ERROR, ST_ERROR_MEMORY, "%s: its tensors take %" G_GUINT64_FORMAT
                   " bytes as float32, more than the limit of %" G_GUINT64_FORMAT " bytes "
                   "(--max-memory)", path, memory, st_memory_limit ());
      return NULL;
    }

  for (guint i = 0; i < entries->len; i++)
    {
      const Entry *e = &g_array_index (entries, Entry, i);
      if (!check_supported (path, e, error))
        return NULL;
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
          g_autofree char *s = format_dims64 (e->shape, e->rank);
          st_tensor_file_set_tensor_error (error, path, e->name, "shape %s is too large", s);
          return NULL;
        }
      convert (e->dtype->conv, data + e->begin, st_tensor_numel (t->value), t->value->data);
    }
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
          st_tensor_file_set_error (error, path, "cannot write tensor %d: its name is empty, not UTF-8 or "
                      "__metadata__", i);
          return FALSE;
        }
      if (!g_hash_table_add (seen, t->name))
        {
          st_tensor_file_set_tensor_error (error, path, t->name, "given twice");
          return FALSE;
        }
      gsize numel = 1;
      gboolean ok = t->rank >= 0 && t->rank <= 4 && t->value;
      for (int d = 0; ok && d < t->rank; d++)
        ok = t->dims[d] > 0 && g_size_checked_mul (&numel, numel, (gsize) t->dims[d]);
      if (!ok || numel != st_tensor_numel (t->value))
        {
          g_autofree char *s = st_format_dims (t->dims, CLAMP (t->rank, 0, 4));
          st_tensor_file_set_tensor_error (error, path, t->name, "rank %d, dims %s do not describe its value of %"
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
            st_tensor_file_set_error (error, path, "cannot write metadata: a key is empty, or a key or "
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
static GString *
build_header (const StNamedTensor *const *tensors, int n_tensors, GHashTable *metadata)
{
  /* Hugging Face's loaders look for "format": "pt"; the caller may say otherwise. */
  g_autoptr (GHashTable) meta = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (meta, "format", "pt");
  if (metadata)
    {
      GHashTableIter iter;
      gpointer key, value;
      g_hash_table_iter_init (&iter, metadata);
      while (g_hash_table_iter_next (&iter, &key, &value))
        g_hash_table_insert (meta, key, value);
    }
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
      st_tensor_file_set_error (error, path, "cannot write: %s", saved ? g_strerror (saved) : "write failed");
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
          st_tensor_file_set_tensor_error (error, path, t->name, "%" G_GSIZE_FORMAT " of its %" G_GSIZE_FORMAT
                        " values %s not finite (NaN or infinity): the weights are unusable "
                        "(a training run that diverged?)", bad, n, bad == 1 ? "is" : "are");
          return FALSE;
        }
    }
  return TRUE;
}
