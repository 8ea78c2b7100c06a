/* Pipeline files and inline chains: parsing, every error, graph wiring, and
 * the ready pipelines against references written here. */
#include "pipeline.h"
#include "context.h"
#include "stage.h"

#include <math.h>
#include <string.h>

static StRegistry *reg;

/* Loads text as a pipeline file named "test.ini" and expects it to fail
 * with a message containing every fragment given. */
static void
expect_error (const char *text, const char *const *fragments)
{
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_data (reg, text, "test.ini", &error);
  g_assert_null (p);
  g_assert_nonnull (error);
  g_test_message ("error: %s", error->message);
  g_assert_true (g_str_has_prefix (error->message, "test.ini: "));
  g_assert_null (strchr (error->message, '\n'));
  for (int i = 0; fragments[i]; i++)
    if (!strstr (error->message, fragments[i]))
      g_error ("message '%s' lacks '%s'", error->message, fragments[i]);
}

#define EXPECT_ERROR(text, ...) expect_error (text, (const char *const[]) { __VA_ARGS__, NULL })

static void
test_error_unknown_kind (void)
{
  EXPECT_ERROR ("[k]\ntype=kernal\n", "stage 'k'", "key 'type'", "unknown stage kind 'kernal'",
                "did you mean", "'kernel'");
  EXPECT_ERROR ("[k]\npreset=emboss\n", "stage 'k'", "key 'type' is missing");
}

static void
test_error_unknown_key (void)
{
  EXPECT_ERROR ("[k]\ntype=kernel\nprest=emboss\n", "stage 'k'", "unknown key 'prest'",
                "did you mean 'preset'");
  EXPECT_ERROR ("[k]\ntype=kernel\nzzzzzzzzz=1\n", "stage 'k'", "unknown key 'zzzzzzzzz'",
                "expected one of", "preset");
  EXPECT_ERROR ("[pipeline]\ninptu=1x28x28\n[k]\ntype=kernel\n", "group 'pipeline'",
                "unknown key 'inptu'", "did you mean 'input'");
}

static void
test_error_bad_value (void)
{
  EXPECT_ERROR ("[k]\ntype=kernel\nstride=abc\n", "stage 'k'", "key 'stride'",
                "expected an integer", "found 'abc'");
  EXPECT_ERROR ("[k]\ntype=kernel\nstride=0\n", "stage 'k'", "key 'stride'", "1 to",
                "found '0'");
  EXPECT_ERROR ("[k]\ntype=kernel\nborder=mirror\n", "stage 'k'", "key 'border'",
                "expected one of", "reflect", "found 'mirror'");
  EXPECT_ERROR ("[k]\ntype=kernel\nflip=maybe\n", "stage 'k'", "key 'flip'",
                "expected true or false", "found 'maybe'");
  EXPECT_ERROR ("[k]\ntype=kernel\nmatrix=1,2;3\n", "stage 'k'", "key 'matrix'",
                "rows of equal length");
  EXPECT_ERROR ("[k]\ntype=kernel\nmatrix=1,x,3\n", "stage 'k'", "key 'matrix'", "found 'x'");
  EXPECT_ERROR ("[k]\ntype=kernel\nsigma=1e999\n", "stage 'k'", "key 'sigma'", "found '1e999'");
  EXPECT_ERROR ("[pipeline]\ninput=1x28\n[k]\ntype=kernel\n", "group 'pipeline'", "key 'input'",
                "found '1x28'");
}

static void
test_error_duplicates (void)
{
  EXPECT_ERROR ("[k]\ntype=kernel\n\n[k]\ntype=grayscale\n", "stage 'k'", "duplicate stage name",
                "line 4", "line 1");
  EXPECT_ERROR ("[k]\ntype=kernel\npreset=emboss\npreset=sharpen\n", "stage 'k'",
                "key 'preset' given twice");
}

static void
test_error_missing_input (void)
{
  EXPECT_ERROR ("[a]\ntype=kernel\n[b]\ntype=add\ninput=a,blurr\n", "stage 'b'", "key 'input'",
                "no stage named 'blurr'");
  EXPECT_ERROR ("[a]\ntype=kernel\ninput=a\n", "stage 'a'", "key 'input'", "own output");
}

static void
test_error_cycle (void)
{
  EXPECT_ERROR ("[a]\ntype=kernel\ninput=c\n[b]\ntype=kernel\ninput=a\n[c]\ntype=add\ninput=b,image\n",
                "key 'input'", "cycle", "a -> ", "-> a");
}

static void
test_error_unused_stage (void)
{
  EXPECT_ERROR ("[a]\ntype=kernel\ninput=image\n[b]\ntype=kernel\ninput=image\n",
                "stage 'a'", "not used");
}

static void
test_error_shapes (void)
{
  /* 3 channels added to 1 channel. */
  EXPECT_ERROR ("[gray]\ntype=grayscale\ninput=image\n[sum]\ntype=add\ninput=image,gray\n",
                "stage 'sum'", "(add)");
  /* Weights count must match the inputs. */
  EXPECT_ERROR ("[sum]\ntype=add\ninput=image,image\nweights=1,2,3\n", "stage 'sum'", "3", "2");
  /* A fixed input too small for a valid 5x5 kernel. */
  EXPECT_ERROR ("[pipeline]\ninput=1x3x3\n[k]\ntype=kernel\npreset=box\nsize=5\npadding=valid\n",
                "stage 'k'", "(kernel)");
  /* Too many inputs for a one-input kind. */
  EXPECT_ERROR ("[k]\ntype=kernel\ninput=image,image\n", "stage 'k'", "key 'input'",
                "takes 1 input", "found 2");
}

static void
test_error_not_keyfile (void)
{
  EXPECT_ERROR ("this is not a key file\n", "not a valid pipeline file");
  EXPECT_ERROR ("", "no stages");
  EXPECT_ERROR ("[image]\ntype=kernel\n", "stage 'image'", "invalid stage name");
}

static void
test_error_file_names (void)
{
  g_autoptr (GError) error = NULL;
  g_assert_null (st_pipeline_load (reg, "/nonexistent/x.ini", &error));
  g_assert_true (strstr (error->message, "/nonexistent/x.ini"));
  g_clear_error (&error);
  g_assert_null (st_pipeline_load (reg, "sharpne", &error));
  g_assert_true (strstr (error->message, "sharpne"));
  g_clear_error (&error);
  g_assert_null (st_pipeline_load (reg, "grayscale ! kernl preset=emboss", &error));
  g_assert_true (g_str_has_prefix (error->message, "inline pipeline: "));
  g_assert_true (strstr (error->message, "'kernel'"));
  g_clear_error (&error);
  g_assert_null (st_pipeline_load (reg, "kernel preset", &error));
  g_assert_true (strstr (error->message, "expected key=value"));
}

static void
test_inline_chain (void)
{
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load (reg, "grayscale ! kernel preset=emboss ! kernel preset=box", &error);
  g_assert_no_error (error);
  g_assert_cmpint (st_pipeline_n_stages (p), ==, 3);
  g_assert_cmpstr (st_pipeline_stage (p, 0)->name, ==, "grayscale");
  g_assert_cmpstr (st_pipeline_stage (p, 1)->name, ==, "kernel");
  g_assert_cmpstr (st_pipeline_stage (p, 2)->name, ==, "kernel2");
  g_assert_true (st_pipeline_prepare (p, (StShape) { 1, 3, 10, 12 }, &error));
  StShape out = st_pipeline_output_shape (p);
  g_assert_cmpint (out.c, ==, 1);
  g_assert_cmpint (out.h, ==, 10);
  g_assert_cmpint (out.w, ==, 12);
  st_pipeline_free (p);

  /* A bare stage kind is a one-stage chain. */
  p = st_pipeline_load (reg, "grayscale", &error);
  g_assert_no_error (error);
  g_assert_cmpint (st_pipeline_n_stages (p), ==, 1);
  st_pipeline_free (p);
}

static void
test_graph_order (void)
{
  /* Stages may name inputs defined later in the file; the run order
   * follows the wiring and the last stage of the file is the output. */
  const char *text =
    "[pipeline]\ndescription=graph\n"
    "[sum]\ntype=add\ninput=a,b\n"
    "[a]\ntype=kernel\npreset=identity\ninput=image\n"
    "[b]\ntype=kernel\npreset=identity\ninput=image\n"
    "[out]\ntype=add\ninput=sum,image\nweights=1,-2\n";
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_data (reg, text, "graph.ini", &error);
  g_assert_no_error (error);
  g_assert_cmpint (st_pipeline_n_stages (p), ==, 4);
  g_assert_cmpstr (st_pipeline_stage (p, 3)->name, ==, "out");
  g_assert_cmpstr (st_pipeline_description (p), ==, "graph");
  int pos_sum = -1;
  for (int i = 0; i < 4; i++)
    if (strcmp (st_pipeline_stage (p, i)->name, "sum") == 0)
      pos_sum = i;
  g_assert_cmpint (pos_sum, ==, 2);

  /* a + b - 2 * image = 0 for identity kernels. */
  g_autoptr (StRunContext) ctx = st_run_context_new (1, 1);
  g_autoptr (StTensor) in = st_tensor_new0 (1, 3, 5, 7);
  for (gsize i = 0; i < st_tensor_numel (in); i++)
    in->data[i] = (float) (i % 17) / 16.0f;
  g_autoptr (StTensor) out = st_pipeline_forward (p, ctx, in, FALSE, &error);
  g_assert_no_error (error);
  for (gsize i = 0; i < st_tensor_numel (out); i++)
    g_assert_cmpfloat_with_epsilon (out->data[i], 0.0f, 1e-6);
  st_pipeline_free (p);
}

static void
test_labels_and_weights_paths (void)
{
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_data (reg,
    "[pipeline]\nlabels=cat;dog;bird\nweights=w.safetensors\n[g]\ntype=grayscale\n",
    "labels.ini", &error);
  g_assert_no_error (error);
  const char *const *labels = st_pipeline_labels (p);
  g_assert_cmpint (g_strv_length ((char **) labels), ==, 3);
  g_assert_cmpstr (labels[2], ==, "bird");
  g_assert_true (g_str_has_suffix (st_pipeline_weights_path (p), "/w.safetensors"));
  st_pipeline_free (p);
}

/* ---- Ready pipelines against references -------------------------------- */

static int
reflect_index (int i, int n)
{
  if (n == 1)
    return 0;
  int period = 2 * (n - 1);
  i = ((i % period) + period) % period;
  return i < n ? i : period - i;
}

static int
edge_index (int i, int n)
{
  return CLAMP (i, 0, n - 1);
}

/* Same-size correlation of every channel with a k x k kernel. */
static StTensor *
reference_correlate (const StTensor *in, const double *k, int size, gboolean reflect)
{
  StShape s = in->shape;
  StTensor *out = st_tensor_new0 (s.n, s.c, s.h, s.w);
  int r = (size - 1) / 2;
  for (int c = 0; c < s.c; c++)
    for (int y = 0; y < s.h; y++)
      for (int x = 0; x < s.w; x++)
        {
          double acc = 0;
          for (int m = 0; m < size; m++)
            for (int n = 0; n < size; n++)
              {
                int yy = reflect ? reflect_index (y + m - r, s.h) : edge_index (y + m - r, s.h);
                int xx = reflect ? reflect_index (x + n - r, s.w) : edge_index (x + n - r, s.w);
                acc += k[m * size + n] * in->data[((gsize) c * s.h + yy) * s.w + xx];
              }
          out->data[((gsize) c * s.h + y) * s.w + x] = (float) acc;
        }
  return out;
}

static StTensor *
random_image (int c, int h, int w, guint32 seed)
{
  StTensor *t = st_tensor_new0 (1, c, h, w);
  GRand *rand = g_rand_new_with_seed (seed);
  for (gsize i = 0; i < st_tensor_numel (t); i++)
    t->data[i] = g_rand_int_range (rand, 0, 256) / 255.0f;
  g_rand_free (rand);
  return t;
}

static StTensor *
run_named (const char *name, const StTensor *in)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_build_filename (STRATA_SOURCE_ROOT, "pipelines", name, NULL);
  StPipeline *p = st_pipeline_load_file (reg, path, &error);
  g_assert_no_error (error);
  g_autoptr (StRunContext) ctx = st_run_context_new (2, 1);
  StTensor *out = st_pipeline_forward (p, ctx, in, FALSE, &error);
  g_assert_no_error (error);
  st_pipeline_free (p);
  return out;
}

static guint8
to_byte (float v)
{
  return (guint8) (CLAMP (v, 0.0f, 1.0f) * 255.0f + 0.5f);
}

static void
test_sharpen_bytes (void)
{
  g_autoptr (StTensor) in = random_image (3, 37, 53, 7);
  static const double k[] = { 0, -1, 0, -1, 5, -1, 0, -1, 0 };
  g_autoptr (StTensor) ref = reference_correlate (in, k, 3, TRUE);
  g_autoptr (StTensor) out = run_named ("sharpen.ini", in);
  g_assert_true (st_shape_equal (out->shape, ref->shape));
  for (gsize i = 0; i < st_tensor_numel (out); i++)
    g_assert_cmpint (to_byte (out->data[i]), ==, to_byte (ref->data[i]));
}

static void
test_edges_reference (void)
{
  g_autoptr (StTensor) in = random_image (3, 21, 18, 11);
  static const double sx[] = { -1, 0, 1, -2, 0, 2, -1, 0, 1 };
  static const double sy[] = { -1, -2, -1, 0, 0, 0, 1, 2, 1 };
  g_autoptr (StTensor) gx = reference_correlate (in, sx, 3, FALSE);
  g_autoptr (StTensor) gy = reference_correlate (in, sy, 3, FALSE);
  g_autoptr (StTensor) out = run_named ("edges.ini", in);
  g_assert_true (st_shape_equal (out->shape, in->shape));
  for (gsize i = 0; i < st_tensor_numel (out); i++)
    {
      float want = sqrtf (gx->data[i] * gx->data[i] + gy->data[i] * gy->data[i]);
      g_assert_cmpfloat_with_epsilon (out->data[i], want, 1e-5);
    }
}

static void
test_unsharp_reference (void)
{
  g_autoptr (StTensor) in = random_image (3, 30, 25, 5);
  /* Gaussian sigma 2: 2*ceil(3*2)+1 = 13 taps, normalised to sum 1. */
  double g1[13], sum = 0, k[13 * 13];
  for (int i = 0; i < 13; i++)
    sum += g1[i] = exp (-((i - 6) * (i - 6)) / (2.0 * 4.0));
  for (int i = 0; i < 13; i++)
    for (int j = 0; j < 13; j++)
      k[i * 13 + j] = g1[i] * g1[j] / (sum * sum);
  g_autoptr (StTensor) blur = reference_correlate (in, k, 13, TRUE);
  g_autoptr (StTensor) out = run_named ("unsharp.ini", in);
  for (gsize i = 0; i < st_tensor_numel (out); i++)
    g_assert_cmpfloat_with_epsilon (out->data[i], 1.5f * in->data[i] - 0.5f * blur->data[i], 1e-5);
}

static void
test_every_ready_pipeline_loads (void)
{
  g_autofree char *dir = g_build_filename (STRATA_SOURCE_ROOT, "pipelines", NULL);
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  g_assert_nonnull (d);
  const char *name;
  int count = 0;
  while ((name = g_dir_read_name (d)))
    {
      if (!g_str_has_suffix (name, ".ini"))
        continue;
      g_autofree char *path = g_build_filename (dir, name, NULL);
      g_autoptr (GError) error = NULL;
      StPipeline *p = st_pipeline_load_file (reg, path, &error);
      g_assert_no_error (error);
      g_assert_nonnull (st_pipeline_description (p));
      st_pipeline_free (p);
      count++;
    }
  g_assert_cmpint (count, >=, 6);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  reg = st_registry_new (NULL);
  g_test_add_func ("/pipeline/error/unknown-kind", test_error_unknown_kind);
  g_test_add_func ("/pipeline/error/unknown-key", test_error_unknown_key);
  g_test_add_func ("/pipeline/error/bad-value", test_error_bad_value);
  g_test_add_func ("/pipeline/error/duplicates", test_error_duplicates);
  g_test_add_func ("/pipeline/error/missing-input", test_error_missing_input);
  g_test_add_func ("/pipeline/error/cycle", test_error_cycle);
  g_test_add_func ("/pipeline/error/unused-stage", test_error_unused_stage);
  g_test_add_func ("/pipeline/error/shapes", test_error_shapes);
  g_test_add_func ("/pipeline/error/not-keyfile", test_error_not_keyfile);
  g_test_add_func ("/pipeline/error/file-names", test_error_file_names);
  g_test_add_func ("/pipeline/inline", test_inline_chain);
  g_test_add_func ("/pipeline/graph-order", test_graph_order);
  g_test_add_func ("/pipeline/labels-weights", test_labels_and_weights_paths);
  g_test_add_func ("/pipeline/ready/sharpen-bytes", test_sharpen_bytes);
  g_test_add_func ("/pipeline/ready/edges", test_edges_reference);
  g_test_add_func ("/pipeline/ready/unsharp", test_unsharp_reference);
  g_test_add_func ("/pipeline/ready/all-load", test_every_ready_pipeline_loads);
  int rc = g_test_run ();
  st_registry_free (reg);
  return rc;
}
