#!/usr/bin/env python3
"""Checks strata's `affine` and `resize` against OpenCV's cv2.warpAffine and
cv2.resize on the same generated 8-bit image and the same matrix or size,
and prints the largest difference in levels of 255, over interior pixels
(whose every tap lies inside the image, where border handling plays no
part) and over all pixels.

OpenCV rounds source coordinates to 1/32 pixel (and weights to 15 bits);
strata samples at the exact point in floats.  On a smooth image that
rounding moves a value by well under a level, so there bilinear must stay
within 1 level of OpenCV over the interior.  Across a hard edge it moves
a value by up to (the range of the 2x2 taps) / 32: on the sharp image
each interior pixel must be within 1 level plus that.  The script exits 1
when either fails.  Nearest picks the same pixel except where a source
coordinate falls within OpenCV's fixed-point rounding (1/1024 pixel) of a
half: the share of such pixels is printed.

Needs numpy and OpenCV for Python (Debian: python3-opencv); without them
it says so and exits 0.

usage: oracle-affine.py [BUILD_DIR]     (default: build)"""
import math, os, subprocess, sys, tempfile

try:
    import cv2
    import numpy as np
except ImportError as e:
    print(f"skipped: {e.name} is not installed (Debian: apt-get install python3-opencv)")
    sys.exit(0)


def make_image(w, h, sharp, seed=1):
    """Smooth waves; sharp adds a hard-edged block and noise, as photos have."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.empty((h, w, 3), np.float64)
    for c in range(3):
        fx, fy = rng.uniform(0.02, 0.15, 2)
        img[..., c] = 0.5 + 0.35 * np.sin(fx * x + c) * np.cos(fy * y - c)
    if sharp:
        img[h // 4: h // 2, w // 5: w // 2] = (0.9, 0.1, 0.4)
        img += rng.normal(0, 0.04, img.shape)
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def strata_run(strata, chain, src, dst):
    proc = subprocess.run([strata, "run", chain, src, "-o", dst, "--overwrite", "--quiet"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"strata run '{chain}' failed:\n{proc.stderr}")
    return cv2.imread(dst, cv2.IMREAD_UNCHANGED)


def interior_mask(inverse, w_out, h_out, w_in, h_in, reach):
    """Output pixels whose source point has `reach` pixels of image on
    every side."""
    y, x = np.mgrid[0:h_out, 0:w_out].astype(np.float64)
    sx = inverse[0, 0] * x + inverse[0, 1] * y + inverse[0, 2]
    sy = inverse[1, 0] * x + inverse[1, 1] * y + inverse[1, 2]
    return (sx >= reach) & (sx <= w_in - 1 - reach) & (sy >= reach) & (sy <= h_in - 1 - reach)


def tap_range(img, inverse, w_out, h_out):
    """The range (max - min, any channel) of the 2x2 bilinear taps of each
    output pixel; 0 where they leave the image."""
    h, w = img.shape[:2]
    y, x = np.mgrid[0:h_out, 0:w_out].astype(np.float64)
    sx = inverse[0, 0] * x + inverse[0, 1] * y + inverse[0, 2]
    sy = inverse[1, 0] * x + inverse[1, 1] * y + inverse[1, 2]
    x0 = np.floor(sx).astype(np.int64)
    y0 = np.floor(sy).astype(np.int64)
    inside = (x0 >= 0) & (x0 < w - 1) & (y0 >= 0) & (y0 < h - 1)
    x0, y0 = np.where(inside, x0, 0), np.where(inside, y0, 0)
    taps = np.stack([img[y0 + j, x0 + i].astype(np.int32) for j in (0, 1) for i in (0, 1)])
    return np.where(inside, (taps.max(axis=0) - taps.min(axis=0)).max(axis=2), 0)


def report(name, got, want, mask, allowed=None, gated=False):
    """Prints the differences; returns the interior pixels over the allowed
    difference (1 level, or the array allowed), which it prints when
    gated."""
    if got.shape != want.shape:
        sys.exit(f"{name}: strata gave {got.shape}, OpenCV {want.shape}")
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32)).max(axis=2)
    inner = diff[mask]
    worst_in = int(inner.max()) if inner.size else 0
    differ = float((inner > 0).mean()) if inner.size else 0.0
    limit = (allowed if allowed is not None else np.ones_like(diff))[mask]
    over = int((inner > limit + 1e-9).sum())
    bound = f"  over bound {over}" if gated else ""
    print(f"  {name:<42} interior max {worst_in:3d}  all max {int(diff.max()):3d}"
          f"  interior differing {100 * differ:5.2f}%{bound}  ({inner.size} interior)")
    return over


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    strata = os.path.join(build, "core", "cli", "strata")
    if not os.access(strata, os.X_OK):
        sys.exit(f"no strata at {strata}: build first (meson setup build && ninja -C build)")
    work = tempfile.mkdtemp(prefix="strata-oracle-")
    w, h = 257, 191
    out = os.path.join(work, "out.png")
    failed = False
    M = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 23.0, 1.1)
    M[:, 2] += (3.3, -2.7)
    inverse = cv2.invertAffineTransform(M)
    matrix = ",".join(f"{v:.17g}" for v in M.flatten())
    borders = {"zero": cv2.BORDER_CONSTANT, "edge": cv2.BORDER_REPLICATE,
               "reflect": cv2.BORDER_REFLECT_101, "wrap": cv2.BORDER_WRAP}
    interps = {"nearest": (cv2.INTER_NEAREST, 0), "bilinear": (cv2.INTER_LINEAR, 1),
               "bicubic": (cv2.INTER_CUBIC, 2)}
    for sharp in (False, True):
        img = make_image(w, h, sharp)
        src = os.path.join(work, "sharp.png" if sharp else "smooth.png")
        cv2.imwrite(src, img)
        # Bilinear's bound: 1 level, plus on the sharp image OpenCV's
        # 1/32-pixel coordinate rounding across the taps' range.
        bound = 1 + tap_range(img, inverse, w, h) / 32 if sharp else None
        print(f"strata affine vs cv2.warpAffine {cv2.__version__}, {w}x{h} RGB, "
              f"{'sharp (edges, noise)' if sharp else 'smooth'}, levels of 255")
        for iname, (flag, reach) in interps.items():
            for bname, bflag in borders.items():
                if iname != "bilinear" and bname != "zero":
                    continue
                got = strata_run(strata, f"affine matrix={matrix} interpolation={iname} "
                                 f"border={bname}", src, out)
                want = cv2.warpAffine(img, M, (w, h), flags=flag, borderMode=bflag, borderValue=0)
                over = report(f"{iname}, border={bname}", got, want,
                              interior_mask(inverse, w, h, w, h, reach),
                              bound, gated=iname == "bilinear")
                if iname == "bilinear" and over:
                    failed = True
        # The composed form means cv2.getRotationMatrix2D about the centre.
        got = strata_run(strata, "affine rotate=23 scale=1.1", src, out)
        R = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 23.0, 1.1)
        want = cv2.warpAffine(img, R, (w, h), flags=cv2.INTER_LINEAR)
        Ri = cv2.invertAffineTransform(R)
        if report("rotate=23 scale=1.1 (getRotationMatrix2D)", got, want,
                  interior_mask(Ri, w, h, w, h, 1),
                  1 + tap_range(img, Ri, w, h) / 32 if sharp else None, gated=True):
            failed = True

    print(f"strata resize vs cv2.resize, from the sharp {w}x{h} (figures only)")
    for size in ((400, 300), (101, 77)):
        for method, flag in (("bilinear", cv2.INTER_LINEAR), ("bicubic", cv2.INTER_CUBIC),
                             ("area", cv2.INTER_AREA), ("nearest", cv2.INTER_NEAREST)):
            got = strata_run(strata, f"resize width={size[0]} height={size[1]} interpolation={method}",
                             src, out)
            want = cv2.resize(img, size, interpolation=flag)
            sx, sy = w / size[0], h / size[1]
            inv = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]])
            report(f"{method}, {size[0]}x{size[1]}", got, want,
                   interior_mask(inv, size[0], size[1], w, h, 2 + math.ceil(max(sx, sy))))

    for name in os.listdir(work):
        os.unlink(os.path.join(work, name))
    os.rmdir(work)
    if failed:
        print("bilinear affine differs from OpenCV by more than its bound inside the image")
        sys.exit(1)


if __name__ == "__main__":
    main()
