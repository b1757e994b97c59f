"""`[log] tensorboard = true`: every metrics row also as TensorBoard scalars (rank 0 only).

metrics.csv stays the record; the event files in RUN_DIR/tensorboard/ are a view of it for
people who watch training in TensorBoard. The step is the row's timesteps, as in other RL
libraries' logs. A resumed run starts a new event file that purges what the previous one
logged after the checkpoint it resumes from, so the iterations played again are not doubled.
"""

import math
import time

from es_mpi.core.errors import ConfigError

FOLDER = "tensorboard"
NOT_SCALARS = ("timesteps", "wall_time")


def check_available(job):
    """A one-line error before anything runs when the job asks for TensorBoard without the extra."""
    if not job.log.tensorboard:
        return
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        raise ConfigError(job.path, "log.tensorboard", "needs tensorboardX: pip install 'es-mpi[tensorboard]'") from None


class TensorBoardScalars:
    def __init__(self, run_dir, resumed_timesteps):
        from tensorboardX import SummaryWriter

        # tensorboardX names a file by the second it opened it and truncates a file of that name: a
        # resume within the same second would erase the last run's events. The nanosecond suffix keeps
        # the names apart, and in the order TensorBoard reads them (the purge must come after).
        self.writer = SummaryWriter(logdir=str(run_dir / FOLDER), purge_step=resumed_timesteps + 1,
                                    filename_suffix=f".{time.time_ns()}")

    def write(self, row):
        step = int(row["timesteps"])
        for name, value in row.items():
            if name not in NOT_SCALARS and math.isfinite(value):
                self.writer.add_scalar(name, value, global_step=step, walltime=row.get("wall_time"))
        self.writer.flush()

    def close(self):
        self.writer.close()
