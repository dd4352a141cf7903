import csv

import pytest

from mmface4d.animate.runlog import CsvLog, tensorboard_writer


def rows(path):
    with open(path, newline="") as file:
        return list(csv.reader(file))


def test_csv_log_appends_and_drops_rows_past_a_resumed_checkpoint(tmp_path):
    path = tmp_path / "log.csv"
    log = CsvLog(path, 0)
    for step in (1, 2, 3, 4):
        log.write({"step": step, "loss": 1.0 / step, "lr": 1e-4, "seconds": 0.5 * step})
    assert rows(path)[0] == ["step", "loss", "lr", "seconds"] and len(rows(path)) == 5
    resumed = CsvLog(path, 2)  # the checkpoint was at step 2: rows 3, 4 are redone
    assert [r[0] for r in rows(path)] == ["step", "1", "2"]
    resumed.write({"step": 3, "loss": 0.3, "lr": 1e-4, "seconds": 9.0})
    assert [r[0] for r in rows(path)] == ["step", "1", "2", "3"]
    assert rows(path)[-1] == ["3", "0.3", "0.0001", "9"]
    CsvLog(path, 0)  # a fresh start forgets the old log
    assert not path.exists()


def test_tensorboard_modes(tmp_path):
    assert tensorboard_writer("off", tmp_path, 0) is None
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        assert tensorboard_writer("auto", tmp_path, 0) is None
        with pytest.raises(ImportError, match="pip install tensorboard"):
            tensorboard_writer("on", tmp_path, 0)
    else:
        writer = tensorboard_writer("auto", tmp_path / "tb", 0)
        writer.add_scalar("train/loss", 1.0, 1)
        writer.close()
        assert any((tmp_path / "tb").iterdir())
