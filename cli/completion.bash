# The fixed part of snapport's bash completion; snapport-gendoc puts the
# command table's lists before it (_snapport_commands, _snapport_options,
# _snapport_option_arg, _snapport_positionals, _snapport_subcommands).

# --store as this command line gives it, for the name lookups.
_snapport_store_args() {
    local i
    for ((i = 1; i < ${#words[@]}; i++)); do
        case ${words[i]} in
        --store) printf '%s\n' --store "${words[i + 1]}"; return ;;
        --store=*) printf '%s\n' "${words[i]}"; return ;;
        esac
    done
}

# VM names (vm) or a VM's snapshot names (snapshot VM), from the store.
_snapport_names() {
    local -a store
    mapfile -t store < <(_snapport_store_args)
    local IFS=$'\n' list
    if [[ $1 == vm ]]; then
        list=$("${words[0]}" "${store[@]}" -q vm list --names 2>/dev/null)
    else
        list=$("${words[0]}" "${store[@]}" -q snapshot list --names -- "$2" 2>/dev/null)
    fi
    COMPREPLY+=($(compgen -W "$list" -- "$cur"))
}

# A word of the kind the command table's placeholder names; $2 is the VM
# the command line names (for a SNAPSHOT).
_snapport_complete_kind() {
    case $1 in
    VM | 'VM|SNAPSHOT') _snapport_names vm ;;
    SNAPSHOT) [[ -n $2 ]] && _snapport_names snapshot "$2" ;;
    IMAGE | A | B) _filedir '@(vhd|vmdk|qcow2|raw|img|iso)' ;;
    ARCHIVE) _filedir '@(xva|ova|ovf)' ;;
    IN) _filedir '@(xva|ova|ovf|vhd|vmdk|qcow2|raw|img)' ;;
    COMMAND) COMPREPLY=($(compgen -W "$_snapport_commands" -- "$cur")) ;;
    DIR) _filedir -d ;;
    [a-z0-9]*'|'*) COMPREPLY=($(compgen -W "${1//|/ }" -- "$cur")) ;;
    *..*) ;;
    *.*) _filedir "${1##*.}" ;;
    FILE | OUT | PATH) _filedir ;;
    esac
}

_snapport() {
    local cur prev words cword split
    _init_completion -s || return

    local cmd="" w i skip=0
    local -a pos=()
    for ((i = 1; i < cword; i++)); do
        w=${words[i]}
        if ((skip)); then
            skip=0
            continue
        fi
        case $w in
        --store) skip=1; continue ;;
        --store=* | --json | -q | -p) continue ;;
        esac
        if [[ -z $cmd ]]; then
            cmd=$w
        elif [[ -n $(_snapport_subcommands "$cmd") ]]; then
            cmd="$cmd $w"
        elif [[ $w == -* && $w != - ]]; then
            [[ $w != *=* ]] && _snapport_option_arg "$cmd" "$w" >/dev/null && skip=1
        else
            pos+=("$w")
        fi
    done

    if [[ $prev == --store ]]; then
        _filedir -d
        return
    fi
    local kind
    if [[ -n $cmd ]] && kind=$(_snapport_option_arg "$cmd" "$prev"); then
        _snapport_complete_kind "$kind" "${pos[0]}"
        return
    fi
    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$_snapport_globals" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$_snapport_commands" -- "$cur"))
        fi
        return
    fi
    local subs
    subs=$(_snapport_subcommands "$cmd")
    if [[ -n $subs ]]; then
        COMPREPLY=($(compgen -W "$subs --help" -- "$cur"))
        return
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_snapport_options "$cmd")" -- "$cur"))
        return
    fi
    local -a kinds
    read -r -a kinds <<<"$(_snapport_positionals "$cmd")"
    kind=${kinds[${#pos[@]}]}
    # "VM...": the last kind repeats
    if [[ -z $kind && ${#kinds[@]} -gt 0 && ${kinds[${#kinds[@]} - 1]} == *... ]]; then
        kind=${kinds[${#kinds[@]} - 1]}
    fi
    _snapport_complete_kind "${kind%...}" "${pos[0]}"
} && complete -F _snapport snapport
