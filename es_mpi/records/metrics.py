"""Per-iteration metrics: kept for the checkpoint, appended to a CSV, shown as a progress line."""

import csv
import io
import math

import numpy as np

from es_mpi.records.safe_files import append_text, replace_text

METRICS_NAME = "metrics.csv"


class MetricsLog:
    def __init__(self, csv_path=None):
        self.csv_path = csv_path
        self.rows = []
        self.mirror = None  # also given every new row, e.g. TensorBoardScalars

    def append(self, row):
        keys = list(row)
        realign = bool(self.rows) and list(self.rows[0]) != keys
        if realign:  # rows restored from an older checkpoint lack newer columns: NaN there
            self.rows = [{key: old.get(key, math.nan) for key in keys} for old in self.rows]
        self.rows.append(row)
        if self.mirror is not None:
            self.mirror.write(row)
        if self.csv_path is not None:
            if realign or len(self.rows) == 1 or not append_text(self.csv_path, _csv_text([row], keys, header=False)):
                self._rewrite_csv(keys)

    def _rewrite_csv(self, keys):
        """The whole CSV, replaced atomically (never written through a link)."""
        replace_text(self.csv_path, _csv_text(self.rows, keys, header=True))

    def close(self):
        if self.mirror is not None:
            self.mirror.close()

    def last(self, key, default):
        return self.rows[-1].get(key, default) if self.rows else default

    def last_recorded(self, key):
        """The latest value of `key` that is not NaN (an evaluation return: every eval.every rows); NaN if none."""
        for row in reversed(self.rows):
            value = row.get(key, math.nan)
            if not (isinstance(value, float) and math.isnan(value)):
                return value
        return math.nan

    def columns(self):
        """{name: 1-D array} for HDF5."""
        if not self.rows:
            return {}
        return {key: np.array([row[key] for row in self.rows]) for key in self.rows[0]}

    def restore(self, columns):
        """Rows from a checkpoint; the CSV is rewritten so that it matches the checkpoint."""
        keys = list(columns)
        n_rows = len(columns[keys[0]]) if keys else 0
        self.rows = [{k: columns[k][i].item() for k in keys} for i in range(n_rows)]
        if self.csv_path is not None:
            self._rewrite_csv(keys)

    @staticmethod
    def progress_line(row):
        def num(x):
            return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"

        steps = row["timesteps"]
        steps = f"{steps / 1e6:.2f}M" if steps >= 1e6 else f"{steps / 1e3:.1f}k"
        return (f"it {row['iteration']:5d} | steps {steps:>8} | return mean {num(row['return_mean'])} "
                f"max {num(row['return_max'])} | eval {num(row['eval_return'])} | "
                f"{row['timesteps_per_s']:.0f} steps/s | update {row['update_s']:.3f}s | "
                f"imbalance {row['imbalance']:.2f} (members {row['members_min']}-{row['members_max']}) | capped {row['capped']} | "
                f"nonfinite {row['nonfinite']} | repairs {row['repairs']}")


def _csv_text(rows, keys, header):
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=keys)
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
