"""A Kinect-like depth noise model for the synthetic studio (:mod:`mmface4d.synth.studio`).

Depth is the Kinect's depth already transformed into the colour camera (as MMFace4D stores it):
uint16 millimetres, 0 = no measurement. The model, :class:`DepthNoise`, applied by
:func:`degrade_depth`:

- axial Gaussian noise with the Kinect model of Nguyen, Izadi & Lovell, "Modeling Kinect Sensor
  Noise for Improved 3D Reconstruction and Tracking" (3DIMPVT 2012):
  ``sigma(z, theta) = 0.0012 + 0.0019 (z - 0.4)^2 + 0.0001 / sqrt(z) * theta^2 / (pi/2 - theta)^2``
  metres (z in metres, theta the angle between the surface normal and the view ray), i.e. 1.4 mm
  at 0.72 m facing the camera, 3.5 mm on the 1.5 m backdrop. It was measured on the structured-
  light Kinect; it stands in for the Azure Kinect's ToF noise, whose specification only bounds it
  (random error std <= 17 mm, systematic error < 11 mm + 0.1% of the distance);
- quantisation to whole millimetres;
- holes at grazing angles (the hole probability ramps from 0 at 70 degrees to 1 at 80), random
  dropouts of single depth-sensor pixels, and readings outside the NFOV-unbinned operating range
  (0.5-3.86 m) or field of view (75 x 65 degrees) are invalid (Azure Kinect DK hardware
  specification, learn.microsoft.com/azure/kinect-dk/hardware-specification);
- flying pixels: along depth discontinuities a fraction of the pixels read a depth between the
  foreground and the background, as a ToF pixel that sees both does;
- noise and dropouts are drawn on the depth sensor's 640 x 576 grid and spread to the colour
  pixels each sensor pixel covers (about 2 x 2 at 1080p; independent per pixel at low working
  resolutions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mmface4d.geometry.frames import MM_PER_M


@dataclass(frozen=True)
class DepthNoise:
    """Kinect-like depth degradation (see the module doc for the model and its sources)."""

    axial_base_m: float = 0.0012
    """Nguyen et al. 2012: constant term of the axial std, metres."""
    axial_quadratic: float = 0.0019
    """Nguyen et al. 2012: coefficient of (z - axial_offset_m)^2, 1/metre."""
    axial_offset_m: float = 0.4
    """Nguyen et al. 2012: depth of the smallest noise, metres."""
    axial_angle: float = 0.0001
    """Nguyen et al. 2012: coefficient of theta^2 / (pi/2 - theta)^2 / sqrt(z), metres^1.5."""
    bias_m: float = 0.0
    """Systematic offset added to every reading (Azure Kinect spec: < 11 mm + 0.1% of z)."""
    grazing_start_degrees: float = 70.0
    """Incidence angle where holes start to appear."""
    grazing_end_degrees: float = 80.0
    """Incidence angle beyond which every pixel is a hole."""
    dropout_rate: float = 0.002
    """Fraction of depth-sensor pixels that randomly read nothing."""
    flying_fraction: float = 0.6
    """Fraction of the pixels along a depth discontinuity that read a mixed depth."""
    flying_jump_m: float = 0.05
    """Depth step within a 3x3 neighbourhood that counts as a discontinuity, metres."""
    min_range_m: float = 0.5
    """Nearest valid reading (NFOV unbinned)."""
    max_range_m: float = 3.86
    """Farthest valid reading (NFOV unbinned)."""
    fov_degrees: tuple[float, float] = (75.0, 65.0)
    """Depth field of view (horizontal, vertical), centred on the colour camera's axis."""
    sensor_size: tuple[int, int] = (640, 576)
    """Depth sensor resolution (W, H); noise is drawn per sensor pixel."""

    def std(self, depth_m: np.ndarray, incidence_rad: np.ndarray | float = 0.0) -> np.ndarray:
        """Axial noise std in metres for depths (metres) and incidence angles (radians)."""
        z = np.maximum(np.asarray(depth_m, dtype=np.float64), 1e-3)
        theta = np.clip(np.asarray(incidence_rad, dtype=np.float64), 0.0, math.pi / 2 - 1e-3)
        angle = self.axial_angle / np.sqrt(z) * theta**2 / (math.pi / 2 - theta) ** 2
        return self.axial_base_m + self.axial_quadratic * (z - self.axial_offset_m) ** 2 + angle


def depth_field_of_view(rays: np.ndarray, noise: DepthNoise) -> np.ndarray:
    """Which view rays the depth camera sees (its field of view is centred on the colour
    camera's axis).

    Args:
        rays: (H, W, 3) camera-frame view rays scaled to z = 1 (normalised image coordinates).
        noise: the depth model (its ``fov_degrees``).

    Returns:
        (H, W) bool, inside the depth camera's field of view.
    """
    half_w, half_h = (math.tan(math.radians(fov / 2)) for fov in noise.fov_degrees)
    return (np.abs(rays[..., 0]) <= half_w) & (np.abs(rays[..., 1]) <= half_h)


def sensor_cell(fx: float, noise: DepthNoise) -> float:
    """Colour pixels per depth-sensor pixel, for a colour camera of focal length ``fx`` pixels
    (the sensor's ``sensor_size[0]`` pixels span the depth camera's horizontal field of view)."""
    half_w = math.tan(math.radians(noise.fov_degrees[0] / 2))
    sensor_focal = 0.5 * noise.sensor_size[0] / half_w
    return fx / sensor_focal


def _sensor_field(
    rng: np.random.Generator, shape: tuple[int, int], cell: float, normal: bool
) -> np.ndarray:
    """(H, W) float32 standard normal (or uniform) values, one per depth-sensor pixel when a
    sensor pixel spans several colour pixels (cell > 1), else one per colour pixel."""
    height, width = shape
    rows, cols = np.arange(height), np.arange(width)
    if cell > 1.0:
        rows, cols = (rows / cell).astype(np.int64), (cols / cell).astype(np.int64)
    grid_shape = (int(rows[-1]) + 1, int(cols[-1]) + 1)
    if normal:
        grid = rng.standard_normal(grid_shape, dtype=np.float32)
    else:
        grid = rng.random(grid_shape, dtype=np.float32)
    return grid if cell <= 1.0 else grid[rows[:, None], cols[None, :]]


def degrade_depth(
    z: np.ndarray,
    theta: np.ndarray,
    noise: DepthNoise,
    rng: np.random.Generator,
    *,
    in_fov: np.ndarray,
    cell: float,
) -> np.ndarray:
    """Noisy depth from the true depth and incidence angle of each pixel: flying pixels, axial
    noise, holes, dropouts, field of view and range, quantisation to millimetres.

    Args:
        z: (H, W) true depth, metres (0 = nothing).
        theta: (H, W) incidence angle between surface normal and view ray, radians.
        noise: the depth model.
        rng: generator of every random draw.
        in_fov: (H, W) bool, inside the depth camera's field of view
            (:func:`depth_field_of_view`).
        cell: colour pixels per depth-sensor pixel (:func:`sensor_cell`).

    Returns:
        (H, W) uint16 millimetres, 0 = no measurement.
    """
    valid = z > 0
    # Flying pixels: mixed depths where the 3x3 neighbourhood spans a discontinuity.
    high = ndimage.maximum_filter(np.where(valid, z, 0.0), size=3)
    low = ndimage.minimum_filter(np.where(valid, z, np.inf), size=3)
    edge = valid & (high - low > noise.flying_jump_m)  # False where low is inf
    mix = rng.random(z.shape, dtype=np.float32)
    flying = edge & (rng.random(z.shape, dtype=np.float32) < noise.flying_fraction)
    z = np.where(flying, np.where(edge, low, 0.0) + mix * (high - low), z)
    std = noise.std(z, theta).astype(np.float32)
    measured = z + noise.bias_m + std * _sensor_field(rng, z.shape, cell, normal=True)
    span = max(noise.grazing_end_degrees - noise.grazing_start_degrees, 1e-6)
    hole_chance = (np.degrees(theta) - noise.grazing_start_degrees) / span
    holes = rng.random(z.shape, dtype=np.float32) < hole_chance
    dropped = _sensor_field(rng, z.shape, cell, normal=False) < noise.dropout_rate
    valid &= ~holes & ~dropped & in_fov
    valid &= (measured >= noise.min_range_m) & (measured <= noise.max_range_m)
    return np.where(valid, np.round(measured * MM_PER_M), 0).astype(np.uint16)
