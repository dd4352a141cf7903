"""Issue 17's benchmark: register the face model to test heads with known correspondence, carry
a real speech animation onto them, and measure both against the truth.

    .venv/bin/python benchmarks/character/bench_character.py                 # all 64 cases
    .venv/bin/python benchmarks/character/bench_character.py --sources synth --identities 1

Each case (``meshes.build_cases``: ICT FaceKit's neutral and identities, the face model's own
identities; original, decimated to 5k vertices, subdivided, re-triangulated, in mm and cm,
turned 30 degrees) is written as the OBJ a user would hand in and registered from that file
like ``mmface4d character register`` does (unit detected, landmarks detected, no cache). Then:

- surface error: distance of the fitted model's face vertices (the model's ``face`` region) to
  the true surface's face area, mm;
- landmark error: the registration's 68 landmarks (detected, lifted onto the head) and the
  fitted model's own 68 landmark vertices against the true ones, mm (inner 51 = without the
  jaw line, whose points are not anatomical on every mesh);
- transfer: the default animator animates a real English clip on the fitted model
  (``template=character.fitted``), the frames are carried to the head (``Character.animate_frames``)
  and the head's inner-lip gap (between its vertices nearest the true inner-lip landmarks) is
  compared with the source's, frame by frame: median absolute difference, of the gap (distance)
  and of the opening (height of the upper over the lower lip: a neutral mouth whose lower lip
  sits behind the upper one has a gap at rest but no opening), and how many of the frames where
  the source's lips are shut (opening < 1 mm) are shut on the head; triangles turned over
  (normal turned > 90 degrees from the neutral) per frame on the head (all; those whose corners
  all sit on the model; the filled-in rest) and, for reference, on the source; frames per
  second of the transfer (a warm call: the one-off factorisation of a character's fill is
  timed apart).

Every case is one JSON line in ``--work/cases.jsonl`` (a re-run resumes); the summary goes to
``--output`` (default ``benchmarks/results/character.json``) with the command and machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import meshes  # noqa: E402

from _machine import commit, machine  # noqa: E402

SPEECH = meshes.SHARED_DATA / "speech" / "english_male_test.wav"
INNER = np.arange(17, 68)  # the 51 landmarks without the jaw line
TARGETS = {
    "surface_mean_mm": 1.5,
    "landmark_median_mm": 3.0,
    "seconds": 60.0,
    "lip_gap_follow_mm": 1.0,
    "inverted_max": 0,
    "transfer_fps": 100.0,
}


def _to_case_frame(character, points_model_frame: np.ndarray, case) -> np.ndarray:
    """Model-frame points (the fitted model's) -> the case's file frame and unit."""
    head = character.model_points(points_model_frame)  # character frame, metres
    return (head @ character.to_source.T) * meshes.UNITS_PER_METRE[case.unit]


def _gap_landmarks(case) -> np.ndarray:
    """(68,) head vertex standing for each true landmark: the source's landmark vertices where
    the head keeps them; else the nearest vertex, and for the inner lips the nearest of the
    skin (the largest component) on the right lip: an upper-lip vertex has its mesh neighbours
    above it on average, a lower-lip one below (closed lips put both lips' vertices at the
    same spot)."""
    import scipy.sparse as sp
    from scipy.spatial import cKDTree

    from mmface4d.character.mesh import connected_components

    vertices, truth, faces = case.head_vertices, case.landmarks_true, case.head_faces
    tree = cKDTree(vertices)
    out = tree.query(truth)[1]
    skin = connected_components(vertices, faces) == 0  # not the teeth or the eyes
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adjacency = sp.coo_matrix(
        (np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(len(vertices),) * 2
    ).tocsr()
    adjacency = ((adjacency + adjacency.T) > 0).astype(np.float64)
    degree = np.maximum(np.asarray(adjacency.sum(axis=1)).ravel(), 1.0)
    rise = (adjacency @ vertices / degree[:, None] - vertices) @ (
        case.transform.rotation @ np.array([0.0, 1.0, 0.0])
    )
    if case.landmark_vertices is not None:  # the head keeps the source's vertices
        kept = np.asarray(case.landmark_vertices)
        if np.allclose(vertices[kept], truth, atol=1e-6 / case.mm_per_unit):
            return kept
    reach = 4.0 / case.mm_per_unit
    for index, sign in ((61, 1), (62, 1), (63, 1), (65, -1), (66, -1), (67, -1)):
        near = np.array(tree.query_ball_point(truth[index], reach), dtype=np.int64)
        near = near[(sign * rise[near] > 0) & skin[near]]
        if len(near):
            out[index] = near[np.argmin(np.linalg.norm(vertices[near] - truth[index], axis=1))]
    return out


def run_case(case, work: Path, model, animator, source_frames_cache: dict) -> dict:
    from mmface4d.animate.metrics import CLOSED_GAP, inner_lip_gap
    from mmface4d.character.character import register_character
    from mmface4d.character.transfer import inverted_triangles
    from mmface4d.facemodel.regions import INNER_LIP_PAIRS

    path = work / "heads" / f"{case.name}.obj"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        meshes.write_obj(path, case.head_vertices, case.head_faces)
    start = time.perf_counter()
    character = register_character(path, model, cache=False)
    seconds = time.perf_counter() - start
    mm = case.mm_per_unit
    row: dict = {
        "case": case.name,
        "vertices": len(case.head_vertices),
        "unit": case.unit,
        "unit_detected": character.source_unit,
        "seconds": round(seconds, 1),
    }
    # the character's own vertices in the case frame must be the file's: checks the frames
    back = (character.vertices.astype(np.float64) @ character.to_source.T) * (
        meshes.UNITS_PER_METRE[case.unit]
    )
    row["frame_check_mm"] = float(np.abs(back - case.head_vertices).max() * mm)

    face = np.asarray(model.regions["face"])
    fitted_case = _to_case_frame(character, character.fitted.astype(np.float64), case)
    surface = meshes.surface_error(fitted_case[face], case.truth_vertices, case.truth_face_faces)
    row["surface_mean_mm"] = float(surface.mean() * mm)
    row["surface_p95_mm"] = float(np.percentile(surface, 95) * mm)
    detected = (character.landmarks.astype(np.float64) @ character.to_source.T) * (
        meshes.UNITS_PER_METRE[case.unit]
    )
    err_detected = np.linalg.norm(detected - case.landmarks_true, axis=1) * mm
    err_fitted = np.linalg.norm(fitted_case[model.landmarks] - case.landmarks_true, axis=1) * mm
    row["landmark_detected_median_mm"] = float(np.median(err_detected[INNER]))
    row["landmark_fitted_median_mm"] = float(np.median(err_fitted[INNER]))
    row["landmark_fitted_median_all68_mm"] = float(np.median(err_fitted))

    # transfer of a real speech animation of the fitted model
    source = animator_frames(animator, character, source_frames_cache)
    character.animate_frames(source[:2])  # the one-off factorisation
    start = time.perf_counter()
    frames = character.animate_frames(source)
    row["transfer_fps"] = round(len(frames) / (time.perf_counter() - start), 1)
    lips = _gap_landmarks(case)
    pairs = np.array(INNER_LIP_PAIRS)

    def opening(vertices: np.ndarray, landmarks: np.ndarray, up: np.ndarray) -> np.ndarray:
        """(T,) mm, mean over the inner-lip pairs of the upper point's height over the lower
        one's along ``up``: 0 when the lips touch, whatever their offset front to back."""
        ids = np.asarray(landmarks)[pairs]
        rise = (vertices[:, ids[:, 0]] - vertices[:, ids[:, 1]]) @ up
        return rise.mean(axis=1) * 1000.0

    model_up = np.array([0.0, 1.0, 0.0])  # the model frame's up
    head_up = character.to_head @ model_up  # the character's frame is the file's, turned
    head_up /= np.linalg.norm(head_up)

    frames64, source64 = frames.astype(np.float64), source.astype(np.float64)
    gap_head = inner_lip_gap(frames64, lips) * 1000.0
    gap_source = inner_lip_gap(source64, np.asarray(model.landmarks)) * 1000.0
    open_head = opening(frames64, lips, head_up)
    open_source = opening(source64, model.landmarks, model_up)
    row["lip_gap_follow_mm"] = float(np.median(np.abs(gap_head - gap_source)))
    row["lip_opening_follow_mm"] = float(np.median(np.abs(open_head - open_source)))
    row["lip_rest_mm"] = {
        "gap_head": float(inner_lip_gap(character.vertices[None], lips)[0] * 1e3),
        "gap_source": float(inner_lip_gap(character.fitted[None], model.landmarks)[0] * 1e3),
        "opening_head": float(
            opening(character.vertices[None].astype(np.float64), lips, head_up)[0]
        ),
        "opening_source": float(
            opening(character.fitted[None].astype(np.float64), model.landmarks, model_up)[0]
        ),
    }
    shut = open_source < CLOSED_GAP * 1000
    row["source_shut_frames"] = int(shut.sum())
    row["shut_where_source_shut"] = (
        float((open_head[shut] < CLOSED_GAP * 1000).mean()) if shut.any() else None
    )
    inverted = inverted_triangles(character.vertices, frames, character.faces)
    inverted_source = inverted_triangles(character.fitted, source, model.faces)
    row["inverted_max"] = int(inverted.max())
    row["inverted_mean"] = float(inverted.mean())
    # the same count over the triangles whose corners all sit on the model (the skin the
    # model's motion carries) and over the rest (filled in: mouth socket, inner lips, neck)
    on_model = (character.weights[character.faces] > 0.5).all(axis=1)
    inverted_on = inverted_triangles(character.vertices, frames, character.faces[on_model])
    row["inverted_on_model_max"] = int(inverted_on.max())
    row["inverted_filled_max"] = int((inverted - inverted_on).max())
    row["inverted_source_max"] = int(inverted_source.max())
    row["inverted_source_mean"] = float(inverted_source.mean())
    return row


def animator_frames(animator, character, cache: dict) -> np.ndarray:
    """The default animator's frames of :data:`SPEECH` on the character's fitted model."""
    from mmface4d.animate.api import animate

    key = character.fitted.tobytes()
    if key not in cache:
        cache.clear()
        result = animate(str(SPEECH), template=character.fitted)
        cache[key] = result.vertices
    return cache[key]


def summarise(rows: list[dict]) -> dict:
    def stats(key: str, subset: list[dict]) -> dict:
        values = np.array([r[key] for r in subset if r.get(key) is not None], dtype=np.float64)
        if not len(values):
            return {}
        return {
            "median": round(float(np.median(values)), 3),
            "max": round(float(values.max()), 3),
        }

    keys = (
        "seconds",
        "surface_mean_mm",
        "surface_p95_mm",
        "landmark_detected_median_mm",
        "landmark_fitted_median_mm",
        "lip_gap_follow_mm",
        "lip_opening_follow_mm",
        "shut_where_source_shut",
        "inverted_max",
        "inverted_on_model_max",
        "inverted_filled_max",
        "inverted_source_max",
        "transfer_fps",
    )
    groups: dict[str, list[dict]] = {"all": rows}
    for r in rows:
        family = r["case"].split("-")[0]
        groups.setdefault(family, []).append(r)
    summary = {name: {k: stats(k, sub) for k in keys} for name, sub in groups.items()}
    for name, sub in groups.items():
        summary[name]["cases"] = len(sub)
    met = {
        "surface_mean_mm": all(r["surface_mean_mm"] <= TARGETS["surface_mean_mm"] for r in rows),
        "landmark_median_mm": all(
            min(r["landmark_detected_median_mm"], r["landmark_fitted_median_mm"])
            <= TARGETS["landmark_median_mm"]
            for r in rows
        ),
        "seconds": all(r["seconds"] <= TARGETS["seconds"] for r in rows),
        "lip_gap_follow_mm": all(
            r["lip_gap_follow_mm"] <= TARGETS["lip_gap_follow_mm"] for r in rows
        ),
        "lip_opening_follow_mm": all(
            r["lip_opening_follow_mm"] <= TARGETS["lip_gap_follow_mm"] for r in rows
        ),
        "inverted_max": all(r["inverted_max"] <= TARGETS["inverted_max"] for r in rows),
        "transfer_fps": all(r["transfer_fps"] >= TARGETS["transfer_fps"] for r in rows),
    }
    return {"summary": summary, "targets": TARGETS, "met_in_every_case": met}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "work" / "bench_character")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "benchmarks" / "results" / "character.json"
    )
    parser.add_argument("--sources", nargs="+", default=list(meshes.SOURCES))
    parser.add_argument("--variants", nargs="+", default=list(meshes.VARIANTS))
    parser.add_argument("--identities", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None, help="case names to run")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)

    from mmface4d.animate.api import load_animator

    args.work.mkdir(parents=True, exist_ok=True)
    done_file = args.work / "cases.jsonl"
    done = {}
    if done_file.is_file():
        for line in done_file.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["case"]] = row
    animator = load_animator("default", None, "cpu")
    model = animator.face_model
    cases = meshes.build_cases(tuple(args.sources), tuple(args.variants), args.identities)
    if args.only:
        cases = [c for c in cases if c.name in set(args.only)]
    cache: dict = {}
    for i, case in enumerate(cases):
        if case.name in done:
            continue
        print(f"[{i + 1}/{len(cases)}] {case.name}", flush=True)
        try:
            row = run_case(case, args.work, model, animator, cache)
        except Exception as error:  # a failed case is a result too
            row = {"case": case.name, "error": f"{type(error).__name__}: {error}"}
        row["commit"] = commit()
        row["load_average_1_5_15_min"] = [round(x, 2) for x in os.getloadavg()]
        with done_file.open("a") as f:
            f.write(json.dumps(row) + "\n")
        done[case.name] = row
        print("   ", json.dumps(row), flush=True)
    names = [c.name for c in cases]
    rows = [done[n] for n in names if n in done and "error" not in done[n]]
    failed = [done[n] for n in names if n in done and "error" in done[n]]
    result = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "speech": SPEECH.name,
        "note": args.note,
        "machine": machine(("mediapipe",)),
        **(summarise(rows) if rows else {}),
        "failed": failed,
        "cases": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(args.output)
    print(f"wrote {args.output}: {len(rows)} cases, {len(failed)} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
