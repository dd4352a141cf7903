"""``mmface4d data stats``: the paper's dataset analysis over packed stores (stats.json + PNGs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.io

from mmface4d.atomic import atomic_path
from mmface4d.data.plots import plot_demographics, plot_lip_velocity, plot_region_graph
from mmface4d.data.stats import DatasetStats, compute_stats
from mmface4d.data.store import Store
from mmface4d.errors import InputError
from mmface4d.facemodel.model import FaceModel
from mmface4d.facemodel.regions import landmark_regions

#: Local regions correlated in Fig. 4(d) (bilateral ones split into left and right) and the
#: skull-fixed regions that remove head motion.
LOCAL_REGIONS = ("lip", "chin", "cheeks", "nose", "eyes", "forehead")
BILATERAL = ("cheeks", "eyes")
SKULL_REGIONS = ("forehead", "nose")


def _keypoints(source: str | Path) -> np.ndarray:
    """(68,) 0-based landmark vertices from a Deep3DFaceRecon ``facemodel_info.mat``."""
    mat = scipy.io.loadmat(str(source), variable_names=["keypoints"])
    if "keypoints" not in mat:
        raise InputError(f"{source}: no 'keypoints' field (expected facemodel_info.mat)")
    return mat["keypoints"].ravel().astype(np.int64) - 1


def _face_model(source: str | Path | None, num_vertices: int) -> FaceModel:
    """The face model ``source`` (default ``synth``), checked to have the store's V."""
    from mmface4d.facemodel.sources import load_face_model

    model = load_face_model(str(source or "synth"))
    if model.num_vertices != num_vertices:
        raise InputError(
            f"face model {source or 'synth'} has {model.num_vertices} vertices, the store "
            f"{num_vertices}; pass a face model, facemodel_info.mat or region folder of its "
            "topology (--regions)"
        )
    return model


def _is_mat(source: str | Path | None) -> bool:
    return source is not None and Path(str(source)).suffix == ".mat"


def resolve_regions(source: str | Path | None, template: np.ndarray) -> dict[str, np.ndarray]:
    """Region index sets for a store's topology.

    Args:
        source: a face model spec of the same topology (``synth``, ``bfm:DIR``, a model
            ``.npz``); a Deep3DFaceRecon ``facemodel_info.mat`` (its 68 ``keypoints`` define the
            regions on the store's template, see :mod:`mmface4d.facemodel.regions`); or a folder
            of ``<region>.txt`` index files (``facemodel export --regions-dir``). None: the default
            face model when the vertex count matches.
        template: (V, 3) a template of the store.
    """
    V = len(template)
    if _is_mat(source):
        return landmark_regions(template, _keypoints(source), np.arange(V))
    if source is not None and Path(str(source)).is_dir():
        regions = {
            p.stem: np.loadtxt(p, dtype=np.int64, ndmin=1) for p in Path(source).glob("*.txt")
        }
        if not regions:
            raise InputError(f"{source}: no <region>.txt index files")
    else:
        regions = _face_model(source, V).regions
    if "lip" not in regions or max(int(r.max()) for r in regions.values()) >= V:
        raise InputError(f"regions from {source} do not fit a {V}-vertex store or lack 'lip'")
    return regions


def resolve_landmarks(source: str | Path | None, template: np.ndarray) -> np.ndarray:
    """The 68 iBUG landmark vertex indices of a store's topology.

    Args:
        source: a face model spec of the same topology or a Deep3DFaceRecon
            ``facemodel_info.mat`` (its ``keypoints``); None: the default face model when the
            vertex count matches.
        template: (V, 3) a template of the store.

    Returns:
        (68,) int64 vertex indices.
    """
    V = len(template)
    if _is_mat(source):
        landmarks = _keypoints(source)
    else:
        landmarks = np.asarray(_face_model(source, V).landmarks, dtype=np.int64)
    if landmarks.shape != (68,) or landmarks.min() < 0 or landmarks.max() >= V:
        raise InputError(f"landmarks from {source}: expected 68 vertex indices below {V}")
    return landmarks


def local_regions(regions: dict[str, np.ndarray], frontal: np.ndarray) -> dict[str, np.ndarray]:
    """The Fig. 4(d) partition: :data:`LOCAL_REGIONS`, bilateral ones split at the midline.

    Args:
        regions: the model's regions.
        frontal: (V, 2) frontal coordinates (x towards the subject's left).
    """
    local = {}
    for name in LOCAL_REGIONS:
        if name not in regions:
            continue
        idx = regions[name]
        if name in BILATERAL:
            mid = np.median(frontal[regions["lip"], 0])
            local[f"{name}_right"] = idx[frontal[idx, 0] < mid]
            local[f"{name}_left"] = idx[frontal[idx, 0] >= mid]
        else:
            local[name] = idx
    return {n: idx for n, idx in local.items() if len(idx)}


def store_stats(
    store: Store, regions_source: str | Path | None = None
) -> tuple[DatasetStats, dict]:
    """Statistics of every sequence of a store; also returns the regions used."""
    records = store.records
    if not records:
        raise InputError(f"{store.url}: the store holds no sequences")
    ids = sorted(records)
    first = records[ids[0]]
    regions = resolve_regions(regions_source, store.read_template(first.subject))
    fps = {records[i].fps for i in ids}
    if len(fps) != 1:
        raise InputError(f"{store.url}: sequences have different frame rates {sorted(fps)}")
    seqs = [store.read_vertices(i) for i in ids]
    meta = [
        {"age": records[i].age, "gender": records[i].gender, "emotion": records[i].emotion}
        for i in ids
    ]
    local = local_regions(regions, _frontal(store.read_template(first.subject), regions))
    anchors = [regions[n] for n in SKULL_REGIONS if n in regions]
    stats = compute_stats(
        seqs,
        [records[i].subject for i in ids],
        ids,
        local,
        fps.pop(),
        meta,
        stabilise_on=np.concatenate(anchors) if anchors else None,
    )
    return stats, regions


def stats(stores: list[str | Path], output: str | Path, regions: str | Path | None = None) -> Path:
    """Write ``stats.json`` and the Fig. 4 PNGs of the first store; compare v(lip) across all.

    Args:
        stores: one or more packed stores (the first is analysed in full).
        output: folder for ``stats.json``, ``lip_velocity.png``, ``demographics.png``,
            ``region_graph.png``.
        regions: where the first store's regions come from (see :func:`resolve_regions`).

    Returns:
        The ``stats.json`` path.
    """
    if not stores:
        raise InputError("data stats: give at least one store")
    out = Path(output)
    if out.is_file():
        raise InputError(f"{out}: is a file, expected an output folder")
    main = Store(stores[0])
    main_stats, region_sets = store_stats(main, regions)
    summary = main_stats.to_json()
    summary["head_motion_removed_on"] = [n for n in SKULL_REGIONS if n in region_sets]
    comparison = [_lip_row(str(stores[0]), main_stats)]
    for other in stores[1:]:
        other_stats, _ = store_stats(Store(other), None)
        comparison.append(_lip_row(str(other), other_stats))
    summary["lip_velocity_comparison"] = comparison
    out.mkdir(parents=True, exist_ok=True)
    plot_lip_velocity(main_stats, out / "lip_velocity.png")
    plot_demographics(main_stats, out / "demographics.png")
    template = main.read_template(main_stats.subjects[0])
    frontal = _frontal(template, region_sets)
    local = local_regions(region_sets, frontal)
    centroids = {n: frontal[local[n]].mean(0) for n in main_stats.correlation_regions}
    face = region_sets.get("face", np.arange(len(template)))
    plot_region_graph(main_stats, centroids, frontal[face], out / "region_graph.png")
    path = out / "stats.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    return path


def _lip_row(name: str, s: DatasetStats) -> dict[str, object]:
    v = s.velocity["lip"].mean(axis=0)
    return {
        "store": name,
        "sequences": len(s.sequence_ids),
        "v_lip_m_per_s": (v * s.fps).tolist(),
        "v_lip_norm_mm_per_s": float(np.linalg.norm(v) * s.fps * 1000),
    }


def _frontal(template: np.ndarray, regions: dict[str, np.ndarray]) -> np.ndarray:
    """(V, 2) frontal coordinates (x to the subject's left, y up) of any template's frame."""
    lip, eyes = regions["lip"], regions.get("eyes")
    if eyes is None:
        return template[:, :2]
    # up: lips -> eyes; right: principal horizontal axis of the eye region
    up = template[eyes].mean(0) - template[lip].mean(0)
    up /= np.linalg.norm(up)
    centred = template[eyes] - template[eyes].mean(0)
    right = np.linalg.svd(centred - np.outer(centred @ up, up), full_matrices=False)[2][0]
    if right[0] < 0:
        right = -right
    return np.stack([(template - template.mean(0)) @ right, (template - template.mean(0)) @ up], 1)
