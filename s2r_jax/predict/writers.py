"""What prediction writes per image: colourised PNG, 16-bit PNG (KITTI's convention), .npy in
metres and, with intrinsics, a PLY point cloud."""
from __future__ import annotations

import os

import numpy as np

from s2r_jax.predict.intrinsics import Intrinsics, back_project

def write_ply(path: str, points: np.ndarray, colours: np.ndarray, binary: bool = True) -> None:
    """PLY with one vertex element (float x y z, uchar red green blue): binary
    little-endian, or ASCII."""
    n = len(points)
    header = ("ply\nformat {} 1.0\ncomment written by s2r_jax.predict\nelement vertex {}\n"
              "property float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n").format(
        "binary_little_endian" if binary else "ascii", n)
    colours = np.asarray(colours, np.uint8).reshape(n, 3)
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        if binary:
            rows = np.empty(n, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                      ("red", "u1"), ("green", "u1"), ("blue", "u1")])
            rows["x"], rows["y"], rows["z"] = points[:, 0], points[:, 1], points[:, 2]
            rows["red"], rows["green"], rows["blue"] = colours[:, 0], colours[:, 1], colours[:, 2]
            f.write(rows.tobytes())
        else:
            lines = (f"{x!r} {y!r} {z!r} {r} {g} {b}\n" for (x, y, z), (r, g, b)
                     in zip(points.tolist(), colours.tolist()))
            f.write("".join(lines).encode("ascii"))


def depth_to_png16(depth: np.ndarray) -> np.ndarray:
    """Metres -> uint16 round(metres * 256), clipped to [0, 65535] (KITTI's depth PNGs)."""
    return np.clip(np.round(depth.astype(np.float64) * 256.0), 0, 65535).astype(np.uint16)


def colourise_depth(depth: np.ndarray, colour_max: float | None = None) -> np.ndarray:
    """Near red, far blue: over [min, max] of the map, or [0, colour_max] metres if given."""
    from s2r_jax.training.panels import colourise

    lo, hi = (float(depth.min()), float(depth.max())) if colour_max is None else (0.0, float(colour_max))
    return colourise(-depth, -hi, -lo)


def write_outputs(output_dir: str, name: str, rgb: np.ndarray, depth: np.ndarray,
                  point_cloud: bool = False, intrinsics: Intrinsics | None = None,
                  colour_max: float | None = None, ply_binary: bool = True) -> dict[str, str]:
    """Write one image's outputs; {kind: path}."""
    from s2r_jax.data.imageio import write_png16, write_rgb

    out = {"colour": os.path.join(output_dir, f"{name}_depth.png"),
           "depth16": os.path.join(output_dir, f"{name}_depth16.png"),
           "npy": os.path.join(output_dir, f"{name}_depth.npy")}
    write_rgb(out["colour"], colourise_depth(depth, colour_max))
    write_png16(out["depth16"], depth_to_png16(depth))
    np.save(out["npy"], depth.astype(np.float32))
    if point_cloud:
        out["ply"] = os.path.join(output_dir, f"{name}.ply")
        fx, fy, cx, cy = (intrinsics or Intrinsics()).for_image(*depth.shape)
        write_ply(out["ply"], back_project(depth, fx, fy, cx, cy), rgb.reshape(-1, 3), ply_binary)
    return out
