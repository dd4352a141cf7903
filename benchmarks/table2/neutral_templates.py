"""Give a synthetic store each subject's true neutral face as its template.

    .venv/bin/python benchmarks/table2/neutral_templates.py CORPUS STORE

``data pack`` makes a subject's template the mean of its frames when the source provides none
(the MMFace4D layout does not); for a talking face that mean has the mouth ~5 mm open, while at
inference the template is a neutral face (the face model's, a user's mesh). The synthetic corpus
knows each subject's identity, so the neutral face (zero expression, centre-camera frame) is
exact. (To do: let the corpus write templates that the importer reads.)
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch

from mmface4d.data.store import Store
from mmface4d.facemodel.sources import load_face_model
from mmface4d.geometry.frames import to_camera_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("store")
    args = parser.parse_args()
    config = json.loads((args.corpus / "corpus.json").read_text())["config"]
    model = load_face_model(config["face_model"])
    with open(args.corpus / "manifest.csv", newline="") as fh:
        first = {}
        for row in csv.DictReader(fh):
            first.setdefault(row["subject"], row["recording"])
    templates = {}
    for subject, recording in first.items():
        identity = np.load(args.corpus / f"{recording}_gt.npz")["identity"]
        with torch.no_grad():
            neutral = model.vertices(torch.as_tensor(identity[: model.identity_dims])).numpy()
        templates[subject] = (to_camera_frame(neutral), "neutral face of the corpus identity")
    Store(args.store).write_templates(templates)
    print(f"{args.store}: {len(templates)} neutral templates")


if __name__ == "__main__":
    main()
