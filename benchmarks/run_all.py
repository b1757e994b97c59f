"""Run every benchmark with small defaults (`make bench`); each writes benchmarks/results/<name>.md.

Takes a few minutes on 2 cores. Each script has --help for larger settings, e.g.
`python benchmarks/throughput.py --hidden 256,256`.
"""

import argparse
import subprocess
import sys

import common

BENCHMARKS = [
    ("throughput", ["--iterations", "6", "--raw-seconds", "2", "--rounds", "3"]),
    ("throughput", ["--iterations", "4", "--raw-seconds", "2", "--rounds", "3", "--hidden", "256,256",
                    "--name", "throughput_256"]),
    ("throughput", ["--jobs", "--iterations", "5", "--raw-seconds", "2", "--rounds", "3"]),
    ("update", ["--populations", "1000", "10000", "--params", "10000", "1693362", "--repeats", "3"]),
    ("node_update", ["--repeats", "3", "--name", "node_update_quick"]),
    ("scaling", ["--iterations", "5"]),
    ("scaling_model", ["--pairs", "4", "--atari-pairs", "1", "--sum-pairs", "50", "--repeats", "1",
                       "--collective-repeats", "50", "--name", "scaling_model_quick"]),
    ("built_model", ["--ranks", "128", "1024", "--pipeline-iterations", "0", "--name", "built_model_quick"]),
    ("noise_sum", ["--repeats", "5"]),
    ("memory", ["--ranks", "2", "3", "--size-gb", "1"]),
    ("atari", ["--networks", "paper", "--iterations", "2", "--steps", "300", "--raw-steps", "1000", "--repeats", "48",
               "--name", "atari_quick"]),
    ("learning", ["jobs/inverted_pendulum.toml", "--seeds", "1", "--runs-dir", "runs/learning_quick",
                  "--name", "learning_quick"]),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=[name for name, _ in BENCHMARKS], help="run only these")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per benchmark")
    args = parser.parse_args()
    failed = []
    for name, options in BENCHMARKS:
        if args.only and name not in args.only:
            continue
        command = [sys.executable, str(common.REPO / "benchmarks" / f"{name}.py"), *options]
        print(f"== {' '.join(command)}", flush=True)
        try:
            done = subprocess.run(command, timeout=args.timeout, cwd=common.REPO)
            if done.returncode != 0:
                failed.append(name)
        except subprocess.TimeoutExpired:
            failed.append(f"{name} (timed out)")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")
    print(f"results in {common.RESULTS.relative_to(common.REPO)}/")


if __name__ == "__main__":
    main()
