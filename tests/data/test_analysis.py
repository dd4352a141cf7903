import json
import shutil

import numpy as np
import pytest

from mmface4d import cli
from mmface4d.data import pack
from mmface4d.errors import InputError
from mmface4d.synth.corpus import corpus


@pytest.fixture(scope="module")
def synth_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis")
    corpus(root / "corpus", subjects=3, sentences=2, lang="en", seed=5, workers=1, progress=False)
    pack(root / "corpus", root / "store", workers=1)
    return root / "store"


def test_stats_cli_writes_json_and_figures(synth_store, tmp_path, capsys):
    out = tmp_path / "stats"
    assert cli.main(["data", "stats", str(synth_store), str(synth_store), "-o", str(out)]) == 0
    summary = json.loads((out / "stats.json").read_text())
    assert summary["sequences"] == 6 and summary["subjects"] == 3
    lip = summary["velocity"]["lip"]["v_m_per_second"]
    assert 0.001 < np.linalg.norm(list(lip.values())) < 0.2  # speech moves lips mm..cm per s
    assert -1 <= summary["lip_velocity_subject_silhouette"] <= 1
    regions = summary["region_correlation"]["regions"]
    assert {"lip", "chin", "eyes_left", "eyes_right"} <= set(regions)
    corr = np.array(summary["region_correlation"]["matrix"])
    lip, chin, forehead = regions.index("lip"), regions.index("chin"), regions.index("forehead")
    assert corr[lip, chin] > corr[chin, forehead]  # the regional nature of the synthetic data
    assert len(summary["lip_velocity_comparison"]) == 2
    for name in ("lip_velocity.png", "demographics.png", "region_graph.png"):
        assert (out / name).stat().st_size > 20_000


def test_real_sample_with_bfm_regions(shared_data, tmp_path):
    src = tmp_path / "src" / "P001" / "000337"
    src.mkdir(parents=True)
    for name in (
        "000337.wav",
        "reconstruct_filt_0.nut",
        "reconstruct_filt_1.nut",
        "reconstruct_filt_2.nut",
    ):
        shutil.copy(shared_data / "mmface4d_sample" / name, src / name)
    pack(tmp_path / "src", tmp_path / "store", workers=1)
    info = shared_data / "bfm_aux" / "facemodel_info.mat"
    argv = ["data", "stats", str(tmp_path / "store"), "-o", str(tmp_path / "out")]
    assert cli.main([*argv, "--regions", str(info)]) == 0
    summary = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert summary["sequences"] == 1 and summary["subjects"] == 1
    v = summary["velocity"]
    # a real talking face: the lips move more than the forehead
    assert np.linalg.norm(list(v["lip"]["v_m_per_frame"].values())) > 2 * np.linalg.norm(
        list(v["forehead"]["v_m_per_frame"].values())
    )


def test_regions_must_fit(synth_store, tmp_path):
    from mmface4d.data.analysis import stats

    with pytest.raises(InputError, match="vertices"):
        stats([synth_store], tmp_path / "x", regions="synth:vertices=6000")
