"""The `Examples:` that end each command's `--help`."""


def examples(*lines: str) -> str:
    """A command's epilog: `Examples:` and `lines`, each a whole command
    (`kllm ...`, a `# comment` allowed), kept as written.

    Use: `@click.command(epilog=examples("kllm ...", "kllm ..."))`. Click
    prints the epilog after the options, so the help ends with them; `\\b`
    keeps Click from rewrapping the lines. tests/test_cli_help.py runs them.
    """
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)
