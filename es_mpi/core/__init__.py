"""What every layer uses: user-facing errors and exit codes, seeded random streams."""
