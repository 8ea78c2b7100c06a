#!/usr/bin/env python3
"""Times read + sharpen + write through the format codecs, strata against
libvips (`vips`, when installed) in the same run:

  - a 6000x4000 (24 MP) Deflate TIFF, written back as a Deflate TIFF;
  - a 6000x4000 WebP, written back as a WebP at quality 90;
  - a folder of COUNT 1024x768 images, PNG, JPEG, TIFF, WebP, GIF and PNM
    in turn: strata once over the folder, against one vips process per
    image (as users run it), one after another and NPROC at a time.

Each figure is the best of --repeat runs (3): wall seconds, and the CPU
seconds (user + system, all threads and processes), which a busy shared
machine disturbs less.  The ratios are strata's over vips' (at most 1.0 is
the target).  The sharpen kernel is integer, so
vips runs it at integer precision: the same values, its fastest path.

usage: bench-formats.py BUILD_DIR [WORK_DIR] [--count N] [--repeat N]"""
import os, resource, shutil, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor

def run(cmd):
    """Wall seconds of one command; stops the benchmark if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr.decode()}")
    return wall

def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime

def best(fn, repeat):
    """The least wall and the least CPU seconds of repeat calls of fn."""
    walls, cpus = [], []
    for _ in range(repeat):
        cpu = children_cpu()
        start = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(children_cpu() - cpu)
    return min(walls), min(cpus)

def option(name, default):
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default

def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"

def main():
    args = [a for i, a in enumerate(sys.argv[1:], 1)
            if not a.startswith("--") and not sys.argv[i - 1].startswith("--")]
    count = option("--count", 300)
    repeat = option("--repeat", 3)
    build = os.path.abspath(args[0] if args else "build")
    work = args[1] if len(args) > 1 else os.path.join(tempfile.gettempdir(), "strata-bench")
    strata = os.path.join(build, "core", "cli", "strata")
    make_images = os.path.join(build, "tests", "bench", "make-images")
    os.makedirs(work, exist_ok=True)
    tiff = os.path.join(work, "large.tif")
    webp = os.path.join(work, "large.webp")
    folder = os.path.join(work, f"mixed{count}")
    subprocess.run([make_images, "--image", tiff, "6000", "4000"], check=True)
    subprocess.run([make_images, "--image", webp, "6000", "4000"], check=True)
    subprocess.run([make_images, "--mixed", folder, str(count)], check=True)
    out = os.path.join(work, "out")
    os.makedirs(out, exist_ok=True)
    nproc = os.cpu_count()
    vips = shutil.which("vips")
    kernel = os.path.join(work, "sharpen.mat")
    with open(kernel, "w") as f:
        f.write("3 3 1 0\n0 -1 0\n-1 5 -1\n0 -1 0\n")
    print(f"read + sharpen + write, {nproc} cores ({cpu_name()}), best of {repeat}")
    if not vips:
        print("vips is not installed (apt-get install libvips-tools): strata alone")

    def strata_one(src, dst):
        return run([strata, "run", "sharpen", src, "-o", dst, "--overwrite", "--quiet"])

    def vips_one(src, dst):
        return run([vips, "conv", src, dst, kernel, "--precision", "integer"])

    rows = []  # (what, strata seconds, vips seconds or None, images)
    for what, src, dst, vips_dst in [
        ("6000x4000 TIFF (Deflate)", tiff, "large.tif", "large-vips.tif[compression=deflate]"),
        ("6000x4000 WebP (Q 90)", webp, "large.webp", "large-vips.webp[Q=90]"),
    ]:
        s = best(lambda: strata_one(src, os.path.join(out, dst)), repeat)
        v = best(lambda: vips_one(src, os.path.join(out, vips_dst)), repeat) if vips else None
        rows.append((what, s, v, 1))

    names = sorted(os.listdir(folder))
    strata_dir = os.path.join(out, "strata-folder")
    s = best(lambda: run([strata, "run", "sharpen", folder, "-o", strata_dir, "--overwrite",
                          "--quiet"]), repeat)

    def vips_target(name):
        # strata writes a GIF's picture as a PNG; vips is asked the same.
        stem, ext = os.path.splitext(name)
        return os.path.join(out, "vips-folder", stem + (".png" if ext == ".gif" else ext))

    def vips_folder(jobs):
        os.makedirs(os.path.join(out, "vips-folder"), exist_ok=True)
        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(lambda n: vips_one(os.path.join(folder, n), vips_target(n)), names))

    if vips:
        rows.append((f"{count} mixed 1024x768, vips one by one", s, best(lambda: vips_folder(1), repeat), count))
        rows.append((f"{count} mixed 1024x768, {nproc} vips at a time", s,
                     best(lambda: vips_folder(nproc), repeat), count))
    else:
        rows.append((f"{count} mixed 1024x768", s, None, count))

    print(f"{'input':44} {'strata s':>9} {'vips s':>8} {'ratio':>6}   "
          f"{'strata cpu':>10} {'vips cpu':>8} {'ratio':>6}   {'strata img/s':>12} {'vips img/s':>10}")
    for what, (s, s_cpu), v, n in rows:
        # Images a second for the folder only.
        rate = lambda t: f"{n / t:.1f}" if t and n > 1 else "-"
        if v:
            v, v_cpu = v
            print(f"{what:44} {s:9.2f} {v:8.2f} {s / v:6.2f}   {s_cpu:10.2f} {v_cpu:8.2f} "
                  f"{s_cpu / v_cpu:6.2f}   {rate(s):>12} {rate(v):>10}")
        else:
            print(f"{what:44} {s:9.2f} {'-':>8} {'-':>6}   {s_cpu:10.2f} {'-':>8} {'-':>6}   "
                  f"{rate(s):>12} {'-':>10}")
    print("ratio: strata's seconds over vips' (target: at most 1.00)")

if __name__ == "__main__":
    main()
