/* strata — GOption entries made from StOptionSpec tables. */
#pragma once

#include "option.h"

G_BEGIN_DECLS

/* A table of options and the struct they fill. */
typedef struct {
  const StOptionSpec *options;
  int n_options;
  void *target;
} OptionTable;

/* The command line's options for some tables: GOption reads each value as
 * text, then cli_options_apply parses it through the table (ranges and
 * all) into its struct, so that no value stands for "not given". */
typedef struct _CliOptions CliOptions;

/* The tables must outlive the result; each target gets its defaults. */
CliOptions         *cli_options_new (const OptionTable *tables, int n_tables);
void                cli_options_free (CliOptions *o);
const GOptionEntry *cli_options_entries (const CliOptions *o);
/* Parses what was given; the error names the option. */
gboolean            cli_options_apply (CliOptions *o, GError **error);
/* Whether --NAME was given. */
gboolean            cli_options_given (const CliOptions *o, const char *name);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CliOptions, cli_options_free)

/* A command's whole command line through its tables (and the common
 * options): help, defaults, parsing and range checks from the specs.
 * FALSE once it has said what is wrong on stderr. */
gboolean cli_parse_table_options (const char *command, const char *params, const char *summary,
                                  const OptionTable *tables, int n_tables, int *argc,
                                  char ***argv);

G_END_DECLS
