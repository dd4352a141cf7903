"""Characters: a user's own head mesh, registered to the face model and animated through it.

``mesh`` reads a head (OBJ, PLY, glTF/GLB) in metres; ``landmarks`` finds its facial landmarks
(a front render and MediaPipe, or a landmark file); ``register`` fits the face model to it and
builds the dense correspondence; ``transfer`` carries the model's motion and ARKit shapes onto
the head's own vertices.
"""
