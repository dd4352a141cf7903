"""Package a trained run as a self-contained animator file (how the shipped default is made).

The file (:data:`~mmface4d.animate.animator.ANIMATOR_FORMAT`) holds the model's weights in
float16, its configuration, the face model spec, the frame of its training data, and built-in
speaking styles taken from training recordings of a synthetic corpus, stored as face-model
coefficients (a few kilobytes each instead of megabytes of mesh frames).

Style ids: the subject id (``S001``) for its neutral recording, ``S001-happy`` etc. for its
emotional ones.

Packaging also smooths the decoder at the six inner-lip landmark vertices
(:func:`smooth_inner_lip_landmarks`): the lip-sync terms of training (``docs/LIPSYNC.md``)
measure the lips at those vertices only, and a model trained with them learns to move those
vertices on their own (spikes of 5-12 mm that close the three landmark pairs while the lips
around them stay open). Their rows of the last layer become the mean of their neighbours' rows,
so they move with the lip they belong to; the lip-closure layer then closes the whole lip.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmface4d.animate.animator import Animator, BuiltinStyle, animator_state
from mmface4d.animate.checkpoint import load_run
from mmface4d.atomic import atomic_path
from mmface4d.data.splits import load_splits
from mmface4d.data.store import Store
from mmface4d.errors import InputError
from mmface4d.facemodel.arkit import arkit_to_model_weights
from mmface4d.facemodel.model import FaceModel
from mmface4d.facemodel.regions import INNER_LIP_PAIRS
from mmface4d.facemodel.sources import load_face_model
from mmface4d.geometry.frames import CAMERA_DISTANCE


def corpus_styles(
    corpus: str | os.PathLike[str],
    subjects: list[str],
    expression_names: list[str],
    seconds: float = 4.0,
) -> dict[str, BuiltinStyle]:
    """Built-in styles from a synthetic corpus: per subject, its longest recording of each
    emotion, cut to at most ``seconds``.

    Args:
        corpus: a folder written by ``mmface4d synth corpus`` (with ``--no-head-motion``).
        subjects: subject ids to take.
        expression_names: the face model's expression names (ARKit weights are mapped to them).
        seconds: longest reference kept.
    """
    root = Path(corpus)
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        raise InputError(f"{root}: no manifest.csv (expected a synthetic corpus folder)")
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    styles: dict[str, BuiltinStyle] = {}
    for subject in subjects:
        mine = [r for r in rows if r["subject"] == subject]
        if not mine:
            raise InputError(f"{manifest}: no recording of subject {subject!r}")
        for emotion in sorted({r["emotion"] for r in mine}, key=lambda e: e != "neutral"):
            row = max(
                (r for r in mine if r["emotion"] == emotion), key=lambda r: float(r["duration_s"])
            )
            gt = np.load(root / f"{row['recording']}_gt.npz")
            fps = float(row["fps"])
            frames = min(len(gt["arkit_weights"]), int(round(seconds * fps)))
            expression = arkit_to_model_weights(expression_names, gt["arkit_weights"][:frames])
            name = subject if emotion == "neutral" else f"{subject}-{emotion}"
            styles[name] = BuiltinStyle(
                identity=np.asarray(gt["identity"], dtype=np.float32),
                expression=expression.astype(np.float32),
                fps=fps,
                source=row["recording"],
                emotion=emotion,
            )
    return styles


def package_animator(
    run: str | os.PathLike[str],
    output: str | os.PathLike[str],
    corpus: str | os.PathLike[str],
    store: str | os.PathLike[str],
    num_subjects: int = 4,
    face_model: str = "synth",
    info: dict[str, Any] | None = None,
) -> Path:
    """Write a run as an animator file with built-in styles of training subjects.

    Args:
        run: the training run folder.
        output: the ``.pt`` file to write (atomically).
        corpus: the synthetic corpus the store was packed from (pose-free, camera frame).
        store: the packed store (its split names the training subjects).
        num_subjects: how many training subjects become built-in styles (the first ones).
        face_model: the corpus's face model spec.
        info: facts to keep with the model (training command, measurements).
    """
    config = json.loads((Path(corpus) / "corpus.json").read_text()).get("config", {})
    if config.get("head_motion", True):
        raise InputError(f"{corpus}: has head motion; animators are trained on pose-free corpora")
    if config.get("face_model") != face_model:
        raise InputError(
            f"{corpus}: was made with face model {config.get('face_model')!r}, not {face_model!r}"
        )
    splits = load_splits(Store(store))
    if splits is None:
        raise InputError(f"{store}: no splits.json")
    subjects = sorted(s for s, names in splits.subjects.items() if names == ["train"])
    subjects = subjects[:num_subjects]
    trained = load_run(run)
    model = load_face_model(face_model)
    styles = corpus_styles(corpus, subjects, model.expression_names)
    animator = Animator(
        trained.pipeline,
        str(run),
        model,
        frame="camera",
        camera_distance=CAMERA_DISTANCE,
        fps=30.0,
        styles=styles,
        info=info,
    )
    state = animator_state(
        animator, trained.step, json.loads((Path(run) / "config.json").read_text()), face_model
    )
    smooth_inner_lip_landmarks(state, model)
    output = Path(output)
    with atomic_path(output) as tmp:
        torch.save(state, tmp)
    return output


#: The decoder's last layer in a packaged animator's weights (the paper's model: W_d and its bias).
DECODER_ROWS = ("net.decoding.weight", "net.decoding.bias")


def smooth_inner_lip_landmarks(state: dict[str, Any], model: FaceModel) -> list[int]:
    """Make the inner-lip landmark vertices move with their neighbours (see the module doc).

    Each of the six inner-lip landmark vertices (:data:`INNER_LIP_PAIRS`) gets, in every
    tensor of :data:`DECODER_ROWS`, the mean of the rows of its mesh neighbours that are not
    landmarks themselves: its offset becomes the mean of theirs, every frame, every input.
    Changes ``state`` (a packaged animator's) in place and records it in ``state["info"]``;
    a model without such a layer (FaceFormer, MeshTalk) is left as it is.

    Returns:
        The vertices smoothed (empty when nothing was done).
    """
    weights = state.get("model", {})
    if not all(key in weights for key in DECODER_ROWS):
        return []
    if state.get("num_vertices") != model.num_vertices:
        raise InputError(
            f"animator of {state.get('num_vertices')} vertices, face model of {model.num_vertices}"
        )
    landmarks = np.asarray(model.landmarks)
    spiky = sorted({int(landmarks[i]) for pair in INNER_LIP_PAIRS for i in pair})
    faces = np.asarray(model.faces)
    neighbours: dict[int, set[int]] = {v: set() for v in spiky}
    for a, b in ((0, 1), (1, 2), (2, 0)):
        for u, w in zip(faces[:, a].tolist(), faces[:, b].tolist(), strict=True):
            if u in neighbours:
                neighbours[u].add(w)
            if w in neighbours:
                neighbours[w].add(u)
    for key in DECODER_ROWS:
        rows = weights[key]
        shaped = rows.view(model.num_vertices, 3, *rows.shape[1:])
        source = shaped.float().clone()
        for vertex in spiky:
            ring = sorted(neighbours[vertex] - set(spiky))
            if ring:
                shaped[vertex] = source[ring].mean(dim=0).to(rows.dtype)
    info = dict(state.get("info") or {})
    info["inner_lip_landmarks_smoothed"] = spiky
    state["info"] = info
    return spiky
