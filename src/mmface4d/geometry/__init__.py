"""Mesh maths shared by every stage: normals, edges, Laplacians, alignment, mesh I/O."""

from mmface4d.geometry.mesh import face_normals, uniform_laplacian, unique_edges, vertex_normals

__all__ = ["face_normals", "uniform_laplacian", "unique_edges", "vertex_normals"]
