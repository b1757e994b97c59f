"""The job: a TOML job file parsed into a frozen, validated `Job`. Imports nothing of the runtime."""
