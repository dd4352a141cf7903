"""Inference: packaged animators, built-in styles, windowed synthesis, the animate() API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import mmface4d
from mmface4d.animate.animator import Animator
from mmface4d.animate.api import SilentAudioWarning, animate, speech_samples
from mmface4d.animate.checkpoint import load_run
from mmface4d.animate.packaging import package_animator
from mmface4d.animate.streaming import offline_settings
from mmface4d.errors import InputError
from mmface4d.geometry.frames import from_camera_frame, to_camera_frame


def test_camera_frame_round_trip() -> None:
    points = np.random.default_rng(0).standard_normal((4, 5, 3)).astype(np.float32)
    camera = to_camera_frame(points, 0.7)
    np.testing.assert_allclose(camera[..., 1], -points[..., 1])
    np.testing.assert_allclose(from_camera_frame(camera, 0.7), points, atol=1e-6)


def test_packaged_animator_matches_the_run(animator: Animator, tiny_run: Path) -> None:
    assert animator.frame == "camera" and animator.fps == 30.0
    assert animator.styles and all("-" not in k or k.split("-")[1] for k in animator.styles)
    style = next(iter(animator.styles.values()))
    assert style.expression.shape[1] == animator.face_model.expression_dims
    run = load_run(tiny_run)
    audio = np.random.default_rng(1).standard_normal(16_000).astype(np.float32) * 0.1
    template = animator.subject_template(None)
    reference = animator.style_reference(None)
    ours = animator.synthesise(audio, animator.speaker(template, reference))
    expected = run.predict(
        torch.as_tensor(audio),
        30.0,
        torch.as_tensor(to_camera_frame(template, animator.camera_distance)),
        torch.as_tensor(to_camera_frame(reference, animator.camera_distance)),
    ).numpy()
    expected = from_camera_frame(expected, animator.camera_distance)
    assert ours.shape == (30, animator.num_vertices, 3)
    smoothed = animator.info["inner_lip_landmarks_smoothed"]  # their own test below
    assert len(smoothed) == 6
    keep = np.setdiff1d(np.arange(animator.num_vertices), smoothed)
    np.testing.assert_allclose(ours[:, keep], expected[:, keep], atol=2e-4)  # float16 weights


def _ring_mean_offsets(offsets: np.ndarray, faces: np.ndarray, vertices: list[int]):
    """(T, K, 3) mean offset of each vertex's mesh neighbours that are not in ``vertices``."""
    out = []
    for v in vertices:
        ring = np.setdiff1d(np.unique(faces[(faces == v).any(axis=1)]), vertices)
        out.append(offsets[:, ring].mean(axis=1))
    return np.stack(out, axis=1)


def test_packaging_makes_the_inner_lip_landmarks_move_with_their_neighbours(
    animator: Animator,
) -> None:
    audio = (np.random.default_rng(2).standard_normal(16_000) * 0.1).astype(np.float32)
    template = animator.subject_template(None)
    speaker = animator.speaker(template, animator.style_reference(None))
    offsets = animator.synthesise(audio, speaker) - template[None]
    smoothed = list(animator.info["inner_lip_landmarks_smoothed"])
    expected = _ring_mean_offsets(offsets, animator.face_model.faces, smoothed)
    np.testing.assert_allclose(offsets[:, smoothed], expected, atol=2e-4)


def test_the_shipped_model_moves_no_inner_lip_landmark_on_its_own() -> None:
    # the lip-sync terms see these six vertices only; the shipped model once moved them 5-12 mm
    # away from the lip around them (spikes that closed the pairs while the lips stayed open)
    result = animate(text="Bob made a big map by the pump", closure=None, liveliness=None)
    fm = result.face_model
    lips = sorted(int(fm.landmarks[i]) for i in (61, 62, 63, 65, 66, 67))
    offsets = result.vertices - result.template[None]
    stray = np.linalg.norm(offsets[:, lips] - _ring_mean_offsets(offsets, fm.faces, lips), axis=2)
    assert stray.max() < 0.5e-3


def test_synthesise_gives_the_frames_asked_for(animator: Animator) -> None:
    audio = (np.random.default_rng(4).standard_normal(16_000) * 0.1).astype(np.float32)
    speaker = animator.speaker(animator.subject_template(None), animator.style_reference(None))
    assert animator.synthesise(audio, speaker, num_frames=27).shape[0] == 27
    with pytest.raises(InputError, match="num_frames"):
        animator.synthesise(audio, speaker, num_frames=0)


def test_stepped_synthesis(animator: Animator) -> None:
    rng = np.random.default_rng(2)
    audio = (rng.standard_normal(3 * 16_000) * 0.1).astype(np.float32)
    speaker = animator.speaker(animator.subject_template(None), animator.style_reference(None))
    whole = animator.synthesise(audio, speaker)
    same = animator.synthesise(audio, speaker, settings=offline_settings(6.0))
    np.testing.assert_array_equal(whole, same)  # one step either way (3 s < 3 s + 1 s)
    pieces = animator.synthesise(audio, speaker, settings=offline_settings(1.0))  # 0.5 s steps
    assert pieces.shape == whole.shape == (90, animator.num_vertices, 3)
    assert np.isfinite(pieces).all()
    step = np.linalg.norm(np.diff(pieces, axis=0), axis=2).max(axis=1)  # (T-1,)
    boundaries = [14, 29, 44, 59, 74]  # steps end every 15 frames
    inside = np.delete(step, boundaries)
    assert step[boundaries].max() <= 2.0 * inside.max()  # no jump at the joins


def test_animate_api_inputs(packaged: Path, animator: Animator) -> None:
    rng = np.random.default_rng(3)
    stereo = (rng.standard_normal((44_100, 2)) * 0.1).astype(np.float32)
    result = mmface4d.animate(stereo, sample_rate=44_100, model=packaged)
    assert result.vertices.shape == (30, animator.num_vertices, 3)
    assert result.faces.shape[1] == 3 and result.audio.shape == (16_000,)
    subject = next(iter(animator.styles)).split("-")[0]
    other = animate(stereo, sample_rate=44_100, model=packaged, subject=subject)
    assert not np.allclose(other.template, result.template)  # the subject's own face
    spoken = animate(text="hello there", model=packaged)
    assert spoken.vertices.shape[0] == round(spoken.audio.size * 30 / 16_000)
    with pytest.warns(SilentAudioWarning, match="silent"):
        rest = animate(
            np.zeros(16_000, np.float32), sample_rate=16_000, model=packaged, liveliness=None
        )
    np.testing.assert_array_equal(rest.vertices, np.repeat(rest.template[None], 30, axis=0))
    assert rest.metadata["silent"] is True
    with pytest.raises(InputError, match="at least 0.1 s"):
        animate(np.ones(100, np.float32), sample_rate=16_000, model=packaged)
    with pytest.raises(InputError, match="not a built-in style"):
        animate(stereo, sample_rate=44_100, model=packaged, style="nobody")
    with pytest.raises(InputError, match="no fear style"):
        animate(stereo, sample_rate=44_100, model=packaged, emotion="fear")
    with pytest.raises(InputError, match="expected"):
        animate(stereo, sample_rate=44_100, model=packaged, template=np.zeros((5, 3)))
    with pytest.raises(InputError, match="either"):
        speech_samples(None)


def test_corrupt_model_file(tmp_path: Path) -> None:
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a readable model file"):
        Animator.load(bad)
    with pytest.raises(InputError, match="no such model"):
        Animator.load(tmp_path / "missing.pt")


def test_packaging_refuses_corpora_with_head_motion(
    tiny_run: Path, tiny_store: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_store.parent / "corpus", corpus)
    info = json.loads((corpus / "corpus.json").read_text())
    info["config"]["head_motion"] = True
    (corpus / "corpus.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="head motion"):
        package_animator(tiny_run, tmp_path / "a.pt", corpus, tiny_store)


def test_a_camera_frame_style_file_reaches_the_model_as_recorded(
    animator: Animator, tmp_path: Path
) -> None:
    from mmface4d.animate.api import load_style

    recorded = to_camera_frame(animator.style_reference(None), animator.camera_distance)
    np.savez(tmp_path / "ref.npz", vertices=recorded, frame="camera")
    reference, _ = load_style(str(tmp_path / "ref.npz"), animator)
    seen = to_camera_frame(reference, animator.camera_distance)  # what the model is given
    np.testing.assert_allclose(seen, recorded, atol=1e-6)


def test_a_prepared_speaker_animates_as_the_whole_model_call(animator: Animator) -> None:
    audio = (np.random.default_rng(5).standard_normal(16_000) * 0.1).astype(np.float32)
    template, reference = animator.subject_template(None), animator.style_reference(None)
    speaker = animator.speaker(template, reference)
    model = animator.pipeline.model
    calls: list[int] = []
    prepare = model.prepare_speaker
    model.prepare_speaker = lambda *a: calls.append(1) or prepare(*a)  # type: ignore[method-assign]
    try:
        once = animator.synthesise(audio, speaker)
        again = animator.synthesise(audio, speaker, settings=offline_settings(0.5))  # 4 steps
    finally:
        del model.prepare_speaker
    assert not calls  # the style path ran once, in speaker(), not per call or step
    np.testing.assert_allclose(once, again, atol=1e-3)  # steps: AdaIN statistics per window
    tpl = torch.as_tensor(to_camera_frame(template, animator.camera_distance))[None]
    ref = torch.as_tensor(to_camera_frame(reference, animator.camera_distance))[None]
    with torch.no_grad():
        whole = animator.pipeline(torch.as_tensor(audio)[None], 30.0, 30, tpl, ref)[0].numpy()
    np.testing.assert_allclose(once, from_camera_frame(whole, animator.camera_distance), atol=1e-6)
    other = animator.speaker(template + 0.002, reference)
    assert np.abs(animator.synthesise(audio, other) - once).max() > 1e-4


def test_speaker_rejects_a_reference_of_another_topology(animator: Animator) -> None:
    template = animator.subject_template(None)
    with pytest.raises(InputError, match="style reference"):
        animator.speaker(template, np.zeros((5, 10, 3), np.float32))
    with pytest.raises(InputError, match="speaker"):
        animator.synthesise(np.zeros(1600, np.float32), template)  # type: ignore[arg-type]
