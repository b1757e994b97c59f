"""The es-mpi commands: train (and its -n launcher), eval, inspect, plot, keys."""
