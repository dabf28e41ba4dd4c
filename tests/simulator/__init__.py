"""Tests of the Entra ID + Graph simulator (fetcher.simulator)."""
