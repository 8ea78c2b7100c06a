#!/usr/bin/env python3
"""Times `strata run sharpen` end to end (decode, filter, encode) on a
6000x4000 JPEG and on a folder of 1024x768 JPEGs, with peak memory, and the
same 3x3 kernel with libvips and ImageMagick when they are installed.

usage: bench-filters.py BUILD_DIR [WORK_DIR] [--count N]"""
import os, shutil, subprocess, sys, tempfile, time

def run(cmd, **kw):
    """Wall seconds and peak resident MB of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err}")
    return wall, usage.ru_maxrss / 1024

def best(cmd, repeat=3, **kw):
    runs = [run(cmd, **kw) for _ in range(repeat)]
    return min(r[0] for r in runs), max(r[1] for r in runs)

def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    count = 300
    if "--count" in sys.argv:
        count = int(sys.argv[sys.argv.index("--count") + 1])
    build = os.path.abspath(args[0] if args else "build")
    work = args[1] if len(args) > 1 else os.path.join(tempfile.gettempdir(), "strata-bench")
    strata = os.path.join(build, "core", "cli", "strata")
    os.makedirs(work, exist_ok=True)
    large = os.path.join(work, "large.jpg")
    folder = os.path.join(work, f"folder{count}")
    subprocess.run([os.path.join(build, "tests", "bench", "make-images"), large, folder, str(count)], check=True)
    out = os.path.join(work, "out")
    nproc = os.cpu_count()
    print(f"strata sharpen benchmark, {nproc} cores")

    rows = []
    t, mem = best([strata, "run", "sharpen", large, "-o", os.path.join(out, "large.jpg"), "--overwrite", "--quiet"])
    rows.append(("strata", "6000x4000 JPEG", t, mem))
    vips = shutil.which("vips")
    # ImageMagick's own convert, not another program of that name.
    magick = shutil.which("convert", path="/usr/bin") or shutil.which("magick")
    mogrify = shutil.which("mogrify")
    kernel = os.path.join(work, "sharpen.mat")
    with open(kernel, "w") as f:
        f.write("3 3 1 0\n0 -1 0\n-1 5 -1\n0 -1 0\n")
    if vips:
        t, mem = best([vips, "conv", large, os.path.join(out, "large-vips.jpg"), kernel, "--precision", "float"])
        rows.append(("vips conv", "6000x4000 JPEG", t, mem))
    if magick:
        t, mem = best([magick, large, "-morphology", "Convolve", "3x3:0,-1,0,-1,5,-1,0,-1,0",
                       os.path.join(out, "large-im.jpg")], repeat=1)
        rows.append(("ImageMagick convert", "6000x4000 JPEG", t, mem))
    t, mem = best(["sh", "-c", f"djpeg {large} | cjpeg -quality 90 > {out}/large-copy.jpg"], repeat=3) \
        if shutil.which("djpeg") and shutil.which("cjpeg") else (None, None)
    if t:
        rows.append(("djpeg|cjpeg (no filter)", "6000x4000 JPEG", t, mem))

    t, mem = best([strata, "run", "sharpen", folder, "-o", os.path.join(out, "folder"), "--overwrite", "--quiet"], repeat=2)
    rows.append(("strata", f"{count} x 1024x768", t, mem))
    if mogrify:
        dst = os.path.join(out, "mogrify")
        os.makedirs(dst, exist_ok=True)
        t, mem = best(["sh", "-c", f"mogrify -path {dst} -morphology Convolve 3x3:0,-1,0,-1,5,-1,0,-1,0 {folder}/*.jpg"], repeat=1)
        rows.append(("mogrify", f"{count} x 1024x768", t, mem))
    if vips and shutil.which("parallel"):
        dst = os.path.join(out, "vips-folder")
        os.makedirs(dst, exist_ok=True)
        t, mem = best(["sh", "-c", f"ls {folder}/*.jpg | parallel -j{nproc} vips conv {{}} {dst}/{{/}} {kernel}"], repeat=1)
        rows.append((f"parallel -j{nproc} vips", f"{count} x 1024x768", t, mem))

    print(f"{'tool':28} {'input':18} {'wall s':>8} {'img/s':>8} {'peak MB':>8}")
    for tool, what, t, mem in rows:
        n = count if "x 1024" in what else 1
        print(f"{tool:28} {what:18} {t:8.3f} {n / t:8.1f} {mem:8.0f}")
    base = {r[1]: r[2] for r in rows if r[0] == "strata"}
    print()
    for tool, what, t, _ in rows:
        if tool != "strata":
            print(f"strata vs {tool} on {what}: {t / base[what]:.2f}x the speed")

if __name__ == "__main__":
    main()
