/* Pipeline files and inline chains: parsing, every error, graph wiring, and
 * the ready pipelines against references written here. */
#include "config.h"
#include "pipeline.h"
#include "pipeline-private.h"
#include "context.h"
#include "image.h"
#include "param.h"
#include "stage.h"
#include "testutil.h"

#include <sys/stat.h>
#include "weights.h"

#include <math.h>
#include <string.h>

static StRegistry *reg;

/* The message of an error that was expected: one line, holding every
 * fragment given. */
static void
assert_message (const GError *error, const char *const *fragments)
{
  g_assert_nonnull (error);
  g_test_message ("error: %s", error->message);
  g_assert_null (strchr (error->message, '\n'));
  for (int i = 0; fragments[i]; i++)
    if (!strstr (error->message, fragments[i]))
      g_error ("message '%s' lacks '%s'", error->message, fragments[i]);
}

/* Loads text as a pipeline file named "test.ini" and expects it to fail
 * with a message containing every fragment given. */
static void
expect_error (const char *text, const char *const *fragments)
{
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_data (reg, text, "test.ini", &error);
  g_assert_null (p);
  assert_message (error, fragments);
  g_assert_true (g_str_has_prefix (error->message, "test.ini: "));
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

/* ---- Syntax errors name the line --------------------------------------- */

static void
test_error_line_syntax (void)
{
  /* A header missing its ']' was reported as the key below it given twice. */
  EXPECT_ERROR ("[a]\ntype=kernel\n[b\ntype=kernel\n", "not a valid pipeline file", "line 3",
                "'[b'", "closing ']'");
  EXPECT_ERROR ("[a]\ntype=kernel\n[b] x\ntype=kernel\n", "line 3", "'[b] x'", "after");
  EXPECT_ERROR ("# comment\n[]\ntype=kernel\n", "line 2", "'[]'", "needs a name");
  EXPECT_ERROR ("type=kernel\n[a]\n", "line 1", "key 'type'", "before the first [stage]");
  EXPECT_ERROR ("[a]\ntype=kernel\n=emboss\n", "line 3", "'=emboss'", "key is missing");
  EXPECT_ERROR ("[a]\ntype=kernel\npreset[x]=emboss\n", "line 3", "'preset[x]'");
  EXPECT_ERROR ("[a]\ntype=kernel\n\n  just words\n", "line 4", "found 'just words'");
  /* Values keep GKeyFile's escapes; others are named. */
  EXPECT_ERROR ("[a]\ntype=kernel\npreset=emb\\oss\n", "stage 'a'", "key 'preset'",
                "invalid escape sequence '\\o'");
  EXPECT_ERROR ("[a]\ntype=kernel\npreset=emboss\\\n", "key 'preset'", "backslash ends");
  EXPECT_ERROR ("[a]\ntype=kernel\npreset=\xff\n", "not UTF-8");
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_data (reg, "[pipeline]\ndescription=a\\sb\\\\c\n"
                                         "[k]\ntype=kernel\n", "esc.ini", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (st_pipeline_description (p), ==, "a b\\c");
  st_pipeline_free (p);
  /* A long line is quoted cut short, and the message stays one line. */
  g_autofree char *longline = g_strnfill (500, 'x');
  g_autofree char *text = g_strdup_printf ("[a]\ntype=kernel\n%s\n", longline);
  EXPECT_ERROR (text, "line 3", "xxx...'");
}

static void
test_byte_order_mark (void)
{
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_data (reg, "\xEF\xBB\xBF[k]\ntype=kernel\npreset=emboss\n",
                                         "bom.ini", &error);
  g_assert_no_error (error);
  g_assert_cmpint (st_pipeline_n_stages (p), ==, 1);
  g_assert_cmpstr (st_pipeline_stage (p, 0)->name, ==, "k");
  st_pipeline_free (p);

  /* From a file too, as editors write it; a NUL byte is named, not ignored. */
  g_autofree char *tmp = tu_make_tmpdir ("strata-load-XXXXXX");
  g_autofree char *path = g_build_filename (tmp, "bom.ini", NULL);
  static const char bom_text[] = "\xEF\xBB\xBF# sharpen\r\n[k]\r\ntype=kernel\r\n";
  tu_write_bytes (path, bom_text, sizeof bom_text - 1);
  p = st_pipeline_load_file (reg, path, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (st_pipeline_stage (p, 0)->name, ==, "k");
  st_pipeline_free (p);
  static const char nul_text[] = "[k]\ntype=kernel\n\0[x]\ntype=nothing\n";
  tu_write_bytes (path, nul_text, sizeof nul_text - 1);
  g_assert_null (st_pipeline_load_file (reg, path, &error));
  g_assert_true (strstr (error->message, path) && strstr (error->message, "NUL"));
  tu_remove_tree (tmp);
}

/* ---- The memory bound (--max-memory) ------------------------------------- */

#define MB G_GUINT64_CONSTANT (1000000)

/* Loads text expecting ST_ERROR_MEMORY with every fragment in the message. */
static void
expect_memory_error (const char *text, const char *const *fragments)
{
  g_autoptr (GError) error = NULL;
  g_assert_null (st_pipeline_load_data (reg, text, "mem.ini", &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_MEMORY);
  assert_message (error, fragments);
}

#define EXPECT_MEMORY_ERROR(text, ...) \
  expect_memory_error (text, (const char *const[]) { __VA_ARGS__, NULL })

static void
test_shape_bytes (void)
{
  guint64 bytes = 0;
  g_assert_true (st_shape_bytes ((StShape) { 2, 3, 4, 5 }, &bytes));
  g_assert_cmpuint (bytes, ==, 2 * 3 * 4 * 5 * 4);
  g_assert_false (st_shape_bytes ((StShape) { 0, 3, 4, 5 }, NULL));
  g_assert_false (st_shape_bytes ((StShape) { G_MAXINT, G_MAXINT, G_MAXINT, 2 }, NULL));
  g_autoptr (GError) error = NULL;
  g_assert_null (st_tensor_new ((StShape) { G_MAXINT, G_MAXINT, G_MAXINT, G_MAXINT }, &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_SHAPE);

  g_autofree char *a = st_format_bytes (68719476736);
  g_assert_cmpstr (a, ==, "68.7 GB");
  g_autofree char *b = st_format_bytes (999);
  g_assert_cmpstr (b, ==, "999 bytes");
  g_autofree char *c = st_format_bytes (999960);
  g_assert_cmpstr (c, ==, "1.0 MB");
}

static void
test_memory_outputs (void)
{
  st_set_memory_limit (100 * MB);
  /* Inside resize's advertised range, 51.5 GB for the 3x256x256 probe. */
  EXPECT_MEMORY_ERROR ("[big]\ntype=resize\nwidth=65536\nheight=65536\n", "mem.ini: ",
                       "stage 'big' (resize)", "output 1x3x65536x65536", "needs 51.5 GB",
                       "the limit is 100.0 MB", "--max-memory");

  /* The batch counts: fine for one image, refused for 64. */
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_data (reg, "[r]\ntype=resize\nwidth=1000\nheight=1000\n",
                                         "mem.ini", &error);
  g_assert_no_error (error);
  g_assert_true (st_pipeline_prepare (p, (StShape) { 1, 3, 10, 10 }, &error));
  g_assert_false (st_pipeline_prepare (p, (StShape) { 64, 3, 10, 10 }, &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_MEMORY);
  g_assert_true (strstr (error->message, "output 64x3x1000x1000 needs 768.0 MB"));
  g_clear_error (&error);
  /* Sizes whose product overflows are an error before any bound. */
  g_assert_false (st_pipeline_prepare (p, (StShape) { 1 << 23, 1 << 20, 1, 1 }, &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_MEMORY);
  g_assert_true (strstr (error->message, "stage 'r'") && strstr (error->message, "overflows"));
  g_clear_error (&error);
  g_assert_false (st_pipeline_prepare (p, (StShape) { G_MAXINT, G_MAXINT, G_MAXINT, 3 }, &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_SHAPE);
  g_clear_error (&error);
  st_pipeline_free (p);

  /* Outputs freed after their last reader do not count: a chain of ten
   * 3 MB stages peaks at the input and two outputs... */
  st_set_memory_limit (10 * MB);
  GString *chain = g_string_new ("[pipeline]\ninput=3x500x500\n");
  for (int i = 0; i < 10; i++)
    g_string_append_printf (chain, "[i%d]\ntype=invert\n", i);
  p = st_pipeline_load_data (reg, chain->str, "mem.ini", &error);
  g_string_free (chain, TRUE);
  g_assert_no_error (error);
  g_autoptr (StRunContext) ctx = st_run_context_new (1, 1);
  g_autoptr (StTensor) in = st_tensor_new0 (1, 3, 500, 500);
  in->data[7] = 0.25f;
  g_autoptr (StTensor) out = st_pipeline_forward (p, ctx, in, FALSE, &error);
  g_assert_no_error (error);
  g_assert_cmpfloat (out->data[7], ==, 0.25f);
  /* ... but all of them kept (training, feature maps) are refused. */
  g_assert_null (st_pipeline_forward (p, ctx, in, TRUE, &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_MEMORY);
  g_assert_true (strstr (error->message, "keeping every stage's output")
                 && strstr (error->message, "36.0 MB"));
  g_clear_error (&error);
  st_pipeline_free (p);

  /* Three outputs alive at once pass the bound at the third stage. */
  EXPECT_MEMORY_ERROR ("[pipeline]\ninput=3x500x500\n[a]\ntype=invert\ninput=image\n"
                       "[b]\ntype=invert\ninput=image\n[sum]\ntype=add\ninput=a,b\n",
                       "stage 'sum' (add)", "needs 3.0 MB, 12.0 MB with the input",
                       "the limit is 10.0 MB");
  st_set_memory_limit (0);
}

static void
test_memory_parameters (void)
{
  /* 29 bytes of pipeline asking for 13 TB, refused at load with the
   * default limit (half the physical memory). */
  EXPECT_MEMORY_ERROR ("[d]\ntype=dense\nunits=16777216\n", "stage 'd' (dense)",
                       "parameter 'd.weight' (16777216x196608) needs 13.2 TB", "--max-memory");
  st_set_memory_limit (1000 * MB);
  EXPECT_MEMORY_ERROR ("[c]\ntype=conv2d\nfilters=65536\nsize=64\n", "stage 'c' (conv2d)",
                       "parameter 'c.weight' (65536x3x64x64) needs 3.2 GB",
                       "the limit is 1.0 GB");
  /* Each fits alone; the second passes the bound with the first. */
  st_set_memory_limit (10 * MB);
  EXPECT_MEMORY_ERROR ("[pipeline]\ninput=1x1x1000\n[a]\ntype=dense\nunits=1500\nbias=false\n"
                       "[b]\ntype=dense\nunits=1000\nbias=false\n", "stage 'b' (dense)",
                       "parameter 'b.weight' (1000x1500) needs 6.0 MB",
                       "12.0 MB with the other parameters", "the limit is 10.0 MB");
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_data (reg, "[pipeline]\ninput=1x1x1000\n[a]\ntype=dense\n"
                                         "units=1500\nbias=false\n", "mem.ini", &error);
  g_assert_no_error (error);
  st_pipeline_free (p);
  st_set_memory_limit (0);
}

/* ---- A fixed input given another shape ----------------------------------- */

static void
test_fixed_input_message (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-load-XXXXXX");
  g_autofree char *path = g_build_filename (tmp, "net.ini", NULL);
  const char *text = "[pipeline]\ninput=1x28x28\n[conv1]\ntype=conv2d\nfilters=4\nsize=3\n"
                     "[fc]\ntype=dense\nunits=3\n";
  tu_write_bytes (path, text, strlen (text));
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_file (reg, path, &error);
  g_assert_no_error (error);
  g_assert_false (st_pipeline_prepare (p, (StShape) { 1, 3, 400, 300 }, &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_SHAPE);
  g_test_message ("%s", error->message);
  g_assert_true (g_str_has_prefix (error->message, path));
  g_assert_true (strstr (error->message, "the pipeline takes 1x28x28, the image is 3x400x300"));
  g_assert_true (strstr (error->message, "(1 channel instead of 3; 28x28 pixels instead of 400x300)"));
  g_assert_null (strstr (error->message, "declared"));
  g_assert_null (strstr (error->message, "-photo"));
  g_clear_error (&error);
  /* The batch may differ, and the right shape still works after a refusal. */
  g_assert_true (st_pipeline_prepare (p, (StShape) { 8, 1, 28, 28 }, &error));
  st_pipeline_free (p);

  /* A NAME-photo pipeline beside it is the first thing to suggest. */
  g_autofree char *photo = g_build_filename (tmp, "net-photo.ini", NULL);
  tu_write_bytes (photo, "[g]\ntype=grayscale\n", 19);
  p = st_pipeline_load_file (reg, path, &error);
  g_assert_false (st_pipeline_prepare (p, (StShape) { 1, 1, 28, 30 }, &error));
  g_assert_true (strstr (error->message, "the image is 1x28x30: use the pipeline "));
  g_assert_true (strstr (error->message, "net-photo.ini"));
  g_assert_true (strstr (error->message, "before the first one (28x28 pixels instead of 28x30)"));
  g_clear_error (&error);
  st_pipeline_free (p);

  /* Stages that take another shape than input= (here preparation stages)
   * still do. */
  p = st_pipeline_load_data (reg, "[pipeline]\ninput=1x28x28\n[g]\ntype=grayscale\n"
                             "[r]\ntype=resize\nwidth=28\nheight=28\n[c]\ntype=conv2d\n"
                             "filters=2\nsize=3\n", "prep.ini", &error);
  g_assert_no_error (error);
  g_assert_true (st_pipeline_prepare (p, (StShape) { 1, 3, 100, 80 }, &error));
  g_assert_no_error (error);
  st_pipeline_free (p);

  /* The installed classifier points to its installed -photo variant. */
  p = st_pipeline_load (reg, "fashion-mnist", &error);
  g_assert_no_error (error);
  g_assert_false (st_pipeline_prepare (p, (StShape) { 1, 3, 400, 300 }, &error));
  g_assert_true (strstr (error->message, "use the pipeline fashion-mnist-photo,"));
  st_pipeline_free (p);
  tu_remove_tree (tmp);
}

/* ---- Refused plugins ----------------------------------------------------- */

static char *
test_plugin_dir (void)
{
  return g_build_filename (g_getenv ("STRATA_BUILD_ROOT"), "tests", "plugins", NULL);
}

static void
test_refused_plugins (void)
{
  g_autofree char *dir = test_plugin_dir ();
  const char *dirs[] = { dir, NULL };
  StRegistry *with_bad = st_registry_new (dirs);
  g_autoptr (GError) error = NULL;

  g_assert_null (st_pipeline_load_data (with_bad, "[x]\ntype=bad-abi\n", "t.ini", &error));
  g_test_message ("%s", error->message);
  g_assert_error (error, ST_ERROR, ST_ERROR_PLUGIN);
  g_assert_true (strstr (error->message, "stage 'x': key 'type': stage kind 'bad-abi' is "
                         "provided only by a plugin that was not loaded"));
  g_assert_true (strstr (error->message, "/bad-abi.so: plugin ABI version 2, this strata has "
                         "ABI version 1"));
  g_clear_error (&error);

  /* A bare name, as on the command line. */
  g_assert_null (st_pipeline_load (with_bad, "no-symbol", &error));
  g_test_message ("%s", error->message);
  g_assert_true (strstr (error->message, "/no-symbol.so: no 'strata_plugin_info' symbol"));
  g_assert_null (strstr (error->message, "no pipeline file, installed pipeline or stage kind"));
  g_clear_error (&error);

  /* The overriding provider comes first, the bundled one is still listed. */
  g_autoptr (GPtrArray) providers = st_registry_providers (with_bad, "invert");
  g_assert_cmpuint (providers->len, ==, 2);
  g_assert_true (g_str_has_suffix (((StKindEntry *) providers->pdata[0])->path, "/rank-invert.so"));
  g_assert_true (g_str_has_suffix (((StKindEntry *) providers->pdata[1])->path, "/invert.so"));
  g_assert_null (st_registry_refusal (with_bad, "invert"));
  st_registry_free (with_bad);

  /* Without those plugins, the usual message. */
  g_assert_null (st_pipeline_load (reg, "bad-abi", &error));
  g_assert_true (strstr (error->message, "no pipeline file, installed pipeline or stage kind"));
}

/* ---- The command line ---------------------------------------------------- */

static void
test_cli_plugins (void)
{
  const char *exe = g_getenv ("STRATA_EXE");
  g_autofree char *dir = test_plugin_dir ();
  TuResult r = tu_run (exe, "plugins", "--plugin-dir", dir, NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (strstr (r.out, "/rank-invert.so (rank 10, used)"));
  g_assert_true (strstr (r.out, "/plugins/invert/invert.so (rank 0, overridden)"));
  g_assert_true (strstr (r.out, "1 kind is provided by more than one file"));
  g_assert_true (strstr (r.out, "/bad-abi.so: plugin ABI version 2"));
  tu_result_clear (&r);

  r = tu_run (exe, "plugins", "invert", "--plugin-dir", dir, NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (strstr (r.out, "Rank         10, overriding the other file below"));
  g_assert_true (strstr (r.out, "/invert.so (rank 0), overridden: the higher rank is used"));
  tu_result_clear (&r);

  r = tu_run (exe, "plugins", "bad-abi", "--plugin-dir", dir, NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, "provided only by a plugin that was not loaded"));
  g_assert_true (strstr (r.err, "/bad-abi.so: plugin ABI version 2"));
  tu_result_clear (&r);

  g_autofree char *tmp = tu_make_tmpdir ("strata-load-XXXXXX");
  g_autofree char *image = g_build_filename (tmp, "in.png", NULL);
  g_autoptr (StTensor) pixels = st_tensor_new0 (1, 3, 8, 8);
  g_autoptr (GError) error = NULL;
  g_assert_true (st_image_save (pixels, image, ST_FORMAT_PNG, 8, 90, &error));
  g_autofree char *out = g_build_filename (tmp, "out.png", NULL);
  r = tu_run (exe, "run", "invert ! bad-abi", image, "-o", out, "--plugin-dir", dir, NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, "stage kind 'bad-abi' is provided only by a plugin that was not loaded"));
  tu_result_clear (&r);
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
  tu_remove_tree (tmp);
}

/* strata pipelines names each installed pipeline on the search path with
 * its description (or why it does not load); an unknown name lists them. */
static void
test_cli_pipelines (void)
{
  const char *exe = g_getenv ("STRATA_EXE");
  g_autofree char *tmp = tu_make_tmpdir ("strata-load-XXXXXX");
  g_autofree char *mine = g_build_filename (tmp, "mine.ini", NULL);
  g_autofree char *broken = g_build_filename (tmp, "broken.ini", NULL);
  g_autofree char *not_pipeline = g_build_filename (tmp, "notes.txt", NULL);
  const char *mine_text = "[pipeline]\ndescription=Inverts, for the test\n[invert]\ntype=invert\n";
  tu_write_bytes (mine, mine_text, strlen (mine_text));
  tu_write_bytes (broken, "[x]\ntype=nosuchkind\n", 20);
  tu_write_bytes (not_pipeline, "x", 1);
  g_setenv ("STRATA_PIPELINE_PATH", tmp, TRUE);

  TuResult r = tu_run (exe, "pipelines", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (strstr (r.out, "\nmine                 Inverts, for the test\n"));
  g_assert_true (strstr (r.out, "\nbroken               (does not load: "));
  g_assert_true (strstr (r.out, "nosuchkind"));
  /* The installed ones follow the path's, in one sorted list. */
  g_assert_true (strstr (r.out, "\nsharpen              Sharpen with the 3x3 kernel"));
  g_assert_true (strstr (r.out, "\nblur ") < strstr (r.out, "\nbroken "));
  g_assert_null (strstr (r.out, "notes"));
  tu_result_clear (&r);

  g_autofree char *image = g_build_filename (tmp, "in.png", NULL);
  g_autoptr (StTensor) pixels = st_tensor_new0 (1, 3, 4, 4);
  g_autoptr (GError) error = NULL;
  g_assert_true (st_image_save (pixels, image, ST_FORMAT_PNG, 8, 90, &error));
  g_autofree char *out = g_build_filename (tmp, "out.png", NULL);
  r = tu_run (exe, "run", "nosuchpipeline", image, "-o", out, NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, "nosuchpipeline: no pipeline file, installed pipeline or stage kind"));
  g_assert_true (strstr (r.err, "; installed pipelines: blur, broken, "));
  g_assert_true (strstr (r.err, ", mine, "));
  g_assert_true (strstr (r.err, "('strata pipelines' describes them)"));
  tu_result_clear (&r);
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));

  r = tu_run (exe, "pipelines", "extra", NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, "expected no arguments"));
  tu_result_clear (&r);
  g_unsetenv ("STRATA_PIPELINE_PATH");
  tu_remove_tree (tmp);
}

/* --version answers the same, alone, as a command or after one. */
static void
test_cli_version (void)
{
  const char *exe = g_getenv ("STRATA_EXE");
  TuResult r = tu_run (exe, "--version", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_autofree char *expected = g_strdup_printf ("strata %s (plugin ABI %d)\n", ST_VERSION,
                                               ST_ABI_VERSION);
  g_assert_cmpstr (r.out, ==, expected);
  tu_result_clear (&r);
  const char *const asks[][4] = {
    { "version" }, { "run", "--version" }, { "run", "sharpen", "--version" },
    { "plugins", "--version" }, { "train", "--epochs", "0", "--version" }, { "pipelines", "--version" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (asks); i++)
    {
      const char *argv[6] = { exe };
      for (int k = 0; k < 4 && asks[i][k]; k++)
        argv[k + 1] = asks[i][k];
      r = tu_run_argv (exe, argv + 1);
      g_assert_cmpint (r.status, ==, 0);
      g_assert_cmpstr (r.out, ==, expected);
      g_assert_cmpstr (r.err, ==, "");
      tu_result_clear (&r);
    }
  r = tu_run (exe, "inspect", "--help", NULL);
  g_assert_true (strstr (r.out, "--version") && strstr (r.out, "Print strata's version"));
  tu_result_clear (&r);
}

/* The words "strata complete" offers, run through the bash completion. */
static char *
complete_in_bash (const char *exe, const char *words)
{
  g_autofree char *script = g_strdup_printf (
    "source '%s/data/strata.bash'; COMP_WORDS=('%s' %s); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
    "_strata; printf '%%s\\n' \"${COMPREPLY[@]}\"", g_getenv ("STRATA_SOURCE_ROOT"), exe, words);
  TuResult r = tu_run ("/bin/bash", "-c", script, NULL);
  g_assert_cmpint (r.status, ==, 0);
  char *out = g_strconcat ("\n", r.out, NULL);
  tu_result_clear (&r);
  return out;
}

/* Completion words and the manual come from the option tables: every
 * option that a command's --help shows is offered, and the manual lists
 * each with its range and default, and the stage kinds. */
static void
test_cli_completion_and_manual (void)
{
  const char *exe = g_getenv ("STRATA_EXE");
  TuResult r = tu_run (exe, "complete", "commands", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_auto (GStrv) commands = g_strsplit (g_strstrip (r.out), "\n", -1);
  tu_result_clear (&r);
  g_assert_cmpuint (g_strv_length (commands), ==, 7);
  g_assert_true (g_strv_contains ((const char *const *) commands, "pipelines"));
  for (int i = 0; commands[i]; i++)
    {
      if (strcmp (commands[i], "version") == 0)
        continue;
      TuResult help = tu_run (exe, commands[i], "--help", NULL);
      g_assert_cmpint (help.status, ==, 0);
      r = tu_run (exe, "complete", "options", commands[i], NULL);
      g_autofree char *offered = g_strconcat ("\n", r.out, NULL);
      g_auto (GStrv) words = g_strsplit_set (help.out, " ,=\n", -1);
      for (int k = 0; words[k]; k++)
        if (g_str_has_prefix (words[k], "--") && words[k][2])
          {
            g_autofree char *line = g_strdup_printf ("\n%s\n", words[k]);
            if (!strstr (offered, line))
              g_error ("strata complete options %s lacks %s", commands[i], words[k]);
          }
      tu_result_clear (&r);
      tu_result_clear (&help);
    }
  r = tu_run (exe, "complete", "value-options", "run", NULL);
  g_assert_true (strstr (r.out, "--output\n") && strstr (r.out, "--max-memory\n"));
  g_assert_null (strstr (r.out, "--quiet"));
  tu_result_clear (&r);
  r = tu_run (exe, "complete", "nonsense", NULL);
  g_assert_cmpint (r.status, ==, 2);
  tu_result_clear (&r);

  g_autofree char *first = complete_in_bash (exe, "ru");
  g_assert_cmpstr (first, ==, "\nrun\n");
  g_autofree char *options = complete_in_bash (exe, "run --q");
  g_assert_cmpstr (options, ==, "\n--quality\n--quiet\n");
  g_autofree char *kinds = complete_in_bash (exe, "plugins ker");
  g_assert_cmpstr (kinds, ==, "\nkernel\n");
  g_autofree char *pipelines = complete_in_bash (exe, "run sha");
  g_assert_true (strstr (pipelines, "\nsharpen\n"));

  r = tu_run (exe, "--man", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (g_str_has_prefix (r.out, ".TH STRATA 1 "));
  const char *expect[] = {
    ".SS strata run\n", ".B \\-\\-quality \\fIN\\fR\nJPEG and WebP quality, 1 to 100 (default 90)\n",
    ".B \\-q, \\-\\-quiet\n", ".SS strata train\n", ".B \\-\\-epochs \\fIN\\fR\n",
    ".B \\-\\-max\\-memory \\fISIZE\\fR\n", ".SH STAGE KINDS\n", ".B kernel\n",
    ".B strata pipelines\n",
  };
  for (guint i = 0; i < G_N_ELEMENTS (expect); i++)
    if (!strstr (r.out, expect[i]))
      g_error ("the manual lacks '%s'", expect[i]);
  tu_result_clear (&r);
}

static void
test_cli_common_options (void)
{
  const char *exe = g_getenv ("STRATA_EXE");
  g_autofree char *tmp = tu_make_tmpdir ("strata-load-XXXXXX");
  g_autofree char *file = g_build_filename (tmp, "file", NULL);
  g_autofree char *missing = g_build_filename (tmp, "missing", NULL);
  tu_write_bytes (file, "x", 1);
  TuResult r = tu_run (exe, "plugins", "--plugin-dir", missing, NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, "--plugin-dir") && strstr (r.err, missing)
                 && strstr (r.err, "no such folder"));
  tu_result_clear (&r);
  g_autofree char *maps = g_build_filename (tmp, "maps.png", NULL);
  r = tu_run (exe, "inspect", "sharpen", file, "-o", maps, "--plugin-dir", file, NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, file) && strstr (r.err, "not a folder"));
  tu_result_clear (&r);

  const char *bad[] = { "-5", "0", "12X", "1e300", "999K", "G", "" };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      r = tu_run (exe, "plugins", "--max-memory", bad[i], NULL);
      g_assert_cmpint (r.status, ==, 2);
      g_assert_true (strstr (r.err, "--max-memory: expected a size from 1M to 1P"));
      tu_result_clear (&r);
    }
  r = tu_run (exe, "inspect", "--help", NULL);
  g_assert_true (strstr (r.out, "--max-memory") && strstr (r.out, "1M to 1P")
                 && strstr (r.out, "default: half the physical memory"));
  tu_result_clear (&r);

  /* The bound reaches the pipeline: a 67 MB output against 1M. */
  const char *conv = "conv2d filters=256 size=3 padding=same";
  r = tu_run (exe, "inspect", conv, "--max-memory", "1M", NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, "stage 'conv2d' (conv2d): output 1x256x256x256 needs 67.1 MB; "
                         "the limit is 1.0 MB (--max-memory)"));
  tu_result_clear (&r);
  r = tu_run (exe, "inspect", conv, "--max-memory", "1.5Gi", NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  r = tu_run (exe, "inspect", "resize width=65536 height=65536", "--max-memory", "8G", NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, "stage 'resize' (resize): output 1x3x65536x65536 needs 51.5 GB; "
                         "the limit is 8.0 GB"));
  tu_result_clear (&r);
  tu_remove_tree (tmp);
}

/* ---- Large files load in linear time -------------------------------------- */

/* 50,000 chained stages and one stage reading 100,000 names (several MB):
 * every list split, lookup and graph walk here was once quadratic or
 * recursive per stage.  The values show that the wiring is right. */
static void
test_large_pipeline (void)
{
  const int n = 50000;
  GString *text = g_string_new ("[pipeline]\ninput=1x1x1\n");
  for (int i = 0; i < n; i++)
    g_string_append_printf (text, "[s%d]\ntype=invert\n", i);
  g_string_append (text, "[sum]\ntype=add\ninput=");
  for (int i = 0; i < 2 * n; i++)
    g_string_append_printf (text, "%ss%d", i ? " , " : "", i % n);
  g_string_append_c (text, '\n');
  g_test_message ("pipeline of %" G_GSIZE_FORMAT " bytes", text->len);

  g_autoptr (GError) error = NULL;
  gint64 start = g_get_monotonic_time ();
  StPipeline *p = st_pipeline_load_data (reg, text->str, "large.ini", &error);
  g_test_message ("loaded in %.3f s", (g_get_monotonic_time () - start) / 1e6);
  g_string_free (text, TRUE);
  g_assert_no_error (error);
  g_assert_cmpint (st_pipeline_n_stages (p), ==, n + 1);
  g_assert_cmpstr (st_pipeline_stage (p, n)->name, ==, "sum");
  g_assert_cmpstr (st_pipeline_stage (p, n - 1)->name, ==, "s49999");
  const char *const *inputs = st_pipeline_stage_inputs (p, n);
  g_assert_cmpuint (g_strv_length ((char **) inputs), ==, 2 * n);
  g_assert_cmpstr (inputs[n + 1], ==, "s1");
  /* Only s0 can run apart: the sum reads it. */
  g_assert_cmpint (st_pipeline_prefix_length (p), ==, 1);

  /* s_i is 1 - x for even i and x for odd i: the sum is n whatever x. */
  g_autoptr (StRunContext) ctx = st_run_context_new (1, 1);
  g_autoptr (StTensor) in = st_tensor_new0 (1, 1, 1, 1);
  in->data[0] = 0.25f;
  g_autoptr (StTensor) out = st_pipeline_forward (p, ctx, in, FALSE, &error);
  g_assert_no_error (error);
  g_assert_cmpfloat (out->data[0], ==, (float) n);
  st_pipeline_free (p);

  /* A deep chain whose first stages only prepare the input: the prefix is
   * found in one pass. */
  text = g_string_new (NULL);
  for (int i = 0; i < n; i++)
    g_string_append_printf (text, "[s%d]\ntype=invert\n", i);
  g_string_append (text, "[d]\ntype=dense\nunits=2\n");
  p = st_pipeline_load_data (reg, text->str, "chain.ini", &error);
  g_string_free (text, TRUE);
  g_assert_no_error (error);
  g_assert_cmpint (st_pipeline_prefix_length (p), ==, n);
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

/* ---- Pipelines that include pipelines ------------------------------------ */

/* Writes text to dir/name, creating the folders on the way. */
static char *
write_file (const char *dir, const char *name, const char *text)
{
  char *path = g_build_filename (dir, name, NULL);
  g_autofree char *parent = g_path_get_dirname (path);
  g_assert_cmpint (g_mkdir_with_parents (parent, 0700), ==, 0);
  tu_write_bytes (path, text, strlen (text));
  return path;
}

/* Loads path and expects an error holding every fragment given. */
static void
expect_file_error (const char *path, const char *const *fragments)
{
  g_autoptr (GError) error = NULL;
  g_assert_null (st_pipeline_load_file (reg, path, &error));
  assert_message (error, fragments);
}

#define EXPECT_FILE_ERROR(path, ...) \
  expect_file_error (path, (const char *const[]) { __VA_ARGS__, NULL })

/* Named files that are not regular files are refused, not read: /dev/zero
 * would fill memory and a FIFO with no writer would block forever. */
static void
test_special_files (void)
{
  g_autofree char *dir = g_dir_make_tmp ("strata-special-XXXXXX", NULL);
  g_autofree char *fifo = g_build_filename (dir, "fifo", NULL);
  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
  EXPECT_FILE_ERROR ("/dev/zero", "/dev/zero", "not a regular file");
  EXPECT_FILE_ERROR (fifo, fifo, "not a regular file");
  EXPECT_FILE_ERROR (dir, dir, "is a folder");
  const char *labels_of[] = { "/dev/zero", fifo, dir };
  for (guint i = 0; i < G_N_ELEMENTS (labels_of); i++)
    {
      g_autofree char *text = g_strdup_printf ("[pipeline]\nlabels=%s\n[k]\ntype=kernel\n",
                                               labels_of[i]);
      g_autofree char *path = write_file (dir, "labels.ini", text);
      EXPECT_FILE_ERROR (path, "key 'labels'", labels_of[i]);
    }
  tu_remove_tree (dir);
}

/* The bundled photo pipeline, three stages and an include, is the flat
 * file it replaced: the same stages, wiring, labels, parameter names and,
 * with the same weights, the same scores. */
static void
test_include_photo_is_flat (void)
{
  g_autofree char *dir = g_build_filename (STRATA_SOURCE_ROOT, "pipelines", NULL);
  g_autofree char *net_path = g_build_filename (dir, "fashion-mnist.ini", NULL);
  g_autofree char *photo_path = g_build_filename (dir, "fashion-mnist-photo.ini", NULL);
  g_autofree char *weights = g_build_filename (dir, "fashion-mnist.safetensors", NULL);
  g_autofree char *net = NULL;
  g_assert_true (g_file_get_contents (net_path, &net, NULL, NULL));
  /* The flat file: the preparation stages, then the network's groups
   * without its [pipeline] group. */
  GString *flat = g_string_new ("[gray]\ntype=grayscale\n"
                                "[resize]\ntype=resize\nwidth=28\nheight=28\ninterpolation=area\n"
                                "[invert]\ntype=invert\n");
  g_auto (GStrv) lines = g_strsplit (net, "\n", -1);
  gboolean in_pipeline = FALSE;
  for (int i = 0; lines[i]; i++)
    {
      if (lines[i][0] == '[')
        in_pipeline = strcmp (lines[i], "[pipeline]") == 0;
      if (!in_pipeline)
        g_string_append_printf (flat, "%s\n", lines[i]);
    }
  g_autoptr (GError) error = NULL;
  g_autofree char *flat_text = g_string_free (flat, FALSE);
  StPipeline *a = st_pipeline_load_data (reg, flat_text, "flat.ini", &error);
  g_assert_no_error (error);
  StPipeline *b = st_pipeline_load_file (reg, photo_path, &error);
  g_assert_no_error (error);

  g_assert_false (st_pipeline_fixed_input (b, NULL));
  g_assert_cmpstr (st_pipeline_weights_path (b), ==, weights);
  g_assert_cmpint (g_strv_length ((char **) st_pipeline_labels (b)), ==, 10);
  g_assert_cmpstr (st_pipeline_labels (b)[9], ==, "Ankle boot");
  g_assert_true (g_str_has_prefix (st_pipeline_description (b),
                                   "Fashion-MNIST classifier for photos"));
  g_assert_cmpint (st_pipeline_n_stages (a), ==, st_pipeline_n_stages (b));
  for (int i = 0; i < st_pipeline_n_stages (a); i++)
    {
      StStage *sa = st_pipeline_stage (a, i), *sb = st_pipeline_stage (b, i);
      g_assert_cmpstr (sa->name, ==, sb->name);
      g_assert_true (sa->kind == sb->kind);
      g_assert_true (g_strv_equal (st_pipeline_stage_inputs (a, i),
                                   st_pipeline_stage_inputs (b, i)));
    }
  g_assert_cmpstr (st_pipeline_stage_inputs (b, 3)[0], ==, "invert");
  g_assert_cmpstr (st_pipeline_stage (b, 4)->name, ==, "conv1");

  g_assert_true (st_pipeline_load_weights (a, weights, &error));
  g_assert_no_error (error);
  g_assert_true (st_pipeline_load_weights (b, weights, &error));
  g_assert_no_error (error);
  g_autoptr (StTensor) in = random_image (3, 45, 37, 3);
  g_autoptr (StRunContext) ctx = st_run_context_new (1, 1);
  g_autoptr (StTensor) out_a = st_pipeline_forward (a, ctx, in, FALSE, &error);
  g_assert_no_error (error);
  g_autoptr (StTensor) out_b = st_pipeline_forward (b, ctx, in, FALSE, &error);
  g_assert_no_error (error);
  g_assert_cmpint (st_tensor_numel (out_a), ==, 10);
  g_assert_cmpmem (out_a->data, 10 * sizeof (float), out_b->data, 10 * sizeof (float));
  st_pipeline_free (a);
  st_pipeline_free (b);
}

/* An included file's image is the last stage before it; its paths start
 * at its own folder; its [pipeline] keys hold for the whole unless the
 * including file has its own description; and a copy reads it again. */
static void
test_include_binding (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-include-XXXXXX");
  g_autofree char *labels = write_file (tmp, "net/labels.txt", "yes\nno\n");
  g_autofree char *net = write_file (tmp, "net/net.ini",
    "[pipeline]\ndescription=inner\nweights=w.safetensors\nlabels=labels.txt\n"
    "[double]\ntype=add\ninput=image,image\n"
    "[minus]\ntype=add\ninput=double,image\nweights=1,-1\n");
  g_autofree char *outer = write_file (tmp, "outer.ini",
    "[pipeline]\ndescription=outer\ninclude=net/net.ini\n"
    "[gray]\ntype=grayscale\n"
    "[half]\ntype=add\nweights=0.5\n");
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_file (reg, outer, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (st_pipeline_description (p), ==, "outer");
  g_autofree char *weights = g_build_filename (tmp, "net", "w.safetensors", NULL);
  g_assert_cmpstr (st_pipeline_weights_path (p), ==, weights);
  g_assert_cmpstr (st_pipeline_labels (p)[1], ==, "no");
  g_assert_cmpint (st_pipeline_n_stages (p), ==, 4);
  g_assert_cmpstr (st_pipeline_stage (p, 2)->name, ==, "double");
  g_assert_cmpstr (st_pipeline_stage_inputs (p, 2)[0], ==, "half");
  g_assert_cmpstr (st_pipeline_stage_inputs (p, 3)[1], ==, "half");

  /* (2x - x) of half the grey image is half the grey image. */
  g_autoptr (StTensor) in = random_image (3, 6, 5, 9);
  g_autoptr (StRunContext) ctx = st_run_context_new (1, 1);
  StPipeline *copy = st_pipeline_copy (p, &error);
  g_assert_no_error (error);
  g_autoptr (StTensor) out = st_pipeline_forward (copy, ctx, in, FALSE, &error);
  g_assert_no_error (error);
  StPipeline *gray = st_pipeline_load (reg, "grayscale", &error);
  g_assert_no_error (error);
  g_autoptr (StTensor) ref = st_pipeline_forward (gray, ctx, in, FALSE, &error);
  g_assert_no_error (error);
  st_pipeline_free (gray);
  g_assert_cmpint (st_tensor_numel (out), ==, st_tensor_numel (ref));
  for (gsize i = 0; i < st_tensor_numel (out); i++)
    g_assert_cmpfloat_with_epsilon (out->data[i], 0.5f * ref->data[i], 1e-6);
  st_pipeline_free (copy);
  st_pipeline_free (p);

  /* With no stages before it, the included file's input= is the
   * pipeline's, and its description stands when the includer has none. */
  g_autofree char *fixed = write_file (tmp, "fixed.ini",
    "[pipeline]\ndescription=fixed\ninput=1x4x6\n[g]\ntype=grayscale\n");
  g_autofree char *only = write_file (tmp, "only.ini", "[pipeline]\ninclude=fixed.ini\n");
  p = st_pipeline_load_file (reg, only, &error);
  g_assert_no_error (error);
  StShape shape;
  g_assert_true (st_pipeline_fixed_input (p, &shape));
  g_assert_cmpint (shape.c, ==, 1);
  g_assert_cmpint (shape.h, ==, 4);
  g_assert_cmpint (shape.w, ==, 6);
  g_assert_cmpstr (st_pipeline_description (p), ==, "fixed");
  st_pipeline_free (p);
  tu_remove_tree (tmp);
}

static void
test_include_errors (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-include-XXXXXX");
  g_autofree char *missing = write_file (tmp, "missing.ini",
    "[pipeline]\ninclude=nowhere.ini\n[g]\ntype=grayscale\n");
  EXPECT_FILE_ERROR (missing, "missing.ini: group 'pipeline': key 'include'", "nowhere.ini",
                     "No such file");

  g_autofree char *a = write_file (tmp, "a.ini",
                                   "[pipeline]\ninclude=b.ini\n[g]\ntype=grayscale\n");
  g_autofree char *b = write_file (tmp, "b.ini", "[pipeline]\ninclude=a.ini\n[h]\ntype=invert\n");
  EXPECT_FILE_ERROR (a, "b.ini: group 'pipeline': key 'include'", "a.ini includes itself",
                     "a.ini -> ", "b.ini -> ");
  g_autofree char *self = write_file (tmp, "self.ini", "[pipeline]\ninclude=self.ini\n");
  EXPECT_FILE_ERROR (self, "self.ini: group 'pipeline': key 'include'", "includes itself");

  /* A chain of files, each including the next: deeper than the bound. */
  for (int i = 0; i < 20; i++)
    {
      g_autofree char *name = g_strdup_printf ("deep%d.ini", i);
      g_autofree char *text =
        g_strdup_printf ("[pipeline]\ninclude=deep%d.ini\n[s%d]\ntype=invert\n", i + 1, i);
      g_autofree char *path = write_file (tmp, name, text);
    }
  g_autofree char *deep = g_build_filename (tmp, "deep0.ini", NULL);
  EXPECT_FILE_ERROR (deep, "key 'include'", "more than 16 files include one another");

  g_autofree char *clash_net = write_file (tmp, "clash-net.ini", "[g]\ntype=invert\n");
  g_autofree char *clash = write_file (tmp, "clash.ini",
    "[pipeline]\ninclude=clash-net.ini\n\n[g]\ntype=grayscale\n");
  EXPECT_FILE_ERROR (clash, "clash-net.ini: stage 'g'",
                     "clash.ini has a stage of that name (line 4)");

  g_autofree char *w_net = write_file (tmp, "w-net.ini",
    "[pipeline]\nweights=x.safetensors\nlabels=a;b\n[g]\ntype=invert\n");
  g_autofree char *w = write_file (tmp, "w.ini",
    "[pipeline]\ninclude=w-net.ini\nweights=y.safetensors\n[g0]\ntype=grayscale\n");
  EXPECT_FILE_ERROR (w, "w-net.ini: group 'pipeline': key 'weights'", "w.ini",
                     "another value");
  g_autofree char *l = write_file (tmp, "l.ini",
    "[pipeline]\ninclude=w-net.ini\nlabels=a;c\n[g0]\ntype=grayscale\n");
  EXPECT_FILE_ERROR (l, "w-net.ini: group 'pipeline': key 'labels'", "l.ini");
  /* The same value twice is no conflict. */
  g_autofree char *same = write_file (tmp, "same.ini",
    "[pipeline]\ninclude=w-net.ini\nlabels=a;b\nweights=./x.safetensors\n[g0]\ntype=grayscale\n");
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_file (reg, same, &error);
  g_assert_no_error (error);
  st_pipeline_free (p);

  /* An error inside the included file names that file. */
  g_autofree char *bad_net = write_file (tmp, "bad-net.ini", "[k]\ntype=kernel\nsigam=2\n");
  g_autofree char *bad = write_file (tmp, "bad.ini", "[pipeline]\ninclude=bad-net.ini\n");
  EXPECT_FILE_ERROR (bad, "bad-net.ini: stage 'k'", "sigam");
  g_autofree char *syntax_net = write_file (tmp, "syntax-net.ini", "[k\n");
  g_autofree char *syntax = write_file (tmp, "syntax.ini", "[pipeline]\ninclude=syntax-net.ini\n");
  EXPECT_FILE_ERROR (syntax, "syntax-net.ini: not a valid pipeline file: line 1");

  /* A stage reads the stages of its own file, and image. */
  g_autofree char *reach_net = write_file (tmp, "reach-net.ini",
    "[sum]\ntype=add\ninput=image,g\n");
  g_autofree char *reach = write_file (tmp, "reach.ini",
    "[pipeline]\ninclude=reach-net.ini\n[g]\ntype=grayscale\n");
  EXPECT_FILE_ERROR (reach, "reach-net.ini: stage 'sum': key 'input': no stage named 'g'");

  /* The included file's input= must be what the stages before it make. */
  g_autofree char *shape_net = write_file (tmp, "shape-net.ini",
    "[pipeline]\ninput=1x28x28\n[n]\ntype=invert\n");
  g_autofree char *shape = write_file (tmp, "shape.ini",
    "[pipeline]\ninclude=shape-net.ini\n[g]\ntype=grayscale\n");
  EXPECT_FILE_ERROR (shape, "shape-net.ini: the pipeline takes 1x28x28 (its input=)",
                     "stage 'g' of", "shape.ini", "makes 1x256x256");
  g_autofree char *both = write_file (tmp, "both.ini",
    "[pipeline]\ninclude=shape-net.ini\ninput=1x4x4\n");
  EXPECT_FILE_ERROR (both, "shape-net.ini: group 'pipeline': key 'input'", "both.ini");
  tu_remove_tree (tmp);
}

/* ---- Blocks kept from batch to batch ------------------------------------ */

/* A kind without ST_KIND_WRITES_ALL that checks it is handed zeros, then
 * fills everything with values that are never zero, so that a block
 * handed on unfilled would show. */
static int probe_calls;
static const float *probe_out_seen[4], *probe_gin_seen[4], *probe_gout_seen[4];

static gboolean
all_zero (const StTensor *t)
{
  for (gsize i = 0; i < st_tensor_numel (t); i++)
    if (t->data[i] != 0.0f)
      return FALSE;
  return TRUE;
}

static gboolean
probe_infer (StStage *stage, GError **error)
{
  stage->out_shape = stage->in_shapes[0];
  return TRUE;
}

static gboolean
probe_forward (StStage *stage, const StRunContext *ctx, const StTensor *const *inputs,
               StTensor *output, GError **error)
{
  g_assert_true (all_zero (output));
  g_assert_cmpint (probe_calls, <, 4);
  probe_out_seen[probe_calls] = output->data;
  for (gsize i = 0; i < st_tensor_numel (output); i++)
    output->data[i] = fabsf (inputs[0]->data[i]) + 1.0f;
  return TRUE;
}

static gboolean
probe_backward (StStage *stage, const StRunContext *ctx, const StTensor *const *inputs,
                const StTensor *output, const StTensor *grad_output,
                StTensor *const *grad_inputs, GError **error)
{
  g_assert_nonnull (grad_inputs[0]);
  g_assert_true (all_zero (grad_inputs[0]));
  probe_gout_seen[probe_calls] = grad_output->data;
  probe_gin_seen[probe_calls++] = grad_inputs[0]->data;
  for (gsize i = 0; i < st_tensor_numel (grad_inputs[0]); i++)
    grad_inputs[0]->data[i] = fabsf (grad_output->data[i]) + 1.0f;
  return TRUE;
}

static const StKind probe_kind = {
  ST_KIND_HEADER,
  .name = "probe",
  .summary = "checks that its buffers come zero-filled",
  .min_inputs = 1,
  .max_inputs = 1,
  .infer = probe_infer,
  .forward = probe_forward,
  .backward = probe_backward,
};

/* A batch of n with values from seed, never all zero. */
static StTensor *
patterned (StShape shape, guint32 seed)
{
  StTensor *t = st_tensor_new (shape, NULL);
  for (gsize i = 0; i < st_tensor_numel (t); i++)
    t->data[i] = (float) ((i * 2654435761u + seed * 40503u) % 1000) / 500.0f - 1.0f;
  return t;
}

static void
test_kept_blocks_zeroed (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (StPipeline) p = st_pipeline_load_data (reg,
    "[pipeline]\ninput=5x1x1\n[fc1]\ntype=dense\nunits=6\n[flat]\ntype=flatten\n"
    "[fc2]\ntype=dense\nunits=3\n", "probe.ini", &error);
  g_assert_no_error (error);
  /* flatten has no state of its own to lose: the probe stands in for it. */
  StStage *stage = st_pipeline_stage (p, 1);
  g_assert_null (stage->priv);
  stage->kind = &probe_kind;
  for (int i = 0; i < st_pipeline_n_stages (p); i++)
    st_stage_enable_grads (st_pipeline_stage (p, i));
  g_autoptr (StRunContext) ctx = st_run_context_new (2, 1);
  ctx->training = TRUE;
  probe_calls = 0;
  const int sizes[] = { 4, 4, 3, 4 };
  for (int b = 0; b < 4; b++)
    {
      g_autoptr (StTensor) in = patterned ((StShape) { sizes[b], 5, 1, 1 }, b);
      g_autoptr (StTensor) out = st_pipeline_forward (p, ctx, in, TRUE, &error);
      g_assert_no_error (error);
      g_autoptr (StTensor) grad = patterned (out->shape, 100 + b);
      g_assert_true (st_pipeline_backward (p, ctx, grad, &error));
      g_assert_no_error (error);
    }
  g_assert_cmpint (probe_calls, ==, 4);
  /* The same blocks came back (so the zeros above were filled anew), the
   * smaller batch's included. */
  for (int b = 1; b < 4; b++)
    g_assert_true (probe_out_seen[b] == probe_out_seen[0]);
  /* The second batch's gradients are in blocks of the first's (a batch
   * of another shape may have new ones). */
  g_assert_true (probe_gin_seen[1] == probe_gin_seen[0] || probe_gin_seen[1] == probe_gout_seen[0]);
  g_assert_true (probe_gout_seen[1] == probe_gin_seen[0]
                 || probe_gout_seen[1] == probe_gout_seen[0]);
  /* Inference keeps nothing per node but hands the probe zeros too. */
  ctx->training = FALSE;
  for (int b = 0; b < 2; b++)
    {
      probe_calls = 0;
      g_autoptr (StTensor) in = patterned ((StShape) { 4, 5, 1, 1 }, 7);
      g_autoptr (StTensor) out = st_pipeline_forward (p, ctx, in, FALSE, &error);
      g_assert_no_error (error);
    }
  stage->kind = tu_kind (reg, "flatten");
}

/* Training steps with kept blocks and with every tensor allocated afresh
 * (as before blocks were kept) give the same bits: outputs, gradients and
 * weights, through batchnorm, relu, pooling, dropout, a fan-out, a smaller
 * batch and an evaluation between. */
static StPipeline *
reuse_net (void)
{
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_data (reg,
    "[pipeline]\ninput=2x8x8\n"
    "[conv]\ntype=conv2d\nfilters=4\nsize=3\npadding=same\n"
    "[bn]\ntype=batchnorm\n"
    "[relu]\ntype=activation\nfunction=relu\n"
    "[branch]\ntype=conv2d\nfilters=4\nsize=1\ninput=relu\n"
    "[sum]\ntype=add\ninput=relu,branch\n"
    "[pool]\ntype=maxpool\nsize=2\n"
    "[flat]\ntype=flatten\n"
    "[drop]\ntype=dropout\nrate=0.3\n"
    "[fc]\ntype=dense\nunits=5\n", "reuse.ini", &error);
  g_assert_no_error (error);
  for (int i = 0; i < st_pipeline_n_stages (p); i++)
    st_stage_enable_grads (st_pipeline_stage (p, i));
  return p;
}

static void
assert_same_bits (const StTensor *a, const StTensor *b)
{
  g_assert_true (st_shape_equal (a->shape, b->shape));
  g_assert_cmpint (memcmp (a->data, b->data, st_tensor_numel (a) * sizeof (float)), ==, 0);
}

static void
test_kept_blocks_same_bits (void)
{
  g_autoptr (GError) error = NULL;
  StPipeline *p[2] = { reuse_net (), reuse_net () };
  p[1]->fresh_buffers = TRUE;
  StRunContext *ctx[2] = { st_run_context_new (2, 5), st_run_context_new (1, 5) };
  g_autoptr (GPtrArray) w0 = st_pipeline_weights (p[0]);
  g_autoptr (GPtrArray) w1 = st_pipeline_weights (p[1]);
  g_assert_cmpuint (w0->len, ==, w1->len);
  for (guint k = 0; k < w0->len; k++)
    assert_same_bits (((StWeight *) w0->pdata[k])->value, ((StWeight *) w1->pdata[k])->value);

  const int sizes[] = { 6, 6, 4, 6, 6 };
  for (int b = 0; b < 5; b++)
    {
      g_autoptr (StTensor) in = patterned ((StShape) { sizes[b], 2, 8, 8 }, b);
      StTensor *out[2];
      for (int r = 0; r < 2; r++)
        {
          StPipeline *q = p[r];
          for (int i = 0; i < st_pipeline_n_stages (q); i++)
            st_stage_zero_grads (st_pipeline_stage (q, i));
          ctx[r]->training = TRUE;
          out[r] = st_pipeline_forward (q, ctx[r], in, TRUE, &error);
          g_assert_no_error (error);
          g_autoptr (StTensor) grad = patterned (out[r]->shape, 50 + b);
          g_assert_true (st_pipeline_backward (q, ctx[r], grad, &error));
          g_assert_no_error (error);
          /* A plain step, so that the weights move. */
          g_autoptr (GPtrArray) w = st_pipeline_weights (q);
          for (guint k = 0; k < w->len; k++)
            {
              StWeight *wt = w->pdata[k];
              if (!wt->trainable || !wt->grad)
                continue;
              for (gsize i = 0; i < st_tensor_numel (wt->value); i++)
                wt->value->data[i] -= 0.05f * wt->grad->data[i];
            }
        }
      assert_same_bits (out[0], out[1]);
      for (guint k = 0; k < w0->len; k++)
        {
          StWeight *a = w0->pdata[k], *c = w1->pdata[k];
          assert_same_bits (a->value, c->value);
          if (a->grad)
            assert_same_bits (a->grad, c->grad);
        }
      st_tensor_free (out[0]);
      st_tensor_free (out[1]);
      if (b == 2)
        for (int round = 0; round < 2; round++)
          {
            StTensor *eval[2];
            for (int r = 0; r < 2; r++)
              {
                ctx[r]->training = FALSE;
                eval[r] = st_pipeline_forward (p[r], ctx[r], in, FALSE, &error);
                g_assert_no_error (error);
              }
            assert_same_bits (eval[0], eval[1]);
            st_tensor_free (eval[0]);
            st_tensor_free (eval[1]);
          }
    }
  for (int r = 0; r < 2; r++)
    {
      st_pipeline_free (p[r]);
      st_run_context_free (ctx[r]);
    }
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
  g_test_add_func ("/pipeline/error/line-syntax", test_error_line_syntax);
  g_test_add_func ("/pipeline/byte-order-mark", test_byte_order_mark);
  g_test_add_func ("/pipeline/memory/shape-bytes", test_shape_bytes);
  g_test_add_func ("/pipeline/memory/outputs", test_memory_outputs);
  g_test_add_func ("/pipeline/memory/parameters", test_memory_parameters);
  g_test_add_func ("/pipeline/fixed-input", test_fixed_input_message);
  g_test_add_func ("/pipeline/plugins/refused", test_refused_plugins);
  g_test_add_func ("/pipeline/cli/plugins", test_cli_plugins);
  g_test_add_func ("/pipeline/cli/common-options", test_cli_common_options);
  g_test_add_func ("/pipeline/cli/pipelines", test_cli_pipelines);
  g_test_add_func ("/pipeline/cli/version", test_cli_version);
  g_test_add_func ("/pipeline/cli/completion-and-manual", test_cli_completion_and_manual);
  g_test_add_func ("/pipeline/large", test_large_pipeline);
  g_test_add_func ("/pipeline/inline", test_inline_chain);
  g_test_add_func ("/pipeline/graph-order", test_graph_order);
  g_test_add_func ("/pipeline/labels-weights", test_labels_and_weights_paths);
  g_test_add_func ("/pipeline/error/special-files", test_special_files);
  g_test_add_func ("/pipeline/include/photo-is-flat", test_include_photo_is_flat);
  g_test_add_func ("/pipeline/include/binding", test_include_binding);
  g_test_add_func ("/pipeline/include/errors", test_include_errors);
  g_test_add_func ("/pipeline/ready/sharpen-bytes", test_sharpen_bytes);
  g_test_add_func ("/pipeline/ready/edges", test_edges_reference);
  g_test_add_func ("/pipeline/ready/unsharp", test_unsharp_reference);
  g_test_add_func ("/pipeline/ready/all-load", test_every_ready_pipeline_loads);
  g_test_add_func ("/pipeline/kept-blocks/zeroed", test_kept_blocks_zeroed);
  g_test_add_func ("/pipeline/kept-blocks/same-bits", test_kept_blocks_same_bits);
  int rc = g_test_run ();
  st_registry_free (reg);
  return rc;
}
