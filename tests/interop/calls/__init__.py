"""sipp scenarios, peer scripts and the lab of the call interop tests."""
