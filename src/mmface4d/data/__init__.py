"""4D face datasets: the MMFace4D ``.nut`` mesh-sequence codec."""

from mmface4d.data.nut import (
    NutInfo,
    axis_paths,
    decode_nut,
    decode_nut_axis,
    encode_nut,
    nut_info,
)

__all__ = ["NutInfo", "axis_paths", "decode_nut", "decode_nut_axis", "encode_nut", "nut_info"]
