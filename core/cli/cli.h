/* strata — what the command-line front ends share: exit statuses, option
 * parsing, printing the library's errors, messages and progress. */
#pragma once

#include "pipeline.h"
#include "progress.h"

enum { EXIT_OK = 0, EXIT_SOME_FAILED = 1, EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };

/* Prints "strata: MESSAGE" on stderr; returns EXIT_USAGE. */
int  fail (GError *error);
/* A library line (a file skipped, an image failed) on stderr: an
 * StMessageFunc. */
void print_message (const char *line, gpointer user_data);
/* The progress line's callback: NULL when quiet or stderr is no terminal. */
StProgressFunc terminal_progress (gboolean quiet);

/* A command's options, with the ones every command takes. */
GOptionContext *make_context (const char *params, const char *summary,
                              const GOptionEntry *entries);
/* Parses them, printing what is wrong; applies the common options. */
gboolean parse_options (GOptionContext *ctx, int *argc, char ***argv);

/* --weights, or the file the pipeline names, or (asked for) none. */
gboolean load_weights (StPipeline *p, const char *weights, gboolean random_weights,
                       GError **error);

int cmd_run (int argc, char **argv);
int cmd_inspect (int argc, char **argv);
int cmd_plugins (int argc, char **argv);
int cmd_pipelines (int argc, char **argv);
