"""The iteration under MPI: the trainer, its collectives, the node-shared noise table and the episodes."""
