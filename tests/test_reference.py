import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

from zoo.app.recipes import ADDING_REFERENCE

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "adding_reference.py"


def _script():
    spec = importlib.util.spec_from_file_location("adding_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_table(tmp_path, capsys):
    out = tmp_path / "rows.json"
    assert _script().main(["--max_steps", "3", "--test_size", "64", "--seq_len", "20", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split()[:4] == ["model", "T", "test", "MSE"]
    assert "trivial baseline: test MSE 0.1667" in printed
    rows = json.loads(out.read_text())
    assert [row["model"] for row in rows] == list(ADDING_REFERENCE)
    for row in rows:
        assert row["steps"] == 3 and row["seq_len"] == 20 and math.isfinite(row["test_mse"])
        assert 0.0 <= row["test_accuracy"] <= 1.0
        assert row["model"] in printed
    assert [p.name for p in tmp_path.iterdir()] == ["rows.json"]  # no temporary file left


def test_unknown_model_is_one_clear_error():
    result = subprocess.run([sys.executable, str(SCRIPT), "--models", "lstm_9x9"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "unknown reference model 'lstm_9x9'; valid choices: lstm_1x128, gru_1x128, rnn_tanh_1x128, irnn_1x128" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_rows_weights_depend_on_its_seed_alone(tmp_path):
    """The same model and seed give the same row whether or not other models were built before it."""
    script = _script()
    args = ["--max_steps", "2", "--test_size", "64", "--seq_len", "10"]
    script.main([*args, "--models", "lstm_1x128", "--json", str(tmp_path / "alone.json")])
    script.main([*args, "--models", "gru_1x128", "lstm_1x128", "--json", str(tmp_path / "after.json")])
    alone = json.loads((tmp_path / "alone.json").read_text())[0]
    after = json.loads((tmp_path / "after.json").read_text())[1]
    assert after["model"] == "lstm_1x128"
    assert after["test_mse"] == alone["test_mse"]
