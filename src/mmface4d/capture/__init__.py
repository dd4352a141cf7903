"""Capture: calibrated RGB-D cameras, the MMFace4D raw layout, Azure Kinect / Orbbec MKV files
and one synchronised multi-camera view of a recording (:class:`Capture`)."""

from mmface4d.capture.cameras import (
    CENTRE_CAMERA,
    CameraCalibration,
    distort_normalised,
    read_mmface4d_json,
    undistort_normalised,
    write_mmface4d_json,
)
from mmface4d.capture.capture import Capture, CaptureFrame
from mmface4d.capture.layout import (
    RawRecording,
    RawRecordingWriter,
    count_frames,
    find_recordings,
    read_colour_frames,
    read_depth_frames,
    read_landmarks,
    write_landmarks,
    write_raw_recording,
)
from mmface4d.capture.mkv import (
    COLOUR_MODES,
    DEPTH_MODES,
    DepthRegistration,
    KinectCalibration,
    MkvFrame,
    MkvRecording,
    parse_k4a_calibration,
    register_depth,
)

__all__ = [
    "CENTRE_CAMERA",
    "COLOUR_MODES",
    "DEPTH_MODES",
    "CameraCalibration",
    "Capture",
    "CaptureFrame",
    "DepthRegistration",
    "KinectCalibration",
    "MkvFrame",
    "MkvRecording",
    "RawRecording",
    "RawRecordingWriter",
    "count_frames",
    "distort_normalised",
    "find_recordings",
    "parse_k4a_calibration",
    "read_colour_frames",
    "read_depth_frames",
    "read_landmarks",
    "read_mmface4d_json",
    "register_depth",
    "undistort_normalised",
    "write_landmarks",
    "write_mmface4d_json",
    "write_raw_recording",
]
