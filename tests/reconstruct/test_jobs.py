"""``mmface4d reconstruct`` end to end (mmface4d.reconstruct.jobs and cli/reconstruct.py) on the
tiny studio recording: outputs, ground-truth errors, resumption, failures, bad input, Ray."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mmface4d import cli
from mmface4d.data.nut import decode_nut
from mmface4d.errors import InputError
from mmface4d.reconstruct.config import resolve_config
from mmface4d.reconstruct.jobs import find_tasks, fit_json_path, reconstruct

from .conftest import MODEL_SPEC

#: The fit's settings on the command line: tiny stages at the recording's resolution (the
#: landmark stage keeps the paper's 100 iterations: they are cheap and the initial pose needs
#: them, see test_fitting.py).
SETTINGS = (
    "scale=1",
    "landmark_stage.iterations=100",
    "model_stage.iterations=10",
    "vertex_stage.iterations=3",
    "tracking_stage.iterations=3",
)
FRAMES = 2


def command(input_folder, output, *extra: str) -> list[str]:
    argv = ["reconstruct", str(input_folder), "-o", str(output)]
    argv += ["--face-model", MODEL_SPEC, "--no-progress"]
    for setting in SETTINGS:
        argv += ["--set", setting]
    return argv + list(extra)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def run_cli(argv: list[str], capsys) -> Run:
    capsys.readouterr()
    code = cli.main(argv)
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


@dataclass
class FirstRun:
    run: Run
    output: Path
    prefix: Path  # OUT/S1/rec
    manifest: dict
    mtimes: dict[str, float]


@pytest.fixture(scope="module")
def first_run(studio_capture, tmp_path_factory) -> FirstRun:
    """One recording reconstructed from its folder (calibration estimated, figures on)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    output = tmp_path_factory.mktemp("reconstructed")
    out, err = io.StringIO(), io.StringIO()
    argv = command(studio_capture.folder, output, "--frames", str(FRAMES), "--figures")
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(argv)
    prefix = output / "S1" / "rec"
    files = sorted(p for p in (output / "S1").iterdir())
    return FirstRun(
        Run(code, out.getvalue(), err.getvalue()),
        output,
        prefix,
        json.loads((output / "manifest.json").read_text()),
        {p.name: p.stat().st_mtime_ns for p in files},
    )


def test_exit_code_and_summary_line(first_run):
    assert first_run.run.code == 0, first_run.run.stderr
    assert first_run.run.stdout.startswith("1 done, 0 skipped, 0 failed")


def test_outputs_are_written(first_run):
    names = set(first_run.mtimes)
    assert {
        "rec_0.nut",
        "rec_1.nut",
        "rec_2.nut",
        "rec_fit.npz",
        "rec_fit.json",
        "rec_calibration.json",
        "rec_stages.png",
    } <= names
    assert not [n for n in names if n.startswith(".") or "tmp" in n]  # no temporary leftovers


def test_mesh_sequence_is_near_the_truth(first_run, studio_capture, face_model):
    vertices = decode_nut(first_run.prefix, num_vertices=face_model.num_vertices)
    assert vertices.shape == (FRAMES, face_model.num_vertices, 3)
    face = face_model.regions["face"]
    truth = studio_capture.truth.vertices[:FRAMES]
    error = np.linalg.norm(vertices[:, face] - truth[:, face], axis=-1).mean(axis=1) * 1000.0
    assert (error < 4.0).all(), error  # estimated calibration, a few iterations (~2 mm)


def test_fit_json(first_run, face_model):
    record = json.loads(fit_json_path(first_run.prefix).read_text())
    assert set(record) == {"version", "summary", "config", "frames"}
    assert resolve_config(overrides=SETTINGS).to_dict() == record["config"]
    frames = record["frames"]
    assert [f["index"] for f in frames] == list(range(FRAMES))
    assert all(f["status"] == "ok" and f["cameras_with_landmarks"] == 3 for f in frames)
    summary = record["summary"]
    assert summary["frames"] == FRAMES and summary["ok"] == FRAMES and summary["failed"] == 0
    assert summary["face_model"] == MODEL_SPEC
    assert summary["calibration"].endswith("rec_calibration.json")
    assert [s["stage"] for s in summary["stages"]] == ["landmark", "model", "vertex"]
    assert [s["iterations"] for s in summary["stages"]] == [100, 10, 3]
    truth = summary["ground_truth"]
    assert set(truth) == {"first_frame_after_stage", "sequence", "sequence_unsmoothed"}
    assert set(truth["first_frame_after_stage"]) == {"landmark", "model", "vertex"}
    for errors in (truth["sequence"], *truth["first_frame_after_stage"].values()):
        assert {"face", "lip", "eyes"} <= set(errors)
        assert 0 < errors["face"]["mean_mm"] <= errors["face"]["p95_mm"] < 30
    # a few iterations only: the stage order is tested on the rendered scene (test_fitting)
    stages = truth["first_frame_after_stage"]
    assert stages["vertex"]["face"]["mean_mm"] < 5.0


def test_fit_npz(first_run, face_model):
    with np.load(f"{first_run.prefix}_fit.npz") as data:
        assert data["raw_vertices"].shape == (FRAMES, face_model.num_vertices, 3)
        assert data["stage_vertices"].shape == (3, face_model.num_vertices, 3)
        np.testing.assert_array_equal(data["faces"], face_model.faces)
        assert float(data["fps"]) == 30.0
        assert data["coefficients_expression"].shape == (FRAMES, face_model.expression_dims)
        assert data["coefficients_identity"].shape == (face_model.identity_dims,)
    nut = decode_nut(first_run.prefix, num_vertices=face_model.num_vertices)
    with np.load(f"{first_run.prefix}_fit.npz") as data:  # 2 frames: not filtered
        np.testing.assert_allclose(nut, data["raw_vertices"], atol=2e-4)  # 16-bit .nut


def test_manifest_says_done(first_run):
    manifest = first_run.manifest
    assert manifest["desc"] == "reconstruct" and manifest["remaining"] == 0
    assert manifest["totals"] == {"done": 1, "skipped": 0, "failed": 0}
    job = manifest["jobs"]["S1/rec"]
    assert job["status"] == "done" and job["reason"] is None
    assert job["summary"]["frames"] == FRAMES


def test_stage_figure_png(first_run):
    from PIL import Image

    with Image.open(f"{first_run.prefix}_stages.png") as image:
        assert image.format == "PNG"
        width, height = image.size
        pixels = np.asarray(image.convert("RGB"))
    # 8 columns (colour, depth, 3 x (overlay, error)) by 4 rows (3 cameras + the truth)
    assert 800 < width < 2500 and 400 < height < 1500 and width > height
    assert pixels.std() > 20  # a picture, not a blank page


def test_rerun_skips_and_leaves_outputs_alone(first_run, studio_capture, capsys):
    run = run_cli(command(studio_capture.folder, first_run.output, "--frames", str(FRAMES)), capsys)
    assert run.code == 0 and run.stdout.startswith("0 done, 1 skipped, 0 failed")
    mtimes = {p.name: p.stat().st_mtime_ns for p in (first_run.output / "S1").iterdir()}
    assert mtimes == first_run.mtimes
    manifest = json.loads((first_run.output / "manifest.json").read_text())
    job = manifest["jobs"]["S1/rec"]
    assert job["status"] == "skipped" and job["summary"]["frames"] == FRAMES  # kept


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "input folder not found"),
        (("--calibration", "MISSING"), "calibration file not found"),
        (("--set", "scale=2"), "scale must be in"),
        (("--set", "bogus=1"), "unknown key 'bogus'"),
        (("--frames", "0"), "--frames must be >= 1"),
        (("--face-model", "synth:grid_columns=3"), "grid_columns"),
    ],
)
def test_bad_input_exits_2_with_one_line(extra, message, studio_capture, tmp_path, capsys):
    source = tmp_path / "nowhere" if not extra else studio_capture.folder
    extra = tuple(str(tmp_path / e) if e == "MISSING" else e for e in extra)
    run = run_cli(command(source, tmp_path / "out", *extra), capsys)
    assert run.code == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmface4d: error:")
    assert message in lines[0]
    assert not (tmp_path / "out" / "S1").exists()


def test_an_empty_folder_is_refused(tmp_path, capsys):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    run = run_cli(command(tmp_path / "empty", tmp_path / "out"), capsys)
    assert run.code == 2 and "no recording found" in run.stderr


def test_a_corrupt_recording_fails_alone(first_run, studio_capture, tmp_path, capsys):
    """A folder of two recordings, one with a corrupt depth video; the given calibration (the
    first run's) is used for both."""
    batch = tmp_path / "batch"
    shutil.copytree(studio_capture.folder, batch / "S1")
    shutil.copytree(studio_capture.folder, batch / "S2")
    (batch / "S2" / "rec_1.nut").write_bytes(b"this is not a video")
    calibration = f"{first_run.prefix}_calibration.json"
    output = tmp_path / "out"
    run = run_cli(command(batch, output, "--frames", "1", "--calibration", calibration), capsys)
    assert run.code == 1  # failures are listed and the status says so (see the manifest)
    assert run.stdout.startswith("1 done, 0 skipped, 1 failed")
    assert "S2/rec:" in run.stdout
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["jobs"]["S1/rec"]["status"] == "done"
    failed = manifest["jobs"]["S2/rec"]
    assert failed["status"] == "failed" and "rec_1.nut" in failed["reason"]
    assert fit_json_path(output / "S1" / "rec").is_file()
    assert not fit_json_path(output / "S2" / "rec").exists()
    record = json.loads(fit_json_path(output / "S1" / "rec").read_text())
    assert record["summary"]["calibration"] == str(Path(calibration).resolve())
    assert not (output / "S1" / "rec_calibration.json").exists()  # not estimated again
    # a re-run retries the failed one only
    run = run_cli(command(batch, output, "--frames", "1", "--calibration", calibration), capsys)
    assert run.stdout.startswith("0 done, 1 skipped, 1 failed")


def test_a_calibration_of_other_cameras_fails_the_job(first_run, studio_capture, tmp_path, capsys):
    record = json.loads(Path(f"{first_run.prefix}_calibration.json").read_text())
    wrong = tmp_path / "two_cameras.json"
    record["cameras"] = record["cameras"][:2]
    wrong.write_text(json.dumps(record))
    argv = command(studio_capture.folder, tmp_path / "out", "--frames", "1")
    run = run_cli([*argv, "--calibration", str(wrong)], capsys)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    reason = manifest["jobs"]["S1/rec"]["reason"]
    assert run.code == 1 and manifest["jobs"]["S1/rec"]["status"] == "failed"
    assert reason.startswith("InputError:")
    assert "calibrates 2 cameras, the recording has 3" in reason


def test_find_tasks(studio_capture, tmp_path):
    single = find_tasks(studio_capture.folder)
    assert [(key, rec) for key, _, rec in single] == [("S1/rec", "rec")]
    parent = find_tasks(studio_capture.folder.parent)
    assert [key for key, _, _ in parent] == ["S1/rec"]
    with pytest.raises(InputError, match="input folder not found"):
        find_tasks(tmp_path / "missing")
    with pytest.raises(InputError, match="no recording found"):
        find_tasks(tmp_path)


def test_reconstruct_validates_its_arguments(studio_capture, tmp_path):
    for kwargs, message in (
        ({"landmarks": "guess"}, "--landmarks"),
        ({"frames": 0}, "--frames"),
        ({"calibration": tmp_path / "none.json"}, "calibration file not found"),
        ({"face_model": "nope"}, "not understood"),
        ({"executor": "cloud"}, "executor"),
    ):
        with pytest.raises(InputError, match=message):
            reconstruct(studio_capture.folder, tmp_path / "out", progress=False, **kwargs)


@pytest.mark.slow  # starting Ray takes ~14 s on a busy core
def test_ray_executor(first_run, studio_capture, tmp_path, capsys):
    pytest.importorskip("ray", exc_type=ImportError)
    calibration = f"{first_run.prefix}_calibration.json"
    argv = command(studio_capture.folder, tmp_path / "out", "--frames", "1")
    run = run_cli(
        [*argv, "--calibration", calibration, "--executor", "ray", "--workers", "1"], capsys
    )
    assert run.code == 0 and run.stdout.startswith("1 done, 0 skipped, 0 failed"), run.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["jobs"]["S1/rec"]["status"] == "done"
    assert fit_json_path(tmp_path / "out" / "S1" / "rec").is_file()


def _strict_json(text: str) -> object:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_outputs_are_strict_json_when_a_stage_is_skipped(
    first_run, studio_capture, tmp_path, capsys
):
    calibration = f"{first_run.prefix}_calibration.json"
    output = tmp_path / "out"
    skip_stages = ["--set", "vertex_stage.iterations=0", "--set", "tracking_stage.iterations=0"]
    argv = command(studio_capture.folder, output, "--frames", "2", "--calibration", calibration)
    run = run_cli([*argv, *skip_stages], capsys)
    assert run.code == 0 and run.stdout.startswith("1 done")
    _strict_json((output / "manifest.json").read_text())
    _strict_json(fit_json_path(output / "S1" / "rec").read_text())
