/* strata — the header of a safetensors file: its JSON read as strictly as
 * the reference reader does, every tensor's entry and the layout of the
 * data section checked before any data is read; and the data types. */
#include "safetensors-header.h"

#include <string.h>

/* A header is an object of objects holding arrays: 3 levels.  json-glib
 * recurses once per level, so deep nesting is refused before it parses. */
#define MAX_HEADER_DEPTH 3

/* ---- Data types ----------------------------------------------------------- */



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
void
st_safetensors_convert (Conversion conv, const guint8 *src, gsize n, float *dst)
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
      st_file_error (error, path, "header does not start with '{' (not a safetensors file?)");
      return FALSE;
    }
  /* Also refuses NUL bytes. */
  if (!g_utf8_validate_len (text, n, NULL))
    {
      st_file_error (error, path, "header is not valid UTF-8 text");
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
                  st_file_error (error, path, "header is not valid: a string holds \\u0000 (byte %"
                                 G_GSIZE_FORMAT ")", 8 + i);
                  return FALSE;
                }
              i++;
            }
          else if (c == '"')
            in_string = FALSE;
          else if (c < 0x20)
            {
              st_file_error (error, path, "header is not valid JSON: control character 0x%02x "
                             "inside a string (byte %" G_GSIZE_FORMAT ")", c, 8 + i);
              return FALSE;
            }
          continue;
        }
      gboolean space = c == ' ' || c == '\t' || c == '\n' || c == '\r';
      if (depth == 0 && i > 0 && !space)
        {
          st_file_error (error, path, "header is not valid JSON: more after the object ends "
                         "(byte %" G_GSIZE_FORMAT ")", 8 + i);
          return FALSE;
        }
      if (c == '"')
        in_string = TRUE;
      else if (c == '{' || c == '[')
        {
          if (++depth > MAX_HEADER_DEPTH)
            {
              st_file_error (error, path, "header is not valid: brackets nest more than %d levels "
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
            st_file_error (error, path, "header is not valid JSON: unexpected '%c' (byte %"
                           G_GSIZE_FORMAT ")", c, 8 + i);
          else
            st_file_error (error, path, "header is not valid JSON: unexpected byte 0x%02x (byte %"
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
        st_file_error (error, path, "__metadata__ appears twice in the header");
      else
        st_file_tensor_error (error, path, scan->name, "the name appears twice in the header");
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
          st_file_error (error, path, "__metadata__: key '%s' appears twice", key);
        else
          st_file_tensor_error (error, path, member, "key '%s' appears twice in its entry", key);
        return;
      }
  st_file_error (error, path, "header is not valid: key '%s' appears twice in one object", key);
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

static void
entry_clear (gpointer data)
{
  StHeaderEntry *e = data;
  g_free (e->shape);
}

/* A key strata does not know may change the meaning of the data. */
static gboolean
check_entry_keys (const char *path, const char *name, JsonObject *info, GError **error)
{
  JsonObjectIter iter;
  const char *key;
  JsonNode *value;
  json_object_iter_init (&iter, info);
  while (json_object_iter_next (&iter, &key, &value))
    if (strcmp (key, "dtype") != 0 && strcmp (key, "shape") != 0
        && strcmp (key, "data_offsets") != 0)
      {
        g_autofree char *shown = st_printable (key);
        st_file_tensor_error (error, path, name,
                              "unknown key '%s' (expected dtype, shape and data_offsets)",
                              shown);
        return FALSE;
      }
  return TRUE;
}

static gboolean
parse_dtype (const char *path, const char *name, JsonObject *info, StHeaderEntry *e,
             GError **error)
{
  JsonNode *dtype = json_object_get_member (info, "dtype");
  if (!dtype || !JSON_NODE_HOLDS_VALUE (dtype) || json_node_get_value_type (dtype) != G_TYPE_STRING)
    {
      st_file_tensor_error (error, path, name,
                            dtype ? "dtype is not a string" : "dtype is missing");
      return FALSE;
    }
  e->dtype = dtype_lookup (json_node_get_string (dtype));
  if (!e->dtype)
    {
      g_autofree char *shown = st_printable (json_node_get_string (dtype));
      st_file_tensor_error (error, path, name, "unknown dtype '%s'", shown);
      return FALSE;
    }
  return TRUE;
}

static gboolean
parse_shape (const char *path, const char *name, JsonObject *info, StHeaderEntry *e,
             GError **error)
{
  JsonNode *shape = json_object_get_member (info, "shape");
  if (!shape || !JSON_NODE_HOLDS_ARRAY (shape))
    {
      st_file_tensor_error (error, path, name, shape ? "shape is not a list of integers"
                            : "shape is missing");
      return FALSE;
    }
  JsonArray *dims = json_node_get_array (shape);
  guint rank = json_array_get_length (dims);
  if (rank > 1024)
    {
      st_file_tensor_error (error, path, name, "shape has %u dimensions", rank);
      return FALSE;
    }
  e->rank = (int) rank;
  e->shape = g_new (guint64, MAX (rank, 1));
  for (guint i = 0; i < rank; i++)
    if (!node_get_count (json_array_get_element (dims, i), &e->shape[i]))
      {
        st_file_tensor_error (error, path, name, "shape is not a list of non-negative integers");
        return FALSE;
      }
  return TRUE;
}

static gboolean
parse_offsets (const char *path, const char *name, JsonObject *info, StHeaderEntry *e,
               GError **error)
{
  JsonNode *offsets = json_object_get_member (info, "data_offsets");
  if (!offsets || !JSON_NODE_HOLDS_ARRAY (offsets)
      || json_array_get_length (json_node_get_array (offsets)) != 2
      || !node_get_count (json_array_get_element (json_node_get_array (offsets), 0), &e->begin)
      || !node_get_count (json_array_get_element (json_node_get_array (offsets), 1), &e->end))
    {
      st_file_tensor_error (error, path, name,
                            offsets ? "data_offsets is not a pair [begin, end] of "
                            "non-negative integers" : "data_offsets is missing");
      return FALSE;
    }
  if (e->end < e->begin)
    {
      st_file_tensor_error (error, path, name,
                            "data_offsets [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
                            "] end before they begin", e->begin, e->end);
      return FALSE;
    }
  return TRUE;
}

/* The shape and dtype take exactly the bytes the offsets hold. */
static gboolean
check_entry_size (const char *path, const char *name, const StHeaderEntry *e, GError **error)
{
  guint64 bytes = e->dtype->size;
  for (int i = 0; i < e->rank; i++)
    if (!g_uint64_checked_mul (&bytes, bytes, e->shape[i]))
      {
        g_autofree char *s = st_format_dims64 (e->shape, e->rank);
        st_file_tensor_error (error, path, name,
                              "shape %s is too large: its size in bytes overflows", s);
        return FALSE;
      }
  if (bytes != e->end - e->begin)
    {
      g_autofree char *s = st_format_dims64 (e->shape, e->rank);
      st_file_tensor_error (error, path, name, "shape %s of %s takes %" G_GUINT64_FORMAT " bytes, "
                            "data_offsets [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT "] hold %"
                            G_GUINT64_FORMAT, s, e->dtype->name, bytes, e->begin, e->end,
                            e->end - e->begin);
      return FALSE;
    }
  return TRUE;
}

static gboolean
parse_entry (const char *path, const char *name, JsonNode *node, StHeaderEntry *e, GError **error)
{
  e->name = name;
  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      st_file_tensor_error (error, path, name,
                            "entry is not an object {dtype, shape, data_offsets}");
      return FALSE;
    }
  JsonObject *info = json_node_get_object (node);
  return check_entry_keys (path, name, info, error)
         && parse_dtype (path, name, info, e, error)
         && parse_shape (path, name, info, e, error)
         && parse_offsets (path, name, info, e, error)
         && check_entry_size (path, name, e, error);
}

static gboolean
parse_metadata (const char *path, JsonNode *node, GHashTable *metadata, GError **error)
{
  /* An absent Option in the reference writer is null. */
  if (JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      st_file_error (error, path, "__metadata__ is not an object of strings");
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
          st_file_error (error, path, "__metadata__: the value of '%s' is not a string", shown);
          return FALSE;
        }
      g_hash_table_insert (metadata, g_strdup (key), g_strdup (json_node_get_string (value)));
    }
  return TRUE;
}

static int
compare_entries (gconstpointer a, gconstpointer b)
{
  const StHeaderEntry *x = *(const StHeaderEntry *const *) a;
  const StHeaderEntry *y = *(const StHeaderEntry *const *) b;
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
    g_ptr_array_add (sorted, &g_array_index (entries, StHeaderEntry, i));
  g_ptr_array_sort (sorted, compare_entries);

  guint64 expected = 0;
  const StHeaderEntry *prev = NULL;
  for (guint i = 0; i < sorted->len; i++)
    {
      const StHeaderEntry *e = sorted->pdata[i];
      if (e->begin < expected)
        {
          g_autofree char *other = st_printable (prev->name);
          st_file_tensor_error (error, path, e->name, "data_offsets [%" G_GUINT64_FORMAT ", %"
              G_GUINT64_FORMAT "] overlap those of tensor '%s' [%" G_GUINT64_FORMAT
                                ", %" G_GUINT64_FORMAT "]", e->begin, e->end, other, prev->begin,
                                prev->end);
          return FALSE;
        }
      if (e->begin > expected)
        {
          st_file_tensor_error (error, path, e->name, "data_offsets [%" G_GUINT64_FORMAT ", %"
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
          const StHeaderEntry *e = sorted->pdata[i];
          if (e->end > data_len)
            {
              st_file_tensor_error (error, path, e->name, "data_offsets [%" G_GUINT64_FORMAT ", %"
                                    G_GUINT64_FORMAT "] run past the end of the file, whose data "
                                    "section has %" G_GUINT64_FORMAT " bytes (truncated file?)",
                                    e->begin, e->end, data_len);
              return FALSE;
            }
        }
    }
  if (expected < data_len)
    {
      st_file_error (error, path, "%" G_GUINT64_FORMAT " bytes after the last tensor's data "
                     "belong to no tensor", data_len - expected);
      return FALSE;
    }
  return TRUE;
}

/* What strata cannot hold, in a file that is otherwise valid. */
gboolean
st_safetensors_check_supported (const char *path, const StHeaderEntry *e, GError **error)
{
  g_autofree char *s = st_format_dims64 (e->shape, e->rank);
  if (e->dtype->conv == CONV_NONE)
    {
      st_file_tensor_error (error, path, e->name,
                            "dtype %s is not supported (strata reads F32, F16, "
                            "BF16 and F64)", e->dtype->name);
      return FALSE;
    }
  if (e->rank > 4)
    {
      st_file_tensor_error (error, path, e->name, "shape %s has %d dimensions, strata's tensors at "
                            "most 4", s, e->rank);
      return FALSE;
    }
  for (int i = 0; i < e->rank; i++)
    if (e->shape[i] == 0 || e->shape[i] > G_MAXINT)
      {
        st_file_tensor_error (error, path, e->name, e->shape[i] == 0
                              ? "shape %s is empty: strata has no empty tensors"
                              : "shape %s has a dimension too large for strata", s);
        return FALSE;
      }
  return TRUE;
}

gboolean
st_safetensors_header_parse (const char *path, const char *header, gsize n, guint64 data_len,
                             GHashTable *metadata, StSafetensorsHeader *out, GError **error)
{
  if (!check_header_text (path, header, n, error))
    return FALSE;

  JsonParser *parser = out->parser = json_parser_new_immutable ();
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
      st_file_error (error, path, "header is not valid JSON: %s", shown);
      return FALSE;
    }
  JsonNode *root_node = json_parser_get_root (parser);
  if (!root_node || !JSON_NODE_HOLDS_OBJECT (root_node))
    {
      st_file_error (error, path, "header is not a JSON object");
      return FALSE;
    }
  JsonObject *root = json_node_get_object (root_node);
  if (dup_name)
    {
      duplicate_error (error, path, root, &scan);
      return FALSE;
    }

  GArray *entries = out->entries = g_array_new (FALSE, TRUE, sizeof (StHeaderEntry));
  g_array_set_clear_func (entries, entry_clear);
  JsonObjectIter iter;
  const char *name;
  JsonNode *node;
  json_object_iter_init_ordered (&iter, root);
  while (json_object_iter_next_ordered (&iter, &name, &node))
    {
      if (strcmp (name, "__metadata__") == 0)
        {
          if (!parse_metadata (path, node, metadata, error))
            return FALSE;
          continue;
        }
      if (!*name)
        {
          st_file_error (error, path, "header has a tensor with an empty name");
          return FALSE;
        }
      g_array_set_size (entries, entries->len + 1);
      StHeaderEntry *e = &g_array_index (entries, StHeaderEntry, entries->len - 1);
      if (!parse_entry (path, name, node, e, error))
        return FALSE;
    }
  return check_coverage (path, entries, data_len, error);
}

void
st_safetensors_header_clear (StSafetensorsHeader *header)
{
  g_clear_pointer (&header->entries, g_array_unref);
  g_clear_object (&header->parser);
}
