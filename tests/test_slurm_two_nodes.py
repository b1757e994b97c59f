"""slurm/train.sbatch over two real Slurm nodes on this machine (.ci/slurm-two-nodes.sh: one network
and UTS namespace per node, each with its own slurmd; root and apt-get needed).

One job, `--nodes=2 --ntasks-per-node=2`, runs while a 1-rank reference runs outside Slurm. Once the
job is training it is suspended (`scontrol suspend`) and looked at from outside: which rank processes
live in each node's namespace, which shared-memory segments they map, which TCP connections they hold;
then it is resumed and runs to the end. The tests only judge what was seen and what the runs left.
"""

import json
import pathlib
import re
import shutil
import subprocess
import time

import numpy as np
import pytest

from es_mpi.records import checkpoint as ckpt_io

from conftest import REPO, child_env, es_mpi_command
from test_slurm import FINAL_STATES, brought_up, harness, slurm_env

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

HARNESS = REPO / ".ci" / "slurm-two-nodes.sh"
NODES = ("esmpi-n1", "esmpi-n2")
RANKS_PER_NODE = 2
ITERATIONS = 20
NOISE_SIZE = 1_000_000  # 4 MB: its window stands out among the node's small shared windows
JOB = f"""
[run]
seed = 11
[env]
id = "Pendulum-v1"
[policy]
hidden = [8]
[strategy]
pairs = 4
[noise]
size = {NOISE_SIZE}
[eval]
every = 5
episodes = 2
[checkpoint]
every = 5
keep = 20
[stop]
iterations = {ITERATIONS}
"""


@pytest.fixture(scope="module")
def slurm_conf():
    """The two-node cluster's slurm.conf: the cluster already up, or one this module starts and stops."""
    for tool in ("unshare", "nsenter"):  # util-linux; ip and ss come with iproute2, which `up` installs
        if shutil.which(tool) is None:
            pytest.skip(f"two-node Slurm tests need {tool} (util-linux)")
    with brought_up(HARNESS, "two-node Slurm"):
        yield harness("env", 30, HARNESS).stdout.strip().split("=", 1)[1]


def slurm(slurm_conf, *args):
    """A Slurm client command against the two-node cluster; it must succeed."""
    done = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=60,
                          env=dict(slurm_env(), SLURM_CONF=slurm_conf))
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done


def job_fields(slurm_conf, job_id):
    out = slurm(slurm_conf, "scontrol", "show", "job", "-o", job_id).stdout
    return dict(item.split("=", 1) for item in out.split() if "=" in item)


def wait_training(slurm_conf, job_id, run_dir, log, timeout=180):
    """Until status.json shows a finished iteration (the noise tables exist then), failing at once if
    the job ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads((run_dir / "status.json").read_text())["iteration"] >= 1:
                return
        except (OSError, ValueError):
            pass
        fields = job_fields(slurm_conf, job_id)
        assert fields["JobState"] not in FINAL_STATES, f"job {job_id} ended before training: {fields}\n" + \
            (log.read_text() if log.exists() else "")
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not reach iteration 1 in {timeout} s")


def wait_final(slurm_conf, job_id, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fields = job_fields(slurm_conf, job_id)
        if fields["JobState"] in FINAL_STATES:
            return fields
        time.sleep(1)
    raise AssertionError(f"job {job_id} not finished after {timeout} s")


def node_address(node):
    out = subprocess.run(["ip", "-n", node, "-4", "-o", "addr", "show", "dev", "eth0"], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    return out.split(" inet ")[1].split("/")[0]


def rank_pids(node, run_dir):
    """The es-mpi ranks of this run among the processes of the node's network namespace."""
    listed = subprocess.run(["ip", "netns", "pids", node], capture_output=True, text=True, timeout=30,
                            check=True).stdout.split()
    ranks = []
    for pid in listed:
        try:
            argv = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if "python" in pathlib.Path(argv[0]).name and "train" in argv and str(run_dir) in argv:
            ranks.append(int(pid))
    return sorted(ranks)


def large_shared_segments(pid, at_least):
    """(path, device, inode) of Open MPI's shared-window files this process maps with >= at_least bytes."""
    found = set()
    for line in pathlib.Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or "/osc_sm." not in fields[5]:
            continue
        start, stop = (int(x, 16) for x in fields[0].split("-"))
        if stop - start >= at_least:
            found.add((fields[5].removesuffix(" (deleted)"), fields[3], int(fields[4])))
    return found


def tcp_connections(node):
    """Established TCP connections in the node's namespace: (local, peer, pids, bytes received)."""
    out = subprocess.run(["ss", "-N", node, "-tinpH", "state", "established"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    connections, lines = [], out.splitlines()
    for head, info in zip(lines[::2], lines[1::2]):
        local, peer = head.split()[2:4]
        received = re.search(r"bytes_received:(\d+)", info)
        connections.append((local, peer, {int(p) for p in re.findall(r"pid=(\d+)", head)},
                            int(received.group(1)) if received else 0))
    return connections


def look_from_outside(run_dir):
    seen = {}
    for node in NODES:
        ranks = rank_pids(node, run_dir)
        seen[node] = {"address": node_address(node), "ranks": ranks, "tcp": tcp_connections(node),
                      "segments": {pid: large_shared_segments(pid, NOISE_SIZE * 4) for pid in ranks}}
    return seen


@pytest.fixture(scope="module")
def two_node_run(slurm_conf, tmp_path_factory):
    base = tmp_path_factory.mktemp("two-nodes")
    job_file = base / "job.toml"
    job_file.write_text(JOB)
    reference = subprocess.Popen(es_mpi_command("train", job_file, "--run-dir", base / "reference"),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env(),
                                 cwd=REPO)
    try:
        run_dir, log = base / "two", base / "two.out"
        # the documented multi-node form: whole nodes, ranks per node
        job_id = slurm(slurm_conf, "sbatch", "--parsable", "--chdir", base, "--time=00:05:00",
                       f"--nodes={len(NODES)}", f"--ntasks-per-node={RANKS_PER_NODE}", "--output", log,
                       REPO / "slurm/train.sbatch", job_file, "--run-dir", run_dir).stdout.strip()
        wait_training(slurm_conf, job_id, run_dir, log)
        slurm(slurm_conf, "scontrol", "suspend", job_id)
        try:
            seen = look_from_outside(run_dir)
        finally:
            slurm(slurm_conf, "scontrol", "resume", job_id)
        fields = wait_final(slurm_conf, job_id)
        reference_out, _ = reference.communicate(timeout=300)
    finally:
        if reference.poll() is None:
            reference.kill()
            reference.wait()
    assert reference.returncode == 0, reference_out
    return {"base": base, "run_dir": run_dir, "fields": fields, "log": log.read_text(), "seen": seen}


def final_checkpoint(run_dir):
    return ckpt_io.load(ckpt_io.checkpoint_path(run_dir, ITERATIONS))


def test_two_node_job_gives_the_bytes_of_one_rank(two_node_run):
    log = two_node_run["log"]
    assert two_node_run["fields"]["JobState"] == "COMPLETED", log
    assert two_node_run["fields"]["ExitCode"] == "0:0"
    ranks = len(NODES) * RANKS_PER_NODE
    assert f"on esmpi-n[1-2], {ranks} ranks," in log
    assert f"{ranks} ranks (nodes of {'+'.join([str(RANKS_PER_NODE)] * len(NODES))})," in log
    status = json.loads((two_node_run["run_dir"] / "status.json").read_text())
    assert status["state"] == "done (iterations)" and status["node_sizes"] == [RANKS_PER_NODE] * len(NODES)
    mine, reference = final_checkpoint(two_node_run["run_dir"]), final_checkpoint(two_node_run["base"] / "reference")
    assert mine.params.tobytes() == reference.params.tobytes()
    for key, value in reference.strategy.items():
        assert np.asarray(mine.strategy[key]).tobytes() == np.asarray(value).tobytes(), key


def test_each_node_holds_one_noise_table_for_its_ranks(two_node_run):
    """Seen from outside: each namespace runs its node's ranks, and they all map one and the same
    table-sized shared segment, named after their node; the two nodes' segments are different files."""
    seen = two_node_run["seen"]
    tables = {}
    for node in NODES:
        ranks = seen[node]["ranks"]
        assert len(ranks) == RANKS_PER_NODE, (node, ranks)
        segments = [seen[node]["segments"][pid] for pid in ranks]
        assert all(len(s) == 1 for s in segments), (node, segments)
        (path, device, inode), = segments[0]
        assert all(s == segments[0] for s in segments), (node, segments)
        assert pathlib.Path(path).name.startswith(f"osc_sm.{node}."), path
        tables[node] = (device, inode)
    assert len(set(tables.values())) == len(NODES), tables


def test_ranks_on_different_nodes_talk_over_tcp(two_node_run):
    """A TCP connection between a rank in one namespace and a rank in the other, seen from both ends,
    that has carried data both ways."""
    seen = two_node_run["seen"]
    first, second = (seen[node] for node in NODES)
    ends = {(local, peer): (pids, received) for local, peer, pids, received in second["tcp"]}
    between_ranks = []
    for local, peer, pids, received in first["tcp"]:
        if not (local.startswith(first["address"] + ":") and peer.startswith(second["address"] + ":")):
            continue
        other_pids, other_received = ends.get((peer, local), (set(), 0))
        if pids & set(first["ranks"]) and other_pids & set(second["ranks"]):
            between_ranks.append((local, peer, received, other_received))
    assert between_ranks, (first["tcp"], second["tcp"])
    assert all(received > 0 and other_received > 0 for _, _, received, other_received in between_ranks), \
        between_ranks
