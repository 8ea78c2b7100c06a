/* strata — max pooling over windows that tile a plane: the maxpool stage's
 * usual case (size = stride, no padding) and conv2d's fused pool=.
 *
 * A plane of h×w pools to (h/k)×(w/k) outputs over k×k windows side by
 * side; the last h % k rows and w % k columns lie in no window (PyTorch's
 * MaxPool2d with ceil_mode=False).  Each output is the first maximum of
 * its window in scan order, NaN counting as a maximum as in PyTorch, and
 * its argmax is that pixel's index y·w + x in the plane.
 *
 * Planes are given as a count and the distance, in floats, between one
 * plane's start and the next: in planes in_stride apart, out and argmax
 * planes out_stride apart, so a caller can pool the channels of one image
 * or the images of one channel without copying.
 *
 * Threads: no global state; call from any thread on disjoint planes. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* out, argmax: the max and its index, (h/k)×(w/k) per plane. */
void st_maxpool_tiles_forward (float *out, gint32 *argmax, gsize out_stride,
                               const float *in, gsize in_stride, gsize planes,
                               int h, int w, int k);

/* din: each pixel's gradient, dout of its window where the argmax points
 * to it and 0 everywhere else (pixels in no window too): every element of
 * the h×w planes is written, so din need not be cleared. */
void st_maxpool_tiles_backward (float *din, gsize din_stride, const float *dout,
                                const gint32 *argmax, gsize out_stride, gsize planes,
                                int h, int w, int k);

G_END_DECLS
