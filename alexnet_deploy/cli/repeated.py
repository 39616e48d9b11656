"""An option that takes one value, given twice, is refused before any work.

Typer (Click) keeps the last of ``--model a --model b`` and drops the first without a word;
here the command line is read against the command's own declared options (Typer's
``typer.main.get_command``: each option's spellings, whether it takes a value, whether it
repeats) and such a repeat is a usage error naming the option and both values. Options that
repeat by design (``multiple``: cli/options.py's ``many``) are left to their parser.
"""

from __future__ import annotations

from collections import defaultdict

from alexnet_deploy.errors import UsageError


def refuse_repeated_options(root, argv: list[str]) -> None:
    """``root``: the Click group of the app; ``argv``: the command line after the program name.
    Unknown options and commands are left to the parser, which names them itself."""
    if "--help" in _before_separator(argv):
        return
    command, tokens = root, list(argv)
    while command is not None:
        given, rest = _options_given(command, tokens, stop_at_argument=hasattr(command, "commands"))
        for param, values in given.items():
            if len(values) > 1 and not param.multiple:
                _refuse(param, values)
        if rest is None:
            return
        command, tokens = command.commands.get(rest[0]), rest[1:]


def _before_separator(argv: list[str]) -> list[str]:
    return argv[: argv.index("--")] if "--" in argv else argv


def _takes_value(param) -> bool:
    return not (param.is_flag or param.count)


def _options_given(command, tokens: list[str], *, stop_at_argument: bool):
    """Each option of ``command`` given in ``tokens``, with the values (or spellings, for a
    flag) it was given; and, for a group, the tokens from its subcommand's name on."""
    by_name = {
        name: p
        for p in command.params
        if p.param_type_name == "option"
        for name in (*p.opts, *p.secondary_opts)
    }
    given: dict = defaultdict(list)
    i = 0
    while i < len(tokens):
        token, i = tokens[i], i + 1
        if token == "--":
            break
        if token.startswith("--"):
            name, eq, attached = token.partition("=")
            param = by_name.get(name)
            if param is None:
                continue
            if _takes_value(param) and not eq:
                attached, i = (tokens[i] if i < len(tokens) else ""), i + 1
            given[param].append(attached if _takes_value(param) else name)
        elif token.startswith("-") and len(token) > 1:
            for j, letter in enumerate(token[1:], start=1):  # -o FILE, -oFILE, -qd
                param = by_name.get(f"-{letter}")
                if param is None:
                    break
                if not _takes_value(param):
                    given[param].append(f"-{letter}")
                    continue
                value = token[j + 1 :]
                if not value:
                    value, i = (tokens[i] if i < len(tokens) else ""), i + 1
                given[param].append(value)
                break
        elif stop_at_argument:
            return given, tokens[i - 1 :]
    return given, None


def _refuse(param, values: list[str]) -> None:
    times = "twice" if len(values) == 2 else f"{len(values)} times"
    if _takes_value(param):
        flag = max(param.opts, key=len)
        raise UsageError(
            f"{flag} given {times} ({', '.join(map(repr, values))}): it takes one value, and "
            "the last would silently replace the others",
            hint=f"give {flag} once",
        )
    raise UsageError(
        f"{'/'.join([*param.opts, *param.secondary_opts])} given {times} "
        f"({' '.join(values)}): it is one switch, and the last would silently win",
        hint="give it once",
    )
