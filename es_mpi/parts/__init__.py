"""The parts a job is built from: environments, objectives, policies and strategies (pure numpy, no MPI)."""
