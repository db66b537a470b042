"""The exercise checker every notebook uses: run a learner's test and say, in one line, how it went.

>>> def test(): assert 1 + 1 == 2, "arithmetic"
>>> check("Exercise 0", test)
Exercise 0: correct, it matches the reference.
>>> def todo(): raise NotImplementedError
>>> check("Exercise 1", todo)
Exercise 1: not implemented yet — fill in the function above and run this cell again.
>>> def wrong(): assert 2 + 2 == 5, "2 + 2 gave 4, expected 5"
>>> check("Exercise 2", wrong)
Exercise 2: not yet: 2 + 2 gave 4, expected 5
>>> def broken(): return [1, 2][5]
>>> check("Exercise 3", broken)
Exercise 3: not yet: your code raised IndexError: list index out of range (in broken: def broken(): return [1, 2][5])

A wrong answer never shows a traceback: a learner sees what differs, or which error their code raised
and on which line, and the notebook keeps running top to bottom.
"""

from __future__ import annotations

import sysconfig
import traceback
from pathlib import Path
from typing import Callable

__all__ = ["check"]


_LIBRARIES = tuple(str(Path(p).resolve()) for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
                                                      sysconfig.get_paths()["platlib"], str(Path(__file__).parent)})


def _is_learner_code(filename: str) -> bool:
    """Not in the standard library, not in an installed package, not in ttslab: a notebook cell or a script."""
    try:
        resolved = str(Path(filename).resolve())
    except (OSError, ValueError):
        return True
    return not resolved.startswith(_LIBRARIES) and "site-packages" not in resolved


def _where(err: BaseException) -> str:
    """`` (in <function>: <line>)`` of the innermost frame of the learner's own code that led to ``err``
    (a line inside numpy says less than the line of the notebook that called it)."""
    frames = traceback.extract_tb(err.__traceback__)[1:]  # [0] is check() itself
    if not frames:
        return ""
    own = [f for f in frames if _is_learner_code(f.filename)]
    frame = (own or frames)[-1]
    line = (frame.line or "").strip()
    return f" (in {frame.name}: {line})" if line else f" (in {frame.name})"


def check(name: str, test: Callable[[], object]) -> None:
    """Run ``test()`` and print one line: not implemented yet / not yet: why / correct.

    * ``NotImplementedError`` (the stub is still there): a reminder to fill it in;
    * ``AssertionError`` (a wrong answer): ``not yet:`` and the assertion's message, or the failed
      ``assert`` line when it has no message;
    * any other exception (a bug in the learner's code): ``not yet:`` with the error and the line
      that raised it, never a traceback;
    * success: ``correct`` — followed by what ``test()`` returned, when that is a string (e.g. a
      measurement worth seeing), else "it matches the reference".
    """
    try:
        result = test()
    except NotImplementedError:
        print(f"{name}: not implemented yet — fill in the function above and run this cell again.")
        return
    except AssertionError as err:
        why = str(err).strip() or f"a check failed{_where(err)}"
        print(f"{name}: not yet: {why}")
        return
    except Exception as err:  # noqa: BLE001 - a learner's bug is reported, not raised
        message = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        print(f"{name}: not yet: your code raised {message}{_where(err)}")
        return
    if isinstance(result, str) and result.strip():
        print(f"{name}: correct — {result.strip()}")
    else:
        print(f"{name}: correct, it matches the reference.")
