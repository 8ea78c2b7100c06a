#!/usr/bin/env python3
"""Fashion-MNIST training and inference: strata against PyTorch (when
python3-torch is installed), same network (pipelines/keras-mnist.ini),
optimiser (Adam, lr 1e-3), batch (64), epochs and thread count.

Prints seconds per 60,000-image epoch, test accuracy after the epochs, and
inference images per second at batch 1 and 256 over the 10,000 test images;
and the arithmetic floor of an epoch: its FLOPs (from the multiply-adds of
the conv2d and dense stages that `strata inspect` lists) over the rate
OpenBLAS's SGEMM reaches on this machine now, with the same threads.

usage: bench-train.py BUILD_DIR [--epochs N] [--threads N] [--data DIR]"""
import csv, ctypes, gzip, os, re, struct, subprocess, sys, tempfile, time

def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default

def strata_bench(build, src, data, epochs, threads, work):
    strata = os.path.join(build, "core", "cli", "strata")
    ini = os.path.join(src, "pipelines", "keras-mnist.ini")
    weights = os.path.join(work, "km.safetensors")
    subprocess.run([strata, "train", ini, "--data", data, "-o", weights, "--epochs", str(epochs),
                    "--batch", "64", "--optimizer", "adam", "--lr", "0.001", "--seed", "1",
                    "-j", str(threads), "--quiet"], check=True)
    with open(os.path.join(work, "km.csv")) as f:
        rows = list(csv.DictReader(f))
    epoch_s = [float(r["seconds"]) for r in rows]
    acc = float(rows[-1]["test_accuracy"])
    rates = {}
    def eval_time(extra):
        t0 = time.perf_counter()
        subprocess.run([strata, "eval", ini, "--data", data, "--weights", weights, "-j", str(threads)]
                       + extra, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0
    overhead = min(eval_time(["--limit", "1"]) for _ in range(3))  # start-up and data loading
    for batch in (1, 256):
        t = min(eval_time(["--batch", str(batch)]) for _ in range(2))
        rates[batch] = 10000 / max(t - overhead, 1e-9)
    return epoch_s, acc, rates

def epoch_flops(build, src, images):
    """Training FLOPs of one epoch: 2 per multiply-add, three products per
    layer (forward, weight gradient, input gradient), two for the first
    layer, which has no input gradient to compute."""
    strata = os.path.join(build, "core", "cli", "strata")
    ini = os.path.join(src, "pipelines", "keras-mnist.ini")
    table = subprocess.run([strata, "inspect", ini], check=True, capture_output=True, text=True).stdout
    macs = [int(m.group(2).replace(",", "")) for m in
            re.finditer(r"^\S+\s+(conv2d|dense)\s.*?([\d,]+)\s*$", table, re.M)]
    return images * sum(2 * mac * (2 if i == 0 else 3) for i, mac in enumerate(macs))

def sgemm_rate(threads, n=2048, runs=5):
    """Best GFLOP/s of an n x n x n SGEMM in the OpenBLAS strata loads,
    with its kernels chosen as the core chooses them (core/registry.c)."""
    env = dict(os.environ)
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    if "OPENBLAS_CORETYPE" not in env and all(f" {f}" in flags for f in ("avx512f", "avx512bw", "avx512dq", "avx512vl")):
        env["OPENBLAS_CORETYPE"] = "SKYLAKEX"
    code = f"""
import ctypes, time
lib = ctypes.CDLL("libopenblas.so.0")
lib.openblas_set_num_threads({threads})
lib.openblas_get_corename.restype = ctypes.c_char_p
f = lib.cblas_sgemm
f.argtypes = [ctypes.c_int] * 6 + [ctypes.c_float, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
              ctypes.c_int, ctypes.c_float, ctypes.c_void_p, ctypes.c_int]
n = {n}
a = (ctypes.c_float * (n * n))(*([0.5] * (n * n)))
b = (ctypes.c_float * (n * n))(*([0.25] * (n * n)))
c = (ctypes.c_float * (n * n))()
best = float("inf")
for _ in range({runs}):
    t0 = time.perf_counter()
    f(101, 111, 111, n, n, n, 1.0, a, n, b, n, 0.0, c, n)
    best = min(best, time.perf_counter() - t0)
print(2 * n ** 3 / best / 1e9, lib.openblas_get_corename().decode())
"""
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), out[1]

def read_idx(path):
    with gzip.open(path) if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 0x803:
        return data[16:], n
    return data[8:], n

def torch_bench(data, epochs, threads):
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    def load(prefix):
        x, n = read_idx(os.path.join(data, f"{prefix}-images-idx3-ubyte.gz"))
        y, _ = read_idx(os.path.join(data, f"{prefix}-labels-idx1-ubyte.gz"))
        xt = torch.frombuffer(bytearray(x), dtype=torch.uint8).float().div(255).view(n, 1, 28, 28)
        yt = torch.frombuffer(bytearray(y), dtype=torch.uint8).long()
        return xt, yt
    xtr, ytr = load("train")
    xte, yte = load("t10k")
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    epoch_s = []
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr))
        t0 = time.perf_counter()
        for i in range(0, len(xtr), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss_fn(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
        epoch_s.append(time.perf_counter() - t0)
    model.eval()
    rates = {}
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
        for batch in (1, 256):
            t0 = time.perf_counter()
            for i in range(0, len(xte), batch):
                model(xte[i:i + batch])
            rates[batch] = len(xte) / (time.perf_counter() - t0)
    return epoch_s, acc, rates, torch.__version__

def main():
    # Debian's python3-torch lives with Debian's python3, which may not be
    # the python3 first on PATH.
    try:
        import torch  # noqa: F401
    except ImportError:
        system = "/usr/bin/python3"
        if os.path.exists(system) and os.path.realpath(sys.executable) != os.path.realpath(system) \
                and subprocess.run([system, "-c", "import torch"], capture_output=True).returncode == 0:
            os.execv(system, [system] + sys.argv)
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "build")
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    epochs = int(arg("--epochs", "5"))
    threads = int(arg("--threads", "2"))
    data = arg("--data", "/usr/share/datasets/fashion-mnist")
    with tempfile.TemporaryDirectory() as work:
        s_epochs, s_acc, s_rates = strata_bench(build, src, data, epochs, threads, work)
    gflops, kernels = sgemm_rate(threads)
    flops = epoch_flops(build, src, 60000)
    print(f"Keras-MNIST network on Fashion-MNIST, batch 64, Adam, {epochs} epochs, {threads} threads")
    print(f"{'':22} {'s/epoch':>8} {'test acc':>9} {'img/s b=1':>10} {'img/s b=256':>12}")
    s_epoch = sum(s_epochs) / len(s_epochs)
    print(f"{'strata':22} {s_epoch:8.1f} {100 * s_acc:8.2f}% {s_rates[1]:10.0f} {s_rates[256]:12.0f}")
    floor = flops / (gflops * 1e9)
    print(f"{'floor':22} {floor:8.1f}   ({flops / 1e12:.3f} TFLOP / {gflops:.0f} GFLOP/s, "
          f"OpenBLAS {kernels} SGEMM 2048^3 on {threads} threads, best of 5)")
    print(f"\nstrata epoch / floor: {s_epoch / floor:.2f}x")
    t = torch_bench(data, epochs, threads)
    if t:
        t_epochs, t_acc, t_rates, version = t
        t_epoch = sum(t_epochs) / len(t_epochs)
        print(f"{'PyTorch ' + version:22} {t_epoch:8.1f} {100 * t_acc:8.2f}% {t_rates[1]:10.0f} {t_rates[256]:12.0f}")
        print(f"\nstrata / PyTorch: epoch {t_epoch / s_epoch:.2f}x the speed, "
              f"inference {s_rates[1] / t_rates[1]:.2f}x at batch 1, {s_rates[256] / t_rates[256]:.2f}x at batch 256, "
              f"accuracy {100 * (s_acc - t_acc):+.2f} points")
    else:
        print("(python3-torch is not installed: no PyTorch comparison)")

if __name__ == "__main__":
    main()
