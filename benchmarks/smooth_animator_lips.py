"""Smooth a packaged animator's inner-lip landmark vertices (what packaging now does itself).

    .venv/bin/python benchmarks/smooth_animator_lips.py src/mmface4d/assets/default_animator.pt

For an animator file packaged before ``package_animator`` did it: see
:func:`mmface4d.animate.packaging.smooth_inner_lip_landmarks`. Written atomically in place (or
to ``-o``); a file already smoothed is left as it is.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mmface4d.animate.packaging import smooth_inner_lip_landmarks
from mmface4d.atomic import atomic_path
from mmface4d.facemodel.sources import load_face_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("animator", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=None)
    args = parser.parse_args()
    state = torch.load(args.animator, map_location="cpu", weights_only=False)
    if (state.get("info") or {}).get("inner_lip_landmarks_smoothed"):
        print(f"{args.animator}: already smoothed")
        return
    done = smooth_inner_lip_landmarks(state, load_face_model(state["face_model"]))
    output = args.output or args.animator
    with atomic_path(output) as tmp:
        torch.save(state, tmp)
    print(f"wrote {output}: vertices {done} move with their neighbours")


if __name__ == "__main__":
    main()
