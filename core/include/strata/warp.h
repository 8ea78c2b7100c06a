/* strata — sampling a plane through a 2x3 affine map (the core of the
 * `affine` stage, and of any stage that moves pixels by a matrix).
 *
 * Coordinates are OpenCV's: pixel (x, y) has its centre at the integer
 * point (x, y), x to the right, y down.  The matrices here are *inverse*
 * maps, as sampling needs them: output pixel (x, y) reads the input at
 *
 *     sx = m[0]·x + m[1]·y + m[2],   sy = m[3]·x + m[4]·y + m[5].
 *
 * A user's forward matrix (input to output, as cv2.warpAffine takes it)
 * becomes one with st_affine_invert().
 *
 * Interpolation reads taps around (sx, sy): nearest the one at
 * floor(s + 0.5), bilinear the 2x2 around it, bicubic the 4x4 with Keys'
 * cubic at a = -0.75 (OpenCV's INTER_CUBIC and PyTorch's bicubic).  A tap
 * outside the input reads through st_border_index(): edge, reflect and
 * wrap fold it back inside; ST_BORDER_ZERO reads the warp's `value` there
 * (0 for a zero border, anything for a constant fill), as OpenCV's
 * BORDER_CONSTANT does tap by tap.
 *
 * Output pixels are independent, so a caller splits the rows of a plane
 * over threads as it likes.  The backward is the transpose of the
 * sampling (the warp is linear in the input): each output gradient is
 * added into the input pixels its taps read, with the same weights.
 *
 * Threads: no global state; call from any thread. */
#pragma once

#include <glib.h>
#include <strata/border.h>

G_BEGIN_DECLS

typedef enum {
  ST_INTERP_NEAREST,
  ST_INTERP_BILINEAR,
  ST_INTERP_BICUBIC,
} StInterpolation;

/* Choices for an ST_PARAM_ENUM parameter whose index is an StInterpolation. */
#define ST_INTERPOLATION_CHOICES \
  ((const char *const[]) { "nearest", "bilinear", "bicubic", NULL })

/* Keys' cubic convolution weight at distance t with parameter a (-0.75
 * for OpenCV's and PyTorch's bicubic, -0.5 for the classic Catmull-Rom). */
static inline double
st_cubic_weight (double t, double a)
{
  t = t < 0 ? -t : t;
  if (t <= 1)
    return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2)
    return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
  return 0;
}

typedef struct {
  double matrix[6];            /* the inverse map: output (x, y) to input (sx, sy), above */
  StInterpolation interpolation;
  StBorder border;
  float value;                 /* read outside the input under ST_BORDER_ZERO */
} StWarp;

/* The inverse of the affine map m (2x3, row-major) into inverse; FALSE
 * (inverse untouched) when m is singular or not finite. */
gboolean st_affine_invert (const double m[6], double inverse[6]);

/* The product a·b of two affine maps (b applied first) into out, which
 * may be a or b. */
void st_affine_multiply (const double a[6], const double b[6], double out[6]);

/* An affine map built from parts, applied in this order about the centre
 * (cx, cy): scale (scale_x, scale_y; negative mirrors), shear (degrees: x
 * moves by tan(shear_x)·(y − cy), y by tan(shear_y)·(x − cx), as
 * torchvision), rotation (degrees, counter-clockwise on screen, as
 * cv2.getRotationMatrix2D), then translation; whole quarter turns are
 * exact.  The identity is { .scale_x = 1, .scale_y = 1 } with a centre. */
typedef struct {
  double cx, cy;
  double scale_x, scale_y;
  double shear_x, shear_y;
  double rotate;
  double translate_x, translate_y;
} StAffineParts;

/* The forward map (input to output, as cv2.warpAffine takes it) of parts. */
void st_affine_compose (const StAffineParts *parts, double m[6]);

/* Writes rows [row_begin, row_end) of one output plane of dst_w x dst_h
 * (dst points at the plane's first row) by sampling the src_w x src_h
 * plane src through warp. */
void st_warp_rows (const StWarp *warp, const float *src, int src_w, int src_h,
                   float *dst, int dst_w, int dst_h, int row_begin, int row_end);

/* The backward of st_warp_rows over a whole plane: adds into grad_src
 * (src_w x src_h) the transpose of the sampling applied to grad_dst
 * (dst_w x dst_h).  Several output pixels add into one input pixel, so
 * split work between threads by plane, not by row. */
void st_warp_backward (const StWarp *warp, const float *grad_dst, int dst_w, int dst_h,
                       float *grad_src, int src_w, int src_h);

G_END_DECLS
