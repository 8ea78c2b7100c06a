/* Pictures of feature maps and filters: their layout, the colours of known
 * values read back from the PNG, and `strata inspect IMAGE -o` end to end. */
#include "visualize.h"
#include "image.h"
#include "registry.h"
#include "stage.h"
#include "weights.h"
#include "testutil.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

static StRegistry *reg;
static char *tmp_dir;
static const char *exe;

/* ---- Helpers ------------------------------------------------------------ */

static StPipeline *
load_text (const char *text, const char *name)
{
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_data (reg, text, name, &error);
  g_assert_no_error (error);
  g_assert_nonnull (p);
  return p;
}

/* 40x30 RGB: a dark red background with a bright disc and a grey bar, so
 * that every stage below has edges to show. */
static StTensor *
make_image (void)
{
  StTensor *t = st_tensor_new0 (1, 3, 30, 40);
  gsize plane = 30 * 40;
  for (int y = 0; y < 30; y++)
    for (int x = 0; x < 40; x++)
      {
        gboolean disc = (x - 14) * (x - 14) + (y - 15) * (y - 15) < 64;
        gboolean bar = x >= 28 && x < 33 && y >= 5 && y < 25;
        float rgb[3] = { 0.3f, 0.1f, 0.1f };
        if (disc)
          rgb[0] = rgb[1] = rgb[2] = 0.9f;
        else if (bar)
          rgb[0] = rgb[1] = rgb[2] = 0.5f;
        for (int k = 0; k < 3; k++)
          t->data[k * plane + y * 40 + x] = rgb[k];
      }
  return t;
}

/* The RGB bytes at (x, y) of an 8-bit picture read back with st_image_load. */
static void
pixel (const StTensor *png, int x, int y, guint8 rgb[3])
{
  gsize plane = (gsize) png->shape.h * png->shape.w;
  for (int k = 0; k < 3; k++)
    rgb[k] = (guint8) lround (255.0 * png->data[k * plane + (gsize) y * png->shape.w + x]);
}

static void
assert_pixel (const StTensor *png, int x, int y, int r, int g, int b)
{
  guint8 rgb[3];
  pixel (png, x, y, rgb);
  if (rgb[0] != r || rgb[1] != g || rgb[2] != b)
    g_error ("pixel (%d, %d) is (%d, %d, %d), expected (%d, %d, %d)", x, y, rgb[0], rgb[1],
             rgb[2], r, g, b);
}

/* Whether the pixels inside r are not all the same colour. */
static gboolean
varies (const StTensor *png, StRect r)
{
  guint8 first[3], c[3];
  pixel (png, r.x, r.y, first);
  for (int y = r.y; y < r.y + r.height; y++)
    for (int x = r.x; x < r.x + r.width; x++)
      {
        pixel (png, x, y, c);
        if (memcmp (c, first, 3) != 0)
          return TRUE;
      }
  return FALSE;
}

static gboolean
inside (StRect r, int width, int height)
{
  return r.x >= 0 && r.y >= 0 && r.x + r.width <= width && r.y + r.height <= height;
}

static gboolean
overlap (StRect a, StRect b)
{
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height
         && b.y < a.y + a.height;
}

static StTensor *
load_png (const char *path)
{
  g_autoptr (GError) error = NULL;
  StImageInfo info;
  StTensor *png = st_image_load (path, 0, &info, &error);
  g_assert_no_error (error);
  g_assert_cmpint (info.format, ==, ST_FORMAT_PNG);
  g_assert_cmpint (info.bit_depth, ==, 8);
  g_assert_cmpint (png->shape.c, ==, 3);
  return png;
}

static void
assert_no_temporaries (void)
{
  g_autoptr (GDir) d = g_dir_open (tmp_dir, 0, NULL);
  for (const char *name; (name = g_dir_read_name (d));)
    g_assert_false (name[0] == '.');  /* the atomic writer's hidden temporary names */
}

/* ---- Feature maps ------------------------------------------------------- */

static const char filter_pipeline[] =
  "[gray]\ntype=grayscale\n"
  "[sx]\ntype=kernel\npreset=sobel-x\n"
  "[box]\ntype=kernel\npreset=box\n";

static void
test_feature_maps (void)
{
  StPipeline *p = load_text (filter_pipeline, "filters.ini");
  g_autoptr (StTensor) image = make_image ();
  g_autofree char *path = g_build_filename (tmp_dir, "maps.png", NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (st_draw_feature_maps (p, image, path, &error));
  g_assert_no_error (error);
  assert_no_temporaries ();

  g_autoptr (StMapLayout) l = st_feature_map_layout (p, image->shape, &error);
  g_assert_no_error (error);
  /* The rules: a 40x30 map grows by whole pixels to about 160 px (k = 4);
   * each section is a 22 px title, the tiles inside a 1 px frame, 20 px of
   * space; a 52 px header and 20 px margins; at least 640 px wide. */
  g_assert_cmpint (l->n_sections, ==, 4);
  g_assert_cmpint (l->width, ==, 640);
  g_assert_cmpint (l->height, ==, 20 + 52 + 4 * (22 + 120 + 2 + 20) - 20 + 20);
  StSectionKind kinds[4] = { ST_SECTION_IMAGE, ST_SECTION_MAPS, ST_SECTION_MAPS, ST_SECTION_MAPS };
  for (int s = 0; s < l->n_sections; s++)
    {
      const StMapSection *sec = &l->sections[s];
      g_assert_cmpint (sec->kind, ==, kinds[s]);
      g_assert_cmpint (sec->stage, ==, s - 1);
      g_assert_cmpint (sec->n_tiles, ==, 1);
      g_assert_cmpint (sec->tiles[0].width, ==, 160);
      g_assert_cmpint (sec->tiles[0].height, ==, 120);
      g_assert_true (inside (sec->area, l->width, l->height));
      g_assert_true (inside (sec->tiles[0], l->width, l->height));
      g_assert_cmpint (sec->title_y, <, sec->area.y);
      if (s > 0)
        g_assert_false (overlap (sec->area, l->sections[s - 1].area));
    }

  g_autoptr (StTensor) png = load_png (path);
  g_assert_cmpint (png->shape.w, ==, l->width);
  g_assert_cmpint (png->shape.h, ==, l->height);
  for (int s = 0; s < l->n_sections; s++)
    g_assert_true (varies (png, l->sections[s].tiles[0]));

  /* The input as it is: the background's dark red at a corner, 4x4 px per
   * image pixel. */
  StRect in = l->sections[0].tiles[0];
  assert_pixel (png, in.x + 1, in.y + 1, 77, 26, 26);
  /* grayscale is non-negative: the disc (its maximum) white, the background
   * (its minimum) black. */
  StRect gray = l->sections[1].tiles[0];
  assert_pixel (png, gray.x + 14 * 4 + 2, gray.y + 15 * 4 + 2, 255, 255, 255);
  assert_pixel (png, gray.x + 2, gray.y + 2, 0, 0, 0);
  /* sobel-x is signed: zero in the flat background is white, the two sides
   * of the disc are blue and red. */
  StRect sx = l->sections[2].tiles[0];
  assert_pixel (png, sx.x + 2, sx.y + 2, 255, 255, 255);
  guint8 left[3], right[3];
  pixel (png, sx.x + 6 * 4 + 2, sx.y + 15 * 4 + 2, left);
  pixel (png, sx.x + 22 * 4 + 2, sx.y + 15 * 4 + 2, right);
  g_assert_true ((left[2] > left[0] && right[0] > right[2])
                 || (left[0] > left[2] && right[2] > right[0]));
  st_pipeline_free (p);
}

/* A classifier ends in a strip per Cx1x1 stage and the probability bars. */
static const char small_net[] =
  "[pipeline]\ninput=1x8x8\nlabels=left;right\n"
  "[conv1]\ntype=conv2d\nfilters=4\nsize=3\n"
  "[fc]\ntype=dense\nunits=2\n";

static void
test_classifier_layout (void)
{
  StPipeline *p = load_text (small_net, "small.ini");
  g_autoptr (StTensor) image = st_tensor_new0 (1, 1, 8, 8);
  for (int i = 0; i < 64; i++)
    image->data[i] = (float) (i % 8) / 7.0f;
  g_autofree char *path = g_build_filename (tmp_dir, "small-maps.png", NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (st_draw_feature_maps (p, image, path, &error));
  g_assert_no_error (error);
  g_autoptr (StMapLayout) l = st_feature_map_layout (p, image->shape, &error);
  g_assert_no_error (error);
  g_assert_cmpint (l->n_sections, ==, 4);
  g_assert_cmpint (l->sections[0].kind, ==, ST_SECTION_IMAGE);
  g_assert_cmpint (l->sections[1].kind, ==, ST_SECTION_MAPS);
  g_assert_cmpint (l->sections[1].n_tiles, ==, 4);
  g_assert_cmpint (l->sections[2].kind, ==, ST_SECTION_STRIP);
  g_assert_cmpint (l->sections[2].n_tiles, ==, 2);
  g_assert_cmpint (l->sections[3].kind, ==, ST_SECTION_SCORES);
  g_assert_cmpint (l->sections[3].area.height, ==, 2 * 18);
  /* 6x6 maps, four of them: whole-pixel upscaling to about 160 px. */
  g_assert_cmpint (l->sections[1].tiles[0].width, ==, 6 * 26);
  g_autoptr (StTensor) png = load_png (path);
  g_assert_cmpint (png->shape.w, ==, l->width);
  g_assert_cmpint (png->shape.h, ==, l->height);
  g_assert_true (varies (png, l->sections[3].area));
  st_pipeline_free (p);
}

/* ---- Weights ------------------------------------------------------------ */

static int
param_index (StStage *stage, const char *full_name)
{
  for (int k = 0; k < st_stage_n_weights (stage); k++)
    if (strcmp (st_stage_get_weight (stage, k)->full_name, full_name) == 0)
      return k;
  g_error ("no parameter %s", full_name);
  return -1;
}

static void
test_weights (void)
{
  StPipeline *p = load_text (small_net, "small.ini");
  StStage *conv = st_pipeline_stage (p, 0);
  StTensor *w = st_stage_param (conv, param_index (conv, "conv1.weight"));
  g_assert_cmpint (w->shape.n, ==, 4);
  g_assert_cmpint (w->shape.c, ==, 1);
  /* Filter 0 is a horizontal gradient, -1 0 1 on every row; the others stay
   * inside [-0.5, 0.5], so max |w| = 1. */
  for (gsize i = 0; i < st_tensor_numel (w); i++)
    w->data[i] = 0.5f * (float) sin ((double) i);
  for (int y = 0; y < 3; y++)
    for (int x = 0; x < 3; x++)
      w->data[y * 3 + x] = (float) (x - 1);
  w->data[9] = 0.5f;       /* filter 1, top left */
  w->data[10] = -0.25f;
  g_autofree char *wpath = g_build_filename (tmp_dir, "small.safetensors", NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (st_pipeline_save_weights (p, wpath, NULL, &error));
  g_assert_no_error (error);
  st_pipeline_free (p);

  p = load_text (small_net, "small.ini");
  g_assert_true (st_pipeline_load_weights (p, wpath, &error));
  g_assert_no_error (error);
  g_autofree char *path = g_build_filename (tmp_dir, "filters.png", NULL);
  g_assert_true (st_draw_weights (p, path, &error));
  g_assert_no_error (error);
  assert_no_temporaries ();

  g_autoptr (StWeightsLayout) l = st_weights_layout (p, &error);
  g_assert_no_error (error);
  g_assert_cmpint (l->stage, ==, 0);
  g_assert_cmpint (l->n_filters, ==, 4);
  g_assert_false (l->rgb);
  g_assert_cmpint (l->rows_per_filter, ==, 1);
  g_assert_cmpint (l->scale, ==, 10);
  for (int f = 0; f < 4; f++)
    {
      g_assert_cmpint (l->tiles[f].width, ==, 30);
      g_assert_cmpint (l->tiles[f].height, ==, 30);
      g_assert_true (inside (l->tiles[f], l->width, l->height));
    }
  g_autoptr (StTensor) png = load_png (path);
  g_assert_cmpint (png->shape.w, ==, l->width);
  g_assert_cmpint (png->shape.h, ==, l->height);

  /* Every weight is a 10x10 block of one colour: -1 the blue end, 0 white,
   * +1 the red end, on every row of filter 0. */
  StRect t = l->tiles[0];
  const int expected[3][3] = { { 33, 102, 172 }, { 255, 255, 255 }, { 178, 24, 43 } };
  for (int y = 0; y < 30; y++)
    for (int x = 0; x < 30; x++)
      {
        const int *e = expected[x / 10];
        assert_pixel (png, t.x + x, t.y + y, e[0], e[1], e[2]);
      }
  /* Filter 1 on the same scale: 0.5 halfway to red, -0.25 a quarter to blue. */
  guint8 half[3], quarter[3];
  st_colour_diverging (0.5, half);
  st_colour_diverging (-0.25, quarter);
  g_assert_cmpint (half[0], ==, 217);
  g_assert_cmpint (half[1], ==, 140);
  g_assert_cmpint (half[2], ==, 149);
  assert_pixel (png, l->tiles[1].x + 5, l->tiles[1].y + 5, half[0], half[1], half[2]);
  assert_pixel (png, l->tiles[1].x + 15, l->tiles[1].y + 5, quarter[0], quarter[1], quarter[2]);
  st_pipeline_free (p);
}

static void
test_weights_without_conv (void)
{
  StPipeline *p = load_text (filter_pipeline, "filters.ini");
  g_autofree char *path = g_build_filename (tmp_dir, "none.png", NULL);
  g_autoptr (GError) error = NULL;
  g_assert_false (st_draw_weights (p, path, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "filters.ini"));
  g_assert_nonnull (strstr (error->message, "no stage with 4-D weights"));
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  st_pipeline_free (p);
}

/* ---- strata inspect ----------------------------------------------------- */

static void
test_cli (void)
{
  g_autofree char *img = g_build_filename (tmp_dir, "cli-in.png", NULL);
  g_autofree char *maps = g_build_filename (tmp_dir, "cli-maps.png", NULL);
  g_autoptr (StTensor) image = make_image ();
  g_autoptr (GError) error = NULL;
  g_assert_true (st_image_save (image, img, ST_FORMAT_PNG, 8, 90, &error));
  g_assert_no_error (error);

  g_autofree char *out = NULL, *err = NULL;
  g_assert_cmpint (tu_run_capture (exe, &out, &err, "inspect", "edges", img, "-o", maps, NULL), ==, 0);
  g_assert_nonnull (strstr (out, "magnitude"));   /* the table, as before */
  g_autoptr (StTensor) png = load_png (maps);
  g_assert_cmpint (png->shape.w, >=, 640);
  assert_no_temporaries ();

  /* IMAGE needs -o; -o needs IMAGE; the picture never replaces the input. */
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (tu_run_capture (exe, &out, &err, "inspect", "edges", img, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "-o"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (tu_run_capture (exe, &out, &err, "inspect", "edges", "-o", maps, NULL), ==, 2);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (tu_run_capture (exe, &out, &err, "inspect", "edges", img, "-o", img, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "never overwritten"));
  /* A filter pipeline has no filters to draw. */
  g_autofree char *filters = g_build_filename (tmp_dir, "cli-filters.png", NULL);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (tu_run_capture (exe, &out, &err, "inspect", "edges", "--weights-image", filters, NULL),
                   !=, 0);
  g_assert_nonnull (strstr (err, "no stage with 4-D weights"));
  g_assert_false (g_file_test (filters, G_FILE_TEST_EXISTS));

  /* A classifier with its weights: both pictures; a 40x30 colour image does
   * not fit its 1x8x8 input, and the error says so. */
  g_autofree char *ini = g_build_filename (tmp_dir, "net.ini", NULL);
  g_assert_true (g_file_set_contents (ini, small_net, -1, NULL));
  StPipeline *p = load_text (small_net, "net.ini");
  g_autofree char *wpath = g_build_filename (tmp_dir, "net.safetensors", NULL);
  g_assert_true (st_pipeline_save_weights (p, wpath, NULL, &error));
  g_assert_no_error (error);
  st_pipeline_free (p);
  g_autoptr (StTensor) small = st_tensor_new0 (1, 1, 8, 8);
  for (int i = 0; i < 64; i++)
    small->data[i] = (float) (i / 8) / 7.0f;
  g_autofree char *small_img = g_build_filename (tmp_dir, "small-in.png", NULL);
  g_assert_true (st_image_save (small, small_img, ST_FORMAT_PNG, 8, 90, &error));
  g_assert_no_error (error);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (tu_run_capture (exe, &out, &err, "inspect", ini, small_img, "--weights", wpath,
                               "-o", maps, "--weights-image", filters, NULL), ==, 0);
  g_autoptr (StTensor) fpng = load_png (filters);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (tu_run_capture (exe, &out, &err, "inspect", ini, img, "--weights", wpath,
                               "-o", maps, NULL), !=, 0);
  g_assert_nonnull (strstr (err, "cli-in.png"));
  /* Without weights a classifier cannot be drawn. */
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (tu_run_capture (exe, &out, &err, "inspect", ini, small_img, "-o", maps, NULL), !=, 0);
  g_assert_nonnull (strstr (err, "weights"));
  assert_no_temporaries ();
}

/* ---- Main --------------------------------------------------------------- */

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  exe = g_getenv ("STRATA_EXE");
  tmp_dir = tu_make_tmpdir ("strata-visualize-XXXXXX");
  reg = st_registry_new (NULL);
  g_test_add_func ("/visualize/feature-maps", test_feature_maps);
  g_test_add_func ("/visualize/classifier-layout", test_classifier_layout);
  g_test_add_func ("/visualize/weights", test_weights);
  g_test_add_func ("/visualize/weights-without-conv", test_weights_without_conv);
  if (exe)
    g_test_add_func ("/visualize/cli", test_cli);
  else
    g_printerr ("STRATA_EXE is not set: the CLI test runs only through 'meson test'\n");
  int rc = g_test_run ();
  st_registry_free (reg);
  tu_remove_tree (tmp_dir);
  g_free (tmp_dir);
  return rc;
}
