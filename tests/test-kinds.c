/* Kinds the core knows only by what they declare: a softmax and a
 * convolution under other names (tests/plugins/probabilities.c and
 * tapconv.c) work with no core edit; every loaded kind with a backward
 * passes st_gradcheck; the SDK's helpers for kinds (same padding, softmax,
 * same-shape inputs, constant initialiser, one stage run on its own); and
 * the classifier facts of classifier.h. */
#include "classifier.h"
#include "testutil.h"
#include "visualize.h"

#include <glib/gstdio.h>
#include <string.h>

static const char *exe;
static char *kinds_dir;        /* a folder holding only the test kinds */
static StRegistry *reg;        /* the build's plugins and the test kinds */

/* ---- A registry with the test kinds --------------------------------------- */

/* Copies the test kinds (STRATA_TEST_PLUGINS_KINDS, ':'-separated) into a
 * folder of their own, away from the deliberately broken plugins. */
static char *
make_kinds_dir (void)
{
  const char *list = g_getenv ("STRATA_TEST_PLUGINS_KINDS");
  g_assert_nonnull (list);
  char *dir = tu_make_tmpdir ("strata-kinds-XXXXXX");
  g_auto (GStrv) paths = g_strsplit (list, ":", -1);
  for (int i = 0; paths[i]; i++)
    {
      g_autofree char *bytes = NULL;
      gsize len;
      g_assert_true (g_file_get_contents (paths[i], &bytes, &len, NULL));
      g_autofree char *base = g_path_get_basename (paths[i]);
      g_autofree char *copy = g_build_filename (dir, base, NULL);
      tu_write_bytes (copy, bytes, len);
    }
  return dir;
}

static StPipeline *
load_text (const char *text)
{
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_data (reg, text, "t.ini", &error);
  g_assert_no_error (error);
  return p;
}

/* ---- Probabilities ------------------------------------------------------------ */

/* A kind flagged as outputting probabilities is a softmax to the core:
 * its output is reported as it is, an unflagged one is not. */
static void
test_probabilities_flag (void)
{
  const float scores[] = { 0.2f, 0.3f, 0.5f };
  struct { const char *kind; gboolean flagged; } cases[] = {
    { "softmax", TRUE }, { "normexp", TRUE }, { "plainexp", FALSE },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *text = g_strdup_printf ("[pipeline]\ninput=3x1x1\n[out]\ntype=%s\n",
                                               cases[i].kind);
      StPipeline *p = load_text (text);
      g_assert_cmpint (st_pipeline_ends_in_probabilities (p), ==, cases[i].flagged);
      g_autoptr (StTensor) t = tu_tensor_from (1, 3, 1, 1, scores);
      st_scores_to_probabilities (p, t);
      /* Softmax of 0.2, 0.3, 0.5 when not taken as probabilities already. */
      const float softmax[] = { 0.289433f, 0.319873f, 0.390694f };
      for (int c = 0; c < 3; c++)
        g_assert_cmpfloat_with_epsilon (t->data[c], cases[i].flagged ? scores[c] : softmax[c],
                                        1e-6);
      st_pipeline_free (p);
    }
}

/* The tensors of a safetensors file: what follows its header (whose
 * metadata names the pipeline file). */
static GBytes *
tensor_bytes (const char *path)
{
  g_autofree char *contents = NULL;
  gsize len;
  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  g_assert_cmpuint (len, >=, 8);
  guint64 header = 0;
  for (int i = 7; i >= 0; i--)
    header = header << 8 | (guint8) contents[i];
  g_assert_cmpuint (header, <=, len - 8);
  return g_bytes_new (contents + 8 + header, len - 8 - header);
}

/* Training fuses a flagged last stage with the loss whatever its name:
 * the same network trained with softmax and with normexp gives the same
 * weights file, byte for byte; with plainexp (a softmax the core is not
 * told about) the loss is taken after it, and the weights differ. */
static void
test_probabilities_train (void)
{
  g_autofree char *dir = tu_make_tmpdir ("strata-kinds-train-XXXXXX");
  g_autofree char *data = g_build_filename (dir, "data", NULL);
  g_assert_cmpint (g_mkdir (data, 0755), ==, 0);
  tu_write_synthetic_idx (data, "train", 64, 3);
  tu_write_synthetic_idx (data, "t10k", 16, 4);
  const char *kinds[] = { "softmax", "normexp", "plainexp" };
  char *weights[3];
  for (int i = 0; i < 3; i++)
    {
      /* One file name for all: the weights' metadata names it. */
      g_autofree char *sub = g_build_filename (dir, kinds[i], NULL);
      g_assert_cmpint (g_mkdir (sub, 0755), ==, 0);
      g_autofree char *ini = g_build_filename (sub, "net.ini", NULL);
      g_autofree char *text = g_strdup_printf (
        "[pipeline]\ninput=1x8x8\n[flat]\ntype=flatten\n[fc]\ntype=dense\nunits=2\n"
        "[out]\ntype=%s\n", kinds[i]);
      g_assert_true (g_file_set_contents (ini, text, -1, NULL));
      weights[i] = g_build_filename (sub, "net.safetensors", NULL);
      TuResult r = tu_run (exe, "train", ini, "--data", data, "-o", weights[i], "--epochs", "2",
                           "--seed", "5", "-j", "1", "--quiet", "--plugin-dir", kinds_dir, NULL);
      g_assert_cmpint (r.status, ==, 0);
      tu_result_clear (&r);
    }
  g_autoptr (GBytes) a = tensor_bytes (weights[0]);
  g_autoptr (GBytes) b = tensor_bytes (weights[1]);
  g_autoptr (GBytes) c = tensor_bytes (weights[2]);
  g_assert_true (g_bytes_equal (a, b));
  g_assert_false (g_bytes_equal (a, c));
  for (int i = 0; i < 3; i++)
    g_free (weights[i]);
  tu_remove_tree (dir);
}

/* ---- A convolution under another name ------------------------------------- */

static const char *tapconv_pipeline =
  "[pipeline]\ninput=1x6x6\n[taps]\ntype=tapconv\nfilters=3\nsize=3\n";

/* The filter picture is of the first 4-D weight, whatever the kind. */
static void
test_renamed_conv_filters (void)
{
  StPipeline *p = load_text (tapconv_pipeline);
  g_autoptr (GError) error = NULL;
  StWeightsLayout *l = st_weights_layout (p, &error);
  g_assert_no_error (error);
  g_assert_cmpint (l->stage, ==, 0);
  g_assert_cmpint (l->n_filters, ==, 3);
  g_assert_cmpint (l->in_channels, ==, 1);
  g_assert_cmpint (l->kh, ==, 3);
  g_assert_cmpint (l->kw, ==, 3);
  st_weights_layout_free (l);
  st_pipeline_free (p);

  g_autofree char *dir = tu_make_tmpdir ("strata-kinds-conv-XXXXXX");
  g_autofree char *ini = g_build_filename (dir, "taps.ini", NULL);
  g_autofree char *png = g_build_filename (dir, "filters.png", NULL);
  g_assert_true (g_file_set_contents (ini, tapconv_pipeline, -1, NULL));
  TuResult r = tu_run (exe, "inspect", ini, "--random-weights", "--weights-image", png,
                       "--plugin-dir", kinds_dir, NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_assert_true (g_file_test (png, G_FILE_TEST_IS_REGULAR));
  tu_remove_tree (dir);
}

/* ---- Every kind with a backward passes st_gradcheck --------------------------- */

/* How to check each kind: parameters, input shapes (all inputs alike),
 * mode and step (see st_gradcheck for choosing eps).  A kind with a
 * backward must have a row. */
typedef struct {
  const char *kind;
  const char *params;
  StShape shape;
  int n_inputs;
  gboolean training;
  double eps;
} GradcheckRow;

static const GradcheckRow gradcheck_rows[] = {
  { "activation", "function=tanh", { 2, 3, 3, 3 }, 1, TRUE, 1e-2 },
  { "add", "weights=1.5,-0.5", { 2, 3, 4, 5 }, 2, FALSE, 1e-2 },
  { "affine", "rotate=30 scale=1.2,0.8 interpolation=bicubic border=reflect", { 2, 2, 5, 6 }, 1, TRUE, 5e-2 },
  { "avgpool", "size=2", { 2, 2, 4, 4 }, 1, TRUE, 5e-2 },
  { "batchnorm", NULL, { 4, 3, 2, 2 }, 1, TRUE, 0.1 },
  { "concat", NULL, { 2, 3, 4, 5 }, 3, TRUE, 5e-2 },
  { "crop", "x=1 y=0 width=2 height=2", { 2, 3, 3, 4 }, 1, TRUE, 5e-2 },
  { "conv2d", "filters=2 size=3", { 2, 2, 5, 5 }, 1, TRUE, 5e-2 },
  { "dense", "units=3", { 2, 5, 1, 1 }, 1, TRUE, 5e-2 },
  { "dropout", "rate=0.4", { 2, 3, 4, 4 }, 1, TRUE, 5e-2 },
  { "flatten", NULL, { 2, 3, 2, 2 }, 1, TRUE, 5e-2 },
  { "flip", "direction=both", { 2, 3, 3, 4 }, 1, TRUE, 5e-2 },
  { "globalavgpool", NULL, { 2, 3, 4, 4 }, 1, TRUE, 5e-2 },
  { "invert", NULL, { 2, 3, 4, 5 }, 1, FALSE, 5e-2 },
  { "lppool", "p=2 size=2 stride=1", { 2, 2, 4, 4 }, 1, TRUE, 1e-2 },
  { "maxpool", "size=2", { 2, 2, 4, 4 }, 1, TRUE, 2e-3 },
  { "normalize", "mean=0.1,-0.2,0.3 std=0.5,2,4", { 2, 3, 4, 5 }, 1, FALSE, 5e-2 },
  { "normexp", NULL, { 2, 4, 3, 3 }, 1, TRUE, 2e-2 },
  { "pad", "top=1 left=2 right=3 border=reflect", { 2, 2, 3, 4 }, 1, TRUE, 5e-2 },
  { "plainexp", NULL, { 2, 4, 3, 3 }, 1, TRUE, 2e-2 },
  { "rotate90", "angle=90", { 2, 3, 3, 4 }, 1, TRUE, 5e-2 },
  { "softmax", NULL, { 2, 4, 3, 3 }, 1, TRUE, 2e-2 },
};

/* The row for kind, or NULL with error telling to add one when the kind
 * has a backward; NULL and no error for an inference-only kind. */
static const GradcheckRow *
gradcheck_row (const StKind *kind, GError **error)
{
  for (guint i = 0; i < G_N_ELEMENTS (gradcheck_rows); i++)
    if (strcmp (gradcheck_rows[i].kind, kind->name) == 0)
      return &gradcheck_rows[i];
  if (kind->backward)
    g_set_error (error, ST_ERROR, ST_ERROR_FAILED,
                 "kind '%s' has a backward but no row in gradcheck_rows of tests/test-kinds.c: "
                 "add one, so that its gradient is checked", kind->name);
  return NULL;
}

static void
test_gradcheck_every_kind (void)
{
  g_autoptr (GPtrArray) names = st_registry_kind_names (reg);
  int checked = 0;
  for (guint i = 0; i < names->len; i++)
    {
      const StKind *kind = st_registry_lookup (reg, names->pdata[i])->kind;
      g_autoptr (GError) error = NULL;
      const GradcheckRow *row = gradcheck_row (kind, &error);
      g_assert_no_error (error);
      if (!row)
        continue;
      TuParams p;
      tu_params_parse (&p, row->params);
      StShape shapes[4] = { row->shape, row->shape, row->shape, row->shape };
      StGradcheckResult result;
      gboolean ok = st_gradcheck (kind, p.keys, p.values, p.n, shapes, row->n_inputs,
                                  row->training, 1, row->eps, 1e-3, &result, &error);
      tu_params_clear (&p);
      g_test_message ("%s: %d checked, worst %.2g at %s", kind->name, result.n_checked,
                      result.max_rel_error, result.worst);
      g_assert_no_error (error);
      g_assert_true (ok);
      checked++;
    }
  /* The build's trainable kinds and the two test ones. */
  g_assert_cmpint (checked, ==, G_N_ELEMENTS (gradcheck_rows));
}

static gboolean
copy_forward (G_GNUC_UNUSED StStage *stage, G_GNUC_UNUSED const StRunContext *ctx,
              const StTensor *const *inputs, StTensor *output, G_GNUC_UNUSED GError **error)
{
  memcpy (output->data, inputs[0]->data, st_tensor_numel (output) * sizeof (float));
  return TRUE;
}

static gboolean
copy_infer (StStage *stage, G_GNUC_UNUSED GError **error)
{
  stage->out_shape = stage->in_shapes[0];
  return TRUE;
}

static gboolean
copy_backward (G_GNUC_UNUSED StStage *stage, G_GNUC_UNUSED const StRunContext *ctx,
               G_GNUC_UNUSED const StTensor *const *inputs, G_GNUC_UNUSED const StTensor *output,
               const StTensor *grad_output, StTensor *const *grad_inputs,
               G_GNUC_UNUSED GError **error)
{
  memcpy (grad_inputs[0]->data, grad_output->data, st_tensor_numel (grad_output) * sizeof (float));
  return TRUE;
}

/* A new trainable kind without a row is a failure that says what to do. */
static void
test_gradcheck_row_required (void)
{
  static const StKind unlisted = {
    ST_KIND_HEADER, .name = "unlisted", .min_inputs = 1, .max_inputs = 1,
    .infer = copy_infer, .forward = copy_forward, .backward = copy_backward,
  };
  g_autoptr (GError) error = NULL;
  g_assert_null (gradcheck_row (&unlisted, &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "'unlisted' has a backward but no row"));
  g_clear_error (&error);
  StKind inference_only = unlisted;
  inference_only.backward = NULL;
  g_assert_null (gradcheck_row (&inference_only, &error));
  g_assert_no_error (error);
}

/* ---- SDK helpers ------------------------------------------------------------- */

static void
test_same_padding (void)
{
  /* in, size, stride, dilation, before, after */
  const int cases[][6] = {
    { 7, 3, 1, 1, 1, 1 },        /* PyTorch's 'same' at stride 1 */
    { 5, 4, 1, 1, 1, 2 },        /* even kernel: the odd pixel after */
    { 5, 3, 1, 2, 2, 2 },        /* dilated */
    { 8, 3, 2, 1, 0, 1 },        /* ceil(8 / 2) = 4 outputs need one pixel */
    { 7, 3, 2, 1, 1, 1 },
    { 4, 1, 3, 1, 0, 0 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      int before, after;
      st_same_padding (cases[i][0], cases[i][1], cases[i][2], cases[i][3], &before, &after);
      g_assert_cmpint (before, ==, cases[i][4]);
      g_assert_cmpint (after, ==, cases[i][5]);
    }
}

static void
test_kind_flags_of_older_plugin (void)
{
  StKind kind = { ST_KIND_HEADER, .name = "old", .flags = ST_KIND_OUTPUTS_PROBABILITIES };
  g_assert_cmpuint (st_kind_flags (&kind), ==, ST_KIND_OUTPUTS_PROBABILITIES);
  /* Built before flags was appended: its struct ends before the field. */
  kind.struct_size = G_STRUCT_OFFSET (StKind, flags);
  g_assert_cmpuint (st_kind_flags (&kind), ==, 0);
}

/* PReLU: its slope a constant-initialised parameter of 0.25. */
static gboolean
prelu_infer (StStage *stage, GError **error)
{
  int dims[1] = { stage->in_shapes[0].c };
  if (st_stage_declare_param (stage, "slope", dims, 1, ST_INIT_CONSTANT, 0.25, TRUE, error) < 0)
    return FALSE;
  stage->out_shape = stage->in_shapes[0];
  return TRUE;
}

static gboolean
prelu_forward (StStage *stage, G_GNUC_UNUSED const StRunContext *ctx,
               const StTensor *const *inputs, StTensor *output, G_GNUC_UNUSED GError **error)
{
  const float *slope = st_stage_param (stage, 0)->data;
  StShape s = output->shape;
  gsize plane = (gsize) s.h * s.w;
  for (gsize i = 0; i < st_tensor_numel (output); i++)
    {
      float x = inputs[0]->data[i];
      output->data[i] = x >= 0 ? x : slope[(i / plane) % s.c] * x;
    }
  return TRUE;
}

static void
test_run_forward (void)
{
  static const StKind prelu = {
    ST_KIND_HEADER, .name = "prelu", .min_inputs = 1, .max_inputs = 1,
    .infer = prelu_infer, .forward = prelu_forward,
  };
  const float x[] = { -2, 3, -4, 1 };
  g_autoptr (StTensor) in = tu_tensor_from (1, 2, 1, 2, x);
  g_autoptr (GError) error = NULL;
  const StTensor *inputs[] = { in };
  g_autoptr (StTensor) out = st_stage_run_forward (&prelu, NULL, NULL, 0, inputs, 1, FALSE, 1,
                                                   &error);
  g_assert_no_error (error);
  const float want[] = { -0.5f, 3, -1, 1 };
  g_assert_cmpmem (out->data, sizeof want, want, sizeof want);

  /* A stage that refuses its inputs is an error, not a crash: add wants
   * one shape for all. */
  g_autoptr (StTensor) other = st_tensor_new0 (1, 2, 2, 2);
  const StTensor *mixed[] = { in, other };
  const StKind *add = st_registry_lookup (reg, "add")->kind;
  g_assert_null (st_stage_run_forward (add, NULL, NULL, 0, mixed, 2, FALSE, 1, &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_SHAPE);
  g_assert_nonnull (strstr (error->message,
                            "input 2 is 1x2x2x2 but input 1 is 1x2x1x2; all inputs must have one shape"));
}

/* ---- Class names ------------------------------------------------------------ */

static void
test_class_names (void)
{
  StPipeline *p = load_text ("[pipeline]\ninput=3x1x1\n[out]\ntype=softmax\n");
  const char *const folders[] = { "cat", "dog", NULL };
  g_auto (GStrv) numbered = st_pipeline_class_names (p, NULL);
  g_auto (GStrv) from_data = st_pipeline_class_names (p, folders);
  const char *const want_numbered[] = { "0", "1", "2", NULL };
  const char *const want_data[] = { "cat", "dog", "2", NULL };
  g_assert_true (g_strv_equal ((const char *const *) numbered, want_numbered));
  g_assert_true (g_strv_equal ((const char *const *) from_data, want_data));
  const char *const labels[] = { "a", "b", "c", NULL };
  st_pipeline_set_labels (p, labels);
  g_auto (GStrv) labelled = st_pipeline_class_names (p, folders);
  g_assert_true (g_strv_equal ((const char *const *) labelled, labels));
  g_assert_true (st_pipeline_is_classifier (p));
  st_pipeline_free (p);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  exe = g_getenv ("STRATA_EXE");
  g_assert_nonnull (exe);
  kinds_dir = make_kinds_dir ();
  const char *dirs[] = { kinds_dir, NULL };
  reg = st_registry_new (dirs);

  g_test_add_func ("/kinds/probabilities/flag", test_probabilities_flag);
  g_test_add_func ("/kinds/probabilities/train", test_probabilities_train);
  g_test_add_func ("/kinds/renamed-conv/filters", test_renamed_conv_filters);
  g_test_add_func ("/kinds/gradcheck/every-kind", test_gradcheck_every_kind);
  g_test_add_func ("/kinds/gradcheck/row-required", test_gradcheck_row_required);
  g_test_add_func ("/kinds/sdk/same-padding", test_same_padding);
  g_test_add_func ("/kinds/sdk/flags-of-older-plugin", test_kind_flags_of_older_plugin);
  g_test_add_func ("/kinds/sdk/run-forward", test_run_forward);
  g_test_add_func ("/kinds/class-names", test_class_names);
  int status = g_test_run ();

  st_registry_free (reg);
  tu_remove_tree (kinds_dir);
  g_free (kinds_dir);
  return status;
}
