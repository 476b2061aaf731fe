"""Progress: a live bar inside each run (steps of the whole budget, loss, validation), and a suite's ETA over
the runs it still has to run."""

import io
import re

from zoo.app.progress import RunProgress
from zoo.app.runner import execute, run_benchmark


def test_a_runs_bar_counts_its_steps_against_the_whole_budget_with_loss_and_validation(tiny_config):
    out = io.StringIO()
    execute(tiny_config(steps=9), 0, weights_dir=None, callbacks=[RunProgress("tiny", every_n_steps=1, file=out)])
    text = out.getvalue()
    assert "tiny" in text and "9/9" in text  # the run's 9 optimizer steps, not one epoch's 3 batches
    assert re.search(r"loss \d", text) and re.search(r"val_mse \d", text)


def test_a_suites_bar_counts_only_the_runs_left_to_run(tmp_path, capsys):
    kwargs = dict(records_dir=tmp_path / "r", weights_dir=None, checkpoints_dir=None, progress=True)
    run_benchmark("adding_t100", "smoke", models=["rnn_tanh_1x128"], **kwargs)
    capsys.readouterr()
    done = run_benchmark("adding_t100", "smoke", models=["rnn_tanh_1x128", "gru_1x128"], **kwargs)
    err = capsys.readouterr().err
    assert [d["status"] for d in done] == ["exists", "ran"]
    assert "1/1" in err and "/2" not in err  # the recorded pair is reported, not counted in the ETA
    assert "adding_t100.smoke.gru_1x128.s0" in err  # the inner bar of the run that ran
