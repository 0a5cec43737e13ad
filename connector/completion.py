"""Shell completion scripts for bash and zsh, generated from the argparse parser (so they never drift).

The bash script defines ``_cio_connector``: it walks the words typed so far down the subcommand tree,
then offers that command's subcommands (or positional choices), its options after ``-``, an option's
choices after it, and file names after ``--config``. The zsh script is the same function run through
zsh's ``bashcompinit``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

FUNCTION = "_cio_connector"


@dataclass(slots=True)
class _Command:
    """One node of the subcommand tree: what may follow it."""

    path: str  # "" for the program, "offsets reset" for a nested one
    subcommands: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    option_choices: dict[str, list[str]] = field(default_factory=dict)
    file_options: list[str] = field(default_factory=list)


def commands(parser: argparse.ArgumentParser, path: str = "") -> list[_Command]:
    """Every command of the tree, depth first."""
    node = _Command(path)
    found = [node]
    for action in parser._actions:  # argparse has no public API to walk its actions
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                node.subcommands.append(name)
                found += commands(sub, f"{path} {name}".strip())
        elif action.option_strings:
            node.options += action.option_strings
            if action.choices:
                for option in action.option_strings:
                    node.option_choices[option] = [str(c) for c in action.choices]
            elif action.metavar == "FILE":
                node.file_options += action.option_strings
        elif action.choices:  # a positional with choices (completion's shell)
            node.subcommands += [str(c) for c in action.choices]
    return found


def bash_script(parser: argparse.ArgumentParser) -> str:
    """A bash completion script for ``parser.prog``."""
    tree = commands(parser)
    walk = []
    for node in tree:
        nested = [n for n in tree if n.path and n.path.rpartition(" ")[0] == node.path]  # its direct children
        if not nested:
            continue
        cases = " ".join(f'{n.path.rpartition(" ")[2]}) path="{n.path}" ;;' for n in nested)
        walk.append(f'            "{node.path}") case "$w" in {cases} esac ;;')
    offers = [
        f'        "{node.path}") cmds="{" ".join(node.subcommands)}"; opts="{" ".join(node.options)}" ;;'
        for node in tree
    ]
    values = []
    for node in tree:
        for option, choices in node.option_choices.items():
            values.append(
                f'        "{node.path}:{option}") COMPREPLY=($(compgen -W "{" ".join(choices)}" -- "$cur")); return ;;'
            )
        values += [
            f'        "{node.path}:{o}") COMPREPLY=($(compgen -f -- "$cur")); return ;;' for o in node.file_options
        ]
    prog = parser.prog
    return f"""# {prog} completion for bash: source <({prog} completion bash)
{FUNCTION}() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="" path="" cmds="" opts="" w i
    (( COMP_CWORD > 0 )) && prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    for (( i = 1; i < COMP_CWORD; i++ )); do
        w="${{COMP_WORDS[i]}}"
        case "$path" in
{chr(10).join(walk)}
        esac
    done
    case "$path:$prev" in
{chr(10).join(values)}
    esac
    case "$path" in
{chr(10).join(offers)}
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$cmds" -- "$cur"))
    fi
}}
complete -F {FUNCTION} {prog}
"""


def zsh_script(parser: argparse.ArgumentParser) -> str:
    """A zsh completion script: the bash function through zsh's bashcompinit."""
    prog = parser.prog
    body = bash_script(parser).split("\n", 1)[1]
    return f"""#compdef {prog}
# {prog} completion for zsh: source <({prog} completion zsh)
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
{body}"""


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for ``shell`` (bash or zsh)."""
    return zsh_script(parser) if shell == "zsh" else bash_script(parser)
