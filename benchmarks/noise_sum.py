"""weighted_noise_sum (the hot part of OpenAI-ES's tell) in GB/s against the machine's copy bandwidth.

Bytes counted: the noise rows read, pairs x n_params x 4. Copy bandwidth: np.copyto of a
large float32 array, counted as bytes copied (each byte is read once and written once).
The previous implementation (stack 64 rows, then a BLAS gemv) is timed alongside.
"""

import argparse
import time

import common

import numpy as np  # noqa: E402  (after common, which puts this checkout first on sys.path)

from es_mpi.run.noise import local_table  # noqa: E402
from es_mpi.parts.strategies.openai_es import weighted_noise_sum  # noqa: E402


def stacked_gemv(noise, offsets_n, weights_n, n_params, block=64):
    """The previous implementation, for comparison."""
    total_p = np.zeros(n_params, dtype=np.float32)
    weights_n = np.asarray(weights_n, dtype=np.float32)
    for start in range(0, len(offsets_n), block):
        rows_bp = np.stack([noise[o:o + n_params] for o in offsets_n[start:start + block]])
        total_p += weights_n[start:start + block] @ rows_bp
    return total_p


def copy_buffers(floats=100_000_000):
    """(target, source) float32 arrays for the copy-bandwidth reference, both written once so
    that no timed copy pays the first touch of fresh pages. 400 MB each by default: twice the
    default noise table, so the copy cannot live in a large L3."""
    source = np.ones(floats, dtype=np.float32)
    target = np.zeros_like(source)
    target.fill(1.0)
    return target, source


def copy_bandwidth(repeats, floats=100_000_000):
    """(GB/s, seconds of each repeat) of np.copyto: bytes copied / seconds."""
    target, source = copy_buffers(floats)
    seconds, all_s = median_seconds(repeats, np.copyto, target, source)
    return source.nbytes / seconds / 1e9, all_s


def median_seconds(repeats, function, *args):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - start)
    return common.median(times), times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=int, default=159_505, help="parameters (default: Humanoid 256x256)")
    parser.add_argument("--pairs", type=int, default=1000, help="rows summed (default 1000)")
    parser.add_argument("--noise", type=int, default=50_000_000, help="noise table floats (default 50M)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats (default 7)")
    parser.add_argument("--name", type=common.report_name, default="noise_sum",
                        help="report name under benchmarks/results/")
    args = parser.parse_args()
    noise = local_table(args.noise, 123)
    draw = np.random.default_rng(0)
    offsets_n = draw.integers(0, noise.size - args.params + 1, size=args.pairs)
    weights_n = draw.standard_normal(args.pairs).astype(np.float32)
    copy_gbs, copy_all = copy_bandwidth(args.repeats)
    row_bytes = args.pairs * args.params * 4
    rows = [{"operation": "np.copyto 400 MB", "median ms": f"{common.median(copy_all) * 1e3:.1f}",
             "min-max ms": common.spread(t * 1e3 for t in copy_all), "GB/s": f"{copy_gbs:.1f}",
             "of copy bandwidth": "100%"}]
    results = {}
    for name, function in [("weighted_noise_sum (this checkout)", weighted_noise_sum),
                           ("stack 64 rows + gemv (previous)", stacked_gemv)]:
        seconds, all_s = median_seconds(args.repeats, function, noise, offsets_n, weights_n, args.params)
        results[name] = function(noise, offsets_n, weights_n, args.params)
        rows.append({"operation": name, "median ms": f"{seconds * 1e3:.1f}",
                     "min-max ms": common.spread(t * 1e3 for t in all_s),
                     "GB/s": f"{row_bytes / seconds / 1e9:.1f}",
                     "of copy bandwidth": f"{row_bytes / seconds / 1e9 / copy_gbs:.0%}"})
    current = next(iter(results.values()))
    same_chunks = all(np.array_equal(current, weighted_noise_sum(noise, offsets_n, weights_n, args.params, chunk))
                      for chunk in (1000, 4096, args.params))
    body = [f"{args.pairs} rows of {args.params} float32 from a {args.noise}-float table "
            f"({row_bytes / 1e6:.0f} MB read per call); medians of {args.repeats} repeats.", "",
            common.markdown_table(list(rows[0]), rows), "",
            f"- bitwise the same result with column chunks of 1000, 4096 and {args.params}: {same_chunks}",
            "- largest difference to the previous implementation: "
            f"{float(np.max(np.abs(current - next(iter(list(results.values())[1:]))))):.3g}"]
    common.write_report(args.name, "Noise sum: bandwidth of the update's hot loop", body)


if __name__ == "__main__":
    main()
