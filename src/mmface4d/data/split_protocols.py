"""The split protocols' constants, without imports: the paper's test fraction and FaceFormer's
fixed VOCASET and BIWI protocols (subjects and sentence ranges; see :mod:`mmface4d.data.splits`,
which applies them). The CLI's help shows them without loading the store.
"""

from __future__ import annotations

PAPER_TEST_FRACTION = 31 / 431

# FaceFormer main.py defaults (--train_subjects, --val_subjects, --test_subjects), VOCASET.
VOCASET_SUBJECTS = {
    "train": (
        "FaceTalk_170728_03272_TA",
        "FaceTalk_170904_00128_TA",
        "FaceTalk_170725_00137_TA",
        "FaceTalk_170915_00223_TA",
        "FaceTalk_170811_03274_TA",
        "FaceTalk_170913_03279_TA",
        "FaceTalk_170904_03276_TA",
        "FaceTalk_170912_03278_TA",
    ),
    "val": ("FaceTalk_170811_03275_TA", "FaceTalk_170908_03277_TA"),
    "test": ("FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA"),
}
# FaceFormer data_loader.py: splits['vocaset'] = train range(1, 41), val/test range(21, 41).
VOCASET_SENTENCES = {"train": range(1, 41), "val": range(21, 41), "test": range(21, 41)}
# FaceFormer biwi/main.py defaults; val_subjects equals train_subjects there.
BIWI_SUBJECTS = {
    "train": ("F2", "F3", "F4", "M3", "M4", "M5"),
    "val": ("F2", "F3", "F4", "M3", "M4", "M5"),
    "test": ("F1", "F5", "F6", "F7", "F8", "M1", "M2", "M6"),
}
# FaceFormer biwi/data_loader.py: train 1..32, val 33..36, test 37..40.
BIWI_SENTENCES = {"train": range(1, 33), "val": range(33, 37), "test": range(37, 41)}
PRESETS = {
    "vocaset": (VOCASET_SUBJECTS, VOCASET_SENTENCES),
    "biwi": (BIWI_SUBJECTS, BIWI_SENTENCES),
}
