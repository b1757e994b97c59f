"""Memory of all ranks on a node: the node-shared noise table against a private table per rank.

For each rank count and mode, a real mpiexec starts the ranks; each builds the table
(SharedNoiseTable, or es_mpi.noise.local_table for 'private'), reads every page of it, and
reports its VmRSS (/proc/self/status) and Pss (/proc/self/smaps_rollup). RSS counts a shared
page in every process that maps it; PSS splits it among them, so the PSS total is what the
node really spends. 'none' (no table) is the baseline of interpreter + MPI + numpy.
"""

import argparse
import json
import pathlib
import sys

import common

MODES = ("none", "shared", "private")


def proc_kib(path, key):
    for line in pathlib.Path(path).read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(f"{key} not in {path}")


def worker(mode, n_floats):
    import numpy as np

    from es_mpi.core.environment import node_size_from_env
    from es_mpi.run.mpi import world
    from es_mpi.run.node_runtime import Handles
    from es_mpi.run.noise import SharedNoiseTable, local_table

    comm = world()
    handles = Handles()
    if mode == "shared":
        nodes = handles.node_layer(comm, node_size_from_env())
        table = SharedNoiseTable(n_floats, 123, nodes, handles.window).array
    elif mode == "private":
        table = local_table(n_floats, 123)
    else:
        table = np.zeros(1024, dtype=np.float32)
    checksum = float(table[::1024].sum(dtype=np.float64))  # one read per 4 KiB page: every page mapped
    comm.Barrier()
    mine = [proc_kib("/proc/self/status", "VmRSS"), proc_kib("/proc/self/smaps_rollup", "Pss"), checksum]
    everyone = comm.gather(mine, root=0)
    comm.Barrier()
    if comm.rank == 0:
        print(json.dumps(everyone))
    handles.free()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 3], help="rank counts (default 2 3)")
    parser.add_argument("--size-gb", type=float, default=1.0, help="noise table size in GB (default 1)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per mpiexec run")
    parser.add_argument("--name", type=common.report_name, default="memory",
                        help="report name under benchmarks/results/")
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "FLOATS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker[0], int(args.worker[1]))
    n_floats = int(args.size_gb * 1e9) // 4
    rows = []
    for n_ranks in args.ranks:
        for mode in MODES:
            out = common.run_mpi(n_ranks, [pathlib.Path(__file__).resolve(), "--worker", mode, n_floats],
                                 args.timeout)
            ranks = json.loads(out.strip().splitlines()[-1])
            sums = {value[2] for value in ranks}
            if len(sums) != 1:
                sys.exit(f"ranks read different table contents in mode {mode}: {sums}")
            rows.append({"ranks": n_ranks, "table": mode,
                         "total RSS (GB)": f"{sum(r[0] for r in ranks) * 1024 / 1e9:.2f}",
                         "total PSS (GB)": f"{sum(r[1] for r in ranks) * 1024 / 1e9:.2f}",
                         "RSS per rank (GB)": " / ".join(f"{r[0] * 1024 / 1e9:.2f}" for r in ranks)})
    body = [f"Noise table: {n_floats} float32 = {n_floats * 4 / 1e9:.2f} GB. Each rank reads every page of it "
            "before measuring. 'none' = no table (baseline). PSS splits shared pages among the ranks that map "
            "them, so total PSS is the node's real cost; RSS counts a shared page once per rank.", "",
            common.markdown_table(list(rows[0]), rows)]
    common.write_report(args.name, "Memory: node-shared noise table vs a private table per rank", body)


if __name__ == "__main__":
    main()
