r"""Procedural road scenes with analytic depth, in the Virtual KITTI 1.3.1 layout.

  python -m s2r_jax.data.procedural --output /tmp/pvk --num 300 --style real --seed 0

A stand-in for the real downloads in tests, the demo and benchmarks. Each frame is
ray-cast (vectorised over pixels) from a forward-looking pinhole camera with KITTI's
intrinsics scaled to the output size, ~1.65 m above a flat ground: road, sidewalks,
façades left and right (with gaps), cars, poles, wooded hills at 70-110 m, and sky.
Depth is the nearest hit's z in camera coordinates (z-depth, not ray length).
Written exactly as Virtual KITTI 1.3.1 is laid out:

  <output>/rgb/<world>/<variation>/%05d.png     8-bit RGB
  <output>/depth/<world>/<variation>/%05d.png   16-bit, centimetres, sky 65535
  <output>/<split>.txt                          "rgb/... depth/..." per frame

Worlds are "0001", "0002", ... of --frames_per_world frames each, numbered from 00000.
The variation names the style: `clone` (vKITTI's name for its plain rendering) for
`synthetic` (flat colours, clean edges), `real` for `real` (textures, lighting, fog,
blur, sensor noise). Geometry and base colours depend only on (seed, frame index),
never on the style: one seed's two styles have identical depth maps, a pure style
shift. Both styles can share a root (separate variation folders) if their --split
names differ, since each run rewrites its list.

NumPy, SciPy and Pillow only: no tensorflow, no jax.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sys
import time
from contextlib import nullcontext

import numpy as np
from scipy import ndimage

from s2r_jax.data.imageio import write_png16, write_rgb

STYLES = ("synthetic", "real")
VARIATION = {"synthetic": "clone", "real": "real"}
SKY_CM, MAX_CM = 65535, 65534
# KITTI's left colour camera (fx, fy, cx, cy) at its 1242x375 frame size.
KITTI_SIZE, KITTI_K = (375, 1242), (721.5377, 721.5377, 609.5593, 172.854)
LABELS = ("sky", "road", "sidewalk", "backdrop", "building", "vehicle", "pole")
SKY, ROAD, SIDEWALK, BACKDROP, BUILDING, VEHICLE, POLE = range(len(LABELS))


def intrinsics(height: int, width: int) -> tuple[float, float, float, float]:
    """KITTI's (fx, fy, cx, cy) scaled to a height x width image."""
    sy, sx = height / KITTI_SIZE[0], width / KITTI_SIZE[1]
    return tuple(k * f for k, f in zip(KITTI_K, (sx, sy, sx, sy)))


@dataclasses.dataclass
class Scene:
    """One frame's geometry and base colours. World frame: x right, y down, z forward,
    camera at the origin; the ground is the plane y = cam_height."""
    height: int
    width: int
    K: tuple[float, float, float, float]   # fx, fy, cx, cy
    cam_height: float                        # metres above the ground
    pitch: float                             # radians, positive looks down
    road: tuple[float, float]                # lateral centre and half width of the road
    boxes: np.ndarray                        # (n, 2, 3) min / max corners
    box_labels: np.ndarray                   # (n,) LABELS indices
    backdrop_z: float                        # distance of the backdrop plane
    backdrop_wave: np.ndarray                # (k, 3) amplitude, frequency, phase of its skyline
    colours: dict                            # name -> RGB in [0, 1]; "boxes": (n, 3)
    key: tuple                               # the seed, for the style's own randomness


def _key(seed_or_rng) -> tuple:
    if isinstance(seed_or_rng, np.random.Generator):
        return (int(seed_or_rng.integers(2**63)),)
    return tuple(np.atleast_1d(np.asarray(seed_or_rng, dtype=np.int64)).tolist())


def _rng(key: tuple, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(list(key), spawn_key=(stream,)))


def _hsv(h, s, v):
    """One HSV colour as RGB in [0, 1]."""
    k = (np.array([5.0, 3.0, 1.0]) + h * 6) % 6
    return v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)


def sample_scene(seed_or_rng, height: int = 192, width: int = 640, max_pitch_deg: float = 1.5) -> Scene:
    """A random street scene. An int or tuple of ints seeds it reproducibly; a
    Generator is drawn from once. `max_pitch_deg=0` gives a level camera."""
    key = _key(seed_or_rng)
    g, p = _rng(key, 0), _rng(key, 1)  # geometry, palette
    h, pitch = g.uniform(1.55, 1.75), np.deg2rad(g.uniform(-max_pitch_deg, max_pitch_deg))
    rc, rw, walk = g.uniform(-1.5, 1.5), g.uniform(3.5, 7.0), g.uniform(1.5, 4.0)  # road, sidewalk
    back_z, boxes, labels = g.uniform(70, 110), [], []

    def add(x0, x1, z0, z1, top, label):
        boxes.append([[x0, h - top, z0], [x1, h, z1]])
        labels.append(label)

    for side in (-1, 1):  # building façades along both sides, with gaps
        if g.random() < 0.1:
            continue
        front, z = rw + walk + g.uniform(0, 3), g.uniform(-12, 0)
        while z < back_z - 5:
            length = g.uniform(6, 25)
            x = front + g.uniform(0, 2.5)
            add(*sorted((side * x, side * (x + 12))), z, min(z + length, back_z), g.uniform(4, 22),
                BUILDING)
            z += length + (g.uniform(2, 12) if g.random() < 0.35 else 0.0)
    for _ in range(g.integers(1, 7)):  # cars in the lanes or parked at the kerb
        truck = g.random() < 0.15
        w, top, length = (2.4, g.uniform(2.5, 3.5), g.uniform(6, 10)) if truck else \
            (g.uniform(1.6, 1.9), g.uniform(1.4, 1.8), g.uniform(3.8, 4.8))
        x = rc + g.choice([-1, 1]) * g.choice([rw / 2, rw - w / 2 - 0.3])
        z = g.uniform(6, 50)
        add(x - w / 2, x + w / 2, z, z + length, top, VEHICLE)
    for _ in range(g.integers(0, 9)):  # poles and trunks on the sidewalks
        x, z = rc + g.choice([-1, 1]) * (rw + g.uniform(0.4, walk - 0.3)), g.uniform(3, 60)
        add(x - 0.15, x + 0.15, z, z + 0.3, g.uniform(3, 8), POLE)
    wave = np.stack([g.uniform(0.5, 3, 4), g.uniform(0.02, 0.5, 4), g.uniform(0, 2 * np.pi, 4)], 1)
    wave[0] = g.uniform(4, 15), 0.0, np.pi / 2  # the mean skyline height (frequency 0)

    def grey(lo, hi):
        return np.full(3, p.uniform(lo, hi)) * p.uniform(0.95, 1.05, 3)

    def box_colour(label):
        if label == BUILDING:
            return _hsv(p.random(), p.uniform(0.1, 0.45), p.uniform(0.45, 0.85))
        if label == VEHICLE:
            return _hsv(p.random(), p.uniform(0.4, 0.9), p.uniform(0.3, 0.9)) if p.random() < 0.6 \
                else grey(0.08, 0.9)
        return grey(0.2, 0.45)
    overcast = p.uniform(0, 0.6)
    colours = {
        "sky_top": (1 - overcast) * _hsv(p.uniform(0.55, 0.62), p.uniform(0.4, 0.6), 0.85) + overcast * 0.7,
        "sky_horizon": (1 - overcast) * np.array([0.78, 0.86, 0.95]) + overcast * 0.8,
        "road": grey(0.28, 0.45),
        "sidewalk": grey(0.5, 0.68) if p.random() < 0.6 else _hsv(p.uniform(0.2, 0.3), 0.5, 0.5),
        "backdrop": _hsv(p.uniform(0.2, 0.35), p.uniform(0.4, 0.7), p.uniform(0.25, 0.45)),
        "boxes": np.array([box_colour(lab) for lab in labels]).reshape(-1, 3),
    }
    return Scene(height, width, intrinsics(height, width), h, pitch, (rc, rw),
                 np.array(boxes, dtype=np.float64).reshape(-1, 2, 3), np.array(labels, dtype=np.int64),
                 back_z, wave, colours, key)


def _rays(scene: Scene) -> np.ndarray:
    """World-frame ray directions (H, W, 3), scaled so the hit at parameter t has z-depth t."""
    fx, fy, cx, cy = scene.K
    v, u = np.mgrid[0:scene.height, 0:scene.width].astype(np.float64)
    d = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], -1)
    c, s = np.cos(scene.pitch), np.sin(scene.pitch)
    return d @ np.array([[1, 0, 0], [0, c, s], [0, -s, c]]).T


def _box_rect(scene: Scene, lo, hi) -> tuple[slice, slice] | None:
    """The pixels a box can cover (its projected corners' bounding box), or None."""
    if hi[2] <= 0.5:
        return None  # behind the camera; nothing in the scene is near enough to see at z < 0.5
    lo = np.array([lo[0], lo[1], max(lo[2], 0.5)])
    corners = np.array([[a[0], b[1], c[2]] for a in (lo, hi) for b in (lo, hi) for c in (lo, hi)])
    c, s = np.cos(scene.pitch), np.sin(scene.pitch)
    cam = corners @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]]).T
    if np.any(cam[:, 2] < 1e-3):
        return slice(None), slice(None)
    fx, fy, cx, cy = scene.K
    u, v = fx * cam[:, 0] / cam[:, 2] + cx, fy * cam[:, 1] / cam[:, 2] + cy
    u0, u1 = max(int(np.floor(u.min())), 0), min(int(np.ceil(u.max())) + 1, scene.width)
    v0, v1 = max(int(np.floor(v.min())), 0), min(int(np.ceil(v.max())) + 1, scene.height)
    return (slice(v0, v1), slice(u0, u1)) if u0 < u1 and v0 < v1 else None


def _skyline(scene: Scene, x):
    a, f, ph = scene.backdrop_wave.T
    return np.maximum(np.sum(a * np.sin(np.multiply.outer(x, f) + ph), -1), 0.5)


def ray_cast(scene: Scene):
    """(t, surface, axis, d): z-depth (inf for sky), surface id (0 sky, 1 ground,
    2 backdrop, 3 + i box i), the axis of the hit face's normal, the ray directions."""
    d = _rays(scene)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d[..., 1] > 1e-12, scene.cam_height / d[..., 1], np.inf)  # the ground
        tb = np.where(d[..., 2] > 1e-12, scene.backdrop_z / d[..., 2], np.inf)
    surf, axis = np.isfinite(t).astype(np.int64), np.ones(t.shape, np.int64)
    xb, yb = tb * d[..., 0], tb * d[..., 1]
    back = (tb < t) & (yb > -_skyline(scene, np.where(np.isfinite(xb), xb, 0.0)))
    t, surf, axis = np.where(back, tb, t), np.where(back, 2, surf), np.where(back, 2, axis)
    safe = np.where(np.abs(d) < 1e-12, 1e-12, d)
    for i, (lo, hi) in enumerate(scene.boxes):
        rect = _box_rect(scene, lo, hi)
        if rect is None:
            continue
        inv = 1.0 / safe[rect]
        t1, t2 = lo * inv, hi * inv
        near = np.minimum(t1, t2)
        tn, tf = near.max(-1), np.maximum(t1, t2).min(-1)
        hit = (tn <= tf) & (tn > 0) & (tn < t[rect])
        t[rect] = np.where(hit, tn, t[rect])
        surf[rect] = np.where(hit, 3 + i, surf[rect])
        axis[rect] = np.where(hit, near.argmax(-1), axis[rect])
    return t, surf, axis, d


def depth_to_cm(t: np.ndarray) -> np.ndarray:
    """Metres (inf for sky) to vKITTI's uint16 centimetres: sky 65535, others clipped to 65534."""
    cm = np.clip(np.rint(np.where(np.isfinite(t), t, 0) * 100), 1, MAX_CM)
    return np.where(np.isfinite(t), cm, SKY_CM).astype(np.uint16)


def _noise(x, y, salt: int):
    """Smooth value noise in [0, 1) on a unit lattice (hash-based, vectorised)."""
    xi, yi = np.floor(x), np.floor(y)
    fx, fy = x - xi, y - yi
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    xi, yi = xi.astype(np.int64).view(np.uint64), yi.astype(np.int64).view(np.uint64)

    def corner(a, b):
        n = (xi + np.uint64(a)) * np.uint64(0x9E3779B1) ^ (yi + np.uint64(b)) * np.uint64(0x85EBCA77)
        n = (n ^ np.uint64(salt * 0x27D4EB2F + 0x165667B1)) * np.uint64(0xC2B2AE3D)
        n ^= n >> np.uint64(29)
        n *= np.uint64(0x94D049BB)
        return ((n >> np.uint64(40)) & np.uint64(0xFFFFFF)).astype(np.float32) / np.float32(1 << 24)
    top = corner(0, 0) + fx * (corner(1, 0) - corner(0, 0))
    bottom = corner(0, 1) + fx * (corner(1, 1) - corner(0, 1))
    return (top + fy * (bottom - top)).astype(np.float32)


def _fbm(x, y, salt: int, octaves: int = 3):
    """Fractal noise in [0, 1): octaves of value noise, each twice as fine and half as strong."""
    total = sum(0.5**k * _noise(x * 2**k, y * 2**k, salt + k) for k in range(octaves))
    return total / (2 - 0.5 ** (octaves - 1))


def render_scene(scene: Scene, style: str):
    """(rgb uint8 (H, W, 3), depth_cm uint16 (H, W), labels int (H, W) of LABELS)."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    t, surf, axis, d = ray_cast(scene)
    sky = surf == 0
    H, W = t.shape
    p = np.where(sky[..., None], 0.0, np.where(sky, 1.0, t)[..., None] * d)  # hit points
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    lateral = np.abs(x - scene.road[0])
    walk = (surf == 1) & (lateral > scene.road[1])
    labels = np.concatenate([[SKY, ROAD, BACKDROP], scene.box_labels])[surf]
    labels[walk] = SIDEWALK
    col = scene.colours
    base = np.concatenate([np.zeros((1, 3)), [col["road"], col["backdrop"]], col["boxes"]])[surf]
    base[walk] = col["sidewalk"]
    v = np.linspace(0, 1, H)[:, None, None] ** 0.7 * np.ones((1, W, 1))
    sky_rgb = col["sky_top"] * (1 - v) + col["sky_horizon"] * v
    if style == "synthetic":  # one flat colour per face, a clean gradient sky
        img = base * np.array([0.78, 1.0, 0.92])[axis][..., None]
        img = np.where(sky[..., None], sky_rgb, img)
        return _to_uint8(img), depth_to_cm(t), labels

    r = _rng(scene.key, 2)
    # surface coordinates (metres) on each hit face; height above the ground
    s_, t_ = np.where(axis == 0, z, x), np.where(axis == 1, z, y)
    above = scene.cam_height - y
    fine = _fbm(s_ * 4, t_ * 4, 1)
    coarse = _fbm(s_ * 0.4, t_ * 0.4, 7, 2)
    tex = (0.8 + 0.35 * fine) * (0.85 + 0.3 * coarse)
    img = base * tex[..., None]
    paint = (labels == ROAD) & (((lateral < 0.08) & (np.mod(z, 9.0) < 3.5))  # centre dashes
                                | (np.abs(lateral - (scene.road[1] - 0.25)) < 0.07))  # edge lines
    img[paint] = 0.85 * (0.9 + 0.1 * fine[paint, None])
    tiles = walk & ((np.mod(x, 0.6) < 0.04) | (np.mod(z, 0.6) < 0.04))
    img[tiles] *= 0.7
    px, py = r.uniform(1.8, 3.2), r.uniform(2.8, 3.6)
    win = (labels == BUILDING) & (above > 2.8) & (np.mod(s_, px) / px > 0.25) & \
        (np.mod(-t_ + scene.cam_height, py) / py > 0.35) & (np.mod(s_, px) / px < 0.8)
    img[win] = (np.array([0.12, 0.15, 0.2]) + 0.35 * coarse[win, None] * np.array([0.8, 0.9, 1.0]))
    veh = labels == VEHICLE
    car_top = scene.cam_height - np.concatenate([[0, 0, 0], scene.boxes[:, 0, 1]])[surf]
    glass = veh & (above > 0.65 * car_top) & (axis != 1)
    img[glass] = 0.12 + 0.15 * fine[glass, None]
    img[veh & (above < 0.35)] *= 0.25
    trees = labels == BACKDROP
    img[trees] *= 0.45 + 0.9 * _fbm(s_[trees] * 1.5, t_[trees] * 1.5, 13)[:, None]
    # lighting: sun from a random direction, ambient sky light, distance fog
    el, az = r.uniform(0.25, 1.1), r.uniform(0, 2 * np.pi)
    sun = np.array([np.cos(el) * np.sin(az), -np.sin(el), np.cos(el) * np.cos(az)])
    normal_dot = -np.sign(np.take_along_axis(d, axis[..., None], -1)[..., 0]) * sun[axis]
    ambient = r.uniform(0.35, 0.6)
    img = img * (ambient + (1 - ambient) * 1.3 * np.maximum(normal_dot, 0))[..., None]
    vs, us = np.nonzero(sky)
    clouds = np.clip(_fbm(us / W * 6 + r.uniform(0, 100), vs / H * 3, 21, 4) * 1.6 - 0.6, 0, 1)
    sky_rgb[sky] += (0.95 - sky_rgb[sky]) * clouds[:, None] * r.uniform(0.2, 1)
    fog = 1 - np.exp(-np.where(sky, 0, t) / r.uniform(120, 500))
    img = img * (1 - fog[..., None]) + col["sky_horizon"] * fog[..., None]
    img = np.where(sky[..., None], sky_rgb, img)
    # camera: exposure, colour cast, gamma, vignetting, lens blur, sensor noise
    img = img * r.uniform(0.7, 1.3) * r.uniform(0.88, 1.12, 3)
    img = np.clip(img, 0, None) ** r.uniform(0.8, 1.25)
    vv, uu = np.mgrid[-1:1:H * 1j, -1:1:W * 1j]
    img = img * (1 - r.uniform(0, 0.35) * (uu**2 + vv**2) / 2)[..., None]
    sigma = r.uniform(0.5, 1.2)
    img = ndimage.gaussian_filter(img.astype(np.float32), (sigma, sigma, 0), truncate=3.0)
    img = img + r.normal(0, 1, img.shape).astype(np.float32) * \
        (r.uniform(0.008, 0.025) + 0.02 * np.sqrt(np.clip(img, 0, 1)))
    return _to_uint8(img), depth_to_cm(t), labels


def _to_uint8(img):
    return np.clip(np.asarray(img) * 255 + 0.5, 0, 255).astype(np.uint8)


def render_frame(seed_or_rng, height: int = 192, width: int = 640, style: str = "synthetic"):
    """(rgb uint8 (H, W, 3), depth_cm uint16 (H, W)) of one random scene."""
    rgb, depth, _ = render_scene(sample_scene(seed_or_rng, height, width), style)
    return rgb, depth


def frame_paths(index: int, style: str, frames_per_world: int = 100) -> tuple[str, str]:
    """The list line's two paths (relative to the root) of the dataset's frame `index`."""
    world, frame = f"{index // frames_per_world + 1:04d}", index % frames_per_world
    rel = f"{world}/{VARIATION[style]}/{frame:05d}.png"
    return f"rgb/{rel}", f"depth/{rel}"


def _write_frame(job):
    output, index, style, seed, height, width, fpw = job
    rgb, depth = render_frame((seed, index), height, width, style)
    rgb_rel, depth_rel = frame_paths(index, style, fpw)
    write_rgb(os.path.join(output, rgb_rel), rgb)
    write_png16(os.path.join(output, depth_rel), depth)


def write_dataset(output, num: int, style: str, seed: int, height: int = 192, width: int = 640,
                  split: str = "train", frames_per_world: int = 100, workers: int = 1,
                  verbose: bool = True) -> list[list[str]]:
    """Render `num` frames into `output`; returns the split list's rows [rgb, depth].

    Frame i is `render_frame((seed, i), height, width, style)`. `workers` processes
    render in parallel (0: one per CPU core; fewer for small datasets), forked, or
    spawned if jax or tensorflow is loaded (the caller's `__main__` must then be importable).
    """
    if style not in STYLES or min(num, frames_per_world, height, width) < 1 or seed < 0:
        raise ValueError(f"need a style in {STYLES} (got {style!r}), positive num, frames_per_world, "
                         "height and width, and seed >= 0")
    output = os.fspath(output)
    rows = [list(frame_paths(i, style, frames_per_world)) for i in range(num)]
    for rel in {os.path.dirname(p) for row in rows for p in row}:
        os.makedirs(os.path.join(output, rel), exist_ok=True)
    jobs = [(output, i, style, seed, height, width, frames_per_world) for i in range(num)]
    workers = min(workers or os.cpu_count() or 1, max(1, num // 16))
    start = last = time.perf_counter()
    threads = {"jax", "tensorflow"} & sys.modules.keys()
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() and not threads else "spawn"
    with multiprocessing.get_context(method).Pool(workers) if workers > 1 else nullcontext() as pool:
        for done, _ in enumerate(pool.imap(_write_frame, jobs, 4) if pool else map(_write_frame, jobs), 1):
            now = time.perf_counter()
            if verbose and (now - last > 2.0 or done == num):
                last = now
                print(f"{done}/{num} frames written, {done / (now - start):.1f} frames/s", flush=True)
    with open(os.path.join(output, f"{split}.txt"), "w") as f:
        f.write("".join(f"{a} {b}\n" for a, b in rows))
    return rows


def _main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    try:
        write_dataset(f.output, f.num, f.style, f.seed, f.height, f.width, f.split,
                      f.frames_per_world, f.workers)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"wrote {f.num} {f.style} frames and {os.path.join(f.output, f.split + '.txt')}")


if __name__ == "__main__":
    # Flags are defined only when run as a program, so importing this module never
    # clashes with another CLI's flags of the same name.
    from absl import app, flags

    flags.DEFINE_string("output", None, "Root directory to write the dataset to.")
    flags.DEFINE_integer("num", None, "Number of frames.")
    flags.DEFINE_enum("style", "synthetic", STYLES, "synthetic (flat colours, variation `clone`) or "
                      "real (textures, lighting, blur, noise; variation `real`).")
    flags.DEFINE_integer("seed", 0, "Frame i is drawn from the seed (seed, i); geometry does not "
                         "depend on --style.")
    flags.DEFINE_integer("height", 192, "Frame height.")
    flags.DEFINE_integer("width", 640, "Frame width.")
    flags.DEFINE_string("split", "train", "Name of the split list, <output>/<split>.txt.")
    flags.DEFINE_integer("frames_per_world", 100, "Frames per world folder (0001, 0002, ...).")
    flags.DEFINE_integer("workers", 0, "Processes rendering in parallel; 0: one per CPU core.")
    flags.mark_flags_as_required(["output", "num"])
    app.run(_main)
