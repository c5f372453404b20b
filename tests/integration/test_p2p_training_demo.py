"""The multi-process P2P training demo: separate OS processes, each with its own iroh node, end identical."""
from __future__ import annotations

import pytest
from p2p_training_processes import main


def test_three_trainer_processes_train_over_iroh_and_end_bit_identical(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--trainers", "3", "--steps", "4", "--dim", "32", "--seq", "32"]) == 0
    out = capsys.readouterr().out
    assert "all trainers hold bit-identical weights" in out
    assert out.count("results gathered 3/3") == 4  # every step, every trainer got all three results
    assert "rejected none" in out


@pytest.mark.parametrize("args", [["--trainers", "1"], ["--steps", "0"], ["--dim", "30"], ["--arch", "gpt"],
                                  ["--timeout", "0"]])
def test_bad_arguments_are_refused_before_anything_starts(args: list[str],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_trainers_that_do_not_finish_in_time_fail_the_demo_and_are_killed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--trainers", "2", "--steps", "50", "--timeout", "1"]) == 1
    assert "did not finish within 1.0s" in capsys.readouterr().err
