/* strata — the plugin SDK: include this one header. */
#pragma once

#include <strata/tensor.h>
#include <strata/plugin.h>
#include <strata/activation.h>
#include <strata/gradcheck.h>
