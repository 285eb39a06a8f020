# bash completion for lxmig (installed as share/bash-completion/completions/lxmig).
# The words come from lxmig itself (lxmig __complete WORDS...), so they follow
# its command line: verbs, options, node and container names.
_lxmig() {
  local cur=${COMP_WORDS[COMP_CWORD]} IFS=$'\n'
  # shellcheck disable=SC2207
  COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" __complete "${COMP_WORDS[@]:1:COMP_CWORD-1}" 2>/dev/null)" -- "$cur"))
}
# -o default: where lxmig offers nothing (a FILE of checkpoint --export, restore --import), file names.
complete -o default -F _lxmig lxmig
