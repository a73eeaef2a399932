"""production layer."""
