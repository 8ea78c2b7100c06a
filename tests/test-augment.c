/* The augmentation kinds (randomflip, randomcrop, randomerase, jitter,
 * randomaffine):
 * the identity (or the documented centre crop) outside training; in
 * training each batch item's draws come from its own seed alone, whatever
 * the batch or the thread count; the statistics of the draws; and
 * `strata inspect --augment`. */
#include "context.h"
#include "image.h"
#include "prepare.h"
#include "registry.h"
#include "stage.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

static const char *exe;
static StRegistry *reg;

/* Each kind with parameters that make every draw visible. */
static const struct {
  const char *kind, *params;
} active[] = {
  { "randomflip", "p=0.5 direction=both" },
  { "randomcrop", "padding=3 border=reflect" },
  { "randomerase", "p=0.7 area=0.1,0.4" },
  { "jitter", "brightness=0.5 contrast=0.5" },
  { "randomaffine", "rotate=30 scale=0.8,1.2 translate=0.2 shear=10,5 border=reflect" },
};

/* A training context whose batch items draw from seeds[i]. */
static StRunContext *
training_context (int threads, const guint64 *seeds)
{
  StRunContext *ctx = st_run_context_new (threads, 99);
  ctx->training = TRUE;
  ctx->item_seeds = seeds;
  return ctx;
}

static gboolean
same_values (const StTensor *a, const StTensor *b)
{
  return st_shape_equal (a->shape, b->shape)
         && memcmp (a->data, b->data, st_tensor_numel (a) * sizeof (float)) == 0;
}

/* ---- Outside training ----------------------------------------------------- */

static void
test_identity_outside_training (void)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (1);
  g_autoptr (StTensor) in = tu_tensor_random (rand, 3, 3, 9, 7);
  g_autoptr (StRunContext) ctx = st_run_context_new (2, 5);
  for (guint k = 0; k < G_N_ELEMENTS (active); k++)
    {
      g_autoptr (StTensor) out = tu_run1 (reg, active[k].kind, active[k].params, in, ctx);
      g_assert_true (same_values (in, out));
    }
  /* A window smaller than the image is the centred one: rows 2..6 and
   * columns 1..5 of 9x7 for 5x4 (the odd pixel after, as the offsets
   * are floored halves). */
  g_autoptr (StTensor) out = tu_run1 (reg, "randomcrop", "padding=0 size=5,4", in, ctx);
  g_assert_cmpint (out->shape.h, ==, 5);
  g_assert_cmpint (out->shape.w, ==, 4);
  for (int b = 0; b < 3; b++)
    for (int c = 0; c < 3; c++)
      for (int y = 0; y < 5; y++)
        for (int x = 0; x < 4; x++)
          g_assert_cmpfloat (out->data[((b * 3 + c) * 5 + y) * 4 + x], ==,
                             in->data[((b * 3 + c) * 9 + y + 2) * 7 + x + 1]);
}

/* strata run is not training: a chain of every augmentation writes the
 * image back unchanged, and a crop with a size its centre. */
static void
test_run_is_inference (void)
{
  g_autofree char *dir = tu_make_tmpdir ("strata-augment-XXXXXX");
  g_autofree char *image = g_build_filename (dir, "in.png", NULL);
  g_autofree char *same = g_build_filename (dir, "same.png", NULL);
  g_autofree char *centre = g_build_filename (dir, "centre.png", NULL);
  g_autoptr (GRand) rand = g_rand_new_with_seed (3);
  g_autoptr (StTensor) pixels = tu_tensor_random (rand, 1, 3, 12, 10);
  g_autoptr (GError) error = NULL;
  g_assert_true (st_image_save (pixels, image, ST_FORMAT_PNG, 8, 90, &error));
  g_autoptr (StTensor) in = st_image_load (image, 0, NULL, &error);
  g_assert_no_error (error);
  TuResult r = tu_run (exe, "run", "randomflip p=1 ! randomcrop padding=3 ! randomerase p=1 "
                       "! jitter brightness=0.9 contrast=0.9 ! randomaffine rotate=45 translate=0.3", image, "-o", same, NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_autoptr (StTensor) out = st_image_load (same, 0, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (same_values (in, out));
  r = tu_run (exe, "run", "randomcrop padding=0 size=6,4", image, "-o", centre, NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_autoptr (StTensor) cut = st_image_load (centre, 0, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (cut->shape.h, ==, 6);
  g_assert_cmpint (cut->shape.w, ==, 4);
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < 6; y++)
      for (int x = 0; x < 4; x++)
        g_assert_cmpfloat (cut->data[(c * 6 + y) * 4 + x], ==,
                           in->data[(c * 12 + y + 3) * 10 + x + 3]);
  tu_remove_tree (dir);
}

/* ---- Determinism ---------------------------------------------------------- */

/* The same seeds give the same output on 1 and 2 threads; an item's
 * output depends on its own seed only; other seeds give another output. */
static void
test_deterministic (void)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (2);
  g_autoptr (StTensor) in = tu_tensor_random (rand, 8, 3, 12, 10);
  const guint64 seeds[8] = { 11, 12, 13, 14, 15, 16, 17, 18 };
  const guint64 others[8] = { 21, 22, 23, 24, 25, 26, 27, 28 };
  for (guint k = 0; k < G_N_ELEMENTS (active); k++)
    {
      g_autoptr (StRunContext) one = training_context (1, seeds);
      g_autoptr (StRunContext) two = training_context (2, seeds);
      g_autoptr (StRunContext) other = training_context (2, others);
      g_autoptr (StTensor) a = tu_run1 (reg, active[k].kind, active[k].params, in, one);
      g_autoptr (StTensor) b = tu_run1 (reg, active[k].kind, active[k].params, in, two);
      g_autoptr (StTensor) c = tu_run1 (reg, active[k].kind, active[k].params, in, other);
      g_assert_true (same_values (a, b));
      g_assert_false (same_values (a, c));
      g_assert_false (same_values (a, in));

      /* Item 5 alone, with its seed, is item 5 of the batch. */
      gsize per = (gsize) 3 * 12 * 10;
      g_autoptr (StTensor) item = st_tensor_new0 (1, 3, 12, 10);
      memcpy (item->data, in->data + 5 * per, per * sizeof (float));
      g_autoptr (StRunContext) alone = training_context (1, seeds + 5);
      g_autoptr (StTensor) d = tu_run1 (reg, active[k].kind, active[k].params, item, alone);
      g_assert_cmpmem (d->data, per * sizeof (float), a->data + 5 * per, per * sizeof (float));
    }
}

/* An epoch's seeds differ from the next epoch's and between samples. */
static void
test_item_seeds (void)
{
  g_autoptr (GHashTable) seen = g_hash_table_new (g_int64_hash, g_int64_equal);
  static gint64 seeds[3][100];
  for (int epoch = 0; epoch < 3; epoch++)
    for (int i = 0; i < 100; i++)
      {
        seeds[epoch][i] = (gint64) st_item_seed (7, epoch, i);
        g_assert_false (g_hash_table_contains (seen, &seeds[epoch][i]));
        g_hash_table_add (seen, &seeds[epoch][i]);
      }
  g_assert_cmpuint (st_item_seed (7, 1, 2), ==, st_item_seed (7, 1, 2));
  g_assert_cmpuint (st_item_seed (7, 1, 2), !=, st_item_seed (8, 1, 2));
}

/* ---- Statistics of the draws ---------------------------------------------- */

#define N_DRAWS 4000

/* n items drawing from seeds 1000.. */
static StRunContext *
many_items (int n)
{
  guint64 *seeds = g_new (guint64, n);
  for (int i = 0; i < n; i++)
    seeds[i] = st_item_seed (3, 0, i);
  StRunContext *ctx = training_context (2, seeds);
  return ctx;
}

static void
free_many_items (StRunContext *ctx)
{
  g_free ((gpointer) ctx->item_seeds);
  st_run_context_free (ctx);
}

/* Within 5 standard deviations of a binomial rate p over n draws. */
static void
assert_rate (int hits, int n, double p)
{
  double sd = sqrt (p * (1 - p) / n);
  g_test_message ("rate %.4f, expected %.4f", (double) hits / n, p);
  g_assert_cmpfloat (fabs ((double) hits / n - p), <=, 5 * sd + 1e-12);
}

static void
test_flip_rate (void)
{
  StRunContext *ctx = many_items (N_DRAWS);
  /* Each item: [0 1 / 2 3]; a horizontal flip puts 1 first, a vertical 2. */
  g_autoptr (StTensor) in = st_tensor_new0 (N_DRAWS, 1, 2, 2);
  for (int i = 0; i < N_DRAWS; i++)
    for (int k = 0; k < 4; k++)
      in->data[i * 4 + k] = (float) k;
  struct { const char *params; double px, py; } cases[] = {
    { "p=0.3", 0.3, 0 },
    { "p=0.3 direction=vertical", 0, 0.3 },
    { "p=0.5 direction=both", 0.5, 0.5 },
    { "p=0", 0, 0 },
    { "p=1 direction=both", 1, 1 },
  };
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++)
    {
      g_autoptr (StTensor) out = tu_run1 (reg, "randomflip", cases[c].params, in, ctx);
      int fx = 0, fy = 0, both = 0;
      for (int i = 0; i < N_DRAWS; i++)
        {
          int first = (int) out->data[i * 4];
          gboolean x = first & 1, y = (first & 2) != 0;
          fx += x;
          fy += y;
          both += x && y;
          /* Still a mirrored copy: the other corners follow the first. */
          g_assert_cmpfloat (out->data[i * 4 + 3], ==, 3 - first);
        }
      assert_rate (fx, N_DRAWS, cases[c].px);
      assert_rate (fy, N_DRAWS, cases[c].py);
      assert_rate (both, N_DRAWS, cases[c].px * cases[c].py);
    }
  free_many_items (ctx);
}

static void
test_crop_offsets (void)
{
  StRunContext *ctx = many_items (N_DRAWS);
  /* 16x16, each pixel its own index: an output pixel says where it came from. */
  g_autoptr (StTensor) in = st_tensor_new0 (N_DRAWS, 1, 16, 16);
  for (int i = 0; i < N_DRAWS; i++)
    for (int k = 0; k < 256; k++)
      in->data[i * 256 + k] = (float) k;
  /* Padding 4: output (8, 8) reads input (4 + dy, 4 + dx), dy and dx in
   * [0, 8], each equally likely. */
  g_autoptr (StTensor) out = tu_run1 (reg, "randomcrop", "padding=4", in, ctx);
  int counts[2][9] = { { 0 } };
  double sum = 0;
  for (int i = 0; i < N_DRAWS; i++)
    {
      int v = (int) out->data[i * 256 + 8 * 16 + 8];
      int dy = v / 16 - 4, dx = v % 16 - 4;
      g_assert_cmpint (dy, >=, 0);
      g_assert_cmpint (dy, <=, 8);
      g_assert_cmpint (dx, >=, 0);
      g_assert_cmpint (dx, <=, 8);
      counts[0][dy]++;
      counts[1][dx]++;
      sum += dy + dx;
    }
  for (int a = 0; a < 2; a++)
    for (int d = 0; d <= 8; d++)
      assert_rate (counts[a][d], N_DRAWS, 1.0 / 9);
  /* Each offset's mean is 4, its variance 20 / 3. */
  g_assert_cmpfloat (fabs (sum / N_DRAWS - 8), <, 5 * sqrt (2 * 20.0 / 3 / N_DRAWS));

  /* A 10x6 window of the unpadded image: its corner in [0, 6] x [0, 10]. */
  g_autoptr (StTensor) cut = tu_run1 (reg, "randomcrop", "padding=0 size=10,6", in, ctx);
  int lo_y = 99, hi_y = -1, lo_x = 99, hi_x = -1;
  for (int i = 0; i < N_DRAWS; i++)
    {
      int v = (int) cut->data[i * 60];
      lo_y = MIN (lo_y, v / 16), hi_y = MAX (hi_y, v / 16);
      lo_x = MIN (lo_x, v % 16), hi_x = MAX (hi_x, v % 16);
      /* A window of the image, not a resampling. */
      g_assert_cmpfloat (cut->data[i * 60 + 59], ==, v + 9 * 16 + 5);
    }
  g_assert_cmpint (lo_y, ==, 0);
  g_assert_cmpint (hi_y, ==, 6);
  g_assert_cmpint (lo_x, ==, 0);
  g_assert_cmpint (hi_x, ==, 10);
  free_many_items (ctx);
}

/* randomaffine on planes that hold their own coordinates about the centre
 * (x − 16 and y − 16 on 33x33): bilinear sampling reproduces such linear
 * planes exactly, so the output at (21, 16), five pixels right of the
 * centre, is where that pixel was read from, and tells each item's draw. */
static void
test_affine_draws (void)
{
  StRunContext *ctx = many_items (N_DRAWS);
  const int side = 33, centre = 16, plane = side * side;
  g_autoptr (StTensor) in = st_tensor_new0 (N_DRAWS, 2, side, side);
  for (int i = 0; i < N_DRAWS; i++)
    for (int y = 0; y < side; y++)
      for (int x = 0; x < side; x++)
        {
          in->data[(gsize) i * 2 * plane + y * side + x] = (float) (x - centre);
          in->data[(gsize) i * 2 * plane + plane + y * side + x] = (float) (y - centre);
        }
  const gsize probe = (gsize) centre * side + centre + 5;
  struct { const char *params; double lo, hi, sd; } cases[] = {
    /* A turn by a reads (5 cos a, 5 sin a) (y down, counter-clockwise). */
    { "rotate=30", -30, 30, 60 / sqrt (12) },
    /* A scale by s reads (5 / s, 0). */
    { "scale=0.5,2", 0.5, 2, 1.5 / sqrt (12) },
    /* A shift by t = f·33 reads (5 − tx, −ty). */
    { "translate=0.25,0.125", -0.25 * side, 0.25 * side, 0.5 * side / sqrt (12) },
  };
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++)
    {
      g_autoptr (StTensor) out = tu_run1 (reg, "randomaffine", cases[c].params, in, ctx);
      double lo = G_MAXDOUBLE, hi = -G_MAXDOUBLE, sum = 0;
      for (int i = 0; i < N_DRAWS; i++)
        {
          const float *item = out->data + (gsize) i * 2 * plane;
          double sx = item[probe], sy = item[plane + probe], v;
          if (c == 0)
            {
              v = atan2 (sy, sx) * 180 / G_PI;
              g_assert_cmpfloat (fabs (hypot (sx, sy) - 5), <, 1e-3);
            }
          else if (c == 1)
            {
              v = 5 / sx;
              g_assert_cmpfloat (fabs (sy), <, 1e-4);
            }
          else
            {
              v = 5 - sx;
              double ty = -sy;
              g_assert_cmpfloat (fabs (ty), <=, 0.125 * side + 1e-3);
            }
          g_assert_cmpfloat (v, >=, cases[c].lo - 1e-3);
          g_assert_cmpfloat (v, <=, cases[c].hi + 1e-3);
          lo = MIN (lo, v), hi = MAX (hi, v), sum += v;
        }
      /* Uniform draws: the mean in the middle, the ends nearly reached. */
      double span = cases[c].hi - cases[c].lo;
      g_test_message ("%s: %.3f to %.3f, mean %.3f", cases[c].params, lo, hi, sum / N_DRAWS);
      g_assert_cmpfloat (fabs (sum / N_DRAWS - (cases[c].lo + cases[c].hi) / 2), <,
                         5 * cases[c].sd / sqrt (N_DRAWS));
      g_assert_cmpfloat (lo, <, cases[c].lo + 0.01 * span);
      g_assert_cmpfloat (hi, >, cases[c].hi - 0.01 * span);
    }
  free_many_items (ctx);
}

static void
test_erase_area (void)
{
  const int n = 2000, side = 64;
  StRunContext *ctx = many_items (n);
  g_autoptr (StTensor) in = st_tensor_new0 (n, 2, side, side);
  for (gsize i = 0; i < st_tensor_numel (in); i++)
    in->data[i] = 1.0f;
  g_autoptr (StTensor) out = tu_run1 (reg, "randomerase",
                                      "p=0.4 area=0.1,0.2 ratio=0.5,2 value=0.25", in, ctx);
  int erased = 0;
  double area_sum = 0;
  for (int i = 0; i < n; i++)
    {
      const float *plane = out->data + (gsize) i * 2 * side * side;
      int count = 0, top = side, bottom = -1, left = side, right = -1;
      for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++)
          if (plane[y * side + x] != 1.0f)
            {
              g_assert_cmpfloat (plane[y * side + x], ==, 0.25f);
              count++;
              top = MIN (top, y), bottom = MAX (bottom, y);
              left = MIN (left, x), right = MAX (right, x);
            }
      /* Every channel alike. */
      g_assert_cmpmem (plane, side * side * sizeof (float), plane + side * side,
                       side * side * sizeof (float));
      if (!count)
        continue;
      erased++;
      int h = bottom - top + 1, w = right - left + 1;
      /* A rectangle whose area and aspect are in range, give or take the
       * rounding of its sides to whole pixels. */
      g_assert_cmpint (h * w, ==, count);
      double fraction = (double) count / (side * side);
      g_assert_cmpfloat (fraction, >=, 0.1 * 0.9);
      g_assert_cmpfloat (fraction, <=, 0.2 * 1.1);
      g_assert_cmpfloat ((double) h / w, >=, 0.5 * 0.85);
      g_assert_cmpfloat ((double) h / w, <=, 2 / 0.85);
      area_sum += fraction;
    }
  assert_rate (erased, n, 0.4);
  /* The area's fraction is uniform in [0.1, 0.2]: mean 0.15. */
  g_assert_cmpfloat (fabs (area_sum / erased - 0.15), <, 0.01);
  free_many_items (ctx);
}

static void
test_jitter_range (void)
{
  const int n = 2000;
  StRunContext *ctx = many_items (n);
  /* A flat image keeps its contrast: only brightness shows. */
  g_autoptr (StTensor) flat = st_tensor_new0 (n, 3, 2, 2);
  for (gsize i = 0; i < st_tensor_numel (flat); i++)
    flat->data[i] = 0.5f;
  g_autoptr (StTensor) lit = tu_run1 (reg, "jitter", "brightness=0.4 contrast=0.5", flat, ctx);
  double lo = 9, hi = -9, sum = 0;
  for (int i = 0; i < n; i++)
    {
      double f = lit->data[i * 12] / 0.5;
      for (int k = 1; k < 12; k++)
        g_assert_cmpfloat_with_epsilon (lit->data[i * 12 + k], lit->data[i * 12], 1e-6);
      lo = MIN (lo, f), hi = MAX (hi, f), sum += f;
    }
  g_assert_cmpfloat (lo, >=, 0.6 - 1e-6);
  g_assert_cmpfloat (lo, <, 0.62);
  g_assert_cmpfloat (hi, <=, 1.4 + 1e-6);
  g_assert_cmpfloat (hi, >, 1.38);
  g_assert_cmpfloat (fabs (sum / n - 1), <, 0.02);

  /* Half 0.25, half 0.75: contrast scales the distance from 0.5. */
  g_autoptr (StTensor) halves = st_tensor_new0 (n, 1, 1, 2);
  for (int i = 0; i < n; i++)
    halves->data[i * 2] = 0.25f, halves->data[i * 2 + 1] = 0.75f;
  g_autoptr (StTensor) out = tu_run1 (reg, "jitter", "brightness=0 contrast=0.5", halves, ctx);
  lo = 9, hi = -9;
  for (int i = 0; i < n; i++)
    {
      double f = (out->data[i * 2 + 1] - 0.5) / 0.25;
      g_assert_cmpfloat_with_epsilon (out->data[i * 2] - 0.5, -(out->data[i * 2 + 1] - 0.5), 1e-6);
      lo = MIN (lo, f), hi = MAX (hi, f);
    }
  g_assert_cmpfloat (lo, >=, 0.5 - 1e-5);
  g_assert_cmpfloat (lo, <, 0.52);
  g_assert_cmpfloat (hi, <=, 1.5 + 1e-5);
  g_assert_cmpfloat (hi, >, 1.48);
  free_many_items (ctx);
}

/* Bad parameters are refused with the key named. */
static void
test_bad_parameters (void)
{
  struct { const char *kind, *params, *message; } cases[] = {
    { "randomerase", "area=0.3,0.1", "key 'area': expected min,max with min <= max" },
    { "randomerase", "ratio=2", "key 'ratio': expected min,max" },
    { "randomcrop", "padding=1 size=20", "key 'size': a window of 20x20" },
    { "randomcrop", "size=1,2,3", "key 'size': expected height,width" },
    { "randomaffine", "scale=2,1", "key 'scale': expected min,max with min <= max" },
    { "randomaffine", "translate=0.1,0.1,0.1", "key 'translate': expected at most 2 values" },
  };
  g_autoptr (StTensor) in = st_tensor_new0 (1, 1, 8, 8);
  g_autoptr (StRunContext) ctx = st_run_context_new (1, 0);
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++)
    {
      g_autoptr (GError) error = NULL;
      StStage *stage = tu_stage_new (reg, cases[c].kind, "aug", cases[c].params, &error);
      g_assert_no_error (error);
      g_autoptr (StTensor) out = tu_stage_run (stage, (const StTensor *const *) &in, 1, ctx,
                                               &error);
      g_assert_null (out);
      g_assert_nonnull (error);
      g_test_message ("%s", error->message);
      g_assert_nonnull (strstr (error->message, cases[c].message));
      st_stage_free (stage);
    }
}

/* strata plugins says which kinds are random. */
static void
test_plugins_listing (void)
{
  for (guint k = 0; k < G_N_ELEMENTS (active); k++)
    {
      TuResult r = tu_run (exe, "plugins", active[k].kind, NULL);
      g_assert_cmpint (r.status, ==, 0);
      g_assert_nonnull (strstr (r.out, "augmentation: "));
      g_assert_nonnull (strstr (r.out, "Random       yes"));
      tu_result_clear (&r);
    }
  TuResult r = tu_run (exe, "plugins", "flip", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_null (strstr (r.out, "Random"));
  tu_result_clear (&r);
}

/* ---- strata inspect --augment --------------------------------------------- */

static void
test_inspect_grid (void)
{
  g_autofree char *dir = tu_make_tmpdir ("strata-augment-XXXXXX");
  g_autofree char *image = g_build_filename (dir, "in.png", NULL);
  g_autoptr (GRand) rand = g_rand_new_with_seed (4);
  g_autoptr (StTensor) pixels = tu_tensor_random (rand, 1, 1, 20, 20);
  g_autoptr (GError) error = NULL;
  g_assert_true (st_image_save (pixels, image, ST_FORMAT_PNG, 8, 90, &error));
  g_autofree char *ini = g_build_filename (dir, "aug.ini", NULL);
  g_assert_true (g_file_set_contents (ini,
                                      "[pipeline]\ninput=1x20x20\n"
                                      "[flip]\ntype=randomflip\n"
                                      "[crop]\ntype=randomcrop\nsize=16\n"
                                      "[fc]\ntype=dense\nunits=2\n", -1, NULL));
  g_autofree char *plain = g_build_filename (dir, "plain.ini", NULL);
  g_assert_true (g_file_set_contents (plain, "[pipeline]\ninput=1x20x20\n"
                                      "[fc]\ntype=dense\nunits=2\n", -1, NULL));
  g_autofree char *a = g_build_filename (dir, "a.png", NULL);
  g_autofree char *b = g_build_filename (dir, "b.png", NULL);
  g_autofree char *c = g_build_filename (dir, "c.png", NULL);
  TuResult r = tu_run (exe, "inspect", ini, image, "--augment", a, "--seed", "5", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "augmented samples: "));
  tu_result_clear (&r);
  r = tu_run (exe, "inspect", ini, image, "--augment", b, "--seed", "5", NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  r = tu_run (exe, "inspect", ini, image, "--augment", c, "--seed", "6", NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_autoptr (StTensor) pa = st_image_load (a, 0, NULL, &error);
  g_assert_no_error (error);
  g_autoptr (StTensor) pb = st_image_load (b, 0, NULL, &error);
  g_autoptr (StTensor) pc = st_image_load (c, 0, NULL, &error);
  g_assert_true (same_values (pa, pb));
  g_assert_false (same_values (pa, pc));
  /* Four rows of four 16x16 samples (tiles of 160 px) under the title. */
  g_assert_cmpint (pa->shape.w, >=, 4 * 160);
  g_assert_cmpint (pa->shape.h, >, 4 * 160);
  /* The samples differ: the first row's tiles are not all one picture. */
  gsize plane = (gsize) pa->shape.h * pa->shape.w;
  int y = pa->shape.h - 20 - 3 * (160 + 6) - 80, differ = 0;
  for (int x = 0; x < 160; x++)
    differ += pa->data[plane + (gsize) y * pa->shape.w + 21 + x]
              != pa->data[plane + (gsize) y * pa->shape.w + 21 + 166 + x];
  g_assert_cmpint (differ, >, 0);

  /* A chain with nothing to learn is drawn whole: the last stage too. */
  g_autofree char *photo = g_build_filename (dir, "photo.png", NULL);
  g_autoptr (StTensor) colour = tu_tensor_random (rand, 1, 3, 20, 20);
  g_assert_true (st_image_save (colour, photo, ST_FORMAT_PNG, 8, 90, &error));
  r = tu_run (exe, "inspect", "jitter ! randomcrop padding=0 size=7", photo, "--augment", c,
              NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_autoptr (StTensor) pd = st_image_load (c, 0, NULL, &error);
  g_assert_no_error (error);
  /* 7x7 samples (not 20x20): tiles of 7 x 22 = 154 px. */
  g_assert_cmpint (pd->shape.h, ==, 20 + 52 + 4 * 154 + 3 * 6 + 2 + 20);

  /* Nothing random to draw; no IMAGE; not a PNG. */
  r = tu_run (exe, "inspect", plain, image, "--augment", a, NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "no random stage"));
  tu_result_clear (&r);
  r = tu_run (exe, "inspect", ini, "--augment", a, NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "--augment: samples need an IMAGE"));
  tu_result_clear (&r);
  g_autofree char *jpg = g_build_filename (dir, "grid.jpg", NULL);
  r = tu_run (exe, "inspect", ini, image, "--augment", jpg, NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "--augment: expected a .png file"));
  tu_result_clear (&r);
  tu_remove_tree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  exe = g_getenv ("STRATA_EXE");
  g_assert_nonnull (exe);
  reg = st_registry_new (NULL);

  g_test_add_func ("/augment/identity-outside-training", test_identity_outside_training);
  g_test_add_func ("/augment/run-is-inference", test_run_is_inference);
  g_test_add_func ("/augment/deterministic", test_deterministic);
  g_test_add_func ("/augment/item-seeds", test_item_seeds);
  g_test_add_func ("/augment/flip-rate", test_flip_rate);
  g_test_add_func ("/augment/crop-offsets", test_crop_offsets);
  g_test_add_func ("/augment/erase-area", test_erase_area);
  g_test_add_func ("/augment/affine-draws", test_affine_draws);
  g_test_add_func ("/augment/jitter-range", test_jitter_range);
  g_test_add_func ("/augment/bad-parameters", test_bad_parameters);
  g_test_add_func ("/augment/plugins-listing", test_plugins_listing);
  g_test_add_func ("/augment/inspect-grid", test_inspect_grid);
  int status = g_test_run ();

  st_registry_free (reg);
  return status;
}
