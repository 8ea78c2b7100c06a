/* strata — what the command-line front ends share: exit statuses, option
 * parsing, printing the library's errors, messages and progress. */
#pragma once

#include "options.h"
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
/* The option tables of run and inspect. */
const StOptionSpec *cli_run_options (int *n);
const StOptionSpec *cli_inspect_options (int *n);
int cmd_pipelines (int argc, char **argv);
int cmd_complete (int argc, char **argv);

/* The commands, for usage, completion and the manual. */
typedef struct {
  const char *name, *synopsis, *summary;
} CliCommand;
extern const CliCommand cli_commands[];   /* ends with a NULL name */

/* A command's option tables (targets NULL), at most max; 0 for none. */
int                 cli_command_tables (const char *command, OptionTable *tables, int max);
/* The options every command takes. */
const GOptionEntry *cli_common_entries (void);
/* strata --man: the manual page in roff on stdout. */
int                 cli_print_manual (void);
