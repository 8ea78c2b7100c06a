#!/usr/bin/env python3
"""The PyTorch twin of bench-cnn: the Keras MNIST network of
pipelines/keras-mnist.ini, timed the same way (median after warm-up).

usage: bench_cnn_torch.py [THREADS] [RUNS]

Prints "key median-ms best-ms" lines that bench-cnn reads, and '#' comments."""
import statistics, sys, time

import torch
from torch import nn


def net():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10),
        nn.Softmax(dim=1))


def median_ms(fn, runs, warmup=3):
    """Median and best milliseconds of fn, as "median best"."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return f"{statistics.median(times):.4f} {min(times):.4f}"


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = net()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{n_params} parameters, CPU capability {torch.backends.cpu.get_cpu_capability()}"
          if hasattr(torch.backends, "cpu") else
          f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {n_params} parameters")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    for batch in (64, 1):
        x = torch.rand(batch, 1, 28, 28)
        r = torch.rand(batch, 10) * 2 - 1

        def forward():
            with torch.no_grad():
                model(x)

        def forward_backward():
            model.zero_grad(set_to_none=False)
            (model(x) * r).sum().backward()

        def train_step():
            opt.zero_grad(set_to_none=False)
            (model(x) * r).sum().backward()
            opt.step()

        n = runs if batch > 1 else runs * 5
        print(f"fwd{batch} {median_ms(forward, n)}")
        print(f"fwdbwd{batch} {median_ms(forward_backward, n)}")
        if batch > 1:
            print(f"train{batch} {median_ms(train_step, n)}")


if __name__ == "__main__":
    main()
