"""Meshing kernels: NumPy + Numba only, a typed public API over private @njit kernels."""

from models3d.kernels.decimate import decimate
from models3d.kernels.isosurface import isosurface, to_patient_space
from models3d.kernels.mesh import Mesh
from models3d.kernels.smoothing import smooth

__all__ = ["Mesh", "decimate", "isosurface", "smooth", "to_patient_space"]
