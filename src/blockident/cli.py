"""Command-line entry point ``blockident``.

``train``, ``evaluate`` and ``run`` take Hydra overrides (``key=value``, ``-m`` for a sweep);
the other commands take ordinary options (see ``blockident COMMAND --help``). An error the user
can act on (:mod:`blockident.errors`, a misspelt override, a missing config value) is printed as
one message on stderr with exit code 2; ``BLOCKIDENT_DEBUG=1`` shows its traceback.
"""

from __future__ import annotations

import importlib
import sys

from blockident.errors import debug, user_message

HYDRA_COMMANDS = {
    "train": "train an encoder (resume=RUN_DIR continues an interrupted run)",
    "evaluate": "read every factor out of a trained encoder (run_dir=RUN_DIR [ckpt=STEP])",
    "run": "train, then evaluate",
}

# command -> (module, function, one-line help); the function takes argv and returns an exit code
TOOL_COMMANDS = {
    "experiments": ("blockident.experiments", "main", "list the available experiments"),
    "pairs": ("blockident.pairs.command", "main",
              "pairs from BURST annotations (pairs captions ROOT: caption neighbours)"),
    "prepare": ("blockident.prepare", "main", "prepare a data set (prepare burst DATA_DIR ...)"),
    "report": ("blockident.report_command", "main",
               "figures and HTML pages of runs (report RUN_DIR [RUN_DIR ...] [--html])"),
}

USAGE = """usage: blockident COMMAND [ARGS...]

Does contrastive learning recover exactly the factors two views share?

commands:
{commands}

examples:
  blockident run                                   # default experiment on generated data
  blockident run experiment=numerical data.content_dim=5 trainer.max_steps=2000 seed=1
  blockident run -m experiment=numerical seed=0,1,2   # a Hydra sweep
  blockident evaluate run_dir=runs/numerical/RUN ckpt=1000
  blockident train resume=runs/numerical/RUN          # continue an interrupted run
  blockident train --cfg job                          # print the composed config
"""


def _usage() -> str:
    rows = {**HYDRA_COMMANDS, **{k: v[2] for k, v in TOOL_COMMANDS.items()}}
    return USAGE.format(commands="\n".join(f"  {k:<12} {v}" for k, v in rows.items()))


def _dispatch(command: str, rest: list[str]) -> int:
    if command in HYDRA_COMMANDS:
        from blockident.runner import hydra_main

        return hydra_main(command, rest)
    module, function, _ = TOOL_COMMANDS[command]
    return getattr(importlib.import_module(module), function)(rest) or 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in HYDRA_COMMANDS and command not in TOOL_COMMANDS:
        print(f"blockident: unknown command {command!r}\n", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2
    try:
        return _dispatch(command, rest)
    except Exception as error:
        message = user_message(error)
        if message is None or debug():
            raise
        print(f"blockident {command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
