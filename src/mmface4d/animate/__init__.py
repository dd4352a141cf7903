"""Speech-driven 3D face animation: the paper's model, baselines, training, evaluation."""
