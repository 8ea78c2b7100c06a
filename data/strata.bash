# bash completion for strata.  The words come from strata itself
# (strata complete ...), read from the same tables as --help.
_strata ()
{
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  local strata=${COMP_WORDS[0]}
  COMPREPLY=()
  if [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W "$("$strata" complete commands 2>/dev/null) --help --version" -- "$cur"))
    return
  fi
  local command=${COMP_WORDS[1]}
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$("$strata" complete options "$command" 2>/dev/null)" -- "$cur"))
    return
  fi
  # A value for the option before: a file or folder.
  local option
  for option in $("$strata" complete value-options "$command" 2>/dev/null); do
    if [[ $prev == "$option" ]]; then
      COMPREPLY=($(compgen -f -- "$cur"))
      compopt -o filenames 2>/dev/null
      return
    fi
  done
  # The first word after the command that is not an option.
  local i words=0
  for ((i = 2; i < COMP_CWORD; i++)); do
    [[ ${COMP_WORDS[i]} == -* ]] || ((words++))
  done
  case $command in
    plugins)
      [[ $words -eq 0 ]] && COMPREPLY=($(compgen -W "$("$strata" complete kinds 2>/dev/null)" -- "$cur"))
      ;;
    run|train|eval|inspect)
      if [[ $words -eq 0 ]]; then
        COMPREPLY=($(compgen -W "$("$strata" complete pipelines 2>/dev/null) $("$strata" complete kinds 2>/dev/null)" -- "$cur")
                   $(compgen -f -X '!*.ini' -- "$cur") $(compgen -d -- "$cur"))
      else
        COMPREPLY=($(compgen -f -- "$cur"))
      fi
      compopt -o filenames 2>/dev/null
      ;;
  esac
}
complete -F _strata strata
