/* strata — activation functions shared by the activation stage and the
 * fused activation= of conv2d and dense, so that both compute the same
 * thing.  Header-only: a plugin includes it without linking anything new
 * (it finds the libm functions in the strata process; a program of your
 * own that calls them links -lm).  The
 * functions are pure: call them from any thread, inside st_parallel_for()
 * too. */
#pragma once

#include <glib.h>
#include <math.h>

G_BEGIN_DECLS

typedef enum {
  ST_ACT_NONE,
  ST_ACT_RELU,
  ST_ACT_LEAKY_RELU,           /* x < 0: slope * x */
  ST_ACT_SIGMOID,
  ST_ACT_TANH,
  ST_ACT_ELU,                  /* x < 0: slope * (exp(x) - 1), slope being alpha */
  ST_ACT_GELU,                 /* exact: x * Phi(x), as PyTorch's default */
} StActivation;

/* Choices for an ST_PARAM_ENUM parameter whose index is an StActivation. */
#define ST_ACTIVATION_CHOICES \
  ((const char *const[]) { "none", "relu", "leaky_relu", "sigmoid", "tanh", "elu", "gelu", NULL })

/* y = act(x), n values; x and y may be the same array.  slope is the
 * negative slope of leaky_relu and the alpha of elu; the others ignore it. */
static inline void
st_activation_forward (StActivation act, float slope, const float *x, float *y, gsize n)
{
  switch (act)
    {
    case ST_ACT_NONE:
      if (x != y)
        for (gsize i = 0; i < n; i++)
          y[i] = x[i];
      break;
    /* Selects, never branches: after a batchnorm the sign is a coin toss,
     * which a branch mispredicts half the time; selects also vectorise
     * (plugins/meson.build says how).  max(x, 0) exactly: NaN and -0 give +0. */
    case ST_ACT_RELU:
      for (gsize i = 0; i < n; i++)
        {
          float v = x[i];
          y[i] = v > 0.0f ? v : 0.0f;
        }
      break;
    case ST_ACT_LEAKY_RELU:
      for (gsize i = 0; i < n; i++)
        {
          float v = x[i];
          y[i] = v * (v > 0.0f ? 1.0f : slope);
        }
      break;
    case ST_ACT_SIGMOID:
      for (gsize i = 0; i < n; i++)
        y[i] = 1.0f / (1.0f + expf (-x[i]));
      break;
    case ST_ACT_TANH:
      for (gsize i = 0; i < n; i++)
        y[i] = tanhf (x[i]);
      break;
    case ST_ACT_ELU:
      for (gsize i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : slope * expm1f (x[i]);
      break;
    case ST_ACT_GELU:
      for (gsize i = 0; i < n; i++)
        /* 1/√2 spelt out: M_SQRT1_2 is POSIX, and -std=c11 hides it. */
        y[i] = 0.5f * x[i] * (1.0f + erff (x[i] * (float) 0.70710678118654752440));
      break;
    }
}

/* Whether the backward pass needs the activation's input x, not only its
 * output y (so a fused stage must keep x). */
static inline gboolean
st_activation_needs_input (StActivation act)
{
  return act == ST_ACT_GELU;
}

/* dinp = dout ⊙ act'(x), n values, from the output y (and x where needed;
 * x may be NULL otherwise).  dinp may be dout, and no other array.  slope
 * as for st_activation_forward().  One pass, without a copy of dout first. */
static inline void
st_activation_backward_into (StActivation act, float slope, const float *x, const float *y,
                             const float *dout, float *dinp, gsize n)
{
  switch (act)
    {
    case ST_ACT_NONE:
      if (dinp != dout)
        for (gsize i = 0; i < n; i++)
          dinp[i] = dout[i];
      break;
    /* Selects, as in st_activation_forward(); both operands are read
     * first so that the select needs no branch. */
    case ST_ACT_RELU:
      for (gsize i = 0; i < n; i++)
        {
          float g = dout[i], v = y[i];
          dinp[i] = v > 0.0f ? g : 0.0f;
        }
      break;
    case ST_ACT_LEAKY_RELU:
      /* With slope > 0 the output's sign is the input's. */
      for (gsize i = 0; i < n; i++)
        dinp[i] = dout[i] * (y[i] > 0.0f ? 1.0f : slope);
      break;
    case ST_ACT_SIGMOID:
      for (gsize i = 0; i < n; i++)
        dinp[i] = dout[i] * (y[i] * (1.0f - y[i]));
      break;
    case ST_ACT_TANH:
      for (gsize i = 0; i < n; i++)
        dinp[i] = dout[i] * (1.0f - y[i] * y[i]);
      break;
    case ST_ACT_ELU:
      for (gsize i = 0; i < n; i++)
        dinp[i] = dout[i] * (y[i] > 0.0f ? 1.0f : y[i] + slope);
      break;
    case ST_ACT_GELU:
      for (gsize i = 0; i < n; i++)
        {
          float cdf = 0.5f * (1.0f + erff (x[i] * (float) 0.70710678118654752440));
          float pdf = expf (-0.5f * x[i] * x[i]) * 0.3989422804014327f;
          dinp[i] = dout[i] * (cdf + x[i] * pdf);
        }
      break;
    }
}

/* grad *= act'(x), n values, from the output y (and x where needed; x
 * may be NULL otherwise).  slope as for st_activation_forward(). */
static inline void
st_activation_backward (StActivation act, float slope, const float *x, const float *y,
                        float *grad, gsize n)
{
  st_activation_backward_into (act, slope, x, y, grad, grad, n);
}

/* Softmax over n values spaced stride floats apart (the channels of one
 * pixel of an NCHW tensor: stride = H·W; a score vector: 1), from x into y,
 * which may be x.  The largest value is subtracted first, so large scores
 * do not overflow.  Returns log Σ exp(x), from which a cross-entropy
 * −log y[k] = lse − x[k] is taken without the log of a tiny probability.
 * The softmax stage, training's fused loss and the scores a classifier
 * reports all compute it here. */
static inline double
st_softmax_channels (const float *x, float *y, int n, gsize stride)
{
  float max = x[0];
  for (int c = 1; c < n; c++)
    max = MAX (max, x[c * stride]);
  double sum = 0.0;
  for (int c = 0; c < n; c++)
    {
      y[c * stride] = expf (x[c * stride] - max);
      sum += y[c * stride];
    }
  float inv = (float) (1.0 / sum);
  for (int c = 0; c < n; c++)
    y[c * stride] *= inv;
  return (double) max + log (sum);
}

/* The slope= and alpha= keys of the activation stage and of a stage with
 * a fused activation=, for its StParamSpec table (<strata/plugin.h>):
 * Config is the kind's config struct, with double fields slope and alpha.
 * Non-negative: the backward reads the input's sign from the output's. */
#define ST_ACTIVATION_SHAPE_PARAM_SPECS(Config)                                  \
  { .name = "slope", .type = ST_PARAM_DOUBLE, .default_value = "0.01",         \
    .flags = ST_PARAM_HAS_MIN, .min = 0,                                       \
    .help = "leaky_relu: slope for negative inputs (PyTorch's negative_slope)", \
    .offset = offsetof (Config, slope) },                                      \
  { .name = "alpha", .type = ST_PARAM_DOUBLE, .default_value = "1",            \
    .flags = ST_PARAM_HAS_MIN, .min = 0,                                       \
    .help = "elu: alpha * (exp(x) - 1) for negative inputs",                   \
    .offset = offsetof (Config, alpha) }

/* activation=, slope= and alpha= of a stage with a fused activation: Config
 * has int activation (an StActivation) and doubles slope and alpha. */
#define ST_ACTIVATION_PARAM_SPECS(Config)                                        \
  { .name = "activation", .type = ST_PARAM_ENUM, .default_value = "none",      \
    .choices = ST_ACTIVATION_CHOICES,                                          \
    .help = "activation applied to the output",                                \
    .offset = offsetof (Config, activation) },                                 \
  ST_ACTIVATION_SHAPE_PARAM_SPECS (Config)

/* The one number st_activation_forward() and _backward() take as slope:
 * alpha for elu, slope for the others (from the slope= and alpha= keys). */
static inline float
st_activation_arg (StActivation act, double slope, double alpha)
{
  return (float) (act == ST_ACT_ELU ? alpha : slope);
}

G_END_DECLS
