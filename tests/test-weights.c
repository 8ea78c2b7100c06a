/* safetensors files: round trips, files laid out as PyTorch writes them
 * (built here byte by byte), dtype conversions, every malformed file the
 * reader must refuse, and pipelines that stay unchanged when a load fails. */
#include "weights.h"
#include "context.h"
#include "stage.h"
#include "testutil.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

static StRegistry *reg;
static char *tmp_dir;

/* ---- Fixtures ------------------------------------------------------------ */

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmp_dir, name, NULL);
}

/* A safetensors file from header text, padded or not as given, and raw data. */
static char *
write_raw (const char *name, guint64 header_len, const char *header,
           const void *data, gsize data_len)
{
  char *path = tmp_path (name);
  GByteArray *bytes = g_byte_array_new ();
  guint64 le = GUINT64_TO_LE (header_len);
  g_byte_array_append (bytes, (const guint8 *) &le, 8);
  g_byte_array_append (bytes, (const guint8 *) header, (guint) strlen (header));
  if (data_len)
    g_byte_array_append (bytes, data, (guint) data_len);
  g_autoptr (GError) error = NULL;
  g_file_set_contents (path, (const char *) bytes->data, bytes->len, &error);
  g_assert_no_error (error);
  g_byte_array_unref (bytes);
  return path;
}

/* Header text padded with spaces to a multiple of 8, as the reference writer does. */
static char *
write_file (const char *name, const char *header, const void *data, gsize data_len)
{
  GString *h = g_string_new (header);
  while (h->len % 8)
    g_string_append_c (h, ' ');
  char *path = write_raw (name, h->len, h->str, data, data_len);
  g_string_free (h, TRUE);
  return path;
}

static void
check_message (const GError *error, const char *path, const char *const *fragments)
{
  g_assert_nonnull (error);
  g_test_message ("error: %s", error->message);
  g_assert_error (error, ST_ERROR, ST_ERROR_WEIGHTS);
  g_autofree char *prefix = g_strconcat (path, ": ", NULL);
  if (!g_str_has_prefix (error->message, prefix))
    g_error ("message '%s' does not start with '%s'", error->message, prefix);
  g_assert_null (strchr (error->message, '\n'));
  for (int i = 0; fragments[i]; i++)
    if (!strstr (error->message, fragments[i]))
      g_error ("message '%s' lacks '%s'", error->message, fragments[i]);
}

/* Reading the file fails with a message holding every fragment. */
static void
expect_read_error (const char *path, const char *const *fragments)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (StTensorFile) file = st_tensor_file_read (path, &error);
  g_assert_null (file);
  check_message (error, path, fragments);
}

#define EXPECT_READ_ERROR(path, ...) \
  expect_read_error (path, (const char *const[]) { __VA_ARGS__, NULL })

static const char *const small_net =
  "[pipeline]\ninput=1x4x4\n"
  "[conv1]\ntype=conv2d\nfilters=2\nsize=3\n"
  "[fc]\ntype=dense\nunits=3\n";

static StPipeline *
load_small_net (void)
{
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_data (reg, small_net, "small.ini", &error);
  g_assert_no_error (error);
  g_assert_cmpint (st_pipeline_n_stages (p), ==, 2);
  return p;
}

/* Every parameter value of p, concatenated, to see that a failed load
 * changed nothing. */
static GArray *
snapshot (StPipeline *p)
{
  GArray *all = g_array_new (FALSE, FALSE, sizeof (float));
  for (int s = 0; s < st_pipeline_n_stages (p); s++)
    for (int i = 0; i < st_stage_n_weights (st_pipeline_stage (p, s)); i++)
      {
        const StWeight *param = st_stage_get_weight (st_pipeline_stage (p, s), i);
        g_array_append_vals (all, param->value->data, (guint) st_tensor_numel (param->value));
      }
  return all;
}

static void
assert_snapshot_equal (GArray *a, GArray *b)
{
  g_assert_cmpuint (a->len, ==, b->len);
  g_assert_cmpmem (a->data, a->len * sizeof (float), b->data, b->len * sizeof (float));
}

static StWeight *
find_param (StPipeline *p, const char *full_name)
{
  for (int s = 0; s < st_pipeline_n_stages (p); s++)
    for (int i = 0; i < st_stage_n_weights (st_pipeline_stage (p, s)); i++)
      {
        StWeight *param = st_stage_get_weight (st_pipeline_stage (p, s), i);
        if (strcmp (param->full_name, full_name) == 0)
          return param;
      }
  g_error ("no parameter '%s'", full_name);
  return NULL;
}

/* Loading into the small net fails with these fragments and changes nothing. */
static void
expect_load_error (const char *path, const char *const *fragments)
{
  StPipeline *p = load_small_net ();
  g_autoptr (GArray) before = snapshot (p);
  g_autoptr (GError) error = NULL;
  g_assert_false (st_pipeline_load_weights (p, path, &error));
  check_message (error, path, fragments);
  g_autoptr (GArray) after = snapshot (p);
  assert_snapshot_equal (before, after);
  st_pipeline_free (p);
}

#define EXPECT_LOAD_ERROR(path, ...) \
  expect_load_error (path, (const char *const[]) { __VA_ARGS__, NULL })

/* ---- Round trip -------------------------------------------------------------- */

static float
float_from_bits (guint32 bits)
{
  float f;
  memcpy (&f, &bits, 4);
  return f;
}

static void
test_round_trip (void)
{
  StNamedTensor a = { "layer.a", 1, { 5, 1, 1, 1 }, st_tensor_new0 (5, 1, 1, 1) };
  StNamedTensor b = { "layer.b", 2, { 3, 4, 1, 1 }, st_tensor_new0 (3, 4, 1, 1) };
  StNamedTensor c = { "conv.weight", 4, { 2, 3, 2, 2 }, st_tensor_new0 (2, 3, 2, 2) };
  StNamedTensor s = { "scale", 0, { 1, 1, 1, 1 }, st_tensor_new0 (1, 1, 1, 1) };
  /* Bit patterns a lossy path would change: -0, subnormal, huge, NaN. */
  const guint32 special[5] = { 0x80000000u, 0x00000001u, 0x7f7fffffu, 0x7fc01234u, 0xbf800000u };
  for (int i = 0; i < 5; i++)
    a.value->data[i] = float_from_bits (special[i]);
  for (int i = 0; i < 12; i++)
    b.value->data[i] = (float) i * 0.1f - 0.55f;
  for (int i = 0; i < 24; i++)
    c.value->data[i] = (float) ((i * 7919) % 101) / -13.0f;
  s.value->data[0] = 42.5f;
  const StNamedTensor *const tensors[] = { &b, &a, &c, &s };

  g_autoptr (GHashTable) meta = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (meta, "epoch", "3");
  g_hash_table_insert (meta, "note", "quote \" backslash \\ tab \t newline \n é");

  g_autofree char *path = tmp_path ("round.safetensors");
  g_autoptr (GError) error = NULL;
  /* Twice: the second replaces the first. */
  g_assert_true (st_tensor_file_write (path, tensors, 4, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (st_tensor_file_write (path, tensors, 4, meta, &error));
  g_assert_no_error (error);

  /* No temporary file is left beside it. */
  g_autoptr (GDir) dir = g_dir_open (tmp_dir, 0, NULL);
  for (const char *entry; (entry = g_dir_read_name (dir));)
    g_assert_false (g_str_has_prefix (entry, ".round.safetensors."));

  /* The layout: header length a multiple of 8, data in the order given, bit-exact. */
  g_autofree char *contents = NULL;
  gsize size;
  g_assert_true (g_file_get_contents (path, &contents, &size, NULL));
  guint64 n;
  memcpy (&n, contents, 8);
  n = GUINT64_FROM_LE (n);
  g_assert_cmpuint (n % 8, ==, 0);
  g_assert_cmpuint (size, ==, 8 + n + 4 * (12 + 5 + 24 + 1));
  g_assert_true (g_str_has_prefix (contents + 8, "{\"__metadata__\":{"));
  g_autofree char *header = g_strndup (contents + 8, n);
  g_assert_nonnull (strstr (header, "\"format\":\"pt\""));
  g_assert_nonnull (strstr (header, "\"layer.b\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]}"));
  g_assert_nonnull (strstr (header, "\"scale\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[164,168]}"));
  g_assert_true (strstr (header, "\"layer.b\"") < strstr (header, "\"layer.a\""));
  const char *data = contents + 8 + n;
  g_assert_cmpmem (data, 48, b.value->data, 48);
  g_assert_cmpmem (data + 48, 20, a.value->data, 20);
  g_assert_cmpmem (data + 68, 96, c.value->data, 96);
  g_assert_cmpmem (data + 164, 4, s.value->data, 4);

  g_autoptr (StTensorFile) file = st_tensor_file_read (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (file->tensors->len, ==, 4);
  for (int i = 0; i < 4; i++)
    {
      const StNamedTensor *want = tensors[i];
      const StNamedTensor *got = file->tensors->pdata[i];
      g_assert_cmpstr (got->name, ==, want->name);
      g_assert_true (st_tensor_file_find (file, want->name) == got);
      g_assert_cmpint (got->rank, ==, want->rank);
      g_assert_cmpmem (got->dims, sizeof got->dims, want->dims, sizeof want->dims);
      g_assert_true (st_shape_equal (got->value->shape, want->value->shape));
      g_assert_true (got->value != want->value);
      g_assert_cmpuint ((guintptr) got->value->data % ST_TENSOR_ALIGN, ==, 0);
      g_assert_cmpmem (got->value->data, st_tensor_numel (got->value) * 4,
                       want->value->data, st_tensor_numel (want->value) * 4);
    }
  g_assert_null (st_tensor_file_find (file, "layer.c"));
  g_assert_cmpuint (g_hash_table_size (file->metadata), ==, 3);
  g_assert_cmpstr (g_hash_table_lookup (file->metadata, "format"), ==, "pt");
  g_assert_cmpstr (g_hash_table_lookup (file->metadata, "epoch"), ==, "3");
  g_assert_cmpstr (g_hash_table_lookup (file->metadata, "note"), ==,
                   "quote \" backslash \\ tab \t newline \n é");

  st_tensor_free (a.value);
  st_tensor_free (b.value);
  st_tensor_free (c.value);
  st_tensor_free (s.value);
}

/* The same weights make the same bytes; an empty list is a valid file. */
static void
test_write_deterministic_and_empty (void)
{
  StNamedTensor t = { "w", 2, { 2, 2, 1, 1 }, st_tensor_new0 (2, 2, 1, 1) };
  const StNamedTensor *const tensors[] = { &t };
  g_autoptr (GHashTable) meta = g_hash_table_new (g_str_hash, g_str_equal);
  for (int i = 0; i < 20; i++)
    g_hash_table_insert (meta, g_strdup_printf ("key%02d", i), "v");
  g_autofree char *p1 = tmp_path ("det1.safetensors");
  g_autofree char *p2 = tmp_path ("det2.safetensors");
  g_autoptr (GError) error = NULL;
  g_assert_true (st_tensor_file_write (p1, tensors, 1, meta, &error));
  g_assert_true (st_tensor_file_write (p2, tensors, 1, meta, &error));
  g_autofree char *c1 = NULL, *c2 = NULL;
  gsize n1, n2;
  g_assert_true (g_file_get_contents (p1, &c1, &n1, NULL));
  g_assert_true (g_file_get_contents (p2, &c2, &n2, NULL));
  g_assert_cmpmem (c1, n1, c2, n2);
  GList *keys = g_hash_table_get_keys (meta);
  for (GList *k = keys; k; k = k->next)
    g_free (k->data);
  g_list_free (keys);

  g_autofree char *p3 = tmp_path ("empty-list.safetensors");
  g_assert_true (st_tensor_file_write (p3, NULL, 0, NULL, &error));
  g_assert_no_error (error);
  g_autoptr (StTensorFile) file = st_tensor_file_read (p3, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (file->tensors->len, ==, 0);
  g_assert_cmpstr (g_hash_table_lookup (file->metadata, "format"), ==, "pt");
  st_tensor_free (t.value);
}

static void
test_write_errors (void)
{
  StNamedTensor t = { "w", 1, { 4, 1, 1, 1 }, st_tensor_new0 (4, 1, 1, 1) };
  StNamedTensor bad = { "bad", 2, { 3, 2, 1, 1 }, st_tensor_new0 (4, 1, 1, 1) };
  g_autoptr (GError) error = NULL;

  g_autofree char *nodir = g_build_filename (tmp_dir, "no-such-dir", "w.safetensors", NULL);
  g_assert_false (st_tensor_file_write (nodir, (const StNamedTensor *const[]) { &t }, 1, NULL,
                                        &error));
  check_message (error, nodir, (const char *const[]) { "temporary file", NULL });
  g_clear_error (&error);

  g_autofree char *dup = tmp_path ("dup-write.safetensors");
  g_assert_false (st_tensor_file_write (dup, (const StNamedTensor *const[]) { &t, &t }, 2, NULL,
                                        &error));
  check_message (error, dup, (const char *const[]) { "tensor 'w'", "twice", NULL });
  g_clear_error (&error);
  g_assert_false (g_file_test (dup, G_FILE_TEST_EXISTS));

  g_assert_false (st_tensor_file_write (dup, (const StNamedTensor *const[]) { &bad }, 1, NULL,
                                        &error));
  check_message (error, dup, (const char *const[]) { "tensor 'bad'", "[3, 2]", "4 elements", NULL });
  g_clear_error (&error);

  /* A directory in the way: the rename fails and the temporary file goes. */
  g_autofree char *subdir = tmp_path ("a-directory");
  g_assert_cmpint (g_mkdir (subdir, 0755), ==, 0);
  g_assert_false (st_tensor_file_write (subdir, (const StNamedTensor *const[]) { &t }, 1, NULL,
                                        &error));
  check_message (error, subdir, (const char *const[]) { "cannot rename", NULL });
  g_clear_error (&error);
  g_autoptr (GDir) dir = g_dir_open (tmp_dir, 0, NULL);
  for (const char *entry; (entry = g_dir_read_name (dir));)
    g_assert_false (g_str_has_prefix (entry, ".a-directory."));
  g_rmdir (subdir);

  st_tensor_free (t.value);
  st_tensor_free (bad.value);
}

/* ---- Pipelines ------------------------------------------------------------------ */

/* Weights of the small net, and the file torch's save_file would write for
 * them: keys sorted, "__metadata__" first, data in an order of its own. */
static float conv_w[2][1][3][3], conv_b[2], fc_w[3][8], fc_b[3];

static void
fill_weights (void)
{
  for (int f = 0; f < 2; f++)
    for (int i = 0; i < 9; i++)
      conv_w[f][0][i / 3][i % 3] = (float) ((f * 9 + i) % 7 - 3) * 0.125f;
  conv_b[0] = 0.5f;
  conv_b[1] = -0.25f;
  for (int u = 0; u < 3; u++)
    for (int j = 0; j < 8; j++)
      fc_w[u][j] = (float) ((u * 8 + j) % 5 - 2) * 0.0625f + (float) u * 0.01f;
  fc_b[0] = 0.1f;
  fc_b[1] = -0.2f;
  fc_b[2] = 0.3f;
}

static char *
write_torch_file (const char *name)
{
  /* Offsets: fc.weight [0, 96), conv1.weight [96, 168), fc.bias [168, 180),
   * conv1.bias [180, 188). */
  guint8 data[188];
  memcpy (data, fc_w, 96);
  memcpy (data + 96, conv_w, 72);
  memcpy (data + 168, fc_b, 12);
  memcpy (data + 180, conv_b, 8);
  return write_file (name,
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"conv1.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[180,188]},"
    "\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[2,1,3,3],\"data_offsets\":[96,168]},"
    "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[168,180]},"
    "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,8],\"data_offsets\":[0,96]}}",
    data, sizeof data);
}

static void
test_torch_layout_scores (void)
{
  fill_weights ();
  g_autofree char *path = write_torch_file ("torch.safetensors");
  StPipeline *p = load_small_net ();
  g_autoptr (GError) error = NULL;
  g_assert_true (st_pipeline_load_weights (p, path, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (find_param (p, "conv1.weight")->value->data, 72, conv_w, 72);
  g_assert_cmpmem (find_param (p, "fc.bias")->value->data, 12, fc_b, 12);

  float x[4][4];
  for (int i = 0; i < 16; i++)
    x[i / 4][i % 4] = (float) (i % 5) * 0.25f - 0.5f;
  g_autoptr (StTensor) in = st_tensor_new0 (1, 1, 4, 4);
  memcpy (in->data, x, sizeof x);
  g_autoptr (StRunContext) ctx = st_run_context_new (1, 1);
  g_autoptr (StTensor) out = st_pipeline_forward (p, ctx, in, FALSE, &error);
  g_assert_no_error (error);
  g_assert_cmpint (out->shape.c, ==, 3);

  /* By hand: a valid 3x3 correlation to [2, 2, 2], flattened in C, H, W
   * order as torch.flatten does, then fc.weight · features + fc.bias. */
  double feat[8];
  for (int f = 0; f < 2; f++)
    for (int y = 0; y < 2; y++)
      for (int xx = 0; xx < 2; xx++)
        {
          double acc = conv_b[f];
          for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++)
              acc += (double) conv_w[f][0][ky][kx] * x[y + ky][xx + kx];
          feat[f * 4 + y * 2 + xx] = acc;
        }
  for (int u = 0; u < 3; u++)
    {
      double score = fc_b[u];
      for (int j = 0; j < 8; j++)
        score += (double) fc_w[u][j] * feat[j];
      g_test_message ("score %d: %g, expected %g", u, out->data[u], score);
      g_assert_cmpfloat_with_epsilon (out->data[u], score, 1e-5);
    }
  st_pipeline_free (p);
}

static void
test_pipeline_save_load (void)
{
  StPipeline *p = load_small_net ();
  StPipeline *q = load_small_net ();
  /* Values of its own, so that q's initialisation cannot pass for a load. */
  for (int s = 0; s < st_pipeline_n_stages (p); s++)
    for (int i = 0; i < st_stage_n_weights (st_pipeline_stage (p, s)); i++)
      {
        StWeight *param = st_stage_get_weight (st_pipeline_stage (p, s), i);
        for (gsize k = 0; k < st_tensor_numel (param->value); k++)
          param->value->data[k] = (float) (s * 100 + i * 10) + (float) k / 64.0f;
      }
  g_autoptr (GHashTable) meta = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (meta, "epoch", "7");
  g_autofree char *path = tmp_path ("small.safetensors");
  g_autoptr (GError) error = NULL;
  g_assert_true (st_pipeline_save_weights (p, path, meta, &error));
  g_assert_no_error (error);

  g_autoptr (StTensorFile) file = st_tensor_file_read (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (file->tensors->len, ==, 4);
  const char *const names[] = { "conv1.weight", "conv1.bias", "fc.weight", "fc.bias" };
  const int ranks[] = { 4, 1, 2, 1 };
  const int dims[][4] = { { 2, 1, 3, 3 }, { 2, 1, 1, 1 }, { 3, 8, 1, 1 }, { 3, 1, 1, 1 } };
  for (int i = 0; i < 4; i++)
    {
      const StNamedTensor *t = file->tensors->pdata[i];
      g_assert_cmpstr (t->name, ==, names[i]);
      g_assert_cmpint (t->rank, ==, ranks[i]);
      g_assert_cmpmem (t->dims, sizeof t->dims, dims[i], sizeof dims[i]);
    }
  g_assert_cmpstr (g_hash_table_lookup (file->metadata, "strata.pipeline"), ==,
                   st_pipeline_name (p));
  g_assert_cmpstr (g_hash_table_lookup (file->metadata, "epoch"), ==, "7");
  g_assert_cmpstr (g_hash_table_lookup (file->metadata, "format"), ==, "pt");

  g_assert_true (st_pipeline_load_weights (q, path, &error));
  g_assert_no_error (error);
  g_autoptr (GArray) sp = snapshot (p);
  g_autoptr (GArray) sq = snapshot (q);
  assert_snapshot_equal (sp, sq);
  st_pipeline_free (p);
  st_pipeline_free (q);
}

static void
test_pipeline_mismatch (void)
{
  fill_weights ();
  guint8 data[188];
  memcpy (data, fc_w, 96);
  memcpy (data + 96, conv_w, 72);
  memcpy (data + 168, fc_b, 12);
  memcpy (data + 180, conv_b, 8);

  g_autofree char *missing = write_file ("missing.safetensors",
    "{\"conv1.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[168,176]},"
    "\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[2,1,3,3],\"data_offsets\":[96,168]},"
    "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,8],\"data_offsets\":[0,96]}}",
    data, 176);
  EXPECT_LOAD_ERROR (missing, "tensor 'fc.bias'", "missing", "[3]");

  guint8 data_extra[196] = { 0 };
  memcpy (data_extra, data, sizeof data);
  g_autofree char *extra = write_file ("extra.safetensors",
    "{\"conv1.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[180,188]},"
    "\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[2,1,3,3],\"data_offsets\":[96,168]},"
    "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[168,180]},"
    "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,8],\"data_offsets\":[0,96]},"
    "\"fc9.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[188,196]}}",
    data_extra, sizeof data_extra);
  EXPECT_LOAD_ERROR (extra, "tensor 'fc9.weight' is not a parameter of this pipeline");

  /* Renamed: the hint names what the file lacks. */
  g_autofree char *renamed = write_file ("renamed.safetensors",
    "{\"c1.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[180,188]},"
    "\"c1.weight\":{\"dtype\":\"F32\",\"shape\":[2,1,3,3],\"data_offsets\":[96,168]},"
    "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[168,180]},"
    "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,8],\"data_offsets\":[0,96]}}",
    data, 188);
  EXPECT_LOAD_ERROR (renamed, "tensor 'c1.bias' is not a parameter", "'conv1.weight'",
                     "'conv1.bias'");

  /* conv1.weight [3, 1, 3, 3] takes 108 bytes; the others follow it. */
  guint8 big[224] = { 0 };
  g_autofree char *shape = write_file ("shape.safetensors",
    "{\"conv1.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[216,224]},"
    "\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[3,1,3,3],\"data_offsets\":[96,204]},"
    "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[204,216]},"
    "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,8],\"data_offsets\":[0,96]}}",
    big, sizeof big);
  EXPECT_LOAD_ERROR (shape, "tensor 'conv1.weight': shape [3, 1, 3, 3] in the file, "
                     "the pipeline expects [2, 1, 3, 3]");

  /* Same element count, another rank: still refused. */
  g_autofree char *rank = write_file ("rank.safetensors",
    "{\"conv1.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[180,188]},"
    "\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[2,1,3,3],\"data_offsets\":[96,168]},"
    "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[3,1],\"data_offsets\":[168,180]},"
    "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,8],\"data_offsets\":[0,96]}}",
    data, 188);
  EXPECT_LOAD_ERROR (rank, "tensor 'fc.bias': shape [3, 1] in the file, the pipeline expects [3]");

  /* Good values for conv1, a bad shape after them: conv1 is not touched. */
  g_autofree char *late = write_file ("late.safetensors",
    "{\"conv1.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[180,188]},"
    "\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[2,1,3,3],\"data_offsets\":[96,168]},"
    "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[168,180]},"
    "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[8,3],\"data_offsets\":[0,96]}}",
    data, 188);
  EXPECT_LOAD_ERROR (late, "tensor 'fc.weight'", "[8, 3]", "[3, 8]");

  /* A file that cannot be read at all leaves p as it was too. */
  g_autofree char *truncated = write_file ("truncated-load.safetensors",
    "{\"conv1.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[180,188]},"
    "\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[2,1,3,3],\"data_offsets\":[96,168]},"
    "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[168,180]},"
    "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,8],\"data_offsets\":[0,96]}}",
    data, 184);
  EXPECT_LOAD_ERROR (truncated, "tensor 'conv1.bias'", "past the end");

  g_autofree char *nowhere = tmp_path ("does-not-exist.safetensors");
  EXPECT_LOAD_ERROR (nowhere, "cannot open");
}

/* ---- Data types -------------------------------------------------------------------- */

static guint32
bits_of (float f)
{
  guint32 u;
  memcpy (&u, &f, 4);
  return u;
}

static void
test_dtypes (void)
{
  /* F16: 1, -2, 0.5, 65504 (largest), 2^-24 (smallest subnormal), 1023 · 2^-24
   * (largest subnormal), -2^-24, -0, 2^-14 (smallest normal), inf, -inf, NaN. */
  const guint16 f16[12] = { 0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x03ff, 0x8001, 0x8000,
                            0x0400, 0x7c00, 0xfc00, 0x7e00 };
  /* BF16: 1, -3.5, 2^-133 (subnormal), 1.5 · 2^127, -0. */
  const guint16 bf16[5] = { 0x3f80, 0xc060, 0x0001, 0x7f40, 0x8000 };
  const double f64[4] = { 0.1, -1e-30, 3.0, -123456.789 };
  guint16 le16[17];
  for (int i = 0; i < 12; i++)
    le16[i] = GUINT16_TO_LE (f16[i]);
  for (int i = 0; i < 5; i++)
    le16[12 + i] = GUINT16_TO_LE (bf16[i]);
  guint8 data[34 + 32 + 2];
  memcpy (data, le16, 34);
  for (int i = 0; i < 4; i++)
    {
      guint64 u;
      memcpy (&u, &f64[i], 8);
      u = GUINT64_TO_LE (u);
      memcpy (data + 34 + 8 * i, &u, 8);
    }
  /* Two bytes of a BF16 scalar after the F64s: unaligned reads. */
  guint16 one = GUINT16_TO_LE (0xbf80);
  memcpy (data + 66, &one, 2);

  g_autofree char *path = write_file ("dtypes.safetensors",
    "{\"h\":{\"dtype\":\"F16\",\"shape\":[3,4],\"data_offsets\":[0,24]},"
    "\"b\":{\"dtype\":\"BF16\",\"shape\":[5],\"data_offsets\":[24,34]},"
    "\"d\":{\"dtype\":\"F64\",\"shape\":[2,2],\"data_offsets\":[34,66]},"
    "\"s\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[66,68]}}",
    data, sizeof data);
  g_autoptr (GError) error = NULL;
  g_autoptr (StTensorFile) file = st_tensor_file_read (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_hash_table_size (file->metadata), ==, 0);

  const StNamedTensor *h = st_tensor_file_find (file, "h");
  g_assert_cmpint (h->rank, ==, 2);
  g_assert_cmpint (h->value->shape.n, ==, 3);
  g_assert_cmpint (h->value->shape.c, ==, 4);
  const float *v = h->value->data;
  g_assert_cmpfloat (v[0], ==, 1.0f);
  g_assert_cmpfloat (v[1], ==, -2.0f);
  g_assert_cmpfloat (v[2], ==, 0.5f);
  g_assert_cmpfloat (v[3], ==, 65504.0f);
  g_assert_cmpfloat (v[4], ==, ldexpf (1.0f, -24));
  g_assert_cmpfloat (v[5], ==, 1023.0f * ldexpf (1.0f, -24));
  g_assert_cmpfloat (v[6], ==, -ldexpf (1.0f, -24));
  g_assert_cmphex (bits_of (v[7]), ==, 0x80000000u);
  g_assert_cmpfloat (v[8], ==, ldexpf (1.0f, -14));
  g_assert_true (isinf (v[9]) && v[9] > 0);
  g_assert_true (isinf (v[10]) && v[10] < 0);
  g_assert_true (isnan (v[11]));

  const StNamedTensor *b = st_tensor_file_find (file, "b");
  v = b->value->data;
  g_assert_cmpfloat (v[0], ==, 1.0f);
  g_assert_cmpfloat (v[1], ==, -3.5f);
  g_assert_cmpfloat (v[2], ==, ldexpf (1.0f, -133));
  g_assert_cmpfloat (v[3], ==, 1.5f * ldexpf (1.0f, 127));
  g_assert_cmphex (bits_of (v[4]), ==, 0x80000000u);

  const StNamedTensor *d = st_tensor_file_find (file, "d");
  g_assert_cmpint (d->rank, ==, 2);
  for (int i = 0; i < 4; i++)
    g_assert_cmpfloat (d->value->data[i], ==, (float) f64[i]);

  const StNamedTensor *s = st_tensor_file_find (file, "s");
  g_assert_cmpint (s->rank, ==, 0);
  g_assert_cmpuint (st_tensor_numel (s->value), ==, 1);
  g_assert_cmpfloat (s->value->data[0], ==, -1.0f);
}

/* ---- Malformed files ----------------------------------------------------------------- */

static void
test_malformed (void)
{
  guint8 zeros[64] = { 0 };

  g_autofree char *empty = tmp_path ("empty.safetensors");
  g_assert_true (g_file_set_contents (empty, "", 0, NULL));
  EXPECT_READ_ERROR (empty, "empty");

  g_autofree char *seven = tmp_path ("seven.safetensors");
  g_assert_true (g_file_set_contents (seven, "\x10\0\0\0\0\0\0", 7, NULL));
  EXPECT_READ_ERROR (seven, "7 bytes", "too short");

  g_autofree char *long_header = write_raw ("long-header.safetensors", 1000, "{}", NULL, 0);
  EXPECT_READ_ERROR (long_header, "header length 1000", "past the end of the file");

  g_autofree char *huge_header = write_raw ("huge-header.safetensors", 200000000, "{}", NULL, 0);
  EXPECT_READ_ERROR (huge_header, "header length 200000000", "8 MiB");

  g_autofree char *not_json = write_file ("not-json.safetensors",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],}}", zeros, 8);
  EXPECT_READ_ERROR (not_json, "header is not valid JSON");
  g_autofree char *not_object = write_file ("not-object.safetensors", "[1, 2]", NULL, 0);
  EXPECT_READ_ERROR (not_object, "header does not start with '{'");
  g_autofree char *comment = write_file ("comment.safetensors",
    "{/* hi */\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", zeros, 8);
  EXPECT_READ_ERROR (comment, "not valid JSON", "'/'");
  g_autofree char *quotes = write_file ("quotes.safetensors",
    "{\"a\":{\"dtype\":'F32',\"shape\":[2],\"data_offsets\":[0,8]}}", zeros, 8);
  EXPECT_READ_ERROR (quotes, "not valid JSON");
  g_autofree char *two = write_file ("two-values.safetensors",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} {}", zeros, 8);
  EXPECT_READ_ERROR (two, "not valid JSON", "after the object");
  g_autofree char *nul = tmp_path ("nul.safetensors");
  const guint8 nul_bytes[16] = { 8, 0, 0, 0, 0, 0, 0, 0, '{', '}', 0, ' ', ' ', ' ', ' ', ' ' };
  g_assert_true (g_file_set_contents (nul, (const char *) nul_bytes, sizeof nul_bytes, NULL));
  EXPECT_READ_ERROR (nul, "UTF-8");

  g_autofree char *outside = write_file ("outside.safetensors",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
    "\"b\":{\"dtype\":\"F32\",\"shape\":[250],\"data_offsets\":[8,1008]}}", zeros, 16);
  EXPECT_READ_ERROR (outside, "tensor 'b'", "[8, 1008]", "past the end of the file", "16 bytes");

  g_autofree char *overlap = write_file ("overlap.safetensors",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", zeros, 12);
  EXPECT_READ_ERROR (overlap, "tensor 'b'", "overlap", "tensor 'a'");

  g_autofree char *same = write_file ("same-range.safetensors",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", zeros, 8);
  EXPECT_READ_ERROR (same, "overlap");

  g_autofree char *hole = write_file ("hole.safetensors",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", zeros, 20);
  EXPECT_READ_ERROR (hole, "tensor 'b'", "hole", "bytes 8 to 12");

  g_autofree char *first_hole = write_file ("first-hole.safetensors",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", zeros, 12);
  EXPECT_READ_ERROR (first_hole, "tensor 'a'", "hole", "bytes 0 to 4");

  g_autofree char *shorter = write_file ("shorter.safetensors",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
    "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[8,20]}}", zeros, 17);
  EXPECT_READ_ERROR (shorter, "tensor 'b'", "past the end", "17 bytes", "truncated");

  g_autofree char *trailing = write_file ("trailing.safetensors",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", zeros, 13);
  EXPECT_READ_ERROR (trailing, "5 bytes after the last tensor");

  g_autofree char *length = write_file ("length.safetensors",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", zeros, 8);
  EXPECT_READ_ERROR (length, "tensor 'a'", "shape [3] of F32 takes 12 bytes", "[0, 8] hold 8");

  g_autofree char *overflow = write_file ("overflow.safetensors",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,8]}}",
    zeros, 8);
  EXPECT_READ_ERROR (overflow, "tensor 'a'", "overflows");

  g_autofree char *dup = write_file ("dup.safetensors",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
    "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", zeros, 16);
  EXPECT_READ_ERROR (dup, "tensor 'a'", "appears twice");
  /* The same name spelled with an escape is the same name. */
  g_autofree char *dup_escaped = write_file ("dup-escaped.safetensors",
    "{\"ab\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
    "\"a\\u0062\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", zeros, 16);
  EXPECT_READ_ERROR (dup_escaped, "tensor 'ab'", "appears twice");
  g_autofree char *dup_key = write_file ("dup-key.safetensors",
    "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}",
    zeros, 8);
  EXPECT_READ_ERROR (dup_key, "tensor 'a'", "key 'dtype' appears twice");

  g_autofree char *unknown = write_file ("unknown-dtype.safetensors",
    "{\"w\":{\"dtype\":\"F17\",\"shape\":[2],\"data_offsets\":[0,8]}}", zeros, 8);
  EXPECT_READ_ERROR (unknown, "tensor 'w'", "unknown dtype 'F17'");
  g_autofree char *int64 = write_file ("i64.safetensors",
    "{\"step\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", zeros, 8);
  EXPECT_READ_ERROR (int64, "tensor 'step'", "dtype I64 is not supported");
  g_autofree char *rank5 = write_file ("rank5.safetensors",
    "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,8]}}", zeros, 8);
  EXPECT_READ_ERROR (rank5, "tensor 'w'", "5 dimensions");
  g_autofree char *zero = write_file ("zero.safetensors",
    "{\"w\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]}}", NULL, 0);
  EXPECT_READ_ERROR (zero, "tensor 'w'", "empty");

  g_autofree char *meta = write_file ("meta.safetensors",
    "{\"__metadata__\":{\"format\":\"pt\",\"epoch\":3}}", NULL, 0);
  EXPECT_READ_ERROR (meta, "__metadata__", "'epoch' is not a string");
  g_autofree char *negative = write_file ("negative.safetensors",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", zeros, 8);
  EXPECT_READ_ERROR (negative, "tensor 'a'", "data_offsets is not a pair");
  g_autofree char *fraction = write_file ("fraction.safetensors",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", zeros, 8);
  EXPECT_READ_ERROR (fraction, "tensor 'a'", "shape is not a list");
  g_autofree char *big_int = write_file ("big-int.safetensors",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551624]}}",
    zeros, 8);
  EXPECT_READ_ERROR (big_int, "tensor 'a'", "data_offsets is not a pair");
  g_autofree char *backwards = write_file ("backwards.safetensors",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8,4]}}", zeros, 8);
  EXPECT_READ_ERROR (backwards, "tensor 'a'", "end before they begin");
  g_autofree char *no_dtype = write_file ("no-dtype.safetensors",
    "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", zeros, 8);
  EXPECT_READ_ERROR (no_dtype, "tensor 'a'", "dtype is missing");
  g_autofree char *extra_key = write_file ("extra-key.safetensors",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"order\":\"big\"}}",
    zeros, 8);
  EXPECT_READ_ERROR (extra_key, "tensor 'a'", "unknown key 'order'");
  g_autofree char *newline = write_file ("newline.safetensors",
    "{\"a\\nb\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", zeros, 8);
  EXPECT_READ_ERROR (newline, "tensor 'a\\x0ab'");
  g_autofree char *not_entry = write_file ("not-entry.safetensors", "{\"a\":[1,2]}", NULL, 0);
  EXPECT_READ_ERROR (not_entry, "tensor 'a'", "not an object");

  g_autofree char *folder = tmp_path ("folder.safetensors");
  g_assert_cmpint (g_mkdir (folder, 0755), ==, 0);
  EXPECT_READ_ERROR (folder, "directory");
  g_rmdir (folder);
}

/* Padding the reference writer does not add is still read: JSON whitespace. */
static void
test_unpadded_and_null_metadata (void)
{
  float v[2] = { 1.5f, -2.5f };
  const char *header =
    "{\"__metadata__\":null,\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  g_assert_cmpuint (strlen (header) % 8, !=, 0);
  g_autofree char *path = write_raw ("unpadded.safetensors", strlen (header), header, v, sizeof v);
  g_autoptr (GError) error = NULL;
  g_autoptr (StTensorFile) file = st_tensor_file_read (path, &error);
  g_assert_no_error (error);
  g_assert_cmpfloat (((StNamedTensor *) file->tensors->pdata[0])->value->data[1], ==, -2.5f);
}

/* ---- Python -------------------------------------------------------------------------- */

/* Files strata writes, read by Python: with the safetensors package when it
 * is installed (the reference reader), else by the standard json module
 * (a strict parser that is not json-glib) and struct. */
static void
test_python_reads (void)
{
  StNamedTensor w = { "conv1.weight", 4, { 2, 1, 3, 3 }, st_tensor_new0 (2, 1, 3, 3) };
  StNamedTensor b = { "conv1.bias", 1, { 2, 1, 1, 1 }, st_tensor_new0 (2, 1, 1, 1) };
  for (int i = 0; i < 18; i++)
    w.value->data[i] = (float) i * 0.5f - 4.0f;
  b.value->data[0] = 0.25f;
  b.value->data[1] = -1.0f;
  g_autoptr (GHashTable) meta = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (meta, "strata.pipeline", "net \"1\".ini");
  g_autofree char *path = tmp_path ("python.safetensors");
  g_autoptr (GError) error = NULL;
  g_assert_true (st_tensor_file_write (path, (const StNamedTensor *const[]) { &w, &b }, 2, meta,
                                       &error));
  st_tensor_free (w.value);
  st_tensor_free (b.value);

  const char *script =
    "import json, struct, sys\n"
    "print('start', flush=True)\n"
    "path = sys.argv[1]\n"
    "try:\n"
    "    from safetensors.torch import load_file\n"
    "    from safetensors import safe_open\n"
    "except ImportError:\n"
    "    load_file = None\n"
    "if load_file is not None:\n"
    "    t = load_file(path)\n"
    "    assert list(t['conv1.weight'].shape) == [2, 1, 3, 3]\n"
    "    assert t['conv1.weight'].flatten().tolist() == [i * 0.5 - 4 for i in range(18)]\n"
    "    assert t['conv1.bias'].tolist() == [0.25, -1.0]\n"
    "    with safe_open(path, 'pt') as f:\n"
    "        assert f.metadata()['format'] == 'pt'\n"
    "        assert f.metadata()['strata.pipeline'] == 'net \"1\".ini'\n"
    "    print('safetensors')\n"
    "else:\n"
    "    raw = open(path, 'rb').read()\n"
    "    n = struct.unpack('<Q', raw[:8])[0]\n"
    "    assert n % 8 == 0\n"
    "    h = json.loads(raw[8:8 + n].decode('utf-8'))\n"
    "    assert h['__metadata__'] == {'format': 'pt', 'strata.pipeline': 'net \"1\".ini'}\n"
    "    w, b = h['conv1.weight'], h['conv1.bias']\n"
    "    assert w == {'dtype': 'F32', 'shape': [2, 1, 3, 3], 'data_offsets': [0, 72]}\n"
    "    assert b == {'dtype': 'F32', 'shape': [2], 'data_offsets': [72, 80]}\n"
    "    data = raw[8 + n:]\n"
    "    assert len(data) == 80\n"
    "    assert list(struct.unpack('<18f', data[:72])) == [i * 0.5 - 4 for i in range(18)]\n"
    "    assert list(struct.unpack('<2f', data[72:])) == [0.25, -1.0]\n"
    "    print('json')\n";
  const char *argv[] = { "python3", "-c", script, path, NULL };
  g_autofree char *out = NULL, *err = NULL;
  int status;
  /* Without "start" first, no working python3 ran the script (a pyenv shim
   * with no interpreter behind it, say). */
  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err,
                     &status, &error)
      || !g_str_has_prefix (out, "start\n"))
    {
      g_test_skip ("python3 is not available");
      return;
    }
  g_test_message ("python3: %s%s", out, err);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  if (strstr (out, "json"))
    g_test_message ("the safetensors package is missing: checked with json and struct only");
}

/* ---- Main ------------------------------------------------------------------------------ */

/* ---- Values and metadata a load must check --------------------------------- */

/* The small net's parameters saved with value at index k of fc.weight. */
static char *
save_small_net_with (const char *name, gsize k, float value, GHashTable *meta)
{
  StPipeline *p = load_small_net ();
  find_param (p, "fc.weight")->value->data[k] = value;
  char *path = tmp_path (name);
  g_autoptr (GError) error = NULL;
  g_assert_true (st_pipeline_save_weights (p, path, meta, &error));
  st_pipeline_free (p);
  return path;
}

static void
test_non_finite (void)
{
  g_autofree char *nan_path = save_small_net_with ("nan.safetensors", 5, NAN, NULL);
  EXPECT_LOAD_ERROR (nan_path, "tensor 'fc.weight'", "1 of its 24 values is not finite");

  /* Several, infinities included, counted. */
  StPipeline *p = load_small_net ();
  StWeight *bias = find_param (p, "conv1.bias");
  bias->value->data[0] = INFINITY;
  bias->value->data[1] = -INFINITY;
  g_autofree char *inf_path = tmp_path ("inf.safetensors");
  g_autoptr (GError) error = NULL;
  g_assert_true (st_pipeline_save_weights (p, inf_path, NULL, &error));
  st_pipeline_free (p);
  EXPECT_LOAD_ERROR (inf_path, "tensor 'conv1.bias'", "2 of its 2 values are not finite");

  /* The file itself still reads: it is the pipeline that refuses it. */
  g_autoptr (StTensorFile) file = st_tensor_file_read (inf_path, &error);
  g_assert_no_error (error);
  g_assert_false (st_tensor_file_check_finite (file, inf_path, &error));
  check_message (error, inf_path, (const char *const[]) { "NaN or infinity", NULL });
}

/* json-glib recurses once per level: deep nesting is refused by the scan
 * before it parses (100,000 levels would overflow its stack). */
static void
test_deep_nesting (void)
{
  GString *h = g_string_new ("{\"a\":");
  for (int i = 0; i < 100000; i++)
    g_string_append_c (h, '[');
  for (int i = 0; i < 100000; i++)
    g_string_append_c (h, ']');
  g_string_append_c (h, '}');
  g_autofree char *deep = write_file ("deep.safetensors", h->str, NULL, 0);
  g_string_free (h, TRUE);
  EXPECT_READ_ERROR (deep, "brackets nest more than 3 levels deep (byte 15)");

  /* Brackets inside strings are names, not nesting. */
  static const float two[2] = { 1.0f, 2.0f };
  g_autofree char *named = write_file ("named.safetensors",
    "{\"__metadata__\":{\"x\":\"[[[[[[\"},"
    "\"[[[[\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", two, 8);
  g_autoptr (GError) error = NULL;
  g_autoptr (StTensorFile) file = st_tensor_file_read (named, &error);
  g_assert_no_error (error);
  g_assert_nonnull (st_tensor_file_find (file, "[[[["));

  /* One level more than a header has, where the metadata's values go. */
  g_autofree char *four = write_file ("four.safetensors", "{\"__metadata__\":{\"x\":[[]]}}", NULL, 0);
  EXPECT_READ_ERROR (four, "brackets nest more than 3 levels deep");
}

/* A header within the format's 100 MB but over strata's practical limit is
 * refused from its length, before any JSON is parsed. */
static void
test_large_header (void)
{
  g_autofree char *big = write_raw ("big-header.safetensors", 9u << 20, "{}", NULL, 0);
  EXPECT_READ_ERROR (big, "header length 9437184", "limit of 8388608 bytes (8 MiB");

  /* Tensors are held against the memory limit as the floats they become:
   * 4 F16 values are 8 bytes in the file, 16 in memory. */
  static const guint16 halves[4] = { 0x3c00, 0x3c00, 0x3c00, 0x3c00 };
  g_autofree char *f16 = write_file ("f16.safetensors",
    "{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}}", halves, 8);
  st_set_memory_limit (15);
  g_autoptr (GError) error = NULL;
  g_autoptr (StTensorFile) refused = st_tensor_file_read (f16, &error);
  g_assert_null (refused);
  g_assert_error (error, ST_ERROR, ST_ERROR_MEMORY);
  g_assert_nonnull (strstr (error->message, "take 16 bytes as float32, more than the limit of 15"));
  g_clear_error (&error);
  st_set_memory_limit (16);
  g_autoptr (StTensorFile) file = st_tensor_file_read (f16, &error);
  st_set_memory_limit (0);
  g_assert_no_error (error);
  g_assert_cmpfloat (st_tensor_file_find (file, "h")->value->data[3], ==, 1.0f);
}

/* Class names saved by training name the classes of a pipeline without
 * labels=; a pipeline's own labels= win. */
static void
test_stored_labels (void)
{
  g_autoptr (GHashTable) meta = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (meta, "strata.labels", "[\"T-shirt/top\",\"cat\",\"2\"]");
  g_autofree char *path = save_small_net_with ("labels.safetensors", 0, 0.5f, meta);
  StPipeline *p = load_small_net ();
  g_assert_null (st_pipeline_labels (p));
  g_autoptr (GError) error = NULL;
  g_assert_true (st_pipeline_load_weights (p, path, &error));
  g_assert_no_error (error);
  const char *const *labels = st_pipeline_labels (p);
  g_assert_nonnull (labels);
  g_assert_cmpstr (labels[0], ==, "T-shirt/top");
  g_assert_cmpstr (labels[1], ==, "cat");
  g_assert_cmpstr (labels[2], ==, "2");
  g_assert_null (labels[3]);
  /* A copy (each worker's) keeps them. */
  StPipeline *copy = st_pipeline_copy (p, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (st_pipeline_labels (copy)[1], ==, "cat");
  st_pipeline_free (copy);
  st_pipeline_free (p);

  g_autoptr (GError) own_error = NULL;
  StPipeline *own = st_pipeline_load_data (reg, "[pipeline]\ninput=1x4x4\nlabels=x;y;z\n"
                                           "[conv1]\ntype=conv2d\nfilters=2\nsize=3\n"
                                           "[fc]\ntype=dense\nunits=3\n", "own.ini", &own_error);
  g_assert_no_error (own_error);
  g_assert_true (st_pipeline_load_weights (own, path, &own_error));
  g_assert_cmpstr (st_pipeline_labels (own)[0], ==, "x");
  st_pipeline_free (own);

  /* A count that is not the pipeline's, or not a list of strings. */
  g_hash_table_insert (meta, "strata.labels", "[\"a\",\"b\"]");
  g_autofree char *two = save_small_net_with ("two-labels.safetensors", 0, 0.5f, meta);
  EXPECT_LOAD_ERROR (two, "strata.labels names 2 classes", "scores 3");
  g_hash_table_insert (meta, "strata.labels", "[1,2,3]");
  g_autofree char *numbers = save_small_net_with ("number-labels.safetensors", 0, 0.5f, meta);
  EXPECT_LOAD_ERROR (numbers, "strata.labels is not a list of class names");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tmp_dir = tu_make_tmpdir ("strata-weights-XXXXXX");
  reg = st_registry_new (NULL);
  g_test_add_func ("/weights/round-trip", test_round_trip);
  g_test_add_func ("/weights/write-deterministic-empty", test_write_deterministic_and_empty);
  g_test_add_func ("/weights/write-errors", test_write_errors);
  g_test_add_func ("/weights/torch-layout-scores", test_torch_layout_scores);
  g_test_add_func ("/weights/pipeline-save-load", test_pipeline_save_load);
  g_test_add_func ("/weights/pipeline-mismatch", test_pipeline_mismatch);
  g_test_add_func ("/weights/dtypes", test_dtypes);
  g_test_add_func ("/weights/malformed", test_malformed);
  g_test_add_func ("/weights/unpadded-null-metadata", test_unpadded_and_null_metadata);
  g_test_add_func ("/weights/python", test_python_reads);
  g_test_add_func ("/weights/non-finite", test_non_finite);
  g_test_add_func ("/weights/deep-nesting", test_deep_nesting);
  g_test_add_func ("/weights/large-header", test_large_header);
  g_test_add_func ("/weights/stored-labels", test_stored_labels);
  int rc = g_test_run ();
  st_registry_free (reg);
  tu_remove_tree (tmp_dir);
  g_free (tmp_dir);
  return rc;
}
