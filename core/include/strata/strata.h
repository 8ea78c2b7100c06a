/* strata — the plugin SDK: include this one header.
 *
 * It brings in everything a stage plugin or its test program uses: tensors
 * (tensor.h), the plugin ABI and run-time services (plugin.h), the
 * activation functions shared with the built-in layers (activation.h) and
 * the gradient checker (gradcheck.h), plus GLib and GModule.
 *
 * Build flags come from pkg-config:
 *
 *     cc -shared -fPIC $(pkg-config --cflags --libs strata) my-stage.c -o my-stage.so
 *
 * A plugin needs no run path to libstrata: it is only ever loaded into a
 * strata process, which has libstrata loaded already, and its st_*
 * references resolve there.  A program of your own (a test calling
 * st_gradcheck) does need to find libstrata.so, like any program. */
#pragma once

#include <strata/tensor.h>
#include <strata/plugin.h>
#include <strata/activation.h>
#include <strata/gradcheck.h>
#include <strata/border.h>
