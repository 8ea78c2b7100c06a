/* strata — command-line options declared as parameter specs: one table
 * gives each option's help, default, range and parsing, the way a kind's
 * StParamSpec table does for pipeline keys. */
#pragma once

#include "param.h"

G_BEGIN_DECLS

typedef struct {
  /* spec.name is the long option ("lr" for --lr); spec.offset is into the
   * struct the table fills; values go through st_param_parse. */
  StParamSpec spec;
  char short_name;             /* 'b' for -b; 0: none */
  const char *arg_name;        /* "N", "X", "FILE" in --help; NULL: a flag, taking no value */
  const char *flag_value;      /* a flag's value when given: "true", or "false" for --no-X */
  const char *default_help;    /* the default in --help when spec.default_value cannot say it */
} StOptionSpec;

/* Stores every spec's default_value in target. */
void     st_options_set_defaults (const StOptionSpec *options, int n, void *target);
/* Parses a value given on the command line (a flag's flag_value when text
 * is NULL); the error reads "--NAME: expected ..., found '...'". */
gboolean st_option_parse (const StOptionSpec *option, const char *text, void *target,
                          GError **error);
/* "Learning rate, more than 0 (default 0.001)": help, range and default. */
char    *st_option_help (const StOptionSpec *option);
/* Frees the strings the options stored in target. */
void     st_options_clear (const StOptionSpec *options, int n, void *target);

G_END_DECLS
