"""nas-proxy."""
