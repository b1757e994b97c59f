"""What a run leaves behind: HDF5 checkpoints, metrics, status.json and the run directory itself."""
