import json
import math
import shutil

import numpy as np
import pytest

from mmface4d import cli
from mmface4d.animate.animator import Animator
from mmface4d.animate.checkpoint import load_run
from mmface4d.animate.evaluate import METRIC_DEFINITIONS, evaluate
from mmface4d.animate.metrics import ALL_METRICS, LIP_SYNC_METRICS, sequence_metrics
from mmface4d.data import split
from mmface4d.data.analysis import resolve_regions
from mmface4d.data.dataset import FaceSequenceDataset
from mmface4d.data.splits import load_splits
from mmface4d.data.store import Store
from mmface4d.errors import InputError

from .conftest import TINY, set_args


@pytest.fixture(scope="module")
def ablation_run(tiny_store, tmp_path_factory):
    run = tmp_path_factory.mktemp("evaluate") / "no_composite"
    argv = ["train", "--ablation", "composite", "--data", str(tiny_store), "-o", str(run)]
    assert cli.main([*argv, *set_args(*TINY, "optim.steps=2")]) == 0
    return run


def test_cli_report_and_table(tiny_run, ablation_run, tiny_store, tmp_path, capsys):
    report_path, table_path = tmp_path / "report.json", tmp_path / "table.md"
    argv = ["evaluate", str(tiny_run), str(ablation_run), "--data", str(tiny_store)]
    assert cli.main([*argv, "-o", str(report_path), "--table", str(table_path)]) == 0
    assert "| run | ours | 10 |" in capsys.readouterr().out
    report = json.loads(report_path.read_text())
    test_ids = load_splits(Store(tiny_store)).ids("test")
    assert report["split"] == "test" and report["sequences"] == len(test_ids) == 2
    assert report["unit"] == "m"
    assert set(report["metrics"]) == {*ALL_METRICS, *LIP_SYNC_METRICS}
    assert report["phones"].startswith("phoneme recogniser")
    assert report["metrics"]["lve"]["unit"] == "m^2"
    assert report["regions"]["lip"] > 0 and report["regions"]["face"] > report["regions"]["lip"]
    names = [r["name"] for r in report["runs"]]
    assert names == ["run", "no_composite"]
    for run in report["runs"]:
        assert sorted(run["per_sequence"]) == test_ids
        values = [run["overall"][k] for k in ALL_METRICS] + [
            m[k] for m in run["per_sequence"].values() for k in ALL_METRICS
        ]
        assert all(isinstance(v, float) and math.isfinite(v) for v in values)
        lip_sync = [run["overall"][k] for k in LIP_SYNC_METRICS]
        assert all(v is None or math.isfinite(v) for v in lip_sync)  # None: no bilabial heard
        assert 0 < run["overall"]["lip_mean"] <= run["overall"]["lip_max"] < 0.1  # metres
        assert run["overall"]["lip_max"] <= run["overall"]["face_max"]
        for metric in ALL_METRICS:  # overall = mean over sequences
            mean = np.mean([m[metric] for m in run["per_sequence"].values()])
            assert run["overall"][metric] == pytest.approx(mean)
    assert report["runs"][0]["step"] == 10 and report["runs"][1]["ablation"] == "composite"
    table = table_path.read_text().splitlines()
    assert table[0] == (
        "| Run | Model | Step | Lip max (mm) | Lip mean (mm) | Upper max (mm) | Face max (mm) "
        "| LVE (mm²) | FDD (mm²) | Closure (%) | False closed (%) | Gap err (mm) | Gap corr "
        "| Range ratio "
        "| Jitter ratio |"
    )
    assert table[3].startswith("| no_composite | ours w/o composite | 2 |")
    lip_max_mm = float(table[2].split("|")[4])
    assert lip_max_mm == pytest.approx(1e3 * report["runs"][0]["overall"]["lip_max"], abs=1e-3)


def test_metrics_match_a_direct_computation(tiny_run, tiny_store, tmp_path):
    """Slow, obvious reference: predict each test sequence by hand and call sequence_metrics."""
    result = evaluate([tiny_run], tiny_store, tmp_path / "r.json")
    trained = load_run(tiny_run)
    dataset = FaceSequenceDataset(tiny_store, "test", window=None, seed=0)
    regions = resolve_regions(None, dataset[0]["template"].numpy())
    for item in dataset:
        assert item["style_sequence_id"] != item["sequence_id"]  # another sequence, same subject
        truth = item["vertices"].numpy()
        prediction = trained.predict(
            item["audio"], item["fps"], item["template"], item["style_vertices"]
        ).numpy()
        expected = sequence_metrics(prediction, truth, regions, item["template"].numpy())
        got = result.runs[0].report.per_sequence[item["sequence_id"]]
        assert {k: got[k] for k in expected} == pytest.approx(expected, rel=1e-5)


def test_evaluation_animates_through_the_animator_users_run(
    tiny_run, tiny_store, tmp_path, monkeypatch
):
    calls = []
    real = Animator.synthesise

    def counted(self, audio, speaker, *args, **kwargs):
        calls.append(kwargs.get("num_frames"))
        return real(self, audio, speaker, *args, **kwargs)

    monkeypatch.setattr(Animator, "synthesise", counted)
    evaluate([tiny_run], tiny_store, tmp_path / "r.json")
    dataset = FaceSequenceDataset(tiny_store, "test", window=None, seed=0)
    assert calls == [r.num_frames for r in dataset.records]  # as many frames as the truth


def test_definitions_cover_every_metric():
    assert set(METRIC_DEFINITIONS) == {*ALL_METRICS, *LIP_SYNC_METRICS}


def test_errors(tiny_run, tiny_store, tmp_path, capsys):
    no_test = tmp_path / "store"
    shutil.copytree(tiny_store, no_test)
    split(no_test, seed=0, test_fraction=0.0, val_fraction=0.34)
    with pytest.raises(InputError, match="no 'test' split"):
        evaluate([tiny_run], no_test, tmp_path / "r.json")
    assert cli.main(["evaluate", str(tiny_run), "--data", str(no_test), "-o", "r.json"]) == 2
    assert "no 'test' split (it has train, val)" in capsys.readouterr().err
    with pytest.raises(InputError, match="not a run folder"):
        evaluate([tmp_path / "nothing"], tiny_store, tmp_path / "r.json")
    with pytest.raises(InputError, match="vertices"):
        evaluate([tiny_run], tiny_store, tmp_path / "r.json", regions="synth:vertices=6000")
    with pytest.raises(InputError, match="no runs"):
        evaluate([], tiny_store, tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()
