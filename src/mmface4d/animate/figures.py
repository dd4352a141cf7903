"""Figures of the paper's model: one speech in several speaking styles (MMFace4D Fig. 7) and the
facial regions driven by the rows of the decoding matrix ``W_d`` (Fig. 8), written as PNG.

- :func:`style_figure`: rows are built-in speaking styles of an :class:`Animator`, columns the
  same instants of one speech, each cell a close-up of the mouth (one camera for all cells).
- :func:`decoding_regions_figure`: per model, the rows of ``W_d`` with the largest norms drawn
  as heat maps of their per-vertex activation on the face model's mean face, with a sparsity
  summary (:func:`decoding_sparsity_summary`) written beside the PNG as JSON.

Figures are composed with matplotlib (Agg, no pyplot state) on an exact pixel grid: every panel
is ``size`` x ``size`` pixels, shown without resampling.

Shapes: T frames, V vertices, N audio samples, D latent channels (rows of ``W_d``), H, W image
size.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from mmface4d.animate.animator import Animator
from mmface4d.animate.checkpoint import TrainedRun, load_run
from mmface4d.animate.lipsync import mouth_opening
from mmface4d.animate.model import Ours, decoding_sparsity
from mmface4d.atomic import atomic_path, save_figure
from mmface4d.errors import InputError
from mmface4d.facemodel.model import FaceModel
from mmface4d.render.camera import frame_mesh
from mmface4d.render.shade import render_preview

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: What :func:`decoding_regions_figure` accepts per model: a run folder or animator file, a
#: loaded run or animator, an ``OursAnimator`` or the :class:`Ours` network itself.
DecodingSource = str | os.PathLike[str] | TrainedRun | Animator | nn.Module

#: Share of a row's activation mass whose vertex count measures the row's spread.
MASS_SHARE = 0.9
_DPI = 100
_FONT = 8
_MIN_SIZE = 32
#: Mouth opening range (metres) below which a clip counts as a still mouth.
_STILL_MOUTH = 1e-4


# ---------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Grid:
    """A figure of ``rows`` x ``cols`` square panels placed at exact pixel positions.

    Attributes:
        rows, cols: panels.
        size: panel side, pixels.
        label_px: left margin for the row labels.
        header_px: top margin (figure title, column titles).
        caption_px: space above every panel for its own title (0: none).
        footer_px: bottom margin (colour bar).
    """

    rows: int
    cols: int
    size: int
    label_px: int
    header_px: int
    caption_px: int = 0
    footer_px: int = 6

    @property
    def width(self) -> int:
        return self.label_px + self.cols * self.size + 6

    @property
    def height(self) -> int:
        return self.header_px + self.rows * (self.size + self.caption_px) + self.footer_px

    def figure(self) -> tuple[Figure, list[list[Axes]]]:
        """An empty figure and its (rows, cols) panel axes, ticks and frames hidden."""
        from matplotlib.figure import Figure

        W, H = self.width, self.height
        fig = Figure(figsize=(W / _DPI, H / _DPI), dpi=_DPI, facecolor="white")
        axes = []
        for r in range(self.rows):
            top = self.header_px + r * (self.size + self.caption_px) + self.caption_px
            row = []
            for c in range(self.cols):
                left = self.label_px + c * self.size
                ax = fig.add_axes(
                    (left / W, 1 - (top + self.size) / H, self.size / W, self.size / H)
                )
                ax.set_axis_off()
                row.append(ax)
            axes.append(row)
        return fig, axes

    def row_label(self, fig: Figure, row: int, text: str) -> None:
        """Right-aligned text left of panel row ``row``."""
        centre = self.header_px + row * (self.size + self.caption_px) + self.caption_px
        centre += self.size / 2
        fig.text(
            (self.label_px - 6) / self.width,
            1 - centre / self.height,
            text,
            ha="right",
            va="center",
            fontsize=_FONT,
        )


def _check_png(output_png: str | os.PathLike[str]) -> Path:
    path = Path(output_png)
    if path.suffix.lower() != ".png":
        raise InputError(f"{path}: expected a .png output path")
    return path


def _check_size(size: int) -> int:
    if int(size) < _MIN_SIZE:
        raise InputError(f"size: expected a panel side of at least {_MIN_SIZE} pixels, got {size}")
    return int(size)


# ---------------------------------------------------------------------------- Fig. 7: styles


def contrasting_frames(opening: np.ndarray, count: int, flat: float = 0.0) -> np.ndarray:
    """Frames where the mouth looks most different: alternately the most open and the most
    closed ones not yet near a chosen frame, so they spread over the clip.

    The first pick is the largest opening, the second the smallest; a frame is eligible only if
    it lies at least ``T // (2 * count)`` frames from every chosen one. A clip whose opening
    varies by at most ``flat`` gets evenly spaced frames instead.

    Args:
        opening: (T,) mouth opening per frame (any unit).
        count: frames to choose, 1 <= count <= T.
        flat: largest opening range treated as no motion, in the unit of ``opening``.

    Returns:
        (count,) int64 frame indices, sorted in time.
    """
    opening = np.asarray(opening, dtype=np.float64)
    if opening.ndim != 1 or not np.isfinite(opening).all():
        raise InputError(f"opening: expected finite (T,) values, got shape {opening.shape}")
    T = len(opening)
    if not 1 <= count <= T:
        raise InputError(f"count: expected 1 to {T} frames (the clip's length), got {count}")
    if np.ptp(opening) <= flat:
        return ((np.arange(count) + 0.5) * T / count).astype(np.int64)
    gap = max(1, T // (2 * count))
    orders = (np.argsort(-opening, kind="stable"), np.argsort(opening, kind="stable"))
    chosen: list[int] = []
    while len(chosen) < count:  # each pick bans < 2 * gap <= T / count frames: one is eligible
        order = orders[len(chosen) % 2]
        pick = next(int(f) for f in order if all(abs(int(f) - c) >= gap for c in chosen))
        chosen.append(pick)
    return np.sort(np.asarray(chosen, dtype=np.int64))


def style_figure(
    animator: Animator,
    audio: np.ndarray,
    styles: list[str],
    output_png: str | os.PathLike[str],
    num_frames: int = 6,
    size: int = 192,
    subject: str | None = None,
) -> Path:
    """Fig. 7: one speech animated in several speaking styles, as mouth close-ups.

    Every style animates the same template with the same speech. The columns are the same
    ``num_frames`` instants for all rows, chosen on the first style's mouth opening with
    :func:`contrasting_frames`; one camera, framed on the lip region of every rendered frame,
    shows all cells.

    Args:
        animator: a model with a face model and built-in styles.
        audio: (N,) 16 kHz mono speech.
        styles: built-in style ids of ``animator`` (rows, top to bottom).
        output_png: the PNG to write (atomically).
        num_frames: columns, at most the clip's frame count.
        size: panel side in pixels.
        subject: built-in subject whose face is animated (None: the face model's mean).

    Returns:
        ``output_png``.
    """
    path = _check_png(output_png)
    size = _check_size(size)
    face_model = animator.face_model
    if face_model is None:
        raise InputError(f"model {animator.name} has no face model to render the styles with")
    if isinstance(styles, str) or not styles:
        raise InputError(f"styles: expected a non-empty list of style ids, got {styles!r}")
    unknown = [s for s in styles if s not in animator.styles]
    if unknown:
        known = ", ".join(animator.styles) or "none"
        raise InputError(f"styles {unknown}: unknown; model {animator.name} has {known}")
    if int(num_frames) < 1:
        raise InputError(f"num_frames: expected at least 1, got {num_frames}")
    template = animator.subject_template(subject)
    sequences = [
        animator.synthesise(audio, animator.speaker(template, animator.style_reference(style)))
        for style in styles
    ]  # each (T, V, 3)
    T = len(sequences[0])
    if num_frames > T:
        raise InputError(
            f"num_frames: the speech spans {T} frames, fewer than {num_frames} "
            f"({T / animator.fps:.2f} s at {animator.fps:g} fps)"
        )
    opening = mouth_opening(sequences[0], face_model.landmarks)
    frames = contrasting_frames(opening, num_frames, flat=_STILL_MOUTH)
    shown = np.stack([s[frames] for s in sequences])  # (S, num_frames, V, 3)
    lips = face_model.regions.get("lip")
    focus = shown[:, :, lips] if lips is not None and len(lips) else shown
    camera = frame_mesh(focus.reshape(-1, 3), view="front", width=size, height=size, fill=0.75)

    grid = _Grid(len(styles), len(frames), size, label_px=110, header_px=40)
    fig, axes = grid.figure()
    for row, (style, vertices) in enumerate(zip(styles, shown, strict=True)):
        images = render_preview(vertices, face_model.faces, face_model.albedo_mean, camera)
        for ax, image in zip(axes[row], images, strict=True):
            ax.imshow(image, interpolation="none")
        grid.row_label(fig, row, f"{style}\n({animator.styles[style].emotion})")
    for ax, frame in zip(axes[0], frames, strict=True):
        ax.set_title(f"{(frame + 0.5) / animator.fps:.2f} s", fontsize=_FONT, pad=2)
    fig.suptitle(
        f"one speech, {len(styles)} speaking styles ({Path(animator.name).name})",
        y=1 - 4 / grid.height,
        va="top",
        fontsize=_FONT + 1,
    )
    return save_figure(fig, path, dpi=_DPI, facecolor="white")


# ---------------------------------------------------------------------------- Fig. 8: regions


@dataclass
class DecodingSparsity:
    """How regional the rows of a decoding matrix are.

    Attributes:
        rows: D, rows of ``W_d``.
        num_vertices: V.
        mass_share: the share of activation mass measured (:data:`MASS_SHARE`).
        mass_fraction: mean over non-zero rows of the fraction of vertices holding
            ``mass_share`` of the row's activation (per-vertex offset norm); in [0, 1], smaller
            is more regional (0.9 for a row that moves every vertex alike).
        eq7: the paper's eq. 7 regulariser of ``W_d`` (sum of overlaps of all row pairs).
        eq7_per_pair: ``eq7 / (D (D - 1))``, the mean overlap of two rows, in [0, 1].
        top_rows: the rows with the largest norms, largest first.
        top_mass_fraction: ``mass_fraction`` of each of ``top_rows``.
    """

    rows: int
    num_vertices: int
    mass_share: float
    mass_fraction: float
    eq7: float
    eq7_per_pair: float
    top_rows: list[int]
    top_mass_fraction: list[float]


def row_activations(decoding_matrix: torch.Tensor | np.ndarray) -> np.ndarray:
    """Per-vertex activation of every row of ``W_d``: the norm of its offset over x, y, z.

    Args:
        decoding_matrix: (D, 3V), vertex-major coordinates (x0, y0, z0, x1, ...).

    Returns:
        (D, V) float64, >= 0.
    """
    matrix = torch.as_tensor(decoding_matrix).detach().cpu().double().numpy()
    if matrix.ndim != 2 or matrix.shape[1] % 3 or matrix.shape[1] == 0:
        raise InputError(f"decoding matrix: expected (D, 3V), got {matrix.shape}")
    return np.linalg.norm(matrix.reshape(matrix.shape[0], -1, 3), axis=2)


def mass_fraction(activations: np.ndarray, share: float = MASS_SHARE) -> np.ndarray:
    """Fraction of vertices that hold ``share`` of each row's activation mass.

    Args:
        activations: (D, V) non-negative activations.
        share: in (0, 1].

    Returns:
        (D,) in (0, 1]: the fewest vertices (largest first) whose sum reaches ``share`` of the
        row's total, over V; NaN for an all-zero row.
    """
    if not 0 < share <= 1:
        raise InputError(f"share: expected a value in (0, 1], got {share}")
    ranked = -np.sort(-np.asarray(activations, dtype=np.float64), axis=1)
    cumulative = np.cumsum(ranked, axis=1)
    total = cumulative[:, -1]
    needed = (cumulative < share * total[:, None] * (1 - 1e-12)).sum(axis=1) + 1
    return np.where(total > 0, needed / ranked.shape[1], np.nan)


def decoding_sparsity_summary(
    decoding_matrix: torch.Tensor | np.ndarray, top: int = 8
) -> DecodingSparsity:
    """Sparsity of a decoding matrix: vertex spread of its rows and the eq. 7 value.

    Args:
        decoding_matrix: (D, 3V) ``W_d``.
        top: how many of the largest-norm rows to list.

    Returns:
        :class:`DecodingSparsity`.
    """
    activations = row_activations(decoding_matrix)
    D, V = activations.shape
    fractions = mass_fraction(activations)
    if np.isnan(fractions).all():
        raise InputError("decoding matrix: every row is zero, it moves no vertex")
    norms = np.sqrt((activations**2).sum(axis=1))
    top_rows = np.argsort(-norms, kind="stable")[: max(1, min(int(top), D))]
    eq7 = float(decoding_sparsity(torch.as_tensor(decoding_matrix).detach().cpu().double()))
    return DecodingSparsity(
        rows=D,
        num_vertices=V,
        mass_share=MASS_SHARE,
        mass_fraction=float(np.nanmean(fractions)),
        eq7=eq7,
        eq7_per_pair=eq7 / (D * (D - 1)) if D > 1 else 0.0,
        top_rows=[int(r) for r in top_rows],
        top_mass_fraction=[float(fractions[r]) for r in top_rows],
    )


def decoding_matrix_of(source: DecodingSource, name: str = "model") -> torch.Tensor:
    """``W_d`` (D, 3V) of the paper's model, as a detached float32 CPU tensor.

    Args:
        source: a run folder, an animator or checkpoint file, a :class:`TrainedRun`, an
            :class:`Animator`, an ``OursAnimator`` or an :class:`Ours` network.
        name: what to call it in error messages.

    Raises:
        InputError: the model has no decoding matrix (not the paper's model).
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            model: Any = load_run(path).pipeline.model
        elif path.is_file():
            model = Animator.load(path).pipeline.model
        else:
            raise InputError(f"{name}: {path}: no such run folder or model file")
    elif isinstance(source, (TrainedRun, Animator)):
        model = source.pipeline.model
    elif isinstance(source, nn.Module):
        model = source
    else:
        raise InputError(
            f"{name}: expected a run folder, a model file or a model, got {type(source).__name__}"
        )
    net = model if isinstance(model, Ours) else getattr(model, "net", None)
    if not isinstance(net, Ours):
        raise InputError(
            f"{name}: a {type(model).__name__} has no decoding matrix W_d (only the "
            "paper's model, 'ours', has one)"
        )
    return net.decoding_matrix().detach().float().cpu()


def decoding_regions_figure(
    runs: dict[str, DecodingSource],
    face_model: FaceModel,
    output_png: str | os.PathLike[str],
    rows: int = 8,
    size: int = 256,
    colormap: str = "magma",
) -> Path:
    """Fig. 8: the vertices driven by the strongest rows of each model's decoding matrix.

    For every model (one figure row each, labelled with its name and sparsity), the ``rows``
    rows of ``W_d`` with the largest norms are drawn on the face model's mean face, front view,
    coloured by the row's per-vertex activation normalised by its maximum. The per-model
    :class:`DecodingSparsity` goes to ``<output_png without .png>.json``.

    Args:
        runs: model name -> run folder, model file or model (:data:`DecodingSource`), e.g.
            ``{"ours": RUN_A, "w/o regional": RUN_B}``.
        face_model: the face model the models animate (its mean face is drawn).
        output_png: the PNG to write (atomically).
        rows: panels per model (rows of ``W_d``), at most D.
        size: panel side in pixels.
        colormap: matplotlib colormap of the activation (0 to 1).

    Returns:
        ``output_png``.
    """
    import matplotlib

    path = _check_png(output_png)
    size = _check_size(size)
    if not isinstance(runs, dict) or not runs:
        raise InputError("runs: expected a non-empty {name: run folder or model} mapping")
    if int(rows) < 1:
        raise InputError(f"rows: expected at least 1 panel per model, got {rows}")
    try:
        cmap = matplotlib.colormaps[colormap]
    except KeyError:
        raise InputError(f"colormap: {colormap!r} is not a matplotlib colormap") from None
    V = face_model.num_vertices
    matrices = {name: decoding_matrix_of(source, name) for name, source in runs.items()}
    for name, matrix in matrices.items():
        if matrix.shape[1] != 3 * V:
            raise InputError(
                f"{name}: W_d drives {matrix.shape[1] // 3} vertices, face model "
                f"{face_model.name} has {V}"
            )
        if matrix.shape[0] < rows:
            raise InputError(f"rows: {name} has {matrix.shape[0]} rows in W_d, asked for {rows}")
    summaries = {name: decoding_sparsity_summary(m, top=rows) for name, m in matrices.items()}

    mean = np.asarray(face_model.mean, dtype=np.float32)
    face = face_model.regions.get("face")
    camera = frame_mesh(
        mean[face] if face is not None and len(face) else mean, "front", size, size, fill=0.92
    )
    grid = _Grid(
        len(runs), int(rows), size, label_px=150, header_px=26, caption_px=14, footer_px=40
    )
    fig, axes = grid.figure()
    for r, (name, matrix) in enumerate(matrices.items()):
        summary = summaries[name]
        activation = row_activations(matrix[summary.top_rows])  # (rows, V)
        activation /= np.maximum(activation.max(axis=1, keepdims=True), 1e-30)
        colours = cmap(activation)[..., :3].astype(np.float32)  # (rows, V, 3)
        vertices = np.repeat(mean[None], len(colours), axis=0)
        images = render_preview(
            vertices, face_model.faces, colours, camera, background=(255, 255, 255)
        )
        for ax, image, row, spread in zip(
            axes[r], images, summary.top_rows, summary.top_mass_fraction, strict=True
        ):
            ax.imshow(image, interpolation="none")
            caption = (
                f"row {row}: {100 * spread:.0f}% of V" if size >= 128 else f"{row}: {spread:.0%}"
            )
            ax.set_title(caption, fontsize=_FONT - 1, pad=1)
        label = (
            f"{name}\nD = {summary.rows} rows\n90% mass: "
            f"{100 * summary.mass_fraction:.1f}% of V\neq. 7 per pair: "
            f"{summary.eq7_per_pair:.3f}"
        )
        grid.row_label(fig, r, label)
    title = "strongest rows of W_d"
    if grid.width >= 600:
        title += f": activation |offset| / row max on the mean face ({face_model.name})"
    fig.suptitle(title, y=1 - 4 / grid.height, va="top", fontsize=_FONT + 1)
    bar_width = min(grid.cols * size - 16, 240) / grid.width
    bar = fig.add_axes((grid.label_px / grid.width, 12 / grid.height, bar_width, 8 / grid.height))
    bar.imshow(np.linspace(0, 1, 256)[None], aspect="auto", cmap=cmap, extent=(0, 1, 0, 1))
    bar.set_yticks([])
    bar.set_xticks([0, 0.5, 1])
    bar.tick_params(labelsize=_FONT - 1, length=2, pad=1)
    bar.set_title("activation / row max", fontsize=_FONT - 1, pad=2, loc="left")
    save_figure(fig, path, dpi=_DPI, facecolor="white")

    report = {
        "figure": path.name,
        "face_model": face_model.name,
        "models": {name: asdict(summary) for name, summary in summaries.items()},
    }
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    return path


__all__ = [
    "MASS_SHARE",
    "DecodingSource",
    "DecodingSparsity",
    "contrasting_frames",
    "decoding_matrix_of",
    "decoding_regions_figure",
    "decoding_sparsity_summary",
    "mass_fraction",
    "row_activations",
    "style_figure",
]
