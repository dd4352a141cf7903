"""Figures of the dataset analysis (the paper's Fig. 4), written as PNG with matplotlib."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mmface4d.atomic import save_figure  # noqa: E402
from mmface4d.data.stats import DatasetStats  # noqa: E402
from mmface4d.geometry.frames import MM_PER_M  # noqa: E402


def plot_lip_velocity(stats: DatasetStats, path: Path, highlight: int = 6) -> Path:
    """Fig. 4(a): v(lip) of every sequence in 3D; a few subjects coloured, the rest grey."""
    v = stats.velocity["lip"] * MM_PER_M  # mm per frame
    subjects = np.array(stats.subjects)
    counts = Counter(stats.subjects)
    chosen = [s for s, _ in counts.most_common(highlight)]
    fig = plt.figure(figsize=(7, 6))
    ax = fig.add_subplot(projection="3d")
    rest = ~np.isin(subjects, chosen)
    ax.scatter(*v[rest].T, c="0.75", s=10, label="other subjects" if rest.any() else None)
    colours = plt.get_cmap("tab10")
    for k, s in enumerate(chosen):
        m = subjects == s
        ax.scatter(*v[m].T, color=colours(k % 10), s=28, label=s)
    ax.set_xlabel("v_x (mm/frame)")
    ax.set_ylabel("v_y (mm/frame)")
    ax.set_zlabel("v_z (mm/frame)")
    ax.set_title(
        f"Lip velocity per sequence ({len(v)} sequences, {len(counts)} subjects)\n"
        f"subject silhouette score = {stats.lip_silhouette:.2f}"
    )
    ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, path, bbox_inches="tight")


def plot_demographics(stats: DatasetStats, path: Path) -> Path:
    """Fig. 4(b)(c): age and gender of the subjects, and the duration of the sequences."""
    per_subject: dict[str, dict[str, object]] = {}
    for subj, meta in zip(stats.subjects, stats.metadata, strict=True):
        per_subject.setdefault(subj, meta)
    ages = [m["age"] for m in per_subject.values() if m.get("age") not in (None, "", -1)]
    genders = Counter(str(m.get("gender") or "unknown") for m in per_subject.values())
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    if ages:
        axes[0].hist(np.asarray(ages, dtype=float), bins=range(10, 75, 5), color="#4c72b0")
    else:
        axes[0].text(0.5, 0.5, "no age metadata", ha="center", transform=axes[0].transAxes)
    axes[0].set(title="Age of subjects", xlabel="age (years)", ylabel="subjects")
    axes[1].bar(
        list(genders), list(genders.values()), color=["#dd8452", "#4c72b0", "0.6"][: len(genders)]
    )
    axes[1].set(title="Gender of subjects", xlabel="gender", ylabel="subjects")
    d = stats.durations
    axes[2].hist(d, bins=20, color="#55a868")
    axes[2].axvline(np.median(d), color="k", ls="--", label=f"median {np.median(d):.2f} s")
    axes[2].set(
        title=f"Sequence duration ({d.min():.1f}-{d.max():.1f} s)",
        xlabel="duration (s)",
        ylabel="sequences",
    )
    axes[2].legend()
    return save_figure(fig, path, bbox_inches="tight")


def plot_region_graph(
    stats: DatasetStats,
    centroids: dict[str, np.ndarray],
    outline: np.ndarray,
    path: Path,
    threshold: float = 0.5,
) -> Path:
    """Fig. 4(d): face regions as nodes, linked where their motion correlates >= ``threshold``.

    Args:
        stats: with the correlation matrix.
        centroids: region -> (2,) frontal position (x right, y up), metres.
        outline: (N, 2) frontal positions of the face's vertices, drawn faintly for context.
        path: PNG path.
    """
    names = stats.correlation_regions
    fig, (ax, axm) = plt.subplots(1, 2, figsize=(13, 6))
    ax.scatter(*(outline.T * 100), s=1, c="0.85")
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            c = stats.correlation[i, j]
            if i < j and c >= threshold:
                xy = np.stack([centroids[a], centroids[b]]) * 100
                ax.plot(*xy.T, color=plt.get_cmap("viridis")(c), lw=1 + 6 * (c - threshold))
                ax.text(*(xy.mean(0)), f"{c:.2f}", fontsize=7, ha="center")
    for n in names:
        ax.scatter(*(centroids[n] * 100), s=180, c="#c44e52", zorder=3)
        ax.text(*(centroids[n] * 100 + [0, 0.6]), n, ha="center", fontsize=9, zorder=4)
    ax.set(
        title=f"Regions whose motion correlates >= {threshold}", xlabel="x (cm)", ylabel="y (cm)"
    )
    ax.set_aspect("equal")
    im = axm.imshow(stats.correlation, vmin=-1, vmax=1, cmap="RdBu_r")
    axm.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axm.set_yticks(range(len(names)), names)
    axm.set_title("Correlation of per-frame region speed")
    fig.colorbar(im, ax=axm, label="Pearson correlation")
    return save_figure(fig, path, bbox_inches="tight")
