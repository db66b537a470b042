"""The exercise checker the notebooks share: run a learner's test and say how it went.

>>> def test(): assert 1 + 1 == 2, "arithmetic"
>>> check("Exercise 0", test)
Exercise 0: correct, it matches the reference.
>>> def todo(): raise NotImplementedError
>>> check("Exercise 1", todo)
Exercise 1: not implemented yet — fill in the function above and run this cell again.
"""

from __future__ import annotations

from typing import Callable


def check(name: str, test: Callable[[], None]) -> None:
    """Run ``test()``; print one line: not implemented / not quite (and why) / correct.

    An unimplemented stub raises ``NotImplementedError``; a wrong answer fails an ``assert`` whose
    message says what differs. Any other exception is a bug in the learner's code and propagates, with
    its traceback, so it can be fixed.
    """
    try:
        test()
    except NotImplementedError:
        print(f"{name}: not implemented yet — fill in the function above and run this cell again.")
        return
    except AssertionError as err:
        print(f"{name}: not quite — {err}")
        return
    print(f"{name}: correct, it matches the reference.")
