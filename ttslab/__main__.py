"""Command line: ``python -m ttslab <command>`` (also installed as ``ttslab``).

Commands:
    build-corpus   build the built-in eSpeak NG corpus (``--mode ci|full``)
    info           versions and where data lives
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "build-corpus":
        from ttslab.data.builtin import main as build_main

        return build_main(rest)
    if cmd == "info":
        import ttslab
        from ttslab import config
        from ttslab.text import espeak

        print(f"ttslab {ttslab.__version__}; mode {config.mode()}; data {config.data_home()}")
        print(f"eSpeak NG {espeak.library_info()}")
        return 0
    print(f"unknown command {cmd!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
