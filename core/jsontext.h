/* strata — JSON built with json-glib, as text: the evaluation report, a
 * prediction line, the class names stored with weights. */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* The value b has built, as compact JSON text (no newline). */
char *st_json_builder_to_text (JsonBuilder *b);

G_END_DECLS
