"""ttslab.exercises.check: one clear line per outcome, never a traceback.

PYTEST_DONT_REWRITE: the learners' asserts below must behave as in a notebook, with plain messages.
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from ttslab import exercises
from ttslab.exercises import check


def run(capsys, test) -> str:
    check("Exercise 9", test)
    out = capsys.readouterr()
    assert out.err == "" and "Traceback" not in out.out
    lines = out.out.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_stub_reminds_to_fill_it_in(capsys):
    def stub():
        raise NotImplementedError("your code here")

    assert run(capsys, stub) == ("Exercise 9: not implemented yet — fill in the function above and run this "
                                 "cell again.")


def test_wrong_answer_says_not_yet_and_why(capsys):
    def wrong():
        assert np.allclose([1.0, 2.0], [1.0, 2.5]), "got [1, 2], expected [1, 2.5]"

    assert run(capsys, wrong) == "Exercise 9: not yet: got [1, 2], expected [1, 2.5]"


def test_assert_without_message_names_the_failed_check(capsys):
    def wrong():
        answer = 3
        assert answer == 4

    assert run(capsys, wrong) == "Exercise 9: not yet: a check failed (in wrong: assert answer == 4)"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (lambda: np.zeros(3) @ np.zeros(4), "your code raised ValueError: matmul: "),
        (lambda: {}["missing"], "your code raised KeyError: 'missing'"),
        (lambda: 1 / 0, "your code raised ZeroDivisionError: division by zero"),
        (lambda: (_ for _ in ()).throw(RuntimeError), "your code raised RuntimeError"),
    ],
)
def test_bug_in_learner_code_is_one_line_not_a_traceback(capsys, body, expected):
    line = run(capsys, body)
    assert line.startswith("Exercise 9: not yet: " + expected), line
    assert "(in " in line  # where it happened


def test_error_inside_a_library_points_at_the_learner_line(capsys):
    def learner():
        return np.linalg.inv(np.zeros((2, 3)))

    line = run(capsys, learner)
    assert "LinAlgError" in line and line.endswith("(in learner: return np.linalg.inv(np.zeros((2, 3))))")


def test_correct_answer_and_its_optional_summary(capsys):
    assert run(capsys, lambda: None) == "Exercise 9: correct, it matches the reference."
    assert run(capsys, lambda: "42 Hz apart") == "Exercise 9: correct — 42 Hz apart"


def test_keyboard_interrupt_still_stops_the_cell():
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        check("Exercise 9", interrupted)


def test_module_examples():
    assert doctest.testmod(exercises).failed == 0
